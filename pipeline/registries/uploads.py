"""The upload audit: who put which file into data_raw/ through the web portal, and when.

The portal (pipeline/portal) writes one row per upload here before it renames the file into
`data_raw/<kind>/<unit>/<folder>/`; the intake reads it to take a file's acting unit (and the person)
from the record, never from the folder alone. A record is looked up by path and bytes, and the path holds
the unit, so a copy of an uploaded file never matches a record: bytes the audit knows from one unit's
accounts, found in another unit's folder without a record, are refused (authority is not borrowed by
copying a file).

A file with no record was dropped straight into the folder. `LITONG_UNAUDITED_FILES` says what happens to
it: `accept` takes it as its folder's unit (deployments without the portal: shared folders, the bundled
sample), `refuse` refuses it with a receipt. Unset, it is `refuse` while the portal is in use (its database
holds at least one account, so units are meant to send through their accounts) and `accept` otherwise.

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

from pipeline.platform import paths
from pipeline.platform.clock import beijing_now
from pipeline.registries.units import unit_label

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


@dataclass(frozen=True)
class Audit:
    """The upload audit as the intake checks one run's files against it."""

    records: dict[tuple[str, str], AuditRecord]  # (rel_path, sha256) -> the latest upload landed there
    units_of_bytes: dict[str, frozenset[str]]  # sha256 -> the units whose accounts sent these bytes
    refuse_unaudited: bool

    def record(self, rel_path: str, sha256: str) -> AuditRecord | None:
        return self.records.get((rel_path, sha256))

    def problem(self, rel_path: str, sha256: str, folder_unit: str) -> str | None:
        """Why the file at `rel_path` (in `folder_unit`'s folder) is refused for its upload record, or None."""
        record = self.record(rel_path, sha256)
        if record is not None:
            return audit_problem(record, folder_unit)
        senders = self.units_of_bytes.get(sha256, frozenset())
        if senders and folder_unit not in senders:
            return borrowed_problem(sorted(senders), folder_unit)
        if self.refuse_unaudited:
            return UNAUDITED_ZH
        return None


# A portal preview: the file will land with the account's own record, so nothing is refused for the audit.
PORTAL_PREVIEW = Audit({}, {}, refuse_unaudited=False)

UNAUDITED_ZH = (
    "此文件没有网页上传记录（不是通过登录账号上传的），按本区设置不予受理："
    "请登录利通区地震风险隐患排查平台，用本单位账号上传"
)


def load_audit(path: Path | None = None) -> Audit:
    """The deployment's audit as it is now (read-only; no database: empty, and the portal not in use)."""
    path = path or database_path()
    if not path.exists():
        return Audit({}, {}, unaudited_policy(portal_in_use=False) == REFUSE)
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as con:
        in_use = _has_accounts(con)
        try:
            landed = con.execute(
                "SELECT rel_path, sha256, username, unit_code, COALESCE(landed_at, created_at) AS at FROM uploads "
                "WHERE state IN ('landed', 'landing') ORDER BY at"
            ).fetchall()
            senders = con.execute("SELECT DISTINCT sha256, unit_code FROM uploads").fetchall()
        except sqlite3.OperationalError:  # no uploads table yet
            landed, senders = [], []
    units: dict[str, set[str]] = {}
    for sha, unit in senders:
        units.setdefault(sha, set()).add(unit)
    return Audit(
        {(rel, sha): AuditRecord(user, unit, at) for rel, sha, user, unit, at in landed},
        {sha: frozenset(u) for sha, u in units.items()},
        unaudited_policy(in_use) == REFUSE,
    )


def _has_accounts(con: sqlite3.Connection) -> bool:
    try:
        return con.execute("SELECT count(*) FROM accounts").fetchone()[0] > 0
    except sqlite3.OperationalError:  # no accounts table: the portal was never set up here
        return False


def portal_in_use(path: Path | None = None) -> bool:
    """Whether the portal is in use in this deployment: its database holds at least one account."""
    path = path or database_path()
    if not path.exists():
        return False
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as con:
        return _has_accounts(con)


def landed_records(path: Path | None = None) -> dict[tuple[str, str], AuditRecord]:
    """(rel_path, sha256) -> the latest upload that put these bytes at this path through the portal."""
    return load_audit(path).records


def unaudited_policy(portal_in_use: bool = False) -> str:
    """`LITONG_UNAUDITED_FILES` if set; unset: refuse while the portal is in use, else accept."""
    value = os.environ.get(UNAUDITED_ENV, "").strip().lower()
    if not value:
        return REFUSE if portal_in_use else ACCEPT
    if value not in (ACCEPT, REFUSE):
        raise ValueError(f"{UNAUDITED_ENV} must be '{ACCEPT}' or '{REFUSE}', not {value!r}")
    return value


def audit_problem(record: AuditRecord, folder_unit: str) -> str | None:
    """Why a file the portal put here is refused for its upload record (Chinese), or None.

    A file the portal put here acts as the unit of the account that uploaded it, which must be its
    folder's unit (a file moved into another unit's folder is refused)."""
    if record.unit_code != folder_unit:
        return (
            f"上传记录显示此文件由{unit_label(record.unit_code)}的账号上传，却位于{unit_label(folder_unit)}的文件夹中："
            "一个单位只能以本单位身份报送，不予受理"
        )
    return None


def borrowed_problem(senders: list[str], folder_unit: str) -> str:
    """A copy of bytes another unit's account sent, found in `folder_unit`'s folder without a record."""
    who = "、".join(unit_label(u) for u in senders)
    return (
        f"此文件与{who}的账号通过网页上传的文件完全相同，却没有上传记录地出现在{unit_label(folder_unit)}的文件夹中："
        f"复制其他单位上传的文件不能代表{unit_label(folder_unit)}报送，不予受理。"
        f"如确属{unit_label(folder_unit)}报送，请用本单位账号登录平台上传"
    )


def record_landing(rel_path: str, sha256: str, size_bytes: int, unit_code: str, username: str,
                   path: Path | None = None) -> None:  # fmt: skip
    """Record a file another trusted channel put into data_raw/ (`cli feedback --unit` at the bureau) as the
    portal records an upload, unless these bytes at this path are recorded already: with the portal in use,
    a file without a record is refused."""
    import secrets

    parts = rel_path.split("/")
    now = beijing_now().isoformat()
    with closing(connect(path)) as con:
        known = con.execute(
            "SELECT 1 FROM uploads WHERE rel_path = ? AND sha256 = ? AND state = 'landed'", [rel_path, sha256]
        ).fetchall()
        if known:
            return
        con.execute(
            "INSERT INTO uploads (upload_id, username, unit_code, kind, folder, file_name, original_name, rel_path, "
            "sha256, size_bytes, created_at, state, landed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'landed', ?)",
            [secrets.token_hex(16), username, unit_code, parts[0], parts[2] if len(parts) > 3 else "", parts[-1],
             parts[-1], rel_path, sha256, size_bytes, now, now],
        )  # fmt: skip
