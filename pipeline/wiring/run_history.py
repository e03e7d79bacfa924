"""How a run executed in this process writes Dagster's run history (issue 30).

Dagster's SQLite storage (DAGSTER_HOME/history: runs.db, runs/index.db, runs/<run id>.db, all in WAL mode) opens
a new connection for every event and closes it after one insert. With SQLite's defaults that is an fsync at every
commit and, because the closing connection is the file's last one, a checkpoint of the WAL into the database
(more fsyncs) and the WAL's removal at every close: a run of 42 steps writes ~360 events, ~1,900 connections, and
at 1 M buildings with nothing to do spent more time writing its history than in all its steps.

`quick_history_writes()` holds, for the length of a run, what a long-lived server process would:
* `synchronous=NORMAL` on the connections to files in WAL mode: a commit appends to the WAL without an fsync;
  SQLite's documentation: in WAL mode this is still safe from corruption, and a power cut may lose only the last
  commits (here: the last events of a run, as if it had been killed a moment earlier);
* one idle reading connection to each file, so the per-event connection is never the last one: no checkpoint and
  no WAL removal at each close; SQLite checkpoints by itself every 1,000 pages, and at the end, when these close.

And `shared_shard_connections(storage)` keeps, for the run, one connection per event-log file: Dagster's
SqliteEventLogStorage makes a new SQLAlchemy engine and connection at every write or read of its history (~1,900
a run of 42 steps: its events, the ~80 "planned" events at the run's creation, and the lookups of the inputs'
last records at each step, for the data versions the UI shows); here each file's engine is made once and its
connection reused, each write still its own committed transaction, under Dagster's own lock.

Every event is still written, in order, to the same files: the UI, `status` and the sensors read the same record,
and see it while the run goes. Other processes (the UI, the daemon) are not affected.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine


class _Keepers:
    """The idle connections, one per SQLite file under `root`, opened as Dagster first connects to each file."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.open: dict[str, sqlite3.Connection] = {}
        self.lock = threading.Lock()
        self.ready: set[str] = set()  # files in WAL mode whose idle connection has read them (a file stays WAL)
        self.outside: set[str] = set()  # files seen that are not under `root`: left as SQLite makes them

    def on_connect(self, dbapi_connection: object, _record: object) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        file = dbapi_connection.execute("PRAGMA database_list").fetchone()[2]
        if not file or file in self.outside:
            return
        if file in self.ready:  # the checks below once per file, not at each of a run's ~900 connections
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            return
        if not Path(file).resolve().is_relative_to(self.root):
            self.outside.add(file)
            return
        if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            return  # a new run's file before Dagster made it WAL: SQLite's defaults
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        with self.lock:
            keeper = self.open.get(file)
            if keeper is None:
                keeper = self.open[file] = sqlite3.connect(file, timeout=30, check_same_thread=False)
            try:  # a read maps the WAL's index: from now on this connection counts as open on the file
                keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()
                self.ready.add(file)
            except sqlite3.Error:
                pass  # busy or gone: only speed is lost

    def close(self) -> None:
        with self.lock:
            for keeper in self.open.values():
                keeper.close()
            self.open.clear()
            self.ready.clear()


@contextmanager
def quick_history_writes(dagster_home: Path) -> Iterator[dict[str, sqlite3.Connection]]:
    """For the block (one run executed in this process): Dagster's SQLite files under `dagster_home` are written
    without an fsync per event and without a checkpoint per connection (see above). Yields the idle connections
    by file (for tests)."""
    keepers = _Keepers(dagster_home)
    event.listen(Engine, "connect", keepers.on_connect)
    try:
        yield keepers.open
    finally:
        event.remove(Engine, "connect", keepers.on_connect)
        keepers.close()


class _SharedShards:
    """Stand-ins for SqliteEventLogStorage._connect and has_table (dagster 1.13; tests/test_run_overhead.py fails if
    their source changes): the same lock, the same first-use schema check of a file, the same transaction per use, but one
    engine per file for the block instead of one per use."""

    def __init__(self, storage: object):
        self.storage = storage
        self.engines: dict[str, Engine] = {}
        self.opened = 0  # engines made (for tests: one per file, not one per event)
        self.tables: set[str] = set()  # index tables found

    def _engine(self, shard: str) -> Engine:
        storage = self.storage
        engine = self.engines.get(shard)
        if engine is None:
            connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
            engine = create_engine(storage.conn_string_for_shard(shard), connect_args=connect_args)
            self.opened += 1
            if shard not in storage._initialized_dbs:
                storage._initdb(engine)
                storage._initialized_dbs.add(shard)
                engine.dispose()  # the file may have just become WAL: the next connection is set up for it
            self.engines[shard] = engine
        return engine

    @contextmanager
    def connect(self, shard: str) -> Iterator[Connection]:
        """One use of a file's history, as Dagster's: under the storage's lock, in one transaction."""
        with self.storage._db_lock:
            with self._engine(shard).connect() as conn:
                with conn.begin():
                    yield conn

    def has_table(self, table_name: str) -> bool:
        """SqliteEventLogStorage.has_table (asked at each asset or check event, a new engine each time): a table
        found stays for the run; one not found is asked again (a migration by another process may add it)."""
        if table_name not in self.tables:
            if not type(self.storage).has_table(self.storage, table_name):
                return False
            self.tables.add(table_name)
        return True

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        self.engines.clear()


@contextmanager
def shared_shard_connections(storage: object) -> Iterator[_SharedShards | None]:
    """For the block (one run in this process): `storage`, if Dagster's run-sharded SQLite event log, uses one
    connection per file instead of one per use (see above). Any other storage is left as it is (yields None)."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    if type(storage) is not SqliteEventLogStorage:
        yield None
        return
    shards = _SharedShards(storage)
    storage._connect, storage.has_table = shards.connect, shards.has_table  # on this object only, not the class
    try:
        yield shards
    finally:
        del storage._connect, storage.has_table
        shards.close()
