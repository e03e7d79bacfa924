"""`cli run` with nothing to do starts no Dagster run (issue 30): once a run has found nothing to do (and
changed nothing), a later run whose uploads, code, definitions, database, outputs and date are the same
says so and shows the published figures; any change makes it a Dagster run again."""

from __future__ import annotations

import contextlib
import io
import os

import dagster as dg

from pipeline.cli import main
from pipeline.platform import run_state
from tests.test_cli import generated_home


def _run() -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run"])
    return code, printed.getvalue()


def _runs() -> int:
    with dg.DagsterInstance.get() as instance:
        return instance.get_runs_count()


def test_a_run_with_nothing_to_do_starts_no_dagster_run_and_a_change_does(tmp_path_factory):
    with generated_home(tmp_path_factory, "nothing_changed") as home:
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


def test_blank_templates_are_written_once_until_what_they_are_made_from_changes(tmp_path, monkeypatch):
    """Every run rewrote the 22 template files; now only a run whose schemas, names or code changed (or
    that finds a template missing) writes them."""
    from pipeline.intake import blank_templates as bt
    from pipeline.intake.assets import blank_templates
    from pipeline.platform import stage_inputs
    from tests.conftest import Deployment

    d = Deployment(tmp_path)

    def materialise() -> bool:
        result = dg.materialize([blank_templates], resources={"store": d.resource()})
        return result.asset_materializations_for_node("blank_templates")[0].metadata["written_now"].value

    assert materialise() is True
    files = bt.template_files(d.output / "templates")
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert len(files) >= 20 and all(p.is_file() for p in files)
    assert materialise() is False
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    files[0].unlink()
    assert materialise() is True and files[0].is_file()
    monkeypatch.setattr(bt, "templates_inputs", lambda: stage_inputs.fingerprint("a schema changed"))
    assert materialise() is True
