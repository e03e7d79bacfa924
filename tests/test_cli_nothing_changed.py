"""`cli run` with nothing to do starts no Dagster run (issue 30): once a run has found nothing to do (and
changed nothing), a later run whose uploads, code, definitions, database, outputs and date are the same
says so and shows the published figures; any change makes it a Dagster run again."""

from __future__ import annotations

import contextlib
import io
import os

import dagster as dg

from pipeline import run_state
from pipeline.cli import main
from tests.test_cli import generated_home


def _run() -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run"])
    return code, printed.getvalue()


def _runs() -> int:
    with dg.DagsterInstance.get() as instance:
        return instance.get_runs_count()


def test_a_run_with_nothing_to_do_starts_no_dagster_run_and_a_change_does(tmp_path):
    with generated_home(tmp_path) as home:
        assert not run_state.state_path().exists()  # the first run did work: it proves nothing
        for _ in range(3):  # a run after the first may still have work (enterprises found by the scoring)
            code, out = _run()
            assert code == 0 and "[42/42]" in out
            if run_state.state_path().exists():
                break
        assert run_state.confirmed() is not None, "no run confirmed that nothing changed"
        runs = _runs()
        stamps = {p: p.stat().st_mtime_ns for p in (home / "output").rglob("*") if p.is_file()}

        code, out = _run()
        assert code == 0 and "无需运行" in out and "[ 1/42]" not in out
        assert "数据发布于" in out and "简报：" in out  # the published figures and where the outputs are
        assert _runs() == runs
        assert {p: p.stat().st_mtime_ns for p in (home / "output").rglob("*") if p.is_file()} == stamps

        upload = next((home / "data_raw" / "buildings").rglob("*.csv"))
        os.utime(upload, ns=(upload.stat().st_atime_ns, upload.stat().st_mtime_ns + 1_000_000_000))
        assert run_state.confirmed() is None  # a touched upload: the next run is a Dagster run
        (home / "output" / "charts" / "levels_by_town.png").unlink()  # … and so is a deleted output
        code, out = _run()
        assert code == 0 and "[42/42]" in out and _runs() == runs + 1
        assert (home / "output" / "charts" / "levels_by_town.png").is_file()
