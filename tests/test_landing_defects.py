"""Issue 25: where files come from, how they land, and what failures say.

Authority cannot be borrowed by copying a file (bytes the portal knows from one unit are refused in another
unit's folder; with the portal in use a file without an audit record is refused); nothing half-landed
(`cli feedback` lands temp-then-rename, a preview lands nothing, a rerun after a killed refresh finishes it);
errors that say what happened (a full disk named in Chinese, the original error surviving a failed
ROLLBACK); files for people readable as the umask allows."""

from __future__ import annotations

import hashlib
import os
import stat
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from pipeline import store
from pipeline.atomic import write_bytes_atomic
from pipeline.intake.blank_templates import write_blank_templates
from pipeline.intake.ingest import ingest_kind
from pipeline.ledger.feedback import apply_pending, validate_feedback
from tests.conftest import csv_bytes
from tests.test_authority import ledger_state, ready_for_acceptance
from tests.test_ledger import A_DAMAGE, building, fb, feedback, statuses

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
    from pipeline import upload_audit

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
    from pipeline import upload_audit
    from pipeline.portal import accounts

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


def test_a_portal_preview_is_not_refused_for_its_missing_record(deployment, monkeypatch):
    """The file previewed will land with the account's record: the preview never says it has none."""
    from pipeline import upload_audit

    portal_db = deployment.root / "portal.sqlite3"
    monkeypatch.setenv("LITONG_PORTAL_DB", str(portal_db))
    _add_account(portal_db)
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [building("JZ-A")]), unit="ZJJ")
    with store.connect(deployment.db) as con:
        ingest_kind(con, deployment.data_raw, "buildings", upload_audit.PORTAL_PREVIEW)
        assert con.execute("SELECT status FROM intake_files").fetchall() == [("ingested",)]
