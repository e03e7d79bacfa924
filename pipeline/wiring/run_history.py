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

Every event is still written, in order, to the same files: the UI, `status` and the sensors read the same record,
and see it while the run goes. Other processes (the UI, the daemon) are not affected.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine


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
