"""What an event touched: every recorded asset with its distance, intensity, PGA/PGV, open hazards and the
priority it is checked with, written to the quake store (its own DuckDB file; never the survey store).

It reads the last published snapshot of the ledger (output/published/litong.duckdb), so the response never
waits behind a survey run's writer lock, and writes `output/quake/quake.duckdb` under that file's own lock.
Re-running one event replaces that event's rows and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.platform import store
from pipeline.platform.clock import beijing_now
from pipeline.platform.failures import rollback
from pipeline.platform.writer_lock import writer_lock
from pipeline.publish.asset_register import REGISTER_COLUMNS, has_register_inputs, register_select
from pipeline.quake import damage
from pipeline.quake.event import Event
from pipeline.quake.names import record_unit_names
from pipeline.quake.shaking import degree, distance_km, district_intensity, pga_ms2, pgv_ms, response_settings
from pipeline.quake.towns import TOWNS_DDL, record_towns

# Every asset of the snapshot's register (pipeline/publish/asset_register.py) with the response's own flags: a
# view over the published register's table (its rowid the row's number: no copy of a million rows), a table
# over the live store's query (numbered once).
ASSETS_SQL = """
CREATE OR REPLACE TEMP {what} quake_assets AS
SELECT {rn} AS rn, r.*{missing}, coalesce(building_use IN ({uses}), false) AS is_key,
       coalesce(kind = 'buildings' AND ({weaker}), false) AS damage_class_weaker
FROM {register} r
WHERE lon IS NOT NULL AND lat IS NOT NULL
"""

PUBLISHED_REGISTER = "led.asset_register"
EXPOSURE_DDL = """CREATE TABLE IF NOT EXISTS quake_exposure (
    event_id VARCHAR, kind VARCHAR, asset_id VARCHAR, asset_name VARCHAR, town_code VARCHAR, responsible_unit VARCHAR,
    lon DOUBLE, lat DOUBLE, distance_km DOUBLE, intensity DOUBLE, degree INTEGER, pga_ms2 DOUBLE, pgv_ms DOUBLE,
    level VARCHAR, open_hazards INTEGER, open_major INTEGER, hazard_nos VARCHAR, building_use VARCHAR,
    structure_type VARCHAR, occupants DOUBLE, is_key BOOLEAN, damage_class_weaker BOOLEAN, lifeline BOOLEAN,
    computed_grade VARCHAR, fault_crossing BOOLEAN, expected_repairs DOUBLE, check_at_once BOOLEAN, why VARCHAR,
    priority INTEGER)"""
# The register's per-kind columns (a dam's safety class, a main's towns, a shelter's design intensity and capacity),
# added to a quake store made before them; rows are inserted by name.
EXPOSURE_EXTRA_DDL = [
    f"ALTER TABLE quake_exposure ADD COLUMN IF NOT EXISTS {c} {t}" for c, t in REGISTER_COLUMNS.items()
]
EVENTS_DDL = """CREATE TABLE IF NOT EXISTS quake_events (
    event_id VARCHAR PRIMARY KEY, origin_time TIMESTAMP, lon DOUBLE, lat DOUBLE, depth_km DOUBLE, magnitude DOUBLE,
    strike DOUBLE, place VARCHAR, max_intensity DOUBLE, assets INTEGER, computed_at TIMESTAMP, ledger_as_of VARCHAR,
    snapshot VARCHAR, method VARCHAR)"""


@dataclass
class Exposure:
    event: Event
    snapshot: Path
    published_at: str | None
    out_dir: Path

    def _read(self, sql: str) -> pd.DataFrame:
        con = duckdb.connect(str(quake_db_path(self.out_dir)), read_only=True)
        try:
            return con.execute(sql, [self.event.event_id]).df()
        finally:
            con.close()

    @cached_property
    def assets(self) -> pd.DataFrame:
        """kind, asset_id, degree, intensity of every asset shaken (the rest is in the store), read when asked:
        a million rows are not fetched on the 首报's path."""
        return self._read("SELECT kind, asset_id, degree, intensity FROM quake_exposure WHERE event_id = ?")

    def by_degree(self) -> dict[int, int]:
        """Assets shaken per degree, highest first."""
        df = self._read("SELECT degree, count(*) AS n FROM quake_exposure WHERE event_id = ? GROUP BY degree "
                        "ORDER BY degree DESC")  # fmt: skip
        return {int(d): int(n) for d, n in zip(df["degree"], df["n"], strict=True)}


def quake_db_path(out_dir: Path) -> Path:
    return out_dir / "quake" / "quake.duckdb"


@contextmanager
def quake_store(out_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The quake store, under its own writer lock (a survey run's lock never blocks it)."""
    path = quake_db_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(path, "地震应急响应", 120.0, print):
        con = duckdb.connect(str(path), config={"memory_limit": store.MEMORY_LIMIT})
        try:
            con.execute(EVENTS_DDL)
            con.execute(EXPOSURE_DDL)
            for ddl in EXPOSURE_EXTRA_DDL:
                con.execute(ddl)
            con.execute(TOWNS_DDL)
            damage.ensure_tables(con)
            yield con
        finally:
            con.close()


def _column(arrays: dict, name: str) -> np.ndarray:
    a = arrays[name]
    return np.ma.filled(a.astype(float), np.nan) if np.ma.isMaskedArray(a) else np.asarray(a, dtype=float)


def shake(con: duckdb.DuckDBPyConnection, event: Event) -> None:
    """Intensity of every row of quake_assets (pipelines: the highest of their ends and middle), as the temp
    table quake_intensity (rn, distance_km, intensity unrounded, its degree, PGA, PGV): numpy over the
    coordinates, nothing else leaves DuckDB."""
    arrays = con.execute(
        "SELECT rn, lon, lat, start_lon, start_lat, end_lon, end_lat FROM quake_assets ORDER BY rn"
    ).fetchnumpy()
    lon, lat = _column(arrays, "lon"), _column(arrays, "lat")
    intensity = district_intensity(event.magnitude, event.lon, event.lat, lon, lat, event.strike)
    sl, sa, el, ea = (_column(arrays, c) for c in ("start_lon", "start_lat", "end_lon", "end_lat"))
    if (pipes := ~np.isnan(sl) & ~np.isnan(el)).any():
        points = [
            (sl[pipes], sa[pipes]),
            (el[pipes], ea[pipes]),
            ((sl[pipes] + el[pipes]) / 2, (sa[pipes] + ea[pipes]) / 2),
        ]
        route = [district_intensity(event.magnitude, event.lon, event.lat, x, y, event.strike) for x, y in points]
        intensity[pipes] = np.maximum(intensity[pipes], np.maximum.reduce(route))
    frame = pa.table({"rn": np.asarray(arrays["rn"]), "intensity": intensity, "degree": degree(intensity),
                      "pga_ms2": pga_ms2(intensity), "pgv_ms": pgv_ms(intensity),
                      "distance_km": np.round(distance_km(event.lon, event.lat, lon, lat), 1)})  # fmt: skip
    con.register("quake_intensity_arrow", frame)
    con.execute("CREATE OR REPLACE TEMP TABLE quake_intensity AS SELECT * FROM quake_intensity_arrow")
    con.unregister("quake_intensity_arrow")


def _reasons() -> tuple[str, str]:
    """concat_ws of the check-at-once reasons of rules/quake/response.yaml (SQL over the shaken rows), and whether
    a reason marked `leads` holds (the row heads its unit's 排查清单, before every other check)."""
    reasons, leads = [], []
    for check in response_settings()["check_at_once"]:
        kind = "TRUE" if check["kind"] == "*" else f"kind = '{check['kind']}'"
        why = str(check["why"]).replace("'", "''")
        holds = f"coalesce({kind} AND ({check['when']}), false)"
        reasons.append(f"CASE WHEN {holds} THEN '{why}' END")
        if check.get("leads"):
            leads.append(holds)
    return f"concat_ws('；', {', '.join(reasons)})", " OR ".join(leads) or "false"


# The shaken rows with their motions, the ALA (2001) wave-passage repairs of pipelines (RR = K1 · 0.00187 · PGV in
# in/s, per 1000 ft) and the check-at-once reasons; then the checklist order (intensity, open hazard grade,
# occupants) ranked over those few columns alone (a window over every column of a million rows cost more than
# the rest of the insert), and the rows inserted with their rank.
SHAKEN_SQL = """
CREATE OR REPLACE TEMP TABLE quake_shaken AS
WITH shaken AS (
    SELECT a.*, i.distance_km, i.intensity, i.degree, round(i.pga_ms2, 3) AS pga_ms2, round(i.pgv_ms, 4) AS pgv_ms,
           coalesce(round(a.ala_k1 * 0.00187 * (i.pgv_ms / 0.0254) * a.length_km * 3.28084, 3), 0) AS expected_repairs
    FROM quake_assets a JOIN quake_intensity i USING (rn)
), reasoned AS (SELECT *, {reasons} AS why, {leads} AS leads FROM shaken)
SELECT rn, leads, kind, asset_id, asset_name, town_code, responsible_unit, lon, lat, distance_km, intensity, degree,
       pga_ms2, pgv_ms, level, open_hazards, open_major, hazard_nos, building_use, structure_type, occupants, is_key,
       damage_class_weaker, lifeline, computed_grade, fault_crossing, expected_repairs, why <> '' AS check_at_once, why,
       {extra}
FROM reasoned
"""
PRIORITY_SQL = """
CREATE OR REPLACE TEMP TABLE quake_priority AS
SELECT rn, row_number() OVER (ORDER BY leads DESC, check_at_once DESC, intensity DESC, open_major DESC, open_hazards DESC,
                                       occupants DESC, rn) AS priority
FROM quake_shaken
"""
RECORD_SQL = """INSERT INTO quake_exposure BY NAME
SELECT ?::VARCHAR AS event_id, s.* EXCLUDE (rn, leads), p.priority FROM quake_shaken s JOIN quake_priority p USING (rn)"""


def attach_snapshot(con: duckdb.DuckDBPyConnection, published: Path, live: Path) -> tuple[Path, str | None] | None:
    """Attach the last published snapshot read-only as `led` (the live store before anything was published);
    (its path, its publish time or None for the live store), or None when there is no database at all."""
    source = published if published.exists() else live
    if not source.exists():
        return None
    con.execute(f"ATTACH '{str(source).replace(chr(39), chr(39) * 2)}' AS led (READ_ONLY)")
    stamp = None
    if snapshot_has(con, "snapshot_info"):
        stamp = con.execute("SELECT max(published_at)::VARCHAR FROM led.snapshot_info").fetchone()[0]
    return source, stamp


def snapshot_has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether the attached snapshot `led` holds `table`."""
    return bool(con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = 'led' AND table_name = ?", [table]).fetchall())  # fmt: skip


def _register(con: duckdb.DuckDBPyConnection) -> str | None:
    """The register to read from the attached snapshot (the published one, or the same query over the live
    store's tables when there is no snapshot yet), or None when it has no scores yet."""
    if snapshot_has(con, "asset_register"):
        return PUBLISHED_REGISTER
    return f"({register_select('led.')})" if has_register_inputs(con, "led") else None


def assess(event: Event, published: Path, live: Path, out_dir: Path) -> Exposure:
    """Shake every asset of the snapshot and record the event in the quake store (one transaction; this
    event's rows replaced, the others untouched)."""
    settings = response_settings()
    uses = ", ".join(f"'{u}'" for u in settings["key_objects"]["building_uses"])
    method = f"{' / '.join(settings['attenuation'])}（取大值）" + ("，无走向：长轴圆" if event.strike is None else "")
    with quake_store(out_dir) as con:
        attached = attach_snapshot(con, published, live)
        source, stamp = attached or (live, None)
        shaken = False
        if attached and (register := _register(con)):
            table = register == PUBLISHED_REGISTER
            has = {d[0] for d in con.execute(f"SELECT * FROM {register} r LIMIT 0").description}
            missing = "".join(f", CAST(NULL AS {t}) AS {c}" for c, t in REGISTER_COLUMNS.items() if c not in has)
            con.execute(ASSETS_SQL.format(what="VIEW" if table else "TABLE", rn="r.rowid" if table else
                                          "row_number() OVER () - 1", uses=uses, weaker=settings["weaker_when"],
                                          register=register, missing=missing))  # fmt: skip
            shake(con, event)
            reasons, leads = _reasons()
            con.execute(SHAKEN_SQL.format(reasons=reasons, leads=leads, extra=", ".join(REGISTER_COLUMNS)))
            con.execute(PRIORITY_SQL)
            shaken = True
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM quake_exposure WHERE event_id = ?", [event.event_id])
            con.execute("DELETE FROM quake_events WHERE event_id = ?", [event.event_id])
            con.execute("DELETE FROM quake_towns WHERE event_id = ?", [event.event_id])
            if shaken:
                con.execute(RECORD_SQL, [event.event_id])
            record_towns(con, event, settings["felt_from_intensity"])
            damage.record(con, event.event_id, settings["felt_from_intensity"])  # the buildings' damage estimate
            if attached:
                record_unit_names(con, event.event_id)  # enterprises by name in the reports
            con.execute(
                "INSERT INTO quake_events SELECT ?, ?, ?, ?, ?, ?, ?, ?, max(intensity), count(*), ?, ?, ?, ? "
                "FROM quake_exposure WHERE event_id = ?",
                [event.event_id, event.time, event.lon, event.lat, event.depth_km, event.magnitude, event.strike,
                 event.place, beijing_now(), stamp, str(source), method, event.event_id],
            )  # fmt: skip
            con.execute("COMMIT")
        except BaseException:
            rollback(con)  # never masks the error (a failed COMMIT leaves no transaction)
            raise
    return Exposure(event, source, stamp, out_dir)
