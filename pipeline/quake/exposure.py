"""What an event touched: every recorded asset with its distance, intensity, PGA/PGV, open hazards and the
priority it is checked with, written to the quake store (its own DuckDB file; never the survey store).

It reads the last published snapshot of the ledger (output/published/litong.duckdb), so the response never
waits behind a survey run's writer lock, and writes `output/quake/quake.duckdb` under that file's own lock.
Re-running one event replaces that event's rows and nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline import store
from pipeline.quake.event import Event
from pipeline.quake.shaking import degree, district_intensity, pga_ms2, pgv_ms, response_settings
from pipeline.writer_lock import writer_lock

OPEN = "('待整改', '整改中', '已整改待验收', '管控中')"

ASSETS_SQL = f"""
WITH open_hazards AS (
    SELECT kind, asset_id, count(*) AS open_hazards, count(*) FILTER (WHERE hazard_grade = '重大') AS open_major,
           string_agg(hazard_no, '、' ORDER BY hazard_grade DESC, hazard_no) AS hazard_nos
    FROM hazards WHERE status IN {OPEN} GROUP BY ALL
)
SELECT s.kind, s.asset_id, s.asset_name, s.town_code, s.lon, s.lat, s.responsible_unit, s.level,
       coalesce(o.open_hazards, 0) AS open_hazards, coalesce(o.open_major, 0) AS open_major, o.hazard_nos
FROM scores s LEFT JOIN open_hazards o USING (kind, asset_id)
WHERE s.lon IS NOT NULL AND s.lat IS NOT NULL
"""

BUILDINGS_SQL = """
SELECT building_id AS asset_id, "use" AS building_use, structure_type, occupants,
       "use" IN ({uses}) AS is_key, coalesce(({weaker}), false) AS damage_class_weaker
FROM v_buildings
"""
BRIDGES_SQL = "SELECT bridge_id AS asset_id, coalesce(lifeline_route, false) AS lifeline FROM v_bridges"
HAZCHEM_SQL = "SELECT site_id AS asset_id, computed_grade FROM v_hazchem_sites"
PIPELINES_SQL = """
SELECT segment_id AS asset_id, start_lon, start_lat, end_lon, end_lat, coalesce(fault_crossing, false) AS fault_crossing,
       ala_k1, length_km
FROM v_pipelines
"""

EXPOSURE_DDL = """CREATE TABLE IF NOT EXISTS quake_exposure (
    event_id VARCHAR, kind VARCHAR, asset_id VARCHAR, asset_name VARCHAR, town_code VARCHAR, responsible_unit VARCHAR,
    lon DOUBLE, lat DOUBLE, distance_km DOUBLE, intensity DOUBLE, degree INTEGER, pga_ms2 DOUBLE, pgv_ms DOUBLE,
    level VARCHAR, open_hazards INTEGER, open_major INTEGER, hazard_nos VARCHAR, building_use VARCHAR,
    structure_type VARCHAR, occupants DOUBLE, is_key BOOLEAN, damage_class_weaker BOOLEAN, lifeline BOOLEAN,
    computed_grade VARCHAR, fault_crossing BOOLEAN, expected_repairs DOUBLE, check_at_once BOOLEAN, why VARCHAR,
    priority INTEGER)"""
EVENTS_DDL = """CREATE TABLE IF NOT EXISTS quake_events (
    event_id VARCHAR PRIMARY KEY, origin_time TIMESTAMP, lon DOUBLE, lat DOUBLE, depth_km DOUBLE, magnitude DOUBLE,
    strike DOUBLE, place VARCHAR, max_intensity DOUBLE, assets INTEGER, computed_at TIMESTAMP, ledger_as_of VARCHAR,
    snapshot VARCHAR, method VARCHAR)"""


@dataclass
class Exposure:
    event: Event
    assets: pd.DataFrame
    snapshot: Path
    published_at: str | None


def quake_db_path(out_dir: Path) -> Path:
    return out_dir / "quake" / "quake.duckdb"


@contextmanager
def quake_store(out_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The quake store, under its own writer lock (a survey run's lock never blocks it)."""
    path = quake_db_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(path, "地震应急响应", 120.0, print):
        con = duckdb.connect(str(path))
        try:
            con.execute(EVENTS_DDL)
            con.execute(EXPOSURE_DDL)
            yield con
        finally:
            con.close()


def _frame(con: duckdb.DuckDBPyConnection, sql: str, view: str) -> pd.DataFrame | None:
    return con.execute(sql).df() if store.has_table(con, view) or _has_view(con, view) else None


def _has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = ?", [name]).fetchall())


def load_assets(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every scored asset with what the response needs of it (one row per asset)."""
    if not (store.has_table(con, "scores") and store.has_table(con, "hazards")):
        return pd.DataFrame()
    settings = response_settings()
    assets = con.execute(ASSETS_SQL).df()
    uses = ", ".join(f"'{u}'" for u in settings["key_objects"]["building_uses"])
    parts = {
        "buildings": _frame(con, BUILDINGS_SQL.format(uses=uses, weaker=settings["weaker_when"]), "v_buildings"),
        "bridges": _frame(con, BRIDGES_SQL, "v_bridges"),
        "hazchem_sites": _frame(con, HAZCHEM_SQL, "v_hazchem_sites"),
        "pipelines": _frame(con, PIPELINES_SQL, "v_pipelines"),
    }
    frames = []
    for kind, extra in parts.items():
        part = assets[assets["kind"] == kind]
        if extra is not None and len(part):
            part = part.merge(extra.drop_duplicates("asset_id"), on="asset_id", how="left")
        frames.append(part)
    return pd.concat(frames, ignore_index=True) if frames else assets


def shake(event: Event, assets: pd.DataFrame) -> pd.DataFrame:
    """Distance, intensity (pipelines: the highest of their two ends and middle), PGA, PGV, degree."""
    out = assets.copy()
    lon, lat = out["lon"].to_numpy(float), out["lat"].to_numpy(float)
    intensity = district_intensity(event.magnitude, event.lon, event.lat, lon, lat, event.strike)
    if "start_lon" in out and (pipes := out["kind"].eq("pipelines") & out["start_lon"].notna()).any():
        sl, sa = out.loc[pipes, "start_lon"].to_numpy(float), out.loc[pipes, "start_lat"].to_numpy(float)
        el, ea = out.loc[pipes, "end_lon"].to_numpy(float), out.loc[pipes, "end_lat"].to_numpy(float)
        points = [(sl, sa), (el, ea), ((sl + el) / 2, (sa + ea) / 2)]
        along = [district_intensity(event.magnitude, event.lon, event.lat, x, y, event.strike) for x, y in points]
        intensity[pipes.to_numpy()] = np.maximum.reduce(along)
    from pipeline.quake.shaking import distance_km

    out["distance_km"] = np.round(distance_km(event.lon, event.lat, lon, lat), 1)
    out["intensity"] = intensity
    out["degree"] = degree(intensity)
    out["pga_ms2"] = np.round(pga_ms2(intensity), 3)
    out["pgv_ms"] = np.round(pgv_ms(intensity), 4)
    if "ala_k1" in out:  # ALA (2001) wave-passage repairs: RR = K1 · 0.00187 · PGV(in/s) per 1000 ft
        k1 = out["ala_k1"].astype(float)
        out["expected_repairs"] = np.round(
            k1 * 0.00187 * (out["pgv_ms"] / 0.0254) * out["length_km"].astype(float) * 3.28084, 3
        )
    return out


DEFAULTS = (("is_key", False), ("damage_class_weaker", False), ("lifeline", False), ("fault_crossing", False),
            ("computed_grade", "非重大危险源"), ("expected_repairs", 0.0), ("occupants", 0.0),
            ("building_use", None), ("structure_type", None))  # fmt: skip


def prioritise(shaken: pd.DataFrame) -> pd.DataFrame:
    """check_at_once and why from rules/quake/response.yaml, and the checklist order: intensity, open hazard
    grade, occupancy. One SQL pass over the frame."""
    out = shaken.copy()
    for col, default in DEFAULTS:
        out[col] = out[col].fillna(default) if col in out else default
    reasons = []
    for check in response_settings()["check_at_once"]:
        kind = "TRUE" if check["kind"] == "*" else f"kind = '{check['kind']}'"
        why = str(check["why"]).replace("'", "''")
        reasons.append(f"CASE WHEN coalesce({kind} AND ({check['when']}), false) THEN '{why}' END")
    out = out.reset_index(drop=True)
    out["_rn"] = np.arange(len(out))
    con = duckdb.connect()
    try:
        con.register("exposure", out)
        ranked = con.execute(
            f"""
            SELECT why, why <> '' AS check_at_once,
                   row_number() OVER (ORDER BY why <> '' DESC, intensity DESC, open_major DESC, open_hazards DESC,
                                      occupants DESC, _rn) AS priority
            FROM (SELECT _rn, intensity, open_major, open_hazards, occupants, concat_ws('；', {", ".join(reasons)}) AS why
                  FROM exposure)
            ORDER BY _rn
            """
        ).df()
    finally:
        con.close()
    out = out.drop(columns="_rn")
    out["why"], out["check_at_once"], out["priority"] = ranked["why"], ranked["check_at_once"], ranked["priority"]
    return out


COLUMNS = ["kind", "asset_id", "asset_name", "town_code", "responsible_unit", "lon", "lat", "distance_km", "intensity",
           "degree", "pga_ms2", "pgv_ms", "level", "open_hazards", "open_major", "hazard_nos", "building_use",
           "structure_type", "occupants", "is_key", "damage_class_weaker", "lifeline", "computed_grade",
           "fault_crossing", "expected_repairs", "check_at_once", "why", "priority"]  # fmt: skip


def record(
    con: duckdb.DuckDBPyConnection, event: Event, exposed: pd.DataFrame, snapshot: Path, published: str | None
) -> None:
    """Replace this event's rows (one transaction); other events are untouched."""
    frame = exposed.reindex(columns=COLUMNS)
    settings = response_settings()
    method = f"{' / '.join(settings['attenuation'])}（取大值）" + ("，无走向：长轴圆" if event.strike is None else "")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM quake_exposure WHERE event_id = ?", [event.event_id])
        con.execute("DELETE FROM quake_events WHERE event_id = ?", [event.event_id])
        con.register("exposure_df", frame)
        con.execute(f"INSERT INTO quake_exposure SELECT ?, {', '.join(COLUMNS)} FROM exposure_df", [event.event_id])
        con.unregister("exposure_df")
        con.execute(
            "INSERT INTO quake_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [event.event_id, event.time, event.lon, event.lat, event.depth_km, event.magnitude, event.strike,
             event.place, float(frame["intensity"].max()) if len(frame) else None, len(frame), dt.datetime.now(),
             published, str(snapshot), method],
        )  # fmt: skip
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def assess(event: Event, published: Path, live: Path, out_dir: Path) -> Exposure:
    """Read the assets from the snapshot, shake them, record the event in the quake store."""
    with store.connect_read(published, live) as con:
        assets = load_assets(con)
        stamp = (con.execute("SELECT max(published_at)::VARCHAR FROM snapshot_info").fetchone()[0]
                 if store.has_table(con, "snapshot_info") else None)  # fmt: skip
    exposed = prioritise(shake(event, assets)) if len(assets) else pd.DataFrame(columns=COLUMNS)
    with quake_store(out_dir) as qcon:
        record(qcon, event, exposed, published if published.exists() else live, stamp)
    return Exposure(event, exposed, published if published.exists() else live, stamp)
