"""Which file versions of a kind are normalised and checked, and which must be (re)done.

A file version (`intake_files.file_id`: its path, bytes and column mapping) is normalised and checked
row by row once. Its rows stay in `norm_<kind>` and its row failures in `row_failures` until the version
is no longer in use, or until something its result depends on changes:

* the kind's context — template, unit/town/round registries, the intake's code: every version is redone;
* the enterprises of the registry that its unit-code columns name: that version is redone;
* the district's date, where a date may not lie in the future: a version's result holds for every day in
  [date_from, date_until) — its latest checked date not after the day it was checked, and its earliest
  checked date after that day — and is redone on a day outside it.

The ids of every version that goes (or is redone) are kept in `norm_touched` until the checks across rows
and files ran on them (validate.py): removing one of two files that share an id releases the other's rows.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from pipeline.intake.normalize import insert_normalized, lit, norm_table
from pipeline.platform import stage_inputs
from pipeline.platform.failures import rollback
from pipeline.platform.paths import SCHEMAS_DIR
from pipeline.platform.store import quote
from pipeline.registries.templates import Template

VERSIONS_DDL = [
    """CREATE TABLE IF NOT EXISTS norm_versions (
        kind VARCHAR, file_id VARCHAR, validated BOOLEAN,
        enterprises VARCHAR,            -- the registry's enterprises its rows name, when checked
        date_from DATE, date_until DATE, -- the days its date checks hold for (NULL: unbounded)
        normalised_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS row_failures (
        kind VARCHAR, file_id VARCHAR, row_no INTEGER, check_id VARCHAR, columns VARCHAR, problem_zh VARCHAR)""",
    "CREATE TABLE IF NOT EXISTS norm_touched (kind VARCHAR, _scope VARCHAR, _record_id VARCHAR)",
    # the id keys of the staged rows each validation added or removed (NULL: it rewrote most of the kind),
    # read and dropped by the scoring (pipeline/scoring/changes.py)
    "CREATE TABLE IF NOT EXISTS staged_changes (seq BIGINT, kind VARCHAR, ids JSON)",
]
# a validation that rewrites more of a kind than this share (and than this many rows) logs "everything changed"
REWRITE_SHARE, REWRITE_MIN_ROWS = 0.2, 1000


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in VERSIONS_DDL:
        con.execute(ddl)


def context_version(t: Template) -> str:
    """What every version's normalisation and row checks depend on."""
    return stage_inputs.fingerprint(
        stage_inputs.files_version(SCHEMAS_DIR / f"{t.kind}.yaml"),
        stage_inputs.reference_version("units.csv", "towns.csv", "survey_rounds.csv"),
        stage_inputs.code_version("pipeline/intake", "pipeline/engines"),
    )


def enterprises_sql(t: Template, versions: str) -> str:
    """(file_id, enterprises): the registry's enterprises named by the unit-code columns of the rows of the
    versions selected by the SQL `versions` (a query of file ids)."""
    columns = [f.key for f in t.fields if f.type == "unit_code"]
    if not columns:
        return "SELECT NULL::VARCHAR AS file_id, NULL::VARCHAR AS enterprises WHERE false"
    codes = " UNION ".join(
        f"SELECT file_id, {quote(c)} AS code FROM {norm_table(t.kind)} WHERE file_id IN ({versions})" for c in columns
    )
    return f"""
        SELECT c.file_id, array_to_string(list_sort(list_distinct(list(c.code))), ',') AS enterprises
        FROM ({codes}) c WHERE c.code IN (SELECT unit_code FROM enterprise_units)
        GROUP BY c.file_id
    """


def sync(con: duckdb.DuckDBPyConnection, t: Template, today: dt.date) -> None:
    """Bring norm_<kind> to the versions in use: forget the versions gone or stale, normalise the new ones
    (left `validated = false` for validate.py). One transaction."""
    ensure_tables(con)
    kind, table = t.kind, norm_table(t.kind)
    context = context_version(t)
    con.execute("BEGIN TRANSACTION")
    try:
        if stage_inputs.recorded(con, f"normalised:{kind}") != context:
            _forget_all(con, kind, table)
        _forget(con, t, _stale_versions(con, t, today))
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __pending AS SELECT file_id FROM intake_files "
            "WHERE kind = ? AND is_current AND status = 'ingested' "
            "AND file_id NOT IN (SELECT file_id FROM norm_versions WHERE kind = ?)",
            [kind, kind],
        )
        insert_normalized(con, t)  # creates the table on first use
        con.execute(
            "INSERT INTO norm_versions SELECT ?, file_id, false, NULL, NULL, NULL, now() FROM __pending", [kind]
        )
        stage_inputs.record(con, f"normalised:{kind}", context)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # never masks the error (a failed COMMIT leaves no transaction)
        raise


def norm_exists(con: duckdb.DuckDBPyConnection, t: Template) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                            [norm_table(t.kind)]).fetchall()[0][0])  # fmt: skip


def _forget_all(con: duckdb.DuckDBPyConnection, kind: str, table: str) -> None:
    """A new template, registry or intake code: every version is normalised and checked again."""
    con.execute(f"DROP TABLE IF EXISTS {table}")
    for name in ("norm_versions", "row_failures", "norm_touched"):
        con.execute(f"DELETE FROM {name} WHERE kind = ?", [kind])


def _stale_versions(con: duckdb.DuckDBPyConnection, t: Template, today: dt.date) -> list[str]:
    """Versions checked before that are no longer in use, or whose date window or named enterprises changed."""
    kind = t.kind
    if not norm_exists(con, t):
        return [r[0] for r in con.execute("SELECT file_id FROM norm_versions WHERE kind = ?", [kind]).fetchall()]
    checked = "SELECT file_id FROM norm_versions WHERE kind = $kind AND validated"
    return [r[0] for r in con.execute(f"""
        SELECT v.file_id FROM norm_versions v
        LEFT JOIN intake_files f ON f.file_id = v.file_id AND f.is_current AND f.status = 'ingested'
        LEFT JOIN ({enterprises_sql(t, checked)}) e ON e.file_id = v.file_id
        WHERE v.kind = $kind AND (
            f.file_id IS NULL
            OR v.validated AND (v.date_from > $today OR v.date_until <= $today
                                OR coalesce(v.enterprises, '') <> coalesce(e.enterprises, '')))
    """, {"kind": kind, "today": today}).fetchall()]  # fmt: skip


def _forget(con: duckdb.DuckDBPyConnection, t: Template, file_ids: list[str]) -> None:
    """Drop these versions' rows and row failures, keeping their ids for the checks across files."""
    if not file_ids:
        return
    kind, table = t.kind, norm_table(t.kind)
    con.execute("CREATE OR REPLACE TEMP TABLE __gone AS SELECT unnest(?::VARCHAR[]) AS file_id", [file_ids])
    if norm_exists(con, t):
        con.execute(
            f"INSERT INTO norm_touched SELECT DISTINCT ?, _scope, _record_id FROM {table} "
            "WHERE _id_complete AND file_id IN (SELECT file_id FROM __gone)",
            [kind],
        )
        con.execute(f"DELETE FROM {table} WHERE file_id IN (SELECT file_id FROM __gone)")
    for name in ("norm_versions", "row_failures"):
        con.execute(f"DELETE FROM {name} WHERE kind = ? AND file_id IN (SELECT file_id FROM __gone)", [kind])


def log_staged_changes(con: duckdb.DuckDBPyConnection, t: Template, seq: int, rows_sql: str) -> None:
    """Log the id keys of the staged rows `rows_sql` selects (a query over the staging table or norm_<kind>)."""
    ids = "to_json({" + ", ".join(f"{lit(k)}: x.{quote(k)}" for k in t.id_keys) + "})"
    con.execute(f"INSERT INTO staged_changes SELECT DISTINCT ?, ?, {ids} FROM ({rows_sql}) x", [seq, t.kind])


def next_change(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT coalesce(max(seq), 0) + 1 FROM staged_changes").fetchall()[0][0]
