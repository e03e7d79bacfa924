"""Issue 25: where files come from, how they land, and what failures say.

Authority cannot be borrowed by copying a file (bytes the portal knows from one unit are refused in another
unit's folder; with the portal in use a file without an audit record is refused); nothing half-landed
(`cli feedback` lands temp-then-rename, a preview lands nothing, a rerun after a killed refresh finishes it);
errors that say what happened (a full disk named in Chinese, the original error surviving a failed
ROLLBACK); files for people readable as the umask allows."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
from contextlib import closing, contextmanager
from pathlib import Path

import duckdb
import pytest

from pipeline.cli import main
from pipeline.intake.blank_templates import write_blank_templates
from pipeline.intake.ingest import discover, ingest_kind
from pipeline.intake.validate import normalize, validate
from pipeline.ledger.feedback import apply_pending, validate_feedback
from pipeline.platform import faults, store
from pipeline.platform.atomic import write_bytes_atomic
from pipeline.platform.paths import PROJECT_ROOT
from pipeline.registries import uploads as upload_audit
from pipeline.registries.templates import load_template
from pipeline.registries.units import district_units
from tests.conftest import csv_bytes
from tests.test_authority import ledger_state, ready_for_acceptance
from tests.test_cli import _query, generated_home
from tests.test_ledger import A_DAMAGE, building, fb, feedback, round_one, statuses, update_buildings

# --- files for people are readable as the umask allows ----------------------------------------------


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_for_people_take_the_umask_not_0600(tmp_path, mask, mode):
    with _umask(mask):
        one = write_bytes_atomic(tmp_path / "回执.xlsx", b"x")
        templates = write_blank_templates(tmp_path / "templates")
    assert stat.S_IMODE(one.stat().st_mode) == mode
    assert templates and {stat.S_IMODE(p.stat().st_mode) for p in templates} == {mode}
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temp file left behind


# --- authority cannot be borrowed by copying a file -------------------------------------------------


def _audit_upload(db: Path, rel_path: str, data: bytes, unit: str, username: str) -> None:
    """One upload as the portal records it when it lands a file."""
    from pipeline.registries import uploads as upload_audit

    kind, _, folder, name = rel_path.split("/")
    with closing(upload_audit.connect(db)) as con:
        con.execute(
            "INSERT INTO uploads (upload_id, username, unit_code, kind, folder, file_name, rel_path, sha256, size_bytes, "
            "created_at, state, landed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '2023-09-01T10:00:00', 'landed', "
            "'2023-09-01T10:00:00')",
            [rel_path, username, unit, kind, folder, name, rel_path, hashlib.sha256(data).hexdigest(), len(data)],
        )


def _add_account(db: Path) -> None:
    """The portal set up in this deployment (`create-admin`): it is in use."""
    from pipeline.portal import accounts
    from pipeline.registries import uploads as upload_audit

    with closing(upload_audit.connect(db)) as con:
        accounts.ensure_tables(con)
        accounts.create_account(con, "admin", "管理员", "YJJ", "admin", "Admin-pass-2025", "test")


ACCEPT = dict(acceptor="张", accept_date="2023-09-01", accept_result="通过", report_date="2023-09-01", unit="")


def test_a_towns_uploaded_file_copied_into_the_supervisors_folder_is_refused_naming_both(deployment, monkeypatch):
    portal_db = deployment.root / "portal.sqlite3"
    monkeypatch.setenv("LITONG_PORTAL_DB", str(portal_db))
    monkeypatch.setenv("LITONG_UNAUDITED_FILES", "accept")  # even where dropped files are taken (shared folders)
    ready_for_acceptance(deployment)
    data = csv_bytes("feedback", [fb(A_DAMAGE, "已销号", **ACCEPT)])
    _audit_upload(portal_db, "feedback/T100/2023-09/验收.csv", data, "T100", "clerk100")
    (own,) = feedback(deployment, "验收.csv", [fb(A_DAMAGE, "已销号", **ACCEPT)], unit="T100", batch="2023-09")
    assert own.rows[0].reason_zh == "责任单位不能验收自己的整改，验收销号须由监管单位填报"
    before = ledger_state(deployment)

    copy = deployment.drop("feedback", "验收.csv", data, unit="YJJ", rnd="2023-09")  # byte for byte
    with store.connect(deployment.db) as con:
        validate_feedback(con, deployment.data_raw)
        assert apply_pending(con) == []
        status, problem = con.execute(
            "SELECT status, problem_zh FROM intake_files WHERE rel_path = ?",
            [copy.relative_to(deployment.data_raw).as_posix()],
        ).fetchall()[0]
    assert statuses(deployment)[A_DAMAGE] == "已整改待验收" and ledger_state(deployment) == before
    assert status == "unreadable"
    assert "T100（金积镇人民政府）的账号" in problem and "YJJ（利通区应急管理局（地震局））的文件夹" in problem


def test_with_the_portal_in_use_a_file_without_an_upload_record_is_refused_by_default(deployment, monkeypatch):
    portal_db = deployment.root / "portal.sqlite3"
    monkeypatch.setenv("LITONG_PORTAL_DB", str(portal_db))
    monkeypatch.delenv("LITONG_UNAUDITED_FILES", raising=False)
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [building("JZ-A")]), unit="ZJJ")

    def intake_status() -> str:
        with store.connect(deployment.db) as con:
            ingest_kind(con, deployment.data_raw, "buildings")
            return con.execute("SELECT status, problem_zh FROM intake_files WHERE is_latest").fetchall()[0]

    assert intake_status() == ("ingested", None)  # no portal here (the bundled sample, shared folders)
    _add_account(portal_db)
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [building("JZ-A"), building("JZ-B")]), unit="ZJJ")
    status, problem = intake_status()
    assert status == "unreadable" and "没有网页上传记录" in problem
    monkeypatch.setenv("LITONG_UNAUDITED_FILES", "accept")  # the explicit switch of a shared-folder deployment
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [building("JZ-C")]), unit="ZJJ")
    assert intake_status() == ("ingested", None)


def test_a_file_renamed_in_place_before_its_record_says_landed_is_the_uploaders(deployment, monkeypatch):
    """The portal renames, then marks the upload 'landed': a run between the two reads the file as the
    uploader's (its record says 'landing'), not as a file without a record."""
    portal_db = deployment.root / "portal.sqlite3"
    monkeypatch.setenv("LITONG_PORTAL_DB", str(portal_db))
    monkeypatch.delenv("LITONG_UNAUDITED_FILES", raising=False)
    _add_account(portal_db)
    data = csv_bytes("buildings", [building("JZ-A")])
    _audit_upload(portal_db, "buildings/ZJJ/2023-1/a.csv", data, "ZJJ", "clerk")
    with closing(upload_audit.connect(portal_db)) as con:
        con.execute("UPDATE uploads SET state = 'landing', landed_at = NULL")
    deployment.drop("buildings", "a.csv", data, unit="ZJJ")
    with store.connect(deployment.db) as con:
        ingest_kind(con, deployment.data_raw, "buildings")
        assert con.execute("SELECT status, problem_zh FROM intake_files").fetchall() == [("ingested", None)]


def test_a_portal_preview_is_not_refused_for_its_missing_record(deployment, monkeypatch):
    """The file previewed will land with the account's record: the preview never says it has none."""
    from pipeline.registries import uploads as upload_audit

    portal_db = deployment.root / "portal.sqlite3"
    monkeypatch.setenv("LITONG_PORTAL_DB", str(portal_db))
    _add_account(portal_db)
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [building("JZ-A")]), unit="ZJJ")
    with store.connect(deployment.db) as con:
        ingest_kind(con, deployment.data_raw, "buildings", upload_audit.PORTAL_PREVIEW)
        assert con.execute("SELECT status FROM intake_files").fetchall() == [("ingested",)]


# --- nothing half-landed: cli feedback ----------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A small generated district in its own folder, run once through `cli run` (as tests/test_cli.py's)."""
    with generated_home(tmp_path_factory, "cli_landing") as root:
        yield root


def _open_hazard(root: Path, offset: int) -> tuple[str, str]:
    """An open hazard of a registered unit (not an enterprise) and its unit."""
    rows = _query(
        root,
        "SELECT hazard_no, responsible_unit FROM hazards WHERE status = '待整改' AND hazard_grade = '一般' "
        "ORDER BY hazard_no",
    )
    return [(h, u) for h, u in rows if u in district_units()][offset]


def _feedback_file(tmp_path: Path, hazard_no: str, unit: str, name: str = "整改反馈.csv") -> Path:
    upload = tmp_path / name
    upload.write_bytes(csv_bytes("feedback", [fb(hazard_no, "整改中", unit=unit, report_date="2024-03-01")]))
    return upload


def _published_status(published: Path, hazard_no: str) -> list[tuple]:
    con = duckdb.connect(str(published), read_only=True)
    try:
        return con.execute("SELECT status FROM hazards WHERE hazard_no = ?", [hazard_no]).fetchall()
    finally:
        con.close()


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _cli(*args: str, fault: str) -> subprocess.CompletedProcess:
    """The command in its own process, killed (SIGKILL) at the named point."""
    env = {**os.environ, faults.ENV: fault}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_a_feedback_preview_or_a_no_puts_nothing_into_data_raw(home, tmp_path, capsys, monkeypatch):
    hazard_no, unit = _open_hazard(home, 0)
    upload = _feedback_file(tmp_path, hazard_no, unit)
    before = _files_under(home / "data_raw")
    assert main(["feedback", str(upload), "--unit", unit]) == 0
    out = capsys.readouterr().out
    assert "将执行 1 行，退回 0 行" in out and "仅预览" in out
    assert _files_under(home / "data_raw") == before  # the next run has nothing to apply
    monkeypatch.setattr("pipeline.cli._confirm", lambda prompt: False)  # answered N
    assert main(["feedback", str(upload), "--unit", unit, "--apply"]) == 0
    assert "已取消" in capsys.readouterr().out
    assert _files_under(home / "data_raw") == before
    assert _query(home, "SELECT status FROM hazards WHERE hazard_no = ?", [hazard_no]) == [("待整改",)]


def test_a_kill_while_a_feedback_file_lands_leaves_nothing_the_intake_reads(home, tmp_path):
    hazard_no, unit = _open_hazard(home, 1)
    upload = _feedback_file(tmp_path, hazard_no, unit, "落地中被终止.csv")
    done = _cli("feedback", str(upload), "--unit", unit, "--apply", "--yes", fault="cli_feedback:landing")
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    landed = [p for p in (home / "data_raw" / "feedback").rglob("*落地中被终止*") if p.is_file()]
    assert all(p.name.startswith(".") for p in landed)  # at most the hidden temp file, never the final name
    assert not [u for u in discover(home / "data_raw", "feedback") if "落地中被终止" in u.rel_path]


def test_a_rerun_after_a_kill_during_the_refresh_finishes_the_refresh(home, tmp_path, capsys):
    from pipeline.publish.snapshot import snapshot_info

    hazard_no, unit = _open_hazard(home, 2)
    upload = _feedback_file(tmp_path, hazard_no, unit, "刷新中被终止.csv")
    published = home / "output" / "published" / "litong.duckdb"
    done = _cli("feedback", str(upload), "--unit", unit, "--apply", "--yes", fault="snapshot:before_rename")
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    assert _query(home, "SELECT status FROM hazards WHERE hazard_no = ?", [hazard_no]) == [("整改中",)]  # applied
    assert _published_status(published, hazard_no) == [("待整改",)]  # stale

    assert main(["feedback", str(upload), "--unit", unit, "--apply", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "完成 发布数据" in out and "已执行 1 行" not in out  # the refresh, not a second application
    assert _published_status(published, hazard_no) == [("整改中",)]
    assert _query(home, "SELECT count(*) FROM hazard_events WHERE hazard_no = ? AND to_status = '整改中'",
                  [hazard_no]) == [(1,)]  # fmt: skip
    assert snapshot_info(published)["job_name"] == "daily_job"

    assert main(["feedback", str(upload), "--unit", unit, "--apply", "--yes"]) == 0  # now there is nothing left
    out = capsys.readouterr().out
    assert "不再重复执行" in out and "published_snapshot" not in out


def test_with_the_portal_in_use_the_cli_records_the_file_it_lands_so_it_is_not_refused(home, tmp_path, monkeypatch,
                                                                                       capsys):  # fmt: skip
    from pipeline.registries import uploads as upload_audit

    portal_db = tmp_path / "portal.sqlite3"
    monkeypatch.setenv("LITONG_PORTAL_DB", str(portal_db))
    _add_account(portal_db)
    hazard_no, unit = _open_hazard(home, 3)
    upload = _feedback_file(tmp_path, hazard_no, unit, "命令行报送.csv")
    assert main(["feedback", str(upload), "--unit", unit, "--apply", "--yes"]) == 0
    assert "已执行 1 行" in capsys.readouterr().out
    assert _query(home, "SELECT status FROM hazards WHERE hazard_no = ?", [hazard_no]) == [("整改中",)]
    (record,) = [r for (rel, _), r in upload_audit.load_audit().records.items() if rel.endswith("命令行报送.csv")]
    assert record.unit_code == unit and record.username.startswith("命令行:")


# --- errors that say what happened: a full disk ----------------------------------------------------------


class _FullDiskOnCommit:
    """A real connection whose COMMIT fails as DuckDB's does on a full disk: the write fails, and the
    transaction is gone (a ROLLBACK after it finds none)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con

    def __getattr__(self, name: str):
        return getattr(self._con, name)

    def execute(self, sql: str, *args, **kwargs):
        if sql.strip().upper() == "COMMIT":
            self._con.execute("ROLLBACK")
            raise duckdb.IOException('Could not write file "/srv/litong/litong.duckdb.wal": No space left on device')
        return self._con.execute(sql, *args, **kwargs)


def test_the_error_of_a_failed_commit_survives_the_rollback(deployment):
    from pipeline.ledger.survey_update import update_from_findings
    from pipeline.scoring.engine import score_kind
    from tests.test_ledger import RULESET

    round_one(deployment)
    before = ledger_state(deployment)
    deployment.drop("buildings", "2023-2.csv", csv_bytes("buildings", [building("JZ-C", falling_hazard="是")]),
                    unit="ZJJ", rnd="2023-2")  # fmt: skip
    with store.connect(deployment.db) as con:
        ingest_kind(con, deployment.data_raw, "buildings")
        normalize(con, load_template("buildings"))
        validate(con, load_template("buildings"))
        score_kind(con, RULESET, "buildings")
        with pytest.raises(duckdb.IOException, match="No space left on device"):  # not "no transaction is active"
            update_from_findings(_FullDiskOnCommit(con))
    assert ledger_state(deployment) == before


def test_a_commit_that_fails_on_a_full_disk_is_reported_as_such_not_masked_by_the_rollback(deployment, monkeypatch):
    round_one(deployment)
    before = ledger_state(deployment)
    deployment.drop("buildings", "2023-2.csv", csv_bytes("buildings", [building("JZ-C", falling_hazard="是")]),
                    unit="ZJJ", rnd="2023-2")  # fmt: skip
    monkeypatch.setenv(faults.ENV, "ledger_update:commit" + faults.DISK_FULL)
    with pytest.raises(duckdb.IOException, match="No space left on device"):  # not "no transaction is active"
        update_buildings(deployment)
    assert ledger_state(deployment) == before  # nothing half-done
    monkeypatch.delenv(faults.ENV)
    update_buildings(deployment)  # the database is whole: the next run goes through
    assert any(h.startswith("JZ-C") for h in statuses(deployment))


def test_a_full_disk_is_named_in_chinese_with_its_folder_on_the_screen_in_status_and_in_the_ui(
    home, capsys, monkeypatch
):
    import dagster as dg

    from pipeline.portal import run_progress

    def full_disk(con):  # the ledger update's write, on a full disk (as DuckDB says it)
        raise duckdb.IOException(f'Could not write file "{home / "litong.duckdb.wal"}": No space left on device')

    monkeypatch.setattr("pipeline.ledger.assets.update_ledger_if_changed", full_disk)

    assert main(["run"]) == 1
    out = capsys.readouterr().out
    assert "磁盘空间不足" in out and f"“{home}”所在的磁盘已满" in out and "no transaction" not in out
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"失败原因：磁盘空间不足：“{home}”所在的磁盘已满" in out

    instance = dg.DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    (failure,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    assert failure.dagster_event.step_key == "hazard_ledger"
    assert "磁盘空间不足" in failure.dagster_event.event_specific_data.error.message  # the Dagster UI's message
    run_progress._instance.cache_clear()
    shown = run_progress.last_failure()  # the portal's upload page
    assert shown is not None and shown.disk_full and "磁盘空间不足" in shown.summary_zh
    assert str(home) not in shown.summary_zh  # no server path on a clerk's page
