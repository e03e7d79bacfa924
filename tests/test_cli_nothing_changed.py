"""`cli run` with nothing to do starts no Dagster run (issue 30): once a run has found nothing to do (and
changed nothing), a later run whose uploads, code, definitions, database, outputs and date are the same
says so and shows the published figures; any change makes it a Dagster run again."""

from __future__ import annotations

import contextlib
import io
import os

import dagster as dg

from pipeline.cli import main
from pipeline.platform import run_state, store
from tests.conftest import csv_bytes
from tests.test_cli import generated_home
from tests.test_ledger import fb


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
        assert run_state.confirmed() is None  # copied from the session's build: its fingerprint is another's
        code, out = _run()
        assert code == 0 and "[42/42]" in out
        assert run_state.confirmed() is not None, "a successful run did not confirm what it left"
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


def test_one_run_does_all_the_work_a_forced_run_after_it_changes_nothing(tmp_path_factory):
    """What lets a run confirm what it leaves: a Dagster run straight after it (the confirmation forgotten)
    writes nothing — not even after a new upload that names an enterprise the same run's scoring finds (the
    validation of 责任单位 waits for the scorings of the enterprises' surveys) and feedback that changed the
    ledger after its update (the update does not read the ledger it leaves)."""
    with generated_home(tmp_path_factory, "one_pass") as home:
        assert _run()[0] == 0
        with store.connect(home / "litong.duckdb") as con:
            hazard_no, unit = con.execute("SELECT hazard_no, responsible_unit FROM hazards WHERE status = '待整改' "
                                          "ORDER BY hazard_no LIMIT 1").fetchone()  # fmt: skip
        report = home / "data_raw" / "feedback" / unit / "2024-03" / "整改反馈.csv"
        report.parent.mkdir(parents=True)
        report.write_bytes(csv_bytes("feedback", [fb(hazard_no, "整改中", unit=unit, report_date="2024-03-01")]))
        upload = next((home / "data_raw" / "buildings").rglob("*.csv"))
        os.utime(upload, ns=(upload.stat().st_atime_ns, upload.stat().st_mtime_ns + 1_000_000_000))
        assert _run()[0] == 0 and run_state.confirmed() is not None
        with store.connect(home / "litong.duckdb") as con:
            assert con.execute("SELECT status FROM hazards WHERE hazard_no = ?", [hazard_no]).fetchone() == ("整改中",)
        left = run_state.taken()
        run_state.forget()
        code, out = _run()
        assert code == 0 and "[42/42]" in out
        assert run_state.taken().whole == left.whole, "the run after a run still had work to do"
        assert "未重新校验" in out and "未重新评分" in out


def test_a_run_whose_uploads_moved_while_it_ran_confirms_nothing(tmp_path_factory):
    """A file landed (by the web page) while a run ran is the next run's work: the run does not confirm."""
    with generated_home(tmp_path_factory, "moved_mid_run") as home:
        before = run_state.taken()
        upload = next((home / "data_raw" / "buildings").rglob("*.csv"))
        os.utime(upload, ns=(upload.stat().st_atime_ns, upload.stat().st_mtime_ns + 1_000_000_000))
        after = run_state.taken()
        assert before.inputs != after.inputs
        assert run_state.confirm("a-run", before, after) is False and run_state.confirmed() is None
        assert run_state.confirm("a-run", after, after) is True and run_state.confirmed() is not None
        (home / "output" / "charts" / "levels_by_town.png").unlink()  # written after the run ended
        assert run_state.confirm("a-run", after, after) is False and run_state.confirmed() is None


def test_a_responsible_unit_column_is_validated_after_the_scorings_that_find_the_enterprises():
    """A building whose 责任单位 is an enterprise surveyed in the same run is accepted in that run: the
    validation of every kind with a unit-code column waits for the scorings of the enterprises' surveys (the
    bench's second run at 1 M validated such buildings again: a run left work for the next)."""
    from pipeline.registries.templates import KINDS, load_template
    from pipeline.registries.units import enterprise_surveys
    from pipeline.wiring.definitions import defs

    graph = defs.resolve_asset_graph()
    owners = enterprise_surveys()
    assert set(owners) == {"hazchem_sites", "pipelines"}
    naming = [k for k in KINDS if any(f.type == "unit_code" for f in load_template(k).fields)]
    assert "buildings" in naming and "bridges" in naming
    for kind in naming:
        upstream = {key.to_user_string() for key in graph.get(dg.AssetKey(f"stg_{kind}")).parent_keys}
        assert {f"scores_{k}" for k in owners} <= upstream, kind


def _drop_last_row(upload) -> None:
    """The upload rewritten without its last row: new bytes, a new file version, a building fewer."""
    lines = upload.read_bytes().splitlines(keepends=True)
    upload.write_bytes(b"".join(lines[:-1]))
    os.utime(upload, ns=(upload.stat().st_atime_ns, upload.stat().st_mtime_ns + 1_000_000_000))


def _building_rows(home) -> int:
    """The buildings' rows staged or refused (a row is one or the other)."""
    with store.connect(home / "litong.duckdb") as con:
        return con.execute("SELECT (SELECT count(*) FROM stg_buildings) + "
                           "(SELECT count(DISTINCT (file_id, row_no)) FROM quarantine WHERE kind = 'buildings')").fetchone()[0]  # fmt: skip


def test_after_a_confirmed_run_a_changed_upload_runs_only_the_steps_downstream_of_it(tmp_path_factory):
    """Only a buildings file changed since a confirmed run: the run is the 17 steps downstream of the buildings'
    intake (as the upload sensor runs them), not 42 — and it leaves nothing to do: a forced run of all 42 steps
    after it changes nothing at all (no output, no database write), so the 17 did everything 42 would have."""
    with generated_home(tmp_path_factory, "changed_part") as home:
        assert _run()[0] == 0 and run_state.confirmed() is not None
        upload = next((home / "data_raw" / "buildings").rglob("*.csv"))
        _drop_last_row(upload)
        assert run_state.changed_uploads(run_state.taken()) == [upload.relative_to(home / "data_raw").as_posix()]
        runs, rows = _runs(), _building_rows(home)
        code, out = _run()
        assert code == 0 and "只运行它们及其下游的步骤" in out and "房屋建筑" in out
        assert "[17/17]" in out and "[18/" not in out and "校验：房屋建筑" in out and "校验：桥梁" not in out
        assert _runs() == runs + 1 and run_state.confirmed() is not None
        assert _building_rows(home) == rows - 1  # the dropped row is gone from the staged and refused rows
        left = run_state.taken()
        run_state.forget()
        code, out = _run()
        assert code == 0 and "[42/42]" in out
        assert run_state.taken().whole == left.whole, "the 17 steps left work for the other 25"


def test_anything_but_uploads_changed_runs_every_step(tmp_path_factory):
    """A changed output (or code, rule, date, setting …) besides a changed upload: no shortcut, all 42 steps;
    an earthquake declaration or a file outside the kinds' folders: likewise."""
    with generated_home(tmp_path_factory, "changed_more") as home:
        assert _run()[0] == 0 and run_state.confirmed() is not None
        _drop_last_row(next((home / "data_raw" / "buildings").rglob("*.csv")))
        assert run_state.changed_uploads(run_state.taken())
        (home / "output" / "charts" / "levels_by_town.png").unlink()
        assert run_state.changed_uploads(run_state.taken()) is None
        code, out = _run()
        assert code == 0 and "[42/42]" in out and "只运行" not in out
        stray = home / "data_raw" / "说明.txt"
        stray.write_text("一个放错位置的文件", encoding="utf-8")
        assert run_state.changed_uploads(run_state.taken()) == ["说明.txt"]
        code, out = _run()
        assert code == 0 and "[42/42]" in out and "只运行" not in out
