"""What a run costs besides its steps' work (issue 30): the database is opened once per run, not once per step;
a connection to a complete store executes one catalog query, not the DDL; Dagster's SQLite history is written
without an fsync and a checkpoint per event, and every event is still there."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from pipeline.platform import store
from pipeline.wiring.run_history import quick_history_writes, shared_shard_connections


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


def _run(
    home: Path, quick: bool, counting: Callable | None = None
) -> tuple[dg.DagsterInstance, str, dict[str, sqlite3.Connection]]:
    instance = dg.DagsterInstance.from_config(str(home))
    job = dg.Definitions(assets=[first_step, second_step]).resolve_implicit_global_asset_job_def()
    with _listening(counting):
        return _execute(instance, job, quick)


@contextmanager
def _listening(counting: Callable | None) -> Iterator[None]:
    """For the block: `counting` called at every new SQLite connection SQLAlchemy makes."""
    if counting is None:
        yield
        return
    sa.event.listen(sa.engine.Engine, "connect", counting)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "connect", counting)


def _execute(instance: dg.DagsterInstance, job, quick: bool) -> tuple[dg.DagsterInstance, str, dict]:
    if not quick:
        return instance, job.execute_in_process(instance=instance).run_id, {}
    home = Path(instance.root_directory)
    with quick_history_writes(home) as keepers, shared_shard_connections(instance.event_log_storage) as shards:
        assert shards is not None  # the instance's event log is Dagster's run-sharded SQLite one
        result = job.execute_in_process(instance=instance)
        opened = dict(keepers)
    assert not {"_connect", "has_table"} & set(
        vars(instance.event_log_storage)
    )  # Dagster's own method again after the block
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


def _connections_by_file(home: Path, quick: bool) -> tuple[dict[str, int], str]:
    """A run's new SQLite connections (from its start to its end), by file name (the run's own file as "run.db")."""
    counts: dict[str, int] = {}

    def count(dbapi_connection, _record):
        file = Path(dbapi_connection.execute("PRAGMA database_list").fetchone()[2]).name
        counts[file] = counts.get(file, 0) + 1

    _, run_id, _ = _run(home, quick, counting=count)
    return {("run.db" if name == f"{run_id}.db" else name): n for name, n in counts.items()}, run_id


def test_a_run_s_event_log_files_are_each_connected_to_once_or_twice_not_at_every_event(tmp_path):
    """Dagster's SqliteEventLogStorage makes an engine and a connection per use (per event, per lookup); in the
    block each event-log file gets one (the run's new file a few more while Dagster creates it, the index one
    for each table Dagster asks about once)."""
    slow, fast = tmp_path / "slow", tmp_path / "fast"
    slow.mkdir(), fast.mkdir()
    before, _ = _connections_by_file(slow, quick=False)
    after, run_id = _connections_by_file(fast, quick=True)
    assert before["run.db"] > 10 and before["index.db"] > 10  # the old way: one per event
    assert after["run.db"] <= 3 and after["index.db"] <= 3  # one engine; has_table asked once a table
    assert after.get("runs.db", 0) == before.get("runs.db", 0)  # the run storage is left as it is
    instance = dg.DagsterInstance.from_config(str(fast))  # a new reader (as the UI) sees the whole run
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    assert instance.get_latest_materialization_event(dg.AssetKey("second_step")).run_id == run_id
    checks = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    assert [e.dagster_event.event_specific_data.passed for e in checks] == [True]


def test_a_failed_write_in_the_block_is_rolled_back_and_the_connection_still_serves(tmp_path):
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    storage = instance.event_log_storage
    with shared_shard_connections(storage) as shards:
        with storage.run_connection("r1") as conn:
            conn.execute(sa.text("CREATE TABLE scratch (x)"))
        with pytest.raises(RuntimeError), storage.run_connection("r1") as conn:
            conn.execute(sa.text("INSERT INTO scratch VALUES (1)"))
            raise RuntimeError("a write that fails half way")
        with storage.run_connection("r1") as conn:
            conn.execute(sa.text("INSERT INTO scratch VALUES (2)"))
        with storage.run_connection("r1") as conn:  # all-or-nothing, as Dagster's own; the next write is kept
            assert conn.execute(sa.text("SELECT x FROM scratch")).scalars().all() == [2]
        assert shards.opened == 1
    assert shards.engines == {}


KNOWN_CONNECT = "b8435f2665689760"  # dagster 1.13.27
KNOWN_HAS_TABLE = "577d801c70b2a4a5"  # dagster 1.13.27


def test_the_wrapped_dagster_method_is_the_one_it_stands_in_for():
    """shared_shard_connections stands in for a private method of Dagster's: if Dagster changes it (a version
    upgrade), this fails, and pipeline/wiring/run_history.py's _SharedShards must be checked against the new one."""
    import hashlib
    import inspect

    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    for method, known in (("_connect", KNOWN_CONNECT), ("has_table", KNOWN_HAS_TABLE)):
        source = inspect.getsource(getattr(SqliteEventLogStorage, method))
        assert hashlib.sha256(source.encode()).hexdigest()[:16] == known, f"Dagster changed {method}"
    for method in ("run_connection", "index_connection"):
        assert "self._connect(" in inspect.getsource(getattr(SqliteEventLogStorage, method))
