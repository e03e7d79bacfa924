"""The upload audit: who put which file into data_raw/ through the web portal, and when.

The portal (pipeline/portal) writes one row per upload here before it renames the file into
`data_raw/<kind>/<unit>/<folder>/`; the intake reads it to take a file's acting unit (and the person)
from the record, never from the folder alone. A file with no record was dropped straight into the
folder (a shared-folder deployment, the bundled sample): `LITONG_UNAUDITED_FILES=accept` (the default)
still takes it as its folder's unit, `refuse` refuses it with a receipt.

The audit lives in a SQLite file (`output/portal/portal.sqlite3`, or `LITONG_PORTAL_DB`), not in the
DuckDB store: the portal writes it from many threads while a pipeline run holds DuckDB's single writer
lock, and SQLite (WAL mode) takes concurrent writers across processes without blocking readers.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from pipeline import paths
from pipeline.registry import unit_label

UNAUDITED_ENV = "LITONG_UNAUDITED_FILES"
ACCEPT, REFUSE = "accept", "refuse"

UPLOADS_DDL = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    username TEXT NOT NULL,           -- the person (the account), as the audit names them
    unit_code TEXT NOT NULL,          -- the account's unit: the acting unit of the file
    kind TEXT NOT NULL,               -- buildings … / feedback / quake_feedback
    folder TEXT NOT NULL,             -- survey round, feedback batch or earthquake event id
    file_name TEXT NOT NULL,          -- the name it lands under (made safe; never a path the client chose)
    original_name TEXT,               -- as the browser sent it, for the person's eyes only
    rel_path TEXT,                    -- under data_raw/, once confirmed
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at TEXT NOT NULL,         -- preview
    state TEXT NOT NULL,              -- previewed / landed / discarded
    landed_at TEXT,
    preview_accepted INTEGER,
    preview_refused INTEGER,
    preview_summary TEXT,             -- one line in Chinese
    result TEXT                       -- what the pipeline made of it (read back from the published snapshot)
)
"""
UPLOADS_INDEX = "CREATE INDEX IF NOT EXISTS uploads_by_path ON uploads (rel_path, sha256)"


_output: Path | None = None  # the output folder of the deployment in use (the Dagster resource's), if set


def use_output(path: Path | None) -> None:
    """The output folder whose portal database the intake reads (the Dagster resource sets its own; the CLI
    and the portal use paths.output_dir())."""
    global _output
    _output = path


def database_path() -> Path:
    """`LITONG_PORTAL_DB`, else `portal/portal.sqlite3` in the deployment's output folder."""
    if value := os.environ.get("LITONG_PORTAL_DB"):
        return Path(value)
    return (_output or paths.output_dir()) / "portal" / "portal.sqlite3"


def connect(path: Path | None = None) -> sqlite3.Connection:
    """A read-write connection (WAL, waits up to 10 s for another writer), with the uploads table."""
    path = path or database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA busy_timeout=10000")
    con.execute(UPLOADS_DDL)
    con.execute(UPLOADS_INDEX)
    return con


@dataclass(frozen=True)
class AuditRecord:
    username: str
    unit_code: str
    landed_at: str


def landed_records(path: Path | None = None) -> dict[tuple[str, str], AuditRecord]:
    """(rel_path, sha256) -> the latest upload that put these bytes at this path through the portal."""
    path = path or database_path()
    if not path.exists():
        return {}
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as con:
        try:
            rows = con.execute(
                "SELECT rel_path, sha256, username, unit_code, landed_at FROM uploads WHERE state = 'landed' "
                "ORDER BY landed_at"
            ).fetchall()
        except sqlite3.OperationalError:  # no uploads table yet
            return {}
    return {(rel, sha): AuditRecord(user, unit, at) for rel, sha, user, unit, at in rows}


def unaudited_policy() -> str:
    value = os.environ.get(UNAUDITED_ENV, ACCEPT).strip().lower()
    if value not in (ACCEPT, REFUSE):
        raise ValueError(f"{UNAUDITED_ENV} must be '{ACCEPT}' or '{REFUSE}', not {value!r}")
    return value


def audit_problem(record: AuditRecord | None, folder_unit: str) -> str | None:
    """Why a file is refused for its upload record (Chinese), or None.

    A file the portal put here acts as the unit of the account that uploaded it, which must be its
    folder's unit (a file moved into another unit's folder is refused). A file without a record is
    taken or refused by `LITONG_UNAUDITED_FILES`."""
    if record is None:
        if unaudited_policy() == REFUSE:
            return (
                "此文件没有网页上传记录（不是通过登录账号上传的），按本区设置不予受理："
                "请登录利通区地震风险隐患排查平台，用本单位账号上传"
            )
        return None
    if record.unit_code != folder_unit:
        return (
            f"上传记录显示此文件由{unit_label(record.unit_code)}的账号上传，却位于{unit_label(folder_unit)}的文件夹中："
            "一个单位只能以本单位身份报送，不予受理"
        )
    return None
