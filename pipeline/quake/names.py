"""Units by name in what the response writes: the district's units from the registry, the enterprises (a
hazardous-chemical site's company, a pipeline's operator, keyed by credit code) from the snapshot the event was
shaken from, kept per event in the quake store so the reports never show a code."""

from __future__ import annotations

import duckdb

from pipeline.registries.units import district_units

NAMES_DDL = "CREATE TABLE IF NOT EXISTS quake_unit_names (event_id VARCHAR, unit_code VARCHAR, unit_name VARCHAR)"


def record_unit_names(con: duckdb.DuckDBPyConnection, event_id: str) -> None:
    """The enterprises of the attached snapshot `led` that answer for this event's assets (none when the snapshot
    has no enterprise_units); inside the caller's transaction."""
    con.execute(NAMES_DDL)
    con.execute("DELETE FROM quake_unit_names WHERE event_id = ?", [event_id])
    has = con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = 'led' AND table_name = 'enterprise_units'")
    if not has.fetchall():
        return
    con.execute(
        "INSERT INTO quake_unit_names SELECT ?, unit_code, arg_max(unit_name, survey_kind = 'hazchem_sites') "
        "FROM led.enterprise_units WHERE unit_name IS NOT NULL AND unit_code IN "
        "(SELECT responsible_unit FROM quake_exposure WHERE event_id = ?) GROUP BY unit_code",
        [event_id, event_id],
    )


def unit_names(con: duckdb.DuckDBPyConnection, event_id: str) -> dict[str, str]:
    """unit code → name for this event: the district's units, then its enterprises."""
    names = {code: u.name for code, u in district_units().items()}
    if con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'quake_unit_names'").fetchall():
        rows = con.execute("SELECT unit_code, unit_name FROM quake_unit_names WHERE event_id = ?", [event_id])
        names.update({c: n for c, n in rows.fetchall() if c not in names})
    return names


def unit_name(code: str | None, names: dict[str, str]) -> str:
    """A unit as a person reads it: its name; never its code."""
    if not code:
        return "责任单位未填写"
    if code in names:
        return names[code]
    known = district_units().get(code)
    return known.name if known else "未在名录中的责任单位"
