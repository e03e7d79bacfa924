"""Issue 27 §4: the run starts at 确认提交, not at the upload sensor's next tick.

A real portal over a copy of the published sample, with run_on_confirm on and no Dagster daemon (so no sensor
ever ticks): a confirmed survey's receipt and a confirmed decision's changed hazard still appear, because the
portal launched `pipeline.cli run --kind … --first` itself, then the full run of the kind, one after the other.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest
from conftest import csv_bytes, example_row
from portal_support import copy_deployment, login, make_site, published_rows, serving, text_of, token

from pipeline.cli import CliError, run_selection
from pipeline.platform.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
def site(sample, tmp_path_factory):
    deployment, _ = sample
    root = copy_deployment(deployment.root, tmp_path_factory.mktemp("portal_runs"))
    home = root / "dagster_home"  # the runs' history, never the project's
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    patch = pytest.MonkeyPatch()
    patch.setenv("DAGSTER_HOME", str(home))
    try:
        with serving(make_site(root, run_on_confirm=True)) as s:
            yield s
    finally:
        patch.undo()


def _launched(site) -> list[str]:
    log = site.settings.portal_db.parent / "runs.log"
    return re.findall(r"^== \S+ \S+ (.*)$", log.read_text(encoding="utf-8"), re.M) if log.is_file() else []


def _until(what, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.5)
    return None


def test_the_first_pass_covers_only_what_the_person_waits_for():
    job, first = run_selection(["buildings"], first=True)
    assert (job, [k.to_user_string() for k in first]) == (
        "main_job", ["raw_buildings", "stg_buildings", "published_snapshot"])  # fmt: skip
    assert [k.to_user_string() for k in run_selection(["feedback"], first=True)[1]] == [
        "ledger_feedback", "published_snapshot"]  # fmt: skip
    job, rest = run_selection(["buildings"], first=False)  # as the sensor runs it: everything downstream
    names = {k.to_user_string() for k in rest}
    assert job == "main_job" and {"scores_buildings", "hazard_ledger", "briefing", "published_snapshot"} <= names
    assert "scores_bridges" not in names
    assert run_selection(["feedback"], first=False) == ("feedback_job", None)
    with pytest.raises(CliError, match="未知的上传类别"):
        run_selection(["../x"], first=True)


def test_a_confirmed_upload_starts_its_run_and_its_receipt_appears_without_the_sensor(site):
    s = login(site, "clerk100")
    rows = [example_row("buildings", building_id=f"640302100-6{i:05d}", town_code="640302100") for i in range(13)]
    rows[5]["year_built"] = "3025"
    r = s.post(site.url + "/upload", data={"csrf": token(s, site, "/upload"), "target": "buildings/2023-1"},
               files={"file": ("补充调查13行.csv", csv_bytes("buildings", rows), "text/csv")})  # fmt: skip
    assert "接收 12 行" in text_of(r.text)
    upload_id = [u for u in site.uploads() if u["state"] == "previewed"][-1]["upload_id"]
    assert _launched(site) == []
    confirmed = time.monotonic()
    r = s.post(f"{site.url}/upload/{upload_id}/confirm", data={"csrf": token(s, site, f"/uploads/{upload_id}")})
    assert r.status_code == 200
    page = text_of(r.text)
    assert "正在处理" in page and "提交后已立即开始处理" in page and "每2秒自动刷新" in page
    assert '<meta http-equiv="refresh" content="2">' in r.text  # the page polls
    assert _until(lambda: _launched(site), 5) == ["run --kind buildings --first"]  # started at confirm

    def receipt():
        html = s.get(f"{site.url}/uploads/{upload_id}").text
        return html if 'id="receipt-accepted-buildings"' in html else None

    html = _until(receipt, 120)
    seconds = time.monotonic() - confirmed
    assert html is not None, "the receipt did not appear"
    print(f"confirm -> receipt: {seconds:.1f} s")
    page = text_of(html)
    assert "已处理" in page and "接收 12 行" in page and "退回 1 行" in page
    assert s.get(f"{site.url}/uploads/{upload_id}/receipt/buildings").status_code == 200
    # then everything downstream of the kind, one run after the other, never two at once
    assert _until(lambda: _ended(site) == [0, 0], 300)
    assert _launched(site) == ["run --kind buildings --first", "run --kind buildings"]
    assert published_rows(site, "SELECT count(*) FROM stg_buildings WHERE building_id LIKE '640302100-6%'")[0][0] == 12


def _ended(site) -> list[int]:
    """The exit codes of the commands that ended, in order."""
    log = site.settings.portal_db.parent / "runs.log"
    return [int(c) for c in re.findall(r"^-- ended (-?\d+)", log.read_text(encoding="utf-8"), re.M)]


def test_a_confirmed_decision_changes_the_hazard_without_the_sensor(site):
    _until(lambda: len(_ended(site)) == len(_launched(site)), 300)  # the upload's runs (if that test ran) ended
    hazard_no = published_rows(site, "SELECT min(hazard_no) FROM hazards WHERE responsible_unit = 'T101' AND "
                                     "sector_supervisor = 'ZJJ' AND status = '已整改待验收'")[0][0]  # fmt: skip
    sup = login(site, "sup")
    assert "已整改待验收" in text_of(sup.get(f"{site.url}/hazards/{hazard_no}").text)
    r = sup.post(f"{site.url}/hazards/{hazard_no}/decision",
                 data={"csrf": token(sup, site, f"/hazards/{hazard_no}"), "decision": "accept"})  # fmt: skip
    assert "1 条将更新，0 条将退回" in text_of(r.text)
    upload_id = [u for u in site.uploads() if u["state"] == "previewed"][-1]["upload_id"]
    before = len(_launched(site))
    sup.post(f"{site.url}/upload/{upload_id}/confirm", data={"csrf": token(sup, site, f"/uploads/{upload_id}")})
    assert _until(lambda: len(_launched(site)) > before, 5)
    assert _launched(site)[before] == "run --kind feedback --first"

    def accepted():
        status = published_rows(site, "SELECT status FROM hazards WHERE hazard_no = ?", [hazard_no])[0][0]
        return status == "已销号"

    assert _until(accepted, 300), "the decision did not reach the hazard"
    assert "已销号" in text_of(sup.get(f"{site.url}/hazards/{hazard_no}").text)
    assert _until(lambda: len(_ended(site)) == before + 2, 300)
    assert _launched(site)[before:] == ["run --kind feedback --first", "run --kind feedback"]
    assert _ended(site)[before:] == [0, 0]


def test_the_runner_runs_one_command_at_a_time_and_gives_later_files_their_receipts_first(tmp_path):
    """A file confirmed while the first pass runs gets its own first pass before the long run, which covers both."""
    import threading

    from pipeline.portal.runner import Runner

    runner = Runner(tmp_path, tmp_path, tmp_path / "db.duckdb", tmp_path)
    calls, going, release = [], [], threading.Event()

    def fake(kinds, first):
        going.append(1)
        assert len(going) == 1, "two commands at once"
        calls.append((kinds, first))
        if len(calls) == 1:
            release.wait(10)
        going.pop()

    runner._run = fake
    runner.request("buildings")
    assert _until(lambda: calls, 5)
    assert runner.busy()  # the page says 正在处理 from the request on, also while the command is being started
    runner.request("feedback")  # while the first pass runs
    runner.request("feedback")  # twice: one request
    release.set()
    assert _until(lambda: len(calls) == 3, 5)
    time.sleep(0.3)
    assert calls == [(("buildings",), True), (("feedback",), True), (("buildings", "feedback"), False)]
    assert not runner.busy()
    runner.stop()
