"""kill -9 at stage boundaries and in the middle of stages, then a normal run: the district ends in the same
state as after one uninterrupted run. The kills are real SIGKILLs of a `cli run` subprocess, at points
chosen by the fault-injection hook (pipeline/platform/faults.py, LITONG_FAULT), not by timing.

Compared: hazards (every column), hazard events, staging, quarantine, validation failures, feedback outcomes,
scores and the ledger exports. Left out, because they are sequence numbers or wall-clock times by design:
hazard_events.seq and .recorded_at, intake_files.uploaded_at (and the uploaded_at provenance column of
staging), scores.run_id, findings.run_id, scoring_runs, feedback_applied.applied_at, and in the exports
nothing (they are derived from the ledger and the date alone).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.platform.paths import PROJECT_ROOT
from sample import generate as sample_data
from sample.feedback import write_sample_feedback
from tests.conftest import Deployment, run_all

# (fault point, what it interrupts): stage boundaries and the middle of stages
KILLS = [
    ("ingest_buildings:after_one_file", "one survey file registered, the others not yet"),
    ("scores_buildings:done", "between scoring stages"),
    ("hazard_ledger:done", "after the ledger update, before feedback"),
    ("ledger_feedback:after_first_file", "feedback half applied, no receipt written yet"),
    ("ledger_exports:mid", "half of 隐患台账.csv written"),
    ("snapshot:before_rename", "snapshot copied, not yet published"),
]
COMPARED = {
    "hazards": "SELECT * FROM hazards ORDER BY hazard_no",
    "hazard_events": "SELECT * EXCLUDE (seq, recorded_at) FROM hazard_events ORDER BY ALL",
    "stg_buildings": "SELECT * EXCLUDE (uploaded_at) FROM stg_buildings ORDER BY source_file, row_no",
    "stg_hazchem_sites": "SELECT * EXCLUDE (uploaded_at) FROM stg_hazchem_sites ORDER BY source_file, row_no",
    "stg_feedback": "SELECT * EXCLUDE (uploaded_at) FROM stg_feedback ORDER BY source_file, row_no",
    "quarantine": "SELECT * FROM quarantine ORDER BY ALL",
    "validation_failures": "SELECT * FROM validation_failures ORDER BY ALL",
    "feedback_results": "SELECT * FROM feedback_results ORDER BY ALL",
    "feedback_applied": "SELECT * EXCLUDE (applied_at) FROM feedback_applied ORDER BY ALL",
    "scores": "SELECT * EXCLUDE (run_id) FROM scores ORDER BY kind, asset_id",
    "intake_files": "SELECT * EXCLUDE (uploaded_at) FROM intake_files ORDER BY ALL",
}


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> Path:
    """A small district's surveys and the feedback its units send (made from a scratch run's ledger)."""
    root = tmp_path_factory.mktemp("crash_district")
    (root / "scratch").mkdir()
    scratch = Deployment(root / "scratch")
    sample_data.generate(scratch.data_raw, buildings=300, bridges=10, sites=4, pipelines=3, formats="csv")
    run_all(scratch, publish=False)
    write_sample_feedback(scratch.db, scratch.data_raw)
    assert list((scratch.data_raw / "feedback").rglob("*.csv"))
    return scratch.data_raw


def cli_run(home: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LITONG_DATA_RAW": str(home / "data_raw"), "LITONG_OUTPUT": str(home / "output"),
           "LITONG_DB": str(home / "litong.duckdb"), "DAGSTER_HOME": str(home / "dagster_home"),
           "LITONG_WRITER_WAIT": "5"}  # fmt: skip
    env.pop("LITONG_FAULT", None)
    if fault:
        env["LITONG_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "run"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def new_home(root: Path, district: Path) -> Path:
    root.mkdir()
    shutil.copytree(district, root / "data_raw")
    (root / "dagster_home").mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", root / "dagster_home" / "dagster.yaml")
    return root


def state(home: Path) -> dict[str, list]:
    con = duckdb.connect(str(home / "litong.duckdb"), read_only=True)
    try:
        out = {name: con.execute(sql).fetchall() for name, sql in COMPARED.items()}
    finally:
        con.close()
    ledger = home / "output" / "ledger"
    for name in ("隐患台账.csv", "乡镇汇总.csv", "责任单位汇总.csv"):
        out[name] = (ledger / name).read_text(encoding="utf-8-sig").splitlines()
    receipts = home / "output" / "receipts"
    out["feedback receipts"] = sorted(p.relative_to(receipts).as_posix() for p in receipts.rglob("*_回执.xlsx")
                                      if "feedback" in p.parts)  # fmt: skip
    return out


def test_kill_9_anywhere_then_a_normal_run_ends_as_an_uninterrupted_run(district, tmp_path):
    reference = new_home(tmp_path / "reference", district)
    assert cli_run(reference).returncode == 0
    expected = state(reference)
    assert expected["hazards"] and expected["feedback_results"] and expected["feedback receipts"]

    home = new_home(tmp_path / "crashed", district)
    for fault, what in KILLS:
        killed = cli_run(home, fault)
        assert killed.returncode == -signal.SIGKILL, f"{fault} ({what}) was never reached:\n{killed.stdout[-2000:]}"
        assert not list((home / "output").rglob(".*.tmp*")) or fault in ("ledger_exports:mid", "snapshot:before_rename")
    final = cli_run(home)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "进程已不存在" in final.stdout  # the killed runs were marked failed, none blocked
    got = state(home)
    for name in expected:
        assert got[name] == expected[name], f"{name} differs after the crashes"
    assert not [p for p in (home / "output").rglob("*") if ".tmp" in p.name], "a temp file was left behind"
