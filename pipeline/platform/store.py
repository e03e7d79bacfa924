"""The embedded DuckDB store: connection and the tables every stage shares.

Tables are created from the template definitions, so a new column in
`schemas/<kind>.yaml` is a new column here without touching SQL by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipeline.registries import units as registry
from pipeline.registries.templates import TEMPLATE_KINDS, Template, load_template

# DuckDB's default is 80 % of RAM; a bound makes big sorts and windows spill to disk instead. 1 GB (issue 30): a run's
# whole process tree must stay within 2 GB at 1 M buildings, and the Python side (Dagster, Great Expectations, the
# frames it validates) takes 0.5-0.8 GB of it; at 1536 MB the run peaked at 2.2-2.6 GB (stg_buildings, hazard_ledger).
MEMORY_LIMIT = "1GB"

SQL_TYPES = {
    "text": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DOUBLE",
    "year": "INTEGER",
    "date": "DATE",
    "enum": "VARCHAR",
    "bool": "BOOLEAN",
    "town_code": "VARCHAR",
    "town_list": "VARCHAR",
    "unit_code": "VARCHAR",
    "credit_code": "VARCHAR",
}

PROVENANCE_COLUMNS = """
    file_id VARCHAR, source_file VARCHAR, file_sha256 VARCHAR, row_no INTEGER,
    uploaded_at TIMESTAMP, department VARCHAR, survey_round VARCHAR
"""

INTAKE_FILES_DDL = """
CREATE TABLE IF NOT EXISTS intake_files (
    file_id VARCHAR PRIMARY KEY,      -- hash of (kind, path, content): a changed file is a new id
    kind VARCHAR NOT NULL,
    rel_path VARCHAR NOT NULL,        -- path under data_raw
    department VARCHAR,
    survey_round VARCHAR,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT,
    file_format VARCHAR,              -- csv / xlsx
    encoding VARCHAR,
    uploaded_at TIMESTAMP,            -- first time the pipeline saw this version
    status VARCHAR NOT NULL,          -- ingested / unreadable
    problem_zh VARCHAR,               -- why the file could not be read (Chinese)
    rows_read INTEGER,                -- data rows, blank rows excluded
    blank_rows INTEGER,
    unknown_headers VARCHAR[],
    header_map VARCHAR,               -- JSON: source header -> field key
    is_current BOOLEAN NOT NULL DEFAULT TRUE,
    version INTEGER                   -- 1, 2, ... for successive contents at one path
)
"""

# Columns of intake_files added after the table was first shipped (older databases get them on connect).
INTAKE_FILES_NEW_COLUMNS = {
    "is_latest": "BOOLEAN",  # the version now at its path
    "sheet_name": "VARCHAR",  # XLSX: the sheet the records came from
    "header_row": "INTEGER",  # the header's row as Excel numbers it (title rows above it are skipped)
    "found_headers": "VARCHAR[]",  # the headers the file has (shown on an unreadable file's receipt)
    "notes_zh": "VARCHAR[]",  # hints for the receipt (sheets not read, …)
    "mapping_sha256": "VARCHAR",  # the 列映射.csv this version was read with
    "uploaded_by": "VARCHAR",  # the portal account that uploaded it (upload audit); NULL: dropped into the folder
}

ROW_PROBLEMS_DDL = """
CREATE TABLE IF NOT EXISTS intake_row_problems (
    file_id VARCHAR, row_no INTEGER,
    column_key VARCHAR,               -- the template field of the cell, NULL for the whole row
    problem_zh VARCHAR                -- refused at reading: values right of the header, a cell too long
)
"""

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    kind VARCHAR, file_id VARCHAR, source_file VARCHAR, row_no INTEGER,
    department VARCHAR, survey_round VARCHAR, record_id VARCHAR,
    n_reasons INTEGER, reasons_zh VARCHAR, raw_json VARCHAR
)
"""

FAILURES_DDL = """
CREATE TABLE IF NOT EXISTS validation_failures (
    kind VARCHAR, file_id VARCHAR, source_file VARCHAR, row_no INTEGER, record_id VARCHAR,
    check_id VARCHAR, columns VARCHAR, headers_zh VARCHAR, values_raw VARCHAR,
    problem_zh VARCHAR, message_zh VARCHAR
)
"""


def raw_table(kind: str) -> str:
    return f"raw_{kind}"


def staging_table(kind: str) -> str:
    return f"stg_{kind}"


def quote(identifier: str) -> str:
    """Quote an identifier (column names come from our YAML, never from uploads)."""
    return '"' + identifier.replace('"', '""') + '"'


def raw_ddl(t: Template) -> str:
    cols = ", ".join(f"{quote(k)} VARCHAR" for k in t.keys)
    return f"CREATE TABLE IF NOT EXISTS {raw_table(t.kind)} (file_id VARCHAR NOT NULL, row_no INTEGER NOT NULL, {cols})"


def staging_ddl(t: Template) -> str:
    cols = ", ".join(f"{quote(f.key)} {SQL_TYPES[f.type]}" for f in t.fields)
    return f"CREATE TABLE IF NOT EXISTS {staging_table(t.kind)} ({cols}, {PROVENANCE_COLUMNS})"


# The enterprises of the unit registry, from the surveys (pipeline/registries/units.py merges them with
# reference/units.csv): written by the scoring stage, one row per enterprise and survey kind.
ENTERPRISE_UNITS_DDL = """CREATE TABLE IF NOT EXISTS enterprise_units (
    unit_code VARCHAR, unit_name VARCHAR, kind VARCHAR, supervisor_code VARCHAR, survey_kind VARCHAR,
    source_file VARCHAR, survey_round VARCHAR)"""


SHARED_TABLES = ("enterprise_units", "intake_files", "intake_row_problems", "quarantine", "validation_failures")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The shared tables and every template's raw and staging tables, with the columns the templates name now.
    Every step's connection asks: when all are there (one catalog query) nothing is executed; 20 DDL statements
    and a catalog query per kind took ~40 ms a step at 1 M buildings (issue 30)."""
    if _schema_complete(con):
        return
    con.execute(ENTERPRISE_UNITS_DDL)
    con.execute(INTAKE_FILES_DDL)
    _add_intake_files_columns(con)
    con.execute(ROW_PROBLEMS_DDL)
    con.execute(QUARANTINE_DDL)
    con.execute(FAILURES_DDL)
    for kind in TEMPLATE_KINDS:
        t = load_template(kind)
        con.execute(raw_ddl(t))
        con.execute(staging_ddl(t))
        add_new_columns(con, t)


def _schema_complete(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every table and column ensure_schema makes is there."""
    have = set(con.execute("SELECT table_name, column_name FROM duckdb_columns()").fetchall())
    expected = {("intake_files", c) for c in INTAKE_FILES_NEW_COLUMNS}
    for kind in TEMPLATE_KINDS:
        t = load_template(kind)
        expected |= {(table, f.key) for f in t.fields for table in (raw_table(kind), staging_table(kind))}
    return expected <= have and set(SHARED_TABLES) <= {table for table, _ in have}


def _add_intake_files_columns(con: duckdb.DuckDBPyConnection) -> None:
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'intake_files'").fetchall()}  # fmt: skip
    for column, sql_type in INTAKE_FILES_NEW_COLUMNS.items():
        if column not in have:
            con.execute(f"ALTER TABLE intake_files ADD COLUMN {column} {sql_type}")
            if column == "is_latest":
                con.execute("UPDATE intake_files SET is_latest = is_current")


def add_new_columns(con: duckdb.DuckDBPyConnection, t: Template) -> None:
    """A column added to a template since the database was made is added to its tables (inserts are by
    name), so an existing deployment keeps working after a template change."""
    existing = {
        (table, col)
        for table, col in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE table_name IN (?, ?)",
            [raw_table(t.kind), staging_table(t.kind)],
        ).fetchall()
    }
    for f in t.fields:
        if (raw_table(t.kind), f.key) not in existing:
            con.execute(f"ALTER TABLE {raw_table(t.kind)} ADD COLUMN {quote(f.key)} VARCHAR")
        if (staging_table(t.kind), f.key) not in existing:
            con.execute(f"ALTER TABLE {staging_table(t.kind)} ADD COLUMN {quote(f.key)} {SQL_TYPES[f.type]}")


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns of a table of the connection's own database, in order."""
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND database_name = current_database() "
        "ORDER BY column_index",
        [table],
    ).fetchall()
    return [c for (c,) in rows]


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the database has the table (a read-only snapshot cannot create missing ones: look first)."""
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall())


@contextmanager
def connect_read(published: Path, live: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Read-only: the published snapshot when there is one (it never waits behind a writer), else the live
    database. Temp tables work; nothing is written."""
    path = published if published.exists() else live
    con = duckdb.connect(str(path), read_only=True, config={"memory_limit": MEMORY_LIMIT})
    try:
        registry.load_enterprises(con)
        yield con
    finally:
        con.close()


@contextmanager
def connect(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), config={"memory_limit": MEMORY_LIMIT})
    try:
        ensure_schema(con)
        registry.load_enterprises(con)
        yield con
    finally:
        con.close()


@contextmanager
def held_open(path: Path) -> Iterator[None]:
    """Keep the database open in this process for the block (a run, under its writer lock). DuckDB shares one open
    database per file within a process, so every step's `connect` then finds it open, instead of opening the file
    and checkpointing its WAL at every close (~40-130 ms a step at 1 M buildings, issue 30); each step still has a
    connection of its own. The last close, at the block's end, checkpoints."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), config={"memory_limit": MEMORY_LIMIT})
    try:
        yield
    finally:
        con.close()
