"""The ledger's events recorded in one pass (issue 30): numbered in hazard-number order, each with the hazard's
whole state, the sequence left after the last — however the hazards lie in the table."""

from __future__ import annotations

import json

import duckdb

from pipeline.ledger.model import ONE_CHANGE, ensure_ledger_schema, record_events


def _ledger(numbers: list[str]) -> duckdb.DuckDBPyConnection:
    """A ledger whose hazards lie in the table in the order given (not the numbers' order)."""
    con = duckdb.connect()
    ensure_ledger_schema(con)
    for i, no in enumerate(numbers):
        con.execute("INSERT INTO hazards (hazard_no, kind, status, description) VALUES (?, 'buildings', '待整改', ?)",
                    [no, f"隐患{i}"])  # fmt: skip
    return con


def _opened(con: duckdb.DuckDBPyConnection) -> None:
    record_events(con, "(SELECT hazard_no, DATE '2023-06-01' AS event_date, NULL AS from_status, '待整改' AS to_status, "
                       "'ZJJ' AS unit, 'buildings/ZJJ/2023-1/a.csv' AS source_file, '调查发现，登记入账' AS note "
                       "FROM hazards)")  # fmt: skip


def test_events_are_numbered_in_hazard_number_order_whatever_the_table_order():
    numbers = [f"JZ-{i:06d}-B01" for i in range(3000, 0, -1)]  # the table holds them last number first
    con = _ledger(numbers)
    con.execute("SELECT nextval('hazard_event_seq')")  # an event before: numbering continues after it
    _opened(con)
    events = con.execute("SELECT seq, hazard_no FROM hazard_events ORDER BY seq").fetchall()
    assert [no for _, no in events] == sorted(numbers)
    assert [seq for seq, _ in events] == list(range(2, 3002))
    record_events(con, ONE_CHANGE, ["JZ-000001-B01", "2023-07-01", "待整改", "整改中", "ZJJ", None, "开始整改"])
    assert con.execute("SELECT max(seq), count(*) FROM hazard_events").fetchone() == (3002, 3001)


def test_each_event_carries_the_hazards_whole_state_after_the_change():
    con = _ledger(["JZ-000002-B01", "JZ-000001-B01"])
    _opened(con)
    states = dict(con.execute("SELECT hazard_no, state FROM hazard_events").fetchall())
    current = dict(con.execute("SELECT hazard_no, to_json(h) FROM hazards h").fetchall())
    assert states == current
    assert json.loads(states["JZ-000001-B01"])["description"] == "隐患1"
    assert con.execute("SELECT DISTINCT unit, to_status, note FROM hazard_events").fetchall() == [
        ("ZJJ", "待整改", "调查发现，登记入账")
    ]


def test_no_changes_record_nothing_and_take_no_number():
    con = _ledger(["JZ-000001-B01"])
    record_events(con, "(SELECT * FROM (SELECT NULL::VARCHAR AS hazard_no, NULL::DATE AS event_date, NULL AS from_status, "
                       "NULL AS to_status, NULL AS unit, NULL AS source_file, NULL AS note) WHERE false)")  # fmt: skip
    assert con.execute("SELECT count(*) FROM hazard_events").fetchone() == (0,)
    assert con.execute("SELECT nextval('hazard_event_seq')").fetchone() == (1,)
