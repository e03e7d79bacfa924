"""The ledger as of a date as the exports show it, kept by hazard between runs (issue 30).

The exports (pipeline/ledger/exports.py) read one table: every hazard's displayed columns (names, overdue days as
of the date, 规则及依据 …), the file keys and a hash of what the row shows. Computing it whole costs seconds at a
million hazards, so it is kept in a DuckDB file of its own in the cache folder (not in the store: the published
snapshot copies the store's file whole) and brought up to date by group, an asset kind's town (a file's fragment,
pipeline/formats/csv_fragments.py): a run takes out and puts back only the groups with a hazard whose row in
`hazards` changed (a hash of the whole row, kept beside it), appeared or left the ledger (withdrawn). Comparing
hashes, not reading the ledger's events, so a change made by any path is seen.

Everything else a row depends on is the table's base: the date (overdue days), the names of towns, units and
kinds, the ledger code and DuckDB's version (its hash). A new base rebuilds the table whole. The table keeps no
row numbers: the files' order (kind, town, number) is taken where a file is written, so a new hazard moves no
other row. Each group's rows are stored together in the files' order (number), so a group is read in order
without a sort (sorting a group's rows with every column took twice as long as writing them). Every change of
the file is one transaction (the base with it): a failed run leaves it as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.formats.excel_safe import sql_text
from pipeline.ledger.model import WITHDRAWN
from pipeline.platform import stage_inputs
from pipeline.platform.failures import rollback

log = logging.getLogger(__name__)

KEPT_FILE = "ledger_export.duckdb"  # in the cache folder
SCHEMA = "ledger_kept"  # the file's name while attached
EXPORT_TABLE = f"{SCHEMA}.ledger_export"
BASE_TABLE = f"{SCHEMA}.ledger_export_base"  # one row: the base the table was computed on
SCOPE = "ledger_export_scope"  # temporary: the groups (kind, town_code) to take out and put back
ORDER = "kind, town_code, hazard_no"  # the files' order: groups, then numbers within a group
IN_SCOPE = f"EXISTS (SELECT 1 FROM {SCOPE} s WHERE s.kind = x.kind AND s.town_code IS NOT DISTINCT FROM x.town_code)"
SOURCE_HASH = "hash(h)"  # of a hazard's whole row in `hazards` (h: the row as a struct)


def with_source_hash(table: str) -> str:
    """`table`'s hazards with `source_hash`, what the kept row was computed from: the table SELECT reads."""
    return f"(SELECT *, {SOURCE_HASH} AS source_hash FROM {table} h)"


@dataclass(frozen=True)
class KeptUpdate:
    whole: bool  # computed from every hazard
    rows_written: int  # rows put in (0: the table was left as it was)
    rows_removed: int  # rows taken out
    groups: int  # groups redone (0 when whole)


@contextlib.contextmanager
def attached(con: duckdb.DuckDBPyConnection, folder: Path | None) -> Iterator[None]:
    """The kept file of `folder` attached as SCHEMA while the block runs; without a folder, a database in memory
    (nothing kept: the table is computed whole). Writable on a read-only connection too (the command line's
    export reads the published snapshot)."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    where = ":memory:" if folder is None else str(folder / KEPT_FILE)
    try:
        con.execute(f"ATTACH {sql_text(where)} AS {SCHEMA} (READ_WRITE)")
    except duckdb.Error as e:  # a damaged kept file (a cut copy, a full disk): it is a cache, computed again
        if folder is None:
            raise
        log.warning("the kept ledger table %s could not be opened (%s): computed again", where, e)
        for damaged in (folder / KEPT_FILE, folder / f"{KEPT_FILE}.wal"):
            damaged.unlink(missing_ok=True)
        con.execute(f"ATTACH {sql_text(where)} AS {SCHEMA} (READ_WRITE)")
    try:
        yield
    finally:
        con.execute(f"DROP TABLE IF EXISTS {SCOPE}")
        con.execute(f"DETACH {SCHEMA}")


def bring_up_to_date(
    con: duckdb.DuckDBPyConnection, select: Callable[[str], str], params: dict, table: str, base: str
) -> KeptUpdate:
    """EXPORT_TABLE as `select` gives it now: select(source) is the SELECT of the table's rows over `source` (a
    table of hazards, every column, and `source_hash`: with_source_hash), `params` its parameters. Rebuilt whole
    when `base` is not the table's; else only the groups with a hazard whose source row changed (or that
    appeared or left) are taken out and put back, in order."""
    if _recorded_base(con) != base:
        return _rebuild(con, select(with_source_hash(table)), params, base)
    groups = _scope(con, table)
    if not groups:
        return KeptUpdate(False, 0, 0, 0)
    scoped = with_source_hash(f"(SELECT * FROM {table} x WHERE {IN_SCOPE})")
    con.execute("BEGIN TRANSACTION")
    try:
        removed = con.execute(f"DELETE FROM {EXPORT_TABLE} x WHERE {IN_SCOPE}").fetchone()[0]
        written = con.execute(
            f"INSERT INTO {EXPORT_TABLE} BY NAME SELECT * FROM ({select(scoped)}) ORDER BY {ORDER}", params
        ).fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    return KeptUpdate(False, int(written), int(removed), groups)


def _scope(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """SCOPE: the groups of the hazards whose source row is not the kept one (the group it is in now and the
    one it was kept in: a hazard may change town); returns their number."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {SCOPE} AS
        WITH changed AS (
            SELECT now.kind AS now_kind, now.town_code AS now_town, now.hazard_no AS now_no,
                   kept.kind AS kept_kind, kept.town_code AS kept_town, kept.hazard_no AS kept_no
            FROM (SELECT hazard_no, kind, town_code, {SOURCE_HASH} AS source_hash FROM {table} h
                  WHERE status <> '{WITHDRAWN}') now
            FULL OUTER JOIN (SELECT hazard_no, kind, town_code, source_hash FROM {EXPORT_TABLE}) kept
                ON now.hazard_no = kept.hazard_no
            WHERE now.source_hash IS DISTINCT FROM kept.source_hash)
        SELECT now_kind AS kind, now_town AS town_code FROM changed WHERE now_no IS NOT NULL
        UNION SELECT kept_kind, kept_town FROM changed WHERE kept_no IS NOT NULL""")  # fmt: skip
    return con.execute(f"SELECT count(*) FROM {SCOPE}").fetchone()[0]


def _rebuild(con: duckdb.DuckDBPyConnection, select: str, params: dict, base: str) -> KeptUpdate:
    """The table computed from every hazard, and its base, in one transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TABLE {EXPORT_TABLE} AS SELECT * FROM ({select}) ORDER BY {ORDER}", params)
        con.execute(f"CREATE OR REPLACE TABLE {BASE_TABLE} AS SELECT ?::VARCHAR AS base", [base])
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    return KeptUpdate(True, con.execute(f"SELECT count(*) FROM {EXPORT_TABLE}").fetchone()[0], 0, 0)


def _recorded_base(con: duckdb.DuckDBPyConnection) -> str | None:
    has = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name IN (?, ?)",
        [SCHEMA, EXPORT_TABLE.split(".")[1], BASE_TABLE.split(".")[1]],
    ).fetchone()[0]
    return con.execute(f"SELECT base FROM {BASE_TABLE}").fetchone()[0] if has == 2 else None


def base_of(as_of: dt.date, table: str, *more: object) -> str:
    """The base of a table computed as of `as_of` from `table`, with what else its rows depend on."""
    return stage_inputs.fingerprint(as_of, table, *more)
