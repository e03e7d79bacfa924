"""What each stage's last result was computed from, so a run whose inputs did not change does no work.

Every skippable step fingerprints everything its result depends on — the file versions it reads, the
templates, registries and rules, the code of its stage, the district's date where a check or a figure depends
on it, and the fingerprints of the steps it reads — and compares it with the fingerprint recorded when it last
did its work (table `stage_inputs`). Equal: the step reports "unchanged" and leaves its tables and files as
they are. Different, or the result missing: it does its work and records the new fingerprint in the same
database, after the work committed (a step that died half-way records nothing and is redone).

This is the coarse, per-step half of incremental runs. Within a step that has work, only what changed is
redone: validation by file version (pipeline/intake/file_versions.py), scoring and the ledger update by
asset (pipeline/scoring/changes.py).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import duckdb

from pipeline.platform.paths import PROJECT_ROOT, REFERENCE_DIR

STAGE_INPUTS_DDL = """CREATE TABLE IF NOT EXISTS stage_inputs (
    step VARCHAR PRIMARY KEY, fingerprint VARCHAR, recorded_at TIMESTAMP, detail VARCHAR)"""


def fingerprint(*parts: object) -> str:
    """A stable hash of JSON-able parts (dates and paths as text)."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@cache
def code_version(*folders: str) -> str:
    """The bytes of the Python files of these package folders (relative to the project), as one hash: a new
    release of a stage redoes its work."""
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            h.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:32]


def files_version(*paths: Path) -> str:
    """The bytes of data files (templates, registries); a missing file counts as empty."""
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path.name).encode())
        h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()[:32]


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(STAGE_INPUTS_DDL)
    con.execute("ALTER TABLE stage_inputs ADD COLUMN IF NOT EXISTS detail VARCHAR")  # stores made before it


def reference_version(*names: str) -> str:
    """The bytes of reference tables (reference/units.csv, towns.csv …) by file name."""
    return files_version(*(REFERENCE_DIR / name for name in names))


def recorded(con: duckdb.DuckDBPyConnection, step: str) -> str | None:
    _ensure(con)
    row = con.execute("SELECT fingerprint FROM stage_inputs WHERE step = ?", [step]).fetchall()
    return row[0][0] if row else None


def record(con: duckdb.DuckDBPyConnection, step: str, fp: str, detail: dict | None = None) -> None:
    """The fingerprint the step's result was computed from, and what it reported then (`detail`, JSON: a
    step that does no work next time reports the same figures and checks)."""
    _ensure(con)
    con.execute(
        "INSERT OR REPLACE INTO stage_inputs VALUES (?, ?, now()::TIMESTAMP, ?)",
        [step, fp, None if detail is None else json.dumps(detail, ensure_ascii=False, default=str)],
    )


def recorded_detail(con: duckdb.DuckDBPyConnection, step: str) -> dict | None:
    _ensure(con)
    row = con.execute("SELECT detail FROM stage_inputs WHERE step = ?", [step]).fetchall()
    return json.loads(row[0][0]) if row and row[0][0] else None
