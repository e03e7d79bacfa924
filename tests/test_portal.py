"""The web portal over HTTP: accounts, sessions, CSRF, lock-out, bounded uploads, authority, the audit.

A real server (uvicorn on a loopback port) over a copy of the sample district as the last run published
it; the browser tests (test_portal_browser.py) drive the same pages in Chromium.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import sqlite3
import subprocess
import sys
import zipfile
from contextlib import closing
from pathlib import Path

import duckdb
import pytest
from conftest import Deployment, csv_bytes, example_row
from portal_support import PASSWORDS, copy_deployment, csrf_of, login, make_site, serving, text_of, token

from pipeline.intake.ingest import ingest_kind
from pipeline.platform.paths import PROJECT_ROOT
from pipeline.portal import accounts
from pipeline.portal.uploads import UploadRefused, safe_file_name, sniff
from pipeline.registries import uploads as upload_audit


@pytest.fixture(scope="module")
def site(sample, tmp_path_factory):
    deployment, _ = sample
    root = copy_deployment(deployment.root, tmp_path_factory.mktemp("portal"))
    with serving(make_site(root, max_upload_mb=1)) as s:
        yield s


def _hazard_of(site, unit: str, status: str | None = None) -> str:
    con = duckdb.connect(str(site.settings.published), read_only=True)
    try:
        sql = "SELECT min(hazard_no) FROM hazards WHERE responsible_unit = ?" + (" AND status = ?" if status else "")
        return con.execute(sql, [unit, *([status] if status else [])]).fetchall()[0][0]
    finally:
        con.close()


def _upload(s, site, target: str, name: str, data: bytes, csrf: str | None = None):
    return s.post(site.url + "/upload", data={"csrf": token(s, site, "/upload") if csrf is None else csrf, "target": target},
                  files={"file": (name, data, "application/octet-stream")})  # fmt: skip


def _buildings(n: int = 3, **overrides) -> bytes:
    rows = [example_row("buildings", building_id=f"640302100-8{i:05d}", town_code="640302100") for i in range(n)]
    for i, kv in overrides.items():
        rows[int(i)].update(kv)
    return csv_bytes("buildings", rows)


# --- accounts ------------------------------------------------------------------------------------


def test_passwords_are_argon2_hashes_and_sessions_expire(tmp_path):
    con = upload_audit.connect(tmp_path / "p.sqlite3")
    accounts.ensure_tables(con)
    accounts.create_account(con, "u1", "甲", "T100", "clerk", "Good-pass-123", None)
    stored = con.execute("SELECT password_hash FROM accounts").fetchall()[0][0]
    assert stored.startswith("$argon2id$") and "Good-pass-123" not in stored
    with pytest.raises(accounts.AccountError, match="至少10个字符"):
        accounts.create_account(con, "u2", "乙", "T100", "clerk", "short1", None)
    with pytest.raises(accounts.AccountError, match="单位代码"):
        accounts.create_account(con, "u3", "丙", "NOPE", "clerk", "Good-pass-123", None)
    tok = accounts.start_session(con, "u1")
    assert con.execute("SELECT count(*) FROM sessions WHERE token_sha256 = ?", [tok]).fetchall()[0][0] == 0
    assert accounts.session_for(con, tok, idle_minutes=60, max_hours=12).account.username == "u1"
    con.execute("UPDATE sessions SET last_seen = '2000-01-01T00:00:00'")
    assert accounts.session_for(con, tok, idle_minutes=60, max_hours=12) is None  # idle too long: gone
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == 0


def test_first_admin_comes_from_the_command_never_a_default(tmp_path):
    env = {**os.environ, "LITONG_PORTAL_DB": str(tmp_path / "p.sqlite3"), "LITONG_OUTPUT": str(tmp_path)}
    cmd = [sys.executable, "-m", "pipeline.portal", "create-admin", "--username", "boss", "--password-stdin"]
    weak = subprocess.run(cmd, input="12345\n", env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert weak.returncode == 2 and "密码至少10个字符" in weak.stderr
    ok = subprocess.run(cmd, input="Boss-pass-2025\n", env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert ok.returncode == 0, ok.stderr
    with closing(sqlite3.connect(tmp_path / "p.sqlite3")) as con:
        assert con.execute("SELECT username, role, unit_code FROM accounts").fetchall() == [("boss", "admin", "YJJ")]


def test_five_wrong_passwords_lock_the_account_until_an_admin_unlocks(site):
    import requests

    def attempt(password: str):
        s = requests.Session()
        s.get(site.url + "/login")
        return s.post(site.url + "/login", data={"csrf": token(s, site, "/login"), "username": "analyst",
                                                 "password": password, "next": "/"})  # fmt: skip

    for _ in range(4):
        r = attempt("wrong-password-1")
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = attempt("wrong-password-1")
    assert r.status_code == 401 and "账号已锁定" in r.text
    r = attempt(PASSWORDS["analyst"])  # the right password no longer opens it
    assert r.status_code == 401 and "锁定" in r.text
    admin = login(site, "admin")
    r = admin.post(site.url + "/admin/accounts/analyst/unlock", data={"csrf": token(admin, site, "/admin/accounts")})
    assert r.status_code == 200
    login(site, "analyst")
    with closing(site.portal_db()) as con:
        events = [r[0] for r in con.execute("SELECT event FROM auth_events WHERE username = 'analyst'")]
    assert events.count("login_failed") == 4 and "locked" in events and "unlocked" in events


def test_a_post_without_the_session_csrf_token_is_refused(site):
    s = login(site, "clerk100")
    other = login(site, "clerk101")
    for csrf in ("", token(other, site)):  # none, or another session's
        r = _upload(s, site, "buildings/2023-1", "a.csv", _buildings(), csrf=csrf)
        assert r.status_code == 403 and "CSRF" in r.text
    r = s.post(site.url + "/logout", data={})
    assert r.status_code == 403


def test_pages_need_a_session_and_send_security_headers(site):
    import requests

    r = requests.get(site.url + "/hazards", allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = requests.get(site.url + "/login")
    assert "default-src 'self'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    s = requests.Session()
    page = s.get(site.url + "/login")
    r = s.post(site.url + "/login", data={"csrf": csrf_of(page.text), "username": "clerk100",
                                          "password": PASSWORDS["clerk100"], "next": "/"},
               allow_redirects=False)  # fmt: skip
    cookie = r.headers["set-cookie"]
    assert r.status_code == 303 and "litong_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


# --- uploads ----------------------------------------------------------------------------------------


def test_file_types_go_by_content_and_names_are_never_paths(tmp_path):
    def sniffed(data: bytes, name: str = "f.csv") -> str:
        p = tmp_path / "x"
        p.write_bytes(data)
        return sniff(p, name)

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a workbook")
    assert sniffed("编号,名称\n1,甲\n".encode("gbk")) == ".csv"
    assert sniffed("\ufeff编号\t名称\n".encode("utf-16")) == ".csv"
    for data, message in ((b"\x89PNG\r\n\x1a\n" + bytes(50), "不是表格文件"), (buf.getvalue(), "不是Excel工作簿"),
                          (b"\xd0\xcf\x11\xe0" + bytes(60), ".xls"), (b"", "为空")):  # fmt: skip
        with pytest.raises(UploadRefused, match=message):
            sniffed(data, "f.xlsx")
    assert safe_file_name("../../etc/passwd", ".csv") == "passwd.csv"
    assert safe_file_name("C:\\Users\\a\\金积镇 房屋.xlsx", ".xlsx") == "金积镇 房屋.xlsx"
    assert safe_file_name(".hidden.csv", ".csv") == "hidden.csv"
    assert safe_file_name("~$lock.xlsx", ".xlsx") == "lock.xlsx"
    assert safe_file_name("a\x00b<c>.csv", ".csv") == "a_b_c.csv"
    assert safe_file_name("photo.png", ".csv") == "photo.csv"  # the suffix the content proves


def test_preview_then_confirm_lands_the_file_under_the_accounts_unit_with_its_audit(site):
    s = login(site, "clerk100")
    data = _buildings(4, **{"1": {"year_built": "3025"}})
    r = _upload(s, site, "buildings/2023-1", "../../ZJJ/2023-1/偷放.csv", data)
    page = text_of(r.text)
    assert r.status_code == 200 and "接收 3 行" in page and "退回 1 行" in page
    assert "3025" in page and "建成年份" in page  # the row's column and value, with the reason
    upload_id = [u for u in site.uploads() if u["state"] == "previewed"][-1]["upload_id"]
    assert not (site.data_raw / "buildings" / "T100" / "2023-1" / "偷放.csv").exists()  # nothing before confirming
    r = s.post(f"{site.url}/upload/{upload_id}/confirm", data={"csrf": token(s, site, f"/uploads/{upload_id}")})
    assert r.status_code == 200 and "等待处理" in r.text
    landed = site.data_raw / "buildings" / "T100" / "2023-1" / "偷放.csv"
    assert landed.read_bytes() == data
    assert not (site.data_raw / "buildings" / "ZJJ" / "2023-1" / "偷放.csv").exists()
    row = [u for u in site.uploads() if u["upload_id"] == upload_id][0]
    assert (row["username"], row["unit_code"], row["state"], row["rel_path"]) == (
        "clerk100",
        "T100",
        "landed",
        "buildings/T100/2023-1/偷放.csv",
    )
    assert row["sha256"] == __import__("hashlib").sha256(data).hexdigest()
    assert not list(landed.parent.glob(".*"))  # no temp file left
    # a second confirmation (a replayed form) lands nothing again
    before = landed.stat().st_mtime_ns
    s.post(f"{site.url}/upload/{upload_id}/confirm", data={"csrf": token(s, site)})
    assert landed.stat().st_mtime_ns == before


def test_uploads_are_bounded_and_refused_kinds_and_rounds_are_403(site):
    s = login(site, "clerk100")
    big = b"a,b\n" + b"1,2\n" * 400_000  # 1.6 MB > the 1 MB bound of this site
    r = _upload(s, site, "buildings/2023-1", "big.csv", big)
    assert r.status_code == 413 and "MB上限" in r.text
    r = _upload(s, site, "bridges/2023-1", "b.csv", _buildings())  # a town does not survey bridges
    assert r.status_code == 403
    r = _upload(s, site, "buildings/9999", "b.csv", _buildings())
    assert r.status_code == 403
    r = _upload(s, site, "buildings/2023-1", "pic.csv", b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert r.status_code == 400 and "不是表格文件" in r.text
    duty = login(site, "duty")
    assert duty.get(site.url + "/upload").status_code == 403
    assert not list((site.data_raw / "buildings" / "T100" / "2023-1").glob("big*"))


def test_a_clerk_cannot_see_or_change_another_units_hazards(site):
    s = login(site, "clerk100")
    own, other = _hazard_of(site, "T100"), _hazard_of(site, "T101", "已整改待验收")
    assert s.get(f"{site.url}/hazards/{own}").status_code == 200
    r = s.get(f"{site.url}/hazards/{other}")
    assert r.status_code == 403 and other not in r.text
    listed = s.get(site.url + "/hazards?unit=T101")
    assert listed.status_code == 403
    before = len(site.uploads())
    r = s.post(f"{site.url}/hazards/{other}/decision", data={"csrf": token(s, site), "decision": "accept"})
    assert r.status_code == 403 and len(site.uploads()) == before  # nothing staged, nothing landed
    # another clerk's preview cannot be confirmed by someone else
    t101 = login(site, "clerk101")
    r = _upload(t101, site, "feedback/2025-06-30", "fb.csv", csv_bytes("feedback", [example_row("feedback")]))
    upload_id = site.uploads()[-1]["upload_id"]
    r = s.post(f"{site.url}/upload/{upload_id}/confirm", data={"csrf": token(s, site)})
    assert r.status_code == 403 and site.uploads()[-1]["state"] == "previewed"
    assert s.get(f"{site.url}/uploads/{upload_id}").status_code == 403


def test_my_hazards_are_the_units_own_with_overdue_days_and_a_prefilled_feedback_file(site):
    from openpyxl import load_workbook

    s = login(site, "clerk100")
    page = s.get(site.url + "/hazards?status=整改中&grade=重大").text
    con = duckdb.connect(str(site.settings.published), read_only=True)
    expected = con.execute("SELECT count(*) FROM hazards WHERE responsible_unit = 'T100' AND status = '整改中' "
                           "AND hazard_grade = '重大'").fetchall()[0][0]  # fmt: skip
    open_numbers = {r[0] for r in con.execute(
        "SELECT hazard_no FROM hazards WHERE responsible_unit = 'T100' AND status NOT IN ('已销号', '已撤销')").fetchall()}  # fmt: skip
    con.close()
    assert f'id="total">{expected:,}<' in page and "JZ-640302101" not in page
    r = s.get(site.url + "/hazards/feedback.xlsx")
    ws = load_workbook(io.BytesIO(r.content))["填报表"]
    numbers = {row[0] for row in ws.iter_rows(min_row=2, values_only=True) if row[0]}
    assert numbers == open_numbers
    assert {row[4] for row in ws.iter_rows(min_row=2, values_only=True)} == {"T100"}  # 填报单位, after 3 for reading


def test_feedback_preview_says_what_will_update_and_what_will_be_returned(site):
    s = login(site, "clerk100")
    own, other = _hazard_of(site, "T100", "待整改"), _hazard_of(site, "T101", "待整改")
    rows = [example_row("feedback", hazard_no=h, unit="", status="整改中", report_date="2025-06-30",
                        funds_wan="3", plan_finish="2025-12-31", plan_no="YA-1") for h in (own, other, "JZ-无此编号-B01")]  # fmt: skip
    r = _upload(s, site, "feedback/2025-06-30", "反馈.csv", csv_bytes("feedback", rows))
    page = text_of(r.text)
    assert "1 条将更新，2 条将退回" in page
    assert "不是本单位负责的隐患" in page and "在台账中不存在" in page


def test_the_intake_takes_the_uploader_from_the_audit_and_refuses_moved_or_unaudited_files(tmp_path, monkeypatch):
    d = Deployment(tmp_path)
    monkeypatch.setenv("LITONG_PORTAL_DB", str(tmp_path / "portal.sqlite3"))
    data = _buildings(2)
    audited = d.drop("buildings", "a.csv", data, unit="T100")
    moved = d.drop("buildings", "b.csv", data, unit="T101")  # the same bytes, in another unit's folder
    with closing(upload_audit.connect()) as con:
        for name in ("a.csv", "b.csv"):
            con.execute(
                "INSERT INTO uploads (upload_id, username, unit_code, kind, folder, file_name, rel_path, sha256, "
                "size_bytes, created_at, state, landed_at) VALUES (?, 'clerk100', 'T100', 'buildings', '2023-1', ?, ?, "
                "?, ?, '2025-06-30T10:00:00', 'landed', '2025-06-30T10:00:00')",
                [name, name, f"buildings/{'T100' if name == 'a.csv' else 'T101'}/2023-1/{name}",
                 __import__("hashlib").sha256(data).hexdigest(), len(data)],
            )  # fmt: skip
    d.drop("buildings", "c.csv", _buildings(1), unit="T100")  # dropped into the folder: no record
    with duckdb.connect(str(d.db)) as con:
        from pipeline.platform import store

        store.ensure_schema(con)
        ingest_kind(con, d.data_raw, "buildings")
        got = dict((r[0], r[1:]) for r in con.execute(
            "SELECT rel_path, status, uploaded_by, problem_zh FROM intake_files").fetchall())  # fmt: skip
    assert got[audited.relative_to(d.data_raw).as_posix()][:2] == ("ingested", "clerk100")
    assert got[moved.relative_to(d.data_raw).as_posix()][0] == "unreadable"
    assert "T100（金积镇人民政府）的账号上传" in got[moved.relative_to(d.data_raw).as_posix()][2]
    assert got["buildings/T100/2023-1/c.csv"][:2] == ("ingested", None)  # accepted by default (shared folders)
    monkeypatch.setenv("LITONG_UNAUDITED_FILES", "refuse")
    d2 = Deployment(tmp_path / "strict")
    d2.drop("buildings", "c.csv", _buildings(1), unit="T100")
    with duckdb.connect(str(d2.db)) as con:
        from pipeline.platform import store

        store.ensure_schema(con)
        ingest_kind(con, d2.data_raw, "buildings")
        status, problem = con.execute("SELECT status, problem_zh FROM intake_files").fetchall()[0]
    assert status == "unreadable" and "没有网页上传记录" in problem


def test_the_portal_never_opens_the_live_database(site):
    s = login(site, "sup")
    for path in ("/hazards", "/leaders", "/uploads", "/"):
        assert s.get(site.url + path).status_code == 200
    live = str(Path(site.settings.database).resolve())
    open_files = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
    assert live not in open_files
    con = duckdb.connect(live)  # a writer opens it while the portal serves
    con.execute("CREATE TABLE IF NOT EXISTS portal_probe (x INTEGER)")
    con.close()


def test_the_duty_officer_declares_an_earthquake_and_nobody_else_can(site):
    clerk = login(site, "clerk100")
    r = clerk.post(site.url + "/quake", data={"csrf": token(clerk, site, "/quake"), "time": "2025-06-30 14:23:05",
                                              "lon": "106.19", "lat": "37.93", "depth": "10", "mag": "5.2"})  # fmt: skip
    assert r.status_code == 403
    duty = login(site, "duty")
    r = duty.post(site.url + "/quake", data={"csrf": token(duty, site, "/quake"), "time": "2025-06-30 14:23:05",
                                             "lon": "106.19", "lat": "37.93", "depth": "10", "mag": "12"})  # fmt: skip
    assert r.status_code == 400 and 'id="error"' in r.text  # M outside 0–9: the event module's Chinese message
    r = duty.post(site.url + "/quake", data={"csrf": token(duty, site, "/quake"), "time": "2025-06-30 14:23:05",
                                             "lon": "106.19", "lat": "37.93", "depth": "10", "mag": "5.2"})  # fmt: skip
    assert r.status_code == 200
    files = list((site.data_raw / "earthquakes" / "YJJ").glob("20250630T142305-M5.2*.yaml"))
    assert len(files) == 1
    audit = [u for u in site.uploads() if u["kind"] == "earthquakes"]
    assert audit and audit[-1]["username"] == "duty" and audit[-1]["rel_path"].endswith(files[0].name)
    # the open event is now a folder a clerk can send 灾情反馈 into
    assert "quake_feedback/20250630T142305-M5.2" in clerk.get(site.url + "/upload").text


def test_templates_and_their_guide_are_downloadable(site):
    from openpyxl import load_workbook

    s = login(site, "clerk100")
    page = text_of(s.get(site.url + "/templates").text)
    assert "房屋建筑" in page and "隐患整改进展反馈" in page and "建成年份" in page
    r = s.get(site.url + "/templates/buildings.xlsx")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert {"填报表", "填写说明"} <= set(load_workbook(io.BytesIO(r.content)).sheetnames)
    assert s.get(site.url + "/templates/..%2F..%2Fetc%2Fpasswd.csv").status_code in (403, 404)


def test_file_routes_never_leave_their_folder(site):
    s = login(site, "analyst")
    for path in ("/quake/..%2F/litong.duckdb", "/quake/%2E%2E/test.duckdb", "/quake/20250630T142305-M5.2/..%2F..%2Ftest.duckdb",
                 "/charts/..%2Fpublished%2Flitong.png", "/templates/..%2F..%2Ftest.csv"):  # fmt: skip
        r = s.get(site.url + path)
        assert r.status_code in (403, 404), path
        assert not r.content.startswith(b"DUCK") and b"DUCK" not in r.content[:16]


def test_a_dead_preview_worker_is_replaced_and_the_page_says_so(site, tmp_path):
    import asyncio

    from pipeline.portal import preview
    from pipeline.portal.app import PortalState

    state = PortalState(site.settings)
    state.start()
    try:
        staged = tmp_path / "s.csv"
        staged.write_bytes(_buildings(2))
        req = preview.Request(
            str(staged), "buildings", "T100", "2023-1", str(site.data_raw), str(site.settings.published)
        )
        for process in list(state.pool._processes.values()):
            process.kill()  # out of memory, killed by an operator …
        first = asyncio.run(state.preview(req))
        assert first.error and "处理进程意外退出" in first.error
        second = asyncio.run(state.preview(req))  # a new pool took over
        assert second.error is None and second.accepted == 2
    finally:
        state.stop()


def test_a_version_replaced_before_any_run_says_so(site):
    s = login(site, "clerk100")
    ids = []
    for n in (2, 3):  # the same name twice, before the pipeline ran
        assert _upload(s, site, "buildings/2023-1", "同名.csv", _buildings(n)).status_code == 200
        upload_id = [u for u in site.uploads() if u["state"] == "previewed"][-1]["upload_id"]
        s.post(f"{site.url}/upload/{upload_id}/confirm", data={"csrf": token(s, site)})
        ids.append(upload_id)
    first = text_of(s.get(f"{site.url}/uploads/{ids[0]}").text)
    assert "已被同名文件的新版本替换" in first
    assert "等待处理" in text_of(s.get(f"{site.url}/uploads/{ids[1]}").text)


def test_an_admin_moves_a_person_to_another_unit_and_their_sessions_end(site):
    admin = login(site, "admin")
    with closing(site.portal_db()) as con:
        accounts.create_account(con, "mover", "调动者", "T100", "clerk", "Mover-pass-2025", "test")
    mover = login(site, "mover", "Mover-pass-2025")
    assert "金积镇人民政府" in mover.get(site.url + "/").text  # the unit by its name (issue 27)
    r = admin.post(site.url + "/admin/accounts/mover/role",
                   data={"csrf": token(admin, site, "/admin/accounts"), "role": "clerk", "unit_code": "T101"})  # fmt: skip
    assert r.status_code == 200
    assert mover.get(site.url + "/hazards", allow_redirects=False).status_code == 303  # the old session is gone
    again = login(site, "mover", "Mover-pass-2025")
    assert "金银滩镇人民政府" in again.get(site.url + "/").text
    clerk = login(site, "clerk100")
    r = clerk.post(site.url + "/admin/accounts/mover/role",
                   data={"csrf": token(clerk, site), "role": "admin", "unit_code": "YJJ"})  # fmt: skip
    assert r.status_code == 403


def test_a_supervisors_feedback_file_holds_what_it_can_act_on(site):
    from openpyxl import load_workbook

    s = login(site, "sup")  # ZJJ, which supervises the towns' houses and bridges
    ws = load_workbook(io.BytesIO(s.get(site.url + "/hazards/feedback.xlsx").content))["填报表"]
    numbers = {row[0] for row in ws.iter_rows(min_row=2, values_only=True) if row[0]}
    con = duckdb.connect(str(site.settings.published), read_only=True)
    t100 = con.execute(
        "SELECT hazard_no, status, extend_status, sector_supervisor = 'ZJJ' FROM hazards WHERE responsible_unit = 'T100'"
    ).fetchall()
    con.close()
    expected = {
        n
        for n, status, ext, supervised in t100
        if supervised and status not in ("已销号", "已撤销") and (status == "已整改待验收" or ext == "待审批")
    }
    # awaiting its decision, nothing else of T100 (its schools' hazards are the education bureau's)
    assert expected and {n for n, *_ in t100} & numbers == expected


def test_a_quake_feedback_preview_checks_the_objects_as_the_run_will(site):
    duty = login(site, "duty")
    duty.post(site.url + "/quake", data={"csrf": token(duty, site, "/quake"), "time": "2025-06-30 14:23:05",
                                         "lon": "106.19", "lat": "37.93", "depth": "10", "mag": "5.2"})  # fmt: skip
    con = duckdb.connect(str(site.settings.published), read_only=True)
    own, other = (con.execute("SELECT min(asset_id) FROM scores WHERE kind = 'buildings' AND responsible_unit = ?",
                              [u]).fetchall()[0][0] for u in ("T100", "T101"))  # fmt: skip
    con.close()
    rows = [example_row("quake_feedback", object_id=oid, object_kind="房屋建筑", hazard_no="", report_date="2025-06-30")
            for oid in (own, other, "640302100-999999")]  # fmt: skip
    clerk = login(site, "clerk100")
    r = _upload(clerk, site, "quake_feedback/20250630T142305-M5.2", "灾情.csv", csv_bytes("quake_feedback", rows))
    page = text_of(r.text)
    assert "1 条将受理，2 条将退回" in page, page[:2000]
    assert "不是本单位负责的对象" in page and "不存在" in page


def test_a_hazard_page_shows_its_control_deadline_and_a_control_overdue(site):
    """Issue 26 §4: an immediate measure's 管控时限 and 管控措施落实日期 on the hazard's page, and 管控逾期 when the
    control was not reported in place by then."""
    con = duckdb.connect(str(site.settings.published), read_only=True)
    try:
        no, deadline = con.execute(
            "SELECT hazard_no, control_deadline FROM hazards WHERE status IN ('待整改', '整改中') "
            "AND control_done_on IS NULL AND control_deadline < DATE '2025-06-30' ORDER BY hazard_no LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    page = login(site, "analyst").get(f"{site.url}/hazards/{no}").text
    assert f'id="control-deadline">{deadline}' in page and 'id="control-done-on">未报告' in page
    assert "（管控逾期）" in page


def test_a_supervisor_sees_and_decides_the_hazards_of_its_sector_only(site):
    """Issue 26 §2: the 住建 account (sup, ZJJ) supervises the towns' houses, not the schools the education bureau
    answers for (those go to the government)."""
    con = duckdb.connect(str(site.settings.published), read_only=True)
    try:
        house, school = (con.execute(
            "SELECT min(hazard_no) FROM hazards WHERE responsible_unit = ? AND sector_supervisor = ?", [unit, sup]
        ).fetchall()[0][0] for unit, sup in (("T100", "ZJJ"), ("JYJ", "QZF")))  # fmt: skip
    finally:
        con.close()
    assert house and school
    sup = login(site, "sup")
    page = text_of(sup.get(f"{site.url}/hazards/{house}").text)
    assert "监管部门（验收、延期审批） 利通区住房城乡建设和交通局" in page
    assert sup.get(f"{site.url}/hazards/{school}").status_code == 403
    listed = text_of(
        sup.get(f"{site.url}/hazards?unit=T100&q={house}").text
    )  # the town also answers for shelters (issue 29)
    assert house in listed


# --- issue 27 §1: one hazard in the browser, with evidence; batch acceptance ---------------------------------


def _jpeg_with_exif() -> bytes:
    from PIL import Image

    im, exif = Image.new("RGB", (40, 30), (90, 90, 200)), Image.Exif()
    exif[0x010F] = "LitongCam"
    exif[0x8825] = {1: "N", 2: (38.0, 1.0, 0.0), 3: "E", 4: (106.0, 12.0, 0.0)}
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif)
    return out.getvalue()


def _png_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (20, 20), (0, 150, 0)).save(out, "PNG")
    return out.getvalue()


def _published_one(site, sql: str):
    con = duckdb.connect(str(site.settings.published), read_only=True)
    try:
        return con.execute(sql).fetchone()
    finally:
        con.close()


def test_the_responsible_unit_reports_one_hazard_from_its_page_with_photos(site):
    """开始整改 of a 重大 hazard from its page: the next steps its status allows, the 五落实 checked as the feedback
    template checks them (same preview), photos judged by their bytes, stored once without EXIF, named in the row."""
    from PIL import Image

    (no,) = _published_one(site, "SELECT min(hazard_no) FROM hazards WHERE responsible_unit = 'T100' "
                                 "AND status = '待整改' AND hazard_grade = '重大'")  # fmt: skip
    s = login(site, "clerk100")
    page = s.get(f"{site.url}/hazards/{no}").text
    assert 'id="report-start"' in page and 'id="report-control"' in page and 'id="report-extend"' in page
    assert 'id="report-done"' not in page  # 待整改 → 已整改待验收 is not the unit's step
    csrf = csrf_of(page)
    url = f"{site.url}/hazards/{no}/report"
    # 五落实 missing: refused in the preview with the template's reason, nothing staged for confirmation
    r = s.post(url, data={"csrf": csrf, "step": "start", "measures": "委托加固设计", "person": "马建国"})
    assert "0 条将更新，1 条将退回" in text_of(r.text) and "五落实" in r.text and "资金" in text_of(r.text)
    # a text file named .jpg is refused, in Chinese, before any preview
    r = s.post(url, data={"csrf": csrf, "step": "start", "measures": "委托加固设计", "person": "马建国"},
               files={"before": ("现场.jpg", b"just some text", "image/jpeg")})  # fmt: skip
    assert r.status_code == 400 and "不是JPEG或PNG照片" in r.text and "现场.jpg" in r.text
    r = s.post(url, data={"csrf": csrf, "step": "start", "measures": "x", "person": "y"},
               files=[("after", (f"{i}.png", _png_bytes(), "image/png")) for i in range(7)])  # fmt: skip
    assert r.status_code == 400 and "一次最多上传6张照片" in r.text
    # the full 五落实 with a JPEG carrying EXIF/GPS and a PNG named .jpg
    before = len(site.uploads())
    r = s.post(url, data={"csrf": csrf, "step": "start", "measures": "委托加固设计", "person": "马建国",
                          "funds_wan": "12.5", "plan_finish": "2025-12-31", "plan_no": "YA-2025-01"},
               files=[("before", ("IMG_1.JPG", _jpeg_with_exif(), "image/jpeg")),
                      ("before", ("看起来是.jpg", _png_bytes(), "image/jpeg"))])  # fmt: skip
    assert r.status_code == 200 and "1 条将更新，0 条将退回" in text_of(r.text)
    assert len(site.uploads()) == before + 1
    upload = site.uploads()[-1]
    assert not (site.data_raw / "evidence").exists() or not list((site.data_raw / "evidence").rglob("*.*"))
    s.post(f"{site.url}/upload/{upload['upload_id']}/confirm", data={"csrf": csrf})
    landed = site.data_raw / [u for u in site.uploads() if u["upload_id"] == upload["upload_id"]][0]["rel_path"]
    assert landed.parent.parent.name == "T100" and landed.name.startswith("网页报送_开始整改_")
    text = landed.read_bytes().decode("utf-8-sig").splitlines()
    header, row = text[0].split(","), text[1].split(",")
    values = dict(zip(header, row, strict=True))
    assert (values["隐患编号"], values["整改状态"], values["整改资金(万元)"], values["应急预案编号"]) == (
        no, "整改中", "12.5", "YA-2025-01")  # fmt: skip
    photos = dict(p.split(":") for p in values["整改照片"].split(";"))  # 整改前:<sha>;整改前:<sha>
    stored = sorted((site.data_raw / "evidence").rglob("*.*"))
    assert sorted(p.suffix for p in stored) == [".jpg", ".png"] and len(photos) == 1
    for path in stored:
        assert path.stem in values["整改照片"]
        assert path.stem == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
        with Image.open(path) as im:
            assert not im.getexif() and b"LitongCam" not in path.read_bytes()
    # another unit may not report on it, nor the unit a step its status does not allow
    other = login(site, "clerk101")
    r = other.post(url, data={"csrf": token(other, site), "step": "start", "measures": "x", "person": "y"})
    assert r.status_code == 403
    r = s.post(url, data={"csrf": csrf, "step": "done", "measures": "完成", "person": "马建国"})
    assert r.status_code == 403 and "不能报送" in r.text


def test_a_supervisor_accepts_and_rejects_several_hazards_in_one_file(site):
    """Batch acceptance: the hazards awaiting the department's acceptance are ticked on the list; one feedback
    file of one row each, previewed, then confirmed; a rejection needs its reason; others' hazards are refused."""
    con = duckdb.connect(str(site.settings.published), read_only=True)
    waiting = [r[0] for r in con.execute(
        "SELECT hazard_no FROM hazards WHERE status = '已整改待验收' AND sector_supervisor = 'ZJJ' "
        "AND hazard_grade = '一般' ORDER BY hazard_no LIMIT 3").fetchall()]  # fmt: skip
    (foreign,) = con.execute("SELECT min(hazard_no) FROM hazards WHERE status = '已整改待验收' "
                             "AND sector_supervisor <> 'ZJJ'").fetchone()  # fmt: skip
    con.close()
    assert len(waiting) == 3 and foreign
    sup = login(site, "sup")
    page = sup.get(f"{site.url}/hazards?status=已整改待验收").text
    for no in waiting:
        assert f'name="hazard_no" value="{no}"' in page
    assert 'id="batch-submit"' in page
    csrf = csrf_of(page)
    url = f"{site.url}/hazards/batch-decision"
    r = sup.post(url, data={"csrf": csrf, "decision": "reject", "hazard_no": waiting[:1]})
    assert r.status_code == 403 and "须填写理由" in r.text
    r = sup.post(url, data={"csrf": csrf, "decision": "accept", "hazard_no": [*waiting[:1], foreign]})
    assert r.status_code == 403 and "不归本部门验收" in r.text
    r = sup.post(url, data={"csrf": csrf, "decision": "accept", "hazard_no": waiting[:2]})
    assert r.status_code == 200 and "2 条将更新，0 条将退回" in text_of(r.text)
    upload = site.uploads()[-1]
    sup.post(f"{site.url}/upload/{upload['upload_id']}/confirm", data={"csrf": csrf})
    landed = site.data_raw / [u for u in site.uploads() if u["upload_id"] == upload["upload_id"]][0]["rel_path"]
    assert landed.parent.parent.name == "ZJJ" and "网页批量验收_通过2项" in landed.name
    lines = landed.read_bytes().decode("utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == waiting[:2]
    assert all(",已销号," in line and ",通过" in line and "住建局监管" in line for line in lines[1:])


def test_a_units_home_page_lists_its_hazards_sent_back_with_the_reason(site):
    """验收不通过 on the responsible unit's home page: hazards whose last event is the supervising department's
    已整改待验收 → 整改中, with the reason, linking to the hazard; none for an account that reads only."""
    con = duckdb.connect(str(site.settings.published), read_only=True)
    expected = con.execute(
        "WITH last AS (SELECT *, row_number() OVER (PARTITION BY hazard_no ORDER BY seq DESC) AS k FROM hazard_events) "
        "SELECT l.hazard_no, l.note FROM last l JOIN hazards h USING (hazard_no) WHERE l.k = 1 AND h.responsible_unit "
        "= 'T100' AND l.from_status = '已整改待验收' AND l.to_status = '整改中' AND h.status = '整改中' "
        "AND l.unit <> 'T100' ORDER BY l.event_date DESC, l.hazard_no"
    ).fetchall()
    con.close()
    assert expected  # the sample's story has 验收不通过
    page = login(site, "clerk100").get(site.url + "/").text
    assert f"验收不通过、退回整改（{len(expected)} 项）" in page
    no, note = expected[0]
    assert f'<a href="/hazards/{no}">{no}</a>' in page and note in page
    assert 'id="rejections"' not in login(site, "analyst").get(site.url + "/").text


def test_the_prefilled_feedback_file_reads_beside_the_number_and_untouched_rows_are_ignored(site):
    """Issue 27 §1: the pre-filled file names the object, its deadline and overdue days beside each number (for
    reading: the intake ignores them); filling one row and sending the file back updates that row, and the rows
    left as they came are counted as 未填写, never refused."""
    from openpyxl import load_workbook

    s = login(site, "clerk100")
    ws = load_workbook(io.BytesIO(s.get(site.url + "/hazards/feedback.xlsx").content))["填报表"]
    header = [c.value for c in ws[1]]
    assert header[:5] == [
        "隐患编号",
        "对象名称（仅供参考）",
        "整改时限（仅供参考）",
        "逾期天数（仅供参考）",
        "填报单位",
    ]
    rows = {r[0]: r for r in ws.iter_rows(min_row=2, values_only=True) if r[0]}
    con = duckdb.connect(str(site.settings.published), read_only=True)
    try:
        no, name, deadline = con.execute(
            "SELECT hazard_no, asset_name, deadline FROM hazards WHERE responsible_unit = 'T100' AND status = '待整改' "
            "AND hazard_grade = '一般' AND extend_to IS NULL AND deadline < DATE '2025-06-30' ORDER BY hazard_no LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    assert rows[no][1] == name and str(rows[no][2])[:10] == str(deadline)
    assert rows[no][3] == (dt.date(2025, 6, 30) - deadline).days  # overdue days as of the sample's date
    # fill the one row, leave every other row as it came
    at = [c.value for c in ws["A"]].index(no) + 1
    for column, value in (("整改状态", "整改中"), ("整改(管控)措施", "已委托鉴定"), ("责任人", "马建国"),
                          ("填报日期", "2025-06-30")):  # fmt: skip
        ws.cell(row=at, column=header.index(column) + 1, value=value)
    out = io.BytesIO()
    ws.parent.save(out)
    r = _upload(s, site, "feedback/2025-06-30", "整改反馈_填了一行.xlsx", out.getvalue())
    page = text_of(r.text)
    assert "1 条将更新，0 条将退回" in page
    assert f"未填写{len(rows) - 1}行" in page and "已忽略（不退回）" in page
