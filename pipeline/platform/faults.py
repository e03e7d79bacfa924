"""Fault injection for the crash tests: `LITONG_FAULT=<point>` kills this process with SIGKILL when the
code reaches that named point, exactly as `kill -9` would, at a place chosen by the test, not by timing.
`LITONG_FAULT=<point>:disk_full` makes the point fail as a full disk does instead: DuckDB's IO error (when
the point is given the connection, as a failed COMMIT leaves it: the transaction gone).

Points are plain names in the code (`faults.point("ledger_exports:mid")`). Unset in production: a
point then costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "LITONG_FAULT"
DISK_FULL = ":disk_full"


def point(name: str, con=None) -> None:
    value = os.environ.get(ENV)
    if value == name:
        os.kill(os.getpid(), signal.SIGKILL)
    elif value == name + DISK_FULL:
        _disk_full(con)


def _disk_full(con) -> None:
    import duckdb

    target = "litong.duckdb"
    if con is not None:
        target = con.execute("SELECT file FROM pragma_database_list WHERE name = current_database()").fetchall()[0][0]
        try:  # as DuckDB leaves a COMMIT that could not write: no transaction any more
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
    raise duckdb.IOException(f'Could not write file "{target}.wal": No space left on device')
