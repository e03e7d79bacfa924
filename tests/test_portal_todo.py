"""Issue 27 §2: every role's to-do list on the home page, search and filters on the hazard list, the list's export,
names instead of codes and paths, POST → redirect → GET, a password reset that forces a change.

A real server over a copy of the published sample district (portal_support), as tests/test_portal.py runs it.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from urllib.parse import unquote

import duckdb
import pytest
from conftest import Deployment  # noqa: F401  (the `sample` fixture's deployment)
from portal_support import copy_deployment, login, make_site, serving, text_of

from pipeline.ledger.exports import LEDGER_COLUMNS, ledger_sql
from pipeline.platform import clock
from pipeline.portal import reads

FORMULA = '=HYPERLINK("http://example.invalid","点我")'


@pytest.fixture(scope="module")
def site(sample, tmp_path_factory):
    deployment, _ = sample
    root = copy_deployment(deployment.root, tmp_path_factory.mktemp("portal_todo"))
    published = root / "output" / "published" / "litong.duckdb"
    con = duckdb.connect(str(published))  # an object name typed as a formula, as a clerk might (the export's test)
    try:
        no = con.execute("SELECT min(hazard_no) FROM hazards WHERE responsible_unit = 'T100'").fetchall()[0][0]
        con.execute("UPDATE hazards SET asset_name = ? WHERE hazard_no = ?", [FORMULA, no])
    finally:
        con.close()
    with serving(make_site(root)) as s:
        yield s


def _today(site) -> dt.date:
    clock.use_data_raw(site.data_raw)
    return clock.district_today()


def _ledger(site, where: str = "true", params: dict | None = None) -> list[dict]:
    """The published ledger's rows as of the district's date, computed here (not through the portal)."""
    con = reads._open(site.settings.published)
    try:
        cur = con.cursor()
        cur.execute("USE published")
        cur.execute("SET search_path = 'published.main,memory.main'")
        c = cur.execute(f"WITH l AS ({ledger_sql()}) SELECT * FROM l WHERE {where}",
                        {"as_of": _today(site)} | (params or {}))  # fmt: skip
        names = [d[0] for d in c.description]
        return [dict(zip(names, r, strict=True)) for r in c.fetchall()]
    finally:
        con.close()


def _expected(rows: list[dict], today: dt.date, supervisor: str | None) -> dict[str, int]:
    def due(h, days):
        if h["overdue_days"] is not None or h["status"] not in ("待整改", "整改中"):
            return False
        end = today + dt.timedelta(days=days)
        d = h["extend_to"] or h["deadline"]
        control = h["control_deadline"] if h["control_done_on"] is None else None
        return bool((d and today <= d <= end) or (control and today <= control <= end))

    return {
        "overdue": sum(h["overdue_days"] is not None for h in rows),
        **{f"due_{d}": sum(due(h, d) for h in rows) for d in (7, 15, 30)},
        "to_accept": sum(
            h["status"] == "已整改待验收" and (supervisor is None or h["sector_supervisor"] == supervisor) for h in rows
        ),  # fmt: skip
        "extension": sum(h["extend_status"] == "待审批" and h["status"] != "已销号" for h in rows),
        "supervised": sum(h["supervise_status"] == "督办中" for h in rows),
    }


def _shown_counts(html: str) -> dict[str, int]:
    out = {}
    for key, anchor in (("overdue", "todo-overdue"), ("due_7", "todo-due-7"), ("due_15", "todo-due-15"),
                        ("due_30", "todo-due-30"), ("to_accept", "todo-accept"), ("extension", "todo-extension"),
                        ("supervised", "todo-duban")):  # fmt: skip
        m = re.search(rf'id="{anchor}"><b>([\d,]+)</b>', html)
        assert m, f"{anchor} missing from the home page"
        out[key] = int(m.group(1).replace(",", ""))
    return out


def _list_total(s, site, query: str) -> int:
    r = s.get(site.url + "/hazards?" + query)
    assert r.status_code == 200, r.text[:300]
    return int(re.search(r'id="total">([\d,]+)<', r.text).group(1).replace(",", ""))


# --- 1. the home page's to-do counts ---------------------------------------------------------------


@pytest.mark.parametrize(
    "username, where, supervisor",
    [
        ("clerk100", "responsible_unit = 'T100'", None),
        ("sup", "(responsible_unit = 'ZJJ' OR sector_supervisor = 'ZJJ')", "ZJJ"),
        ("analyst", "true", None),
    ],
)
def test_home_counts_equal_the_published_ledger_and_link_to_the_filtered_list(site, username, where, supervisor):
    today = _today(site)
    expected = _expected(_ledger(site, where), today, supervisor)
    s = login(site, username)
    home = s.get(site.url + "/").text
    shown = _shown_counts(home)
    assert shown == expected
    if username == "analyst":  # the district as a whole has work of every kind in the sample
        assert shown["overdue"] > 0 and shown["due_30"] > 0 and shown["due_30"] >= shown["due_15"] >= shown["due_7"]
    # each count opens the list filtered to exactly those hazards
    for key, query in (("overdue", "overdue=1"), ("due_7", "due=7"), ("due_30", "due=30"), ("to_accept", "accept=1"),
                       ("extension", "extension=1"), ("supervised", "duban=1")):  # fmt: skip
        assert f'href="/hazards?{query}"' in home
        assert _list_total(s, site, query) == expected[key], key


def test_admin_home_has_no_hazard_counts(site):
    s = login(site, "admin")
    assert 'id="todo"' not in s.get(site.url + "/").text


def test_open_earthquake_banner_links_the_units_checklist_and_where_to_report(site):
    from pipeline.registries.events import events_dir

    event_id = "20250630T142305-M5.5"
    folder = events_dir(site.data_raw)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{event_id}.yaml").write_text(
        "time: 2025-06-30 14:23:05\nlon: 106.2\nlat: 37.98\ndepth_km: 10\nmagnitude: 5.5\n", encoding="utf-8"
    )
    checklist = site.settings.output / "quake" / event_id / "排查清单" / "排查清单_T100.xlsx"
    checklist.parent.mkdir(parents=True, exist_ok=True)
    checklist.write_bytes(b"PK\x03\x04 test workbook")
    try:
        assert event_id in reads.open_events(site.data_raw)
        clerk = login(site, "clerk100")
        home = clerk.get(site.url + "/").text
        assert 'id="quake-banner"' in home and event_id in home
        assert f'href="/quake/{event_id}/checklist"' in home and 'href="/upload"' in home
        r = clerk.get(site.url + f"/quake/{event_id}/checklist")
        assert r.status_code == 200 and r.content == b"PK\x03\x04 test workbook"
        assert "金积镇" in unquote(r.headers["content-disposition"])
        other = login(site, "clerk101")  # another town: no checklist of its own, and never T100's
        assert f'href="/quake/{event_id}/checklist"' not in other.get(site.url + "/").text
        r = other.get(site.url + f"/quake/{event_id}/checklist?unit=T100")
        assert r.status_code == 403 and "无权查看其他单位的排查清单" in r.text
    finally:
        (folder / f"{event_id}.yaml").unlink()


# --- 2. search and filters ----------------------------------------------------------------------------


def test_search_by_number_name_and_the_refusals(site):
    own = _ledger(site, "responsible_unit = 'T100' AND asset_name NOT LIKE '=%'")[0]
    other = _ledger(site, "responsible_unit = 'T101'")[0]["hazard_no"]
    s = login(site, "clerk100")
    r = s.get(site.url + "/hazards", params={"q": own["hazard_no"].lower()})  # typed in lower case
    assert r.status_code == 200 and r.url.endswith("/hazards/" + own["hazard_no"])
    r = s.get(site.url + "/hazards", params={"q": "JZ-640302100-999999-B01"})
    assert r.status_code == 404 and "未找到隐患编号“JZ-640302100-999999-B01”" in r.text and "无权" not in r.text
    r = s.get(site.url + "/hazards/JZ-640302100-999999-B01")
    assert r.status_code == 404 and "未找到隐患编号" in r.text
    r = s.get(site.url + "/hazards", params={"q": other})
    assert r.status_code == 403 and "无权查看" in r.text
    # by object name (contains)
    part = own["asset_name"][1:5] if len(own["asset_name"]) > 5 else own["asset_name"]
    expected = [h for h in _ledger(site, "responsible_unit = 'T100'") if part in (h["asset_name"] or "")]
    assert _list_total(s, site, f"q={part}") >= len(expected) > 0


def test_search_by_address_and_filters_kind_town_deadline(site):
    con = duckdb.connect(str(site.settings.published), read_only=True)
    try:
        no, address = con.execute(
            "SELECT h.hazard_no, b.address FROM hazards h JOIN stg_buildings b ON b.building_id = h.asset_id "
            "WHERE h.kind = 'buildings' AND b.address IS NOT NULL AND length(b.address) > 6 ORDER BY 1 LIMIT 1"
        ).fetchall()[0]
    finally:
        con.close()
    analyst = login(site, "analyst")
    r = analyst.get(site.url + "/hazards", params={"q": address})
    assert r.status_code == 200 and no in r.text
    rows = _ledger(site)
    assert _list_total(analyst, site, "kind=bridges") == sum(h["kind"] == "bridges" for h in rows) > 0
    assert _list_total(analyst, site, "town=640302100") == sum(h["town_code"] == "640302100" for h in rows) > 0
    lo, hi = dt.date(2025, 1, 1), dt.date(2025, 6, 30)
    in_range = sum(lo <= (h["extend_to"] or h["deadline"] or dt.date.min) <= hi for h in rows)
    assert _list_total(analyst, site, f"due_from={lo}&due_to={hi}") == in_range > 0
    everything = len(rows)
    for junk in ("kind=nope", "town=999", "due=abc", "due_from=2025-13-45", "duban=yes", "status=<script>"):
        assert _list_total(analyst, site, junk) == everything, junk  # an unknown value is ignored


# --- 3. export and print ------------------------------------------------------------------------------


def test_export_has_every_ledger_column_and_neutralises_a_formula(site):
    from openpyxl import load_workbook

    s = login(site, "clerk100")
    r = s.get(site.url + "/hazards/export.xlsx")
    assert r.status_code == 200
    name = unquote(r.headers["content-disposition"].split("''", 1)[1])
    assert name == f"隐患清单_金积镇人民政府_{_today(site):%Y%m%d}.xlsx"
    ws = load_workbook(io.BytesIO(r.content)).worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == list(LEDGER_COLUMNS.values())
    expected = _ledger(site, "responsible_unit = 'T100'")
    assert len(rows) - 1 == len(expected)
    names = [row[list(LEDGER_COLUMNS).index("asset_name")] for row in rows[1:]]
    assert "'" + FORMULA in names and FORMULA not in names  # shown as text, never run
    # the filters apply to the export as to the list
    r = s.get(site.url + "/hazards/export.xlsx?overdue=1")
    overdue = list(load_workbook(io.BytesIO(r.content)).worksheets[0].iter_rows(values_only=True))
    assert len(overdue) - 1 == sum(h["overdue_days"] is not None for h in expected)


def test_no_codes_or_paths_in_the_pages_a_clerk_opens(site):
    s = login(site, "clerk100")
    no = _ledger(site, "responsible_unit = 'T100'")[0]["hazard_no"]
    for path in ("/", "/hazards", f"/hazards/{no}", "/uploads", "/upload", "/leaders", "/templates", "/quake",
                 "/account", "/hazards?overdue=1"):  # fmt: skip
        html = s.get(site.url + path).text
        text = text_of(html)
        assert "data_raw/" not in html and "T100（" not in text, path
        assert "金积镇人民政府" in text, path


def test_times_are_beijing_time_and_files_have_readable_titles():
    from pipeline.portal.app import beijing, file_title

    utc = dt.datetime(2025, 6, 30, 23, 30, tzinfo=dt.UTC)
    assert beijing(utc) == "2025-07-01 07:30"
    assert beijing("not a time") == "not a time" and beijing(None) == ""
    assert file_title("feedback/ZJJ/2025-06-30/网页办理_accept_JZ-640302100-000001-B01_101502.csv") == (
        "网页办理：验收通过 JZ-640302100-000001-B01"
    )
    assert file_title("网页办理_挂牌督办_JZ-1-2_090000.csv") == "网页办理：挂牌督办 JZ-1-2"
    assert file_title("buildings/T100/2023-1/金积镇.xlsx") == "金积镇.xlsx"


# --- 5. POST → redirect → GET, the admin's search and log-in audit, a reset forces a change ------------------


def test_admin_actions_redirect_search_and_the_login_audit(site):
    from portal_support import token

    admin = login(site, "admin")
    r = admin.post(site.url + "/admin/accounts", allow_redirects=False,
                   data={"csrf": token(admin, site, "/admin/accounts"), "username": "finder", "display_name": "查找测试员",
                         "unit_code": "T101", "role": "clerk", "password": "Finder-pass-2025"})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/accounts?")
    page = admin.get(site.url + r.headers["location"]).text
    assert "已创建账号 finder（查找测试员，单位填报员，金银滩镇人民政府）" in text_of(page)
    assert admin.get(site.url + "/admin/accounts?done=created&user=nobody").text.count('id="message"') == 0
    found = admin.get(site.url + "/admin/accounts", params={"q": "金银滩"}).text
    table = found.split('id="accounts"', 1)[1].split("</table>", 1)[0]
    assert "finder" in table and "clerk101" in table and "clerk100" not in table
    bad = requests_session_login_fails(site, "clerk101", "Wrong-pass-0000")
    assert bad == 401
    audit = admin.get(site.url + "/admin/accounts?failed=1").text
    events = audit.split('id="auth-events"', 1)[1]
    assert "clerk101" in events and "密码错误" in events and "登录成功" not in events
    assert "登录成功" in admin.get(site.url + "/admin/accounts").text.split('id="auth-events"', 1)[1]


def requests_session_login_fails(site, username: str, password: str) -> int:
    import requests
    from portal_support import csrf_of

    s = requests.Session()
    r = s.get(site.url + "/login")
    r = s.post(site.url + "/login", data={"csrf": csrf_of(r.text), "username": username, "password": password})
    return r.status_code


def _browser_login(browser, site, username: str, password: str):
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    page.goto(site.url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login")
    page.wait_for_load_state()
    return page


def test_admin_resets_a_password_and_the_person_must_change_it_in_the_browser(browser, site):
    from contextlib import closing

    from pipeline.portal import accounts

    with closing(site.portal_db()) as con:
        accounts.create_account(con, "forgetful", "健忘的填报员", "T100", "clerk", "Old-pass-2025", "test")
    admin = _browser_login(browser, site, "admin", "Admin-pass-2025")
    admin.goto(site.url + "/admin/accounts?q=forgetful")
    row = admin.locator("#accounts tr", has_text="forgetful")
    row.locator("input[name=password]").fill("Reset-pass-2025")
    row.locator("button", has_text="重设密码").click()
    admin.wait_for_load_state()
    assert "/admin/accounts?" in admin.url  # POST → redirect → GET
    assert "已重设密码，本人下次登录时须先修改密码" in admin.inner_text("#message")
    admin.reload()  # a refresh repeats nothing: one reset in the audit
    with closing(site.portal_db()) as con:
        sets = con.execute("SELECT count(*) FROM auth_events WHERE username = 'forgetful' AND event = 'password_set'")
        assert sets.fetchall()[0][0] == 1

    user = _browser_login(browser, site, "forgetful", "Reset-pass-2025")
    assert user.url.endswith("/account") and "请先修改密码" in user.inner_text("#must-change")
    user.goto(site.url + "/hazards")  # nothing else opens before the change
    assert user.url.endswith("/account")
    user.fill("input[name=old]", "Reset-pass-2025")
    user.fill("input[name=new]", "Mine-pass-2025")
    user.fill("input[name=again]", "Mine-pass-2025")
    user.click("form[action='/account'] button")
    user.wait_for_load_state()
    assert "/login" in user.url
    user.fill("#username", "forgetful")
    user.fill("#password", "Mine-pass-2025")
    user.click("#login")
    user.wait_for_load_state()
    assert user.url == site.url + "/" and "健忘的填报员，您好" in user.inner_text("h1")
    user.goto(site.url + "/hazards")
    assert user.url.endswith("/hazards")


def test_a_waiting_upload_shows_no_process_number_job_or_step(site):
    """The page a clerk watches after 确认提交 while a run works: what is happening, never the writer lock's
    process number, the job's name or the step key."""
    from pipeline.portal.accounts import Account, Session
    from pipeline.portal.app import create_app
    from pipeline.portal.run_progress import RunProgress

    templates = create_app(site.settings).state.portal.templates
    clerk = Account("clerk100", "金积镇填报员", "T100", "clerk")
    row = {"upload_id": "u1", "file_name": "网页办理_accept_JZ-640302100-000001-B01_101502.csv", "username": "clerk100",
           "unit_code": "T100", "kind": "feedback", "folder": "2025-06-30", "created_at": "2026-12-07T01:30:00",
           "sha256": "ab" * 32, "preview_summary": "", "state": "landed", "result": None}  # fmt: skip
    html = templates.env.get_template("upload_status.html").render(
        row=row,
        outcomes=[],
        running="upload_sensor，进程 43210，开始于 2026-12-07T01:30:05",
        failure=None,
        runs=[RunProgress("litong_upload_job", "运行中", 3, 12, "stg_feedback")],
        result=None,
        session=Session(clerk, "x"),
        account=clerk,
        csrf="x",
        published_at=None,
        as_of=_today(site),
        sample=True,
    )
    text = text_of(html)
    assert "流水线运行中，已完成 3/12 步" in text and "网页办理：验收通过 JZ-640302100-000001-B01" in text
    for internal in ("43210", "litong_upload_job", "stg_feedback", "upload_sensor", "进程", "T100（"):
        assert internal not in text, internal
    assert "金积镇填报员（金积镇人民政府）" in text
    assert "2026-12-07 01:30" in text  # recorded in Beijing time (accounts.now: clock.beijing_now), shown as it is


def test_the_prefilled_feedback_file_is_named_by_the_units_name(site):
    s = login(site, "clerk100")
    r = s.get(site.url + "/hazards/feedback.xlsx")
    name = unquote(r.headers["content-disposition"].split("''", 1)[1])
    assert name == f"整改反馈_金积镇人民政府_{_today(site):%Y%m%d}.xlsx"


def test_clerk_opens_a_count_and_prints_the_list_in_the_browser(browser, site):
    page = _browser_login(browser, site, "clerk100", "Clerk-pass-2025")
    overdue = int(page.inner_text("#todo-overdue b").replace(",", ""))
    assert overdue > 0
    page.click("#todo-overdue")
    page.wait_for_load_state()
    assert "overdue=1" in page.url and int(page.inner_text("#total").replace(",", "")) == overdue
    assert page.is_visible("header.top nav") and not page.is_visible(".signatures")
    page.emulate_media(media="print")
    assert not page.is_visible("header.top") and not page.is_visible("form.filters")
    assert page.is_visible(".print-head") and "金积镇人民政府" in page.inner_text(".print-head")
    assert "填表人" in page.inner_text(".signatures") and "审核人" in page.inner_text(".signatures")
    first = page.locator("table.hazards a").first.get_attribute("href")  # the hazard page prints the same way
    page.goto(site.url + first)
    assert page.is_visible(".signatures") and not page.is_visible("header.top")


def test_an_upload_preview_is_post_redirect_get(site):
    """A refresh of the preview page shows the same preview and stages nothing again."""
    from conftest import csv_bytes, example_row
    from portal_support import token

    s = login(site, "clerk100")
    rows = [example_row("buildings", building_id=f"640302100-6{i:05d}", town_code="640302100") for i in range(2)]
    before = len(site.uploads())
    r = s.post(site.url + "/upload", allow_redirects=False,
               data={"csrf": token(s, site, "/upload"), "target": "buildings/2023-1"},
               files={"file": ("两栋.csv", csv_bytes("buildings", rows), "application/octet-stream")})  # fmt: skip
    assert r.status_code == 303 and re.fullmatch(r"/upload/[^/]+/preview", r.headers["location"])
    first = s.get(site.url + r.headers["location"])
    again = s.get(site.url + r.headers["location"])  # the refresh
    assert first.status_code == again.status_code == 200
    assert 'id="accepted-buildings">接收 2 行' in first.text and 'id="confirm"' in first.text
    assert text_of(first.text).split("用时")[0] == text_of(again.text).split("用时")[0]
    assert len(site.uploads()) == before + 1
    other = login(site, "clerk101")  # another person's preview is not theirs to see
    assert other.get(site.url + r.headers["location"]).status_code == 403


def test_the_units_and_towns_ledger_workbooks_are_served_to_those_who_see_them(site):
    folder = site.settings.output / "ledger"
    own = (folder / "责任单位" / "隐患台账_T100.xlsx").read_bytes()
    town = (folder / "乡镇" / "隐患台账_金积镇.xlsx").read_bytes()
    clerk = login(site, "clerk100")
    assert 'href="/ledger/unit/T100.xlsx"' in clerk.get(site.url + "/hazards").text
    r = clerk.get(site.url + "/ledger/unit/T100.xlsx")
    assert r.status_code == 200 and r.content == own
    assert unquote(r.headers["content-disposition"].split("''", 1)[1]) == "隐患台账_金积镇人民政府.xlsx"
    r = clerk.get(site.url + "/ledger/unit/T101.xlsx")
    assert r.status_code == 403 and "无权查看其他单位的隐患台账" in r.text
    r = clerk.get(site.url + "/ledger/town/640302100.xlsx")
    assert r.status_code == 403 and "无权查看乡镇隐患台账" in r.text
    analyst = login(site, "analyst")
    assert 'href="/ledger/town/640302100.xlsx"' in analyst.get(site.url + "/hazards?town=640302100").text
    r = analyst.get(site.url + "/ledger/town/640302100.xlsx")
    assert r.status_code == 200 and r.content == town
    assert analyst.get(site.url + "/ledger/town/..%2F..%2Fportal.xlsx").status_code in (403, 404)
    assert analyst.get(site.url + "/ledger/unit/NOPE.xlsx").status_code == 403
