"""The append-only history: the ledger as of any past date, rebuilt from events alone."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pandas as pd

AS_OF_SQL = """
SELECT state FROM hazard_events WHERE event_date <= ?
QUALIFY row_number() OVER (PARTITION BY hazard_no ORDER BY event_date DESC, seq DESC) = 1
ORDER BY hazard_no
"""


def ledger_as_of(con: duckdb.DuckDBPyConnection, date: dt.date) -> list[dict]:
    """Every hazard as it stood at the end of `date` (hazards found later are absent)."""
    return [json.loads(state) for (state,) in con.execute(AS_OF_SQL, [date]).fetchall()]


def current_ledger(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The live ledger in the same shape as `ledger_as_of`, for comparisons."""
    return [json.loads(s) for (s,) in con.execute("SELECT to_json(h) FROM hazards h ORDER BY hazard_no").fetchall()]


def materialize_as_of(con: duckdb.DuckDBPyConnection, date: dt.date, table: str = "hazards_as_of") -> str:
    """The ledger as of `date` as a temp table shaped like `hazards` (for the exports); one insert."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM hazards WHERE false")
    states = pd.DataFrame(ledger_as_of(con, date))
    if len(states):
        con.register("as_of_states", states)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM as_of_states")
        con.unregister("as_of_states")
    return table
