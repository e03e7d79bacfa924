"""Day-to-day operation: the upload sensor, the daily schedule, one database writer at a time."""

from __future__ import annotations

import json
import os
import time

import dagster as dg
import yaml

from pipeline.platform.paths import PROJECT_ROOT
from pipeline.wiring.definitions import defs
from pipeline.wiring.schedules import daily_refresh
from pipeline.wiring.sensors import SETTLE_SECONDS, data_raw_sensor, what_to_run
from tests.conftest import csv_bytes, example_row


def _age(path, seconds: float = 60) -> None:
    """Pretend the file was copied in a while ago (the sensor waits for files to settle)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _tick(deployment, cursor: str | None):
    with dg.build_sensor_context(cursor=cursor, resources={"store": deployment.resource()}) as context:
        return data_raw_sensor(context), context.cursor


def _requests(result) -> list[dg.RunRequest]:
    return [] if isinstance(result, dg.SkipReason) else [result]


def test_sensor_requests_a_run_for_a_new_file_and_not_for_an_unchanged_one(deployment):
    f = deployment.drop("buildings", "b.csv", csv_bytes("buildings", [example_row("buildings")]))
    _age(f)
    first, cursor = _tick(deployment, None)
    assert [r.job_name for r in _requests(first)] == ["main_job"]
    selected = {k.to_user_string() for k in _requests(first)[0].asset_selection}
    assert {"raw_buildings", "stg_buildings", "scores_buildings", "hazard_ledger", "briefing"} <= selected
    assert not selected & {"raw_bridges", "stg_bridges", "scores_bridges"}  # unchanged kinds are not redone
    assert "buildings/ZJJ/2023-1/b.csv" in json.loads(cursor)

    again, cursor_again = _tick(deployment, cursor)
    assert isinstance(again, dg.SkipReason) and cursor_again == cursor

    f.write_bytes(csv_bytes("buildings", [example_row("buildings", storeys="3")]))  # changed content
    _age(f, 30)
    changed, _ = _tick(deployment, cursor)
    assert [r.job_name for r in _requests(changed)] == ["main_job"]
    assert _requests(changed)[0].run_key != _requests(first)[0].run_key


def test_sensor_waits_for_a_file_still_being_written_and_ignores_lock_files(deployment):
    f = deployment.drop("bridges", "q.csv", csv_bytes("bridges", [example_row("bridges")]))
    lock = deployment.drop("bridges", "~$q.xlsx", b"lock")
    _age(lock)
    result, cursor = _tick(deployment, None)  # written just now: not yet
    assert isinstance(result, dg.SkipReason) and "still being written" in result.skip_message
    assert json.loads(cursor or "{}") == {}
    _age(f, SETTLE_SECONDS + 5)
    settled, cursor = _tick(deployment, cursor)
    assert len(_requests(settled)) == 1 and list(json.loads(cursor)) == ["bridges/ZJJ/2023-1/q.csv"]


def test_sensor_runs_only_the_feedback_job_for_feedback_files_and_notices_removals(deployment):
    survey = deployment.drop("buildings", "b.csv", csv_bytes("buildings", [example_row("buildings")]))
    _age(survey)
    _, cursor = _tick(deployment, None)
    fb = deployment.drop("feedback", "f.csv", b"x", unit="T100", rnd="2023-08")
    _age(fb)
    result, cursor = _tick(deployment, cursor)
    assert [r.job_name for r in _requests(result)] == ["feedback_job"]
    survey.unlink()
    removed, _ = _tick(deployment, cursor)
    assert [r.job_name for r in _requests(removed)] == ["main_job"]


def test_what_a_change_runs():
    assert what_to_run(["feedback/T100/2023-10/f.csv"]) == ("feedback_job", None)
    assert what_to_run(["misplaced.csv"]) == ("main_job", None)  # intake registers it as misplaced
    job, keys = what_to_run(["hazchem_sites/GXJ/2023-1/s.xlsx", "feedback/T100/2023-10/f.csv"])
    names = {k.to_user_string() for k in keys}
    assert job == "main_job" and {"stg_hazchem_inventory", "scores_hazchem_sites", "ledger_feedback"} <= names
    assert "raw_buildings" not in names and "raw_hazchem_inventory" not in names


def test_daily_schedule_refreshes_overdue_charts_and_briefing_in_beijing_time():
    assert daily_refresh.cron_schedule == "0 7 * * *" and daily_refresh.execution_timezone == "Asia/Shanghai"
    tick = daily_refresh.evaluate_tick(dg.build_schedule_context())
    assert len(tick.run_requests) == 1 and not tick.skip_message
    job = defs.resolve_job_def("daily_job")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert {"ledger_exports", "briefing", "chart_open_hazards_by_unit", "chart_asset_map"} <= keys
    assert not any(k.startswith(("raw_", "stg_", "scores_")) for k in keys)


def test_every_job_is_limited_to_one_database_writer_at_a_time():
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["run_coordinator"]["config"]
    assert config["max_concurrent_runs"] == 2  # a survey run, and an earthquake response beside it
    assert {"key": "litong/database", "limit": 1} in config["tag_concurrency_limits"]
    assert {"key": "litong/quake", "limit": 1} in config["tag_concurrency_limits"]
    for job in defs.jobs:
        if job.name in ("quake_job", "declare_earthquake_job", "quake_followup_job", "close_earthquake_job"):
            # never queued behind a survey run
            assert set(job.tags) == {"litong/quake"}
            continue
        assert job.tags.get("litong/database") == "write", job.name
    sensor = defs.resolve_sensor_def("data_raw_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_the_sensor_marks_failed_a_run_whose_process_died(deployment):
    """Without this a run killed by kill -9 would hold the UI queue's one writer slot forever."""
    import uuid

    from pipeline.platform.writer_lock import run_alive, runs_dir

    instance = dg.DagsterInstance.ephemeral()
    dead, alive = str(uuid.uuid4()), str(uuid.uuid4())
    for run_id in (dead, alive):
        instance.add_run(dg.DagsterRun(job_name="main_job", run_id=run_id, status=dg.DagsterRunStatus.STARTED,
                                       tags={"litong/database": "write"}))  # fmt: skip
    runs_dir(deployment.db).mkdir(parents=True)
    (runs_dir(deployment.db) / f"{dead}.lock").touch()  # its process held this lock until it was killed
    with run_alive(deployment.db, alive):  # this one is still running
        with dg.build_sensor_context(instance=instance, resources={"store": deployment.resource()}) as context:
            data_raw_sensor(context)
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED
