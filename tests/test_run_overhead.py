"""What a run costs besides its steps' work (issue 30): the database is opened once per run, not once per step;
a connection to a complete store executes one catalog query, not the DDL; Dagster's SQLite history is written
without an fsync and a checkpoint per event, and every event is still there."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from pipeline.platform import store
from pipeline.wiring.run_history import quick_history_writes


class CountingConnection:
    """A DuckDB connection that counts the statements executed through it."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con, self.statements = con, []

    def execute(self, sql: str, *args):
        self.statements.append(sql)
        return self.con.execute(sql, *args)


def test_a_complete_store_is_checked_with_one_query_and_an_incomplete_one_is_completed(tmp_path):
    db = tmp_path / "s.duckdb"
    with store.connect(db):
        pass
    con = duckdb.connect(str(db))
    try:
        counting = CountingConnection(con)
        store.ensure_schema(counting)
        assert len(counting.statements) == 1 and "duckdb_columns()" in counting.statements[0]
        con.execute('ALTER TABLE stg_buildings DROP COLUMN "name"')  # a store made before the template had it
        con.execute("DROP TABLE quarantine")
        counting = CountingConnection(con)
        store.ensure_schema(counting)
        assert len(counting.statements) > 20  # the DDL ran
        assert "name" in store.table_columns(con, "stg_buildings") and store.has_table(con, "quarantine")
    finally:
        con.close()


def _wal(db: Path) -> Path:
    return db.with_name(db.name + ".wal")


def test_held_open_a_step_s_connection_neither_opens_nor_checkpoints_the_file(tmp_path):
    db = tmp_path / "s.duckdb"
    with store.held_open(db):
        for i in range(3):  # three steps, each with a connection of its own, each writing
            with store.connect(db) as con:
                con.execute(f"CREATE TABLE t{i} AS SELECT {i} AS x")
            assert _wal(db).exists() and _wal(db).stat().st_size > 0  # not checkpointed at the step's close
        with store.connect(db) as con:  # each step sees what the others committed
            assert con.execute("SELECT x FROM t0 UNION ALL SELECT x FROM t2 ORDER BY x").fetchall() == [(0,), (2,)]
    assert not _wal(db).exists() or _wal(db).stat().st_size == 0  # the last close checkpointed
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT x FROM t1").fetchall() == [(1,)]
    finally:
        con.close()


def test_without_held_open_every_close_checkpoints(tmp_path):
    """The old cost, for contrast: a step's close was the file's last and checkpointed its WAL."""
    db = tmp_path / "s.duckdb"
    with store.connect(db) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert not _wal(db).exists() or _wal(db).stat().st_size == 0


@dg.asset
def first_step() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 1})


@dg.asset(deps=[first_step], check_specs=[dg.AssetCheckSpec("fine", asset="second_step")])
def second_step(context):
    context.log.info("second step: nothing to do")
    yield dg.MaterializeResult(metadata={"rows": 2})
    yield dg.AssetCheckResult(check_name="fine", passed=True)


def _run(home: Path, quick: bool) -> tuple[dg.DagsterInstance, str, dict[str, sqlite3.Connection]]:
    instance = dg.DagsterInstance.from_config(str(home))
    job = dg.Definitions(assets=[first_step, second_step]).resolve_implicit_global_asset_job_def()
    if not quick:
        return instance, job.execute_in_process(instance=instance).run_id, {}
    with quick_history_writes(home) as keepers:
        result = job.execute_in_process(instance=instance)
        opened = dict(keepers)
    return instance, result.run_id, opened


def _record(instance: dg.DagsterInstance, run_id: str) -> tuple[list[str], dict]:
    events = [e.dagster_event_type.value for e in instance.all_logs(run_id) if e.dagster_event_type]
    rows = {k: instance.get_latest_materialization_event(dg.AssetKey(k)).asset_materialization.metadata["rows"].value
            for k in ("first_step", "second_step")}  # fmt: skip
    return events, rows


def test_quick_history_writes_keep_every_event_of_the_run(tmp_path):
    slow, fast = tmp_path / "slow", tmp_path / "fast"
    slow.mkdir(), fast.mkdir()
    instance, run_id, _ = _run(slow, quick=False)
    expected = _record(instance, run_id)
    instance, run_id, keepers = _run(fast, quick=True)
    assert _record(instance, run_id) == expected  # the same events in the same order, the same metadata
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    assert [e for e in expected[0] if e == "STEP_SUCCESS"] == ["STEP_SUCCESS"] * 2
    assert any(e == "ASSET_CHECK_EVALUATION" for e in expected[0])
    names = {Path(p).name for p in keepers}
    assert {"runs.db", "index.db", f"{run_id}.db"} <= names  # an idle connection to each file while it ran
    assert all(Path(p).resolve().is_relative_to(fast.resolve()) for p in keepers)


def _synchronous(path: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("PRAGMA synchronous")).scalar()
    finally:
        engine.dispose()


def test_only_dagster_s_wal_files_and_only_in_the_block_are_written_without_fsync(tmp_path):
    home, other = tmp_path / "home", tmp_path / "other"
    home.mkdir(), other.mkdir()
    for folder in (home, other):
        sqlite3.connect(folder / "x.db").execute("PRAGMA journal_mode=WAL").fetchall()
    sqlite3.connect(home / "plain.db").execute("CREATE TABLE t (x)")  # not WAL: SQLite's defaults
    with quick_history_writes(home) as keepers:
        assert _synchronous(home / "x.db") == 1  # NORMAL
        assert _synchronous(other / "x.db") == 2  # FULL: not under DAGSTER_HOME
        assert _synchronous(home / "plain.db") == 2
        assert [Path(p).name for p in keepers] == ["x.db"]
    assert keepers == {}  # closed at the end
    assert _synchronous(home / "x.db") == 2  # the listener is gone


@pytest.fixture(autouse=True)
def _no_dagster_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))


class _Counting(sqlite3.Connection):
    """A connection that lists the statements run on it."""

    statements: list[str] = []

    def execute(self, sql, *args):
        _Counting.statements.append(sql)
        return super().execute(sql, *args)


def test_a_file_already_kept_costs_one_lookup_and_one_pragma_a_connection(tmp_path):
    """Dagster opens ~900 connections a run: the checks (under DAGSTER_HOME? WAL? an idle connection?) are made
    once per file; every later connection only has its `synchronous` set (and still is: NORMAL)."""
    from pipeline.wiring.run_history import _Keepers

    sqlite3.connect(tmp_path / "x.db").execute("PRAGMA journal_mode=WAL").fetchall()
    keepers = _Keepers(tmp_path)
    per_connection = []
    for _ in range(3):
        con = sqlite3.connect(tmp_path / "x.db", factory=_Counting)
        _Counting.statements.clear()
        keepers.on_connect(con, None)
        per_connection.append(list(_Counting.statements))
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL on every connection
        con.close()
    assert [len(s) for s in per_connection] == [3, 2, 2]
    assert per_connection[1] == ["PRAGMA database_list", "PRAGMA synchronous=NORMAL"]
    assert len(keepers.open) == 1
    keepers.close()
    assert keepers.open == {} and keepers.ready == set()
