"""A town's degree for an event: the highest degree of its buildings, or the degree at its centre where it has
no located building (reference/town_centres.csv).

Only buildings set a town's degree: a pipeline segment, a bridge or a site is reported on its own row (its own
degree in quake_exposure, the 排查清单, the key objects), so one long segment whose far end lies nearer the
epicentre never raises a whole town. The table `quake_towns` of the quake store holds one row per town of
reference/towns.csv for every event, written by `exposure.assess` in the event's transaction; the 首报 reads it.
"""

from __future__ import annotations

import csv
from functools import cache

import duckdb
import numpy as np
import pyarrow as pa

from pipeline.platform.paths import REFERENCE_DIR
from pipeline.quake.shaking import degree, district_intensity

TOWNS_DDL = """CREATE TABLE IF NOT EXISTS quake_towns (
    event_id VARCHAR, town_code VARCHAR, degree INTEGER, intensity DOUBLE, basis VARCHAR, buildings INTEGER,
    assets_felt INTEGER)"""

# basis: 'buildings' (the highest of the town's located buildings) or 'centre' (none located: its centre);
# assets_felt: the town's located objects of every kind at or above the felt degree (response.yaml).
RECORD_TOWNS_SQL = """
INSERT INTO quake_towns
WITH b AS (
    SELECT town_code, max(intensity) AS intensity, max(degree) AS degree, count(*) AS buildings
    FROM quake_exposure WHERE event_id = $eid AND kind = 'buildings' GROUP BY town_code
), f AS (
    SELECT town_code, count(*) FILTER (WHERE degree >= $felt) AS felt
    FROM quake_exposure WHERE event_id = $eid GROUP BY town_code
)
SELECT $eid, c.town_code, coalesce(b.degree, c.degree), coalesce(b.intensity, c.intensity),
       CASE WHEN b.town_code IS NULL THEN 'centre' ELSE 'buildings' END, coalesce(b.buildings, 0), coalesce(f.felt, 0)
FROM quake_town_centres c LEFT JOIN b USING (town_code) LEFT JOIN f USING (town_code)
"""


@cache
def town_centres() -> tuple[tuple[str, float, float], ...]:
    """(town_code, lon, lat) of every town of reference/town_centres.csv."""
    with open(REFERENCE_DIR / "town_centres.csv", encoding="utf-8") as f:
        return tuple((r["town_code"], float(r["lon"]), float(r["lat"])) for r in csv.DictReader(f))


def record_towns(con: duckdb.DuckDBPyConnection, event, felt_from: int) -> None:
    """Insert the event's quake_towns rows (inside the caller's transaction, after its quake_exposure rows)."""
    codes, lon, lat = zip(*town_centres(), strict=True)
    intensity = district_intensity(event.magnitude, event.lon, event.lat, np.array(lon), np.array(lat), event.strike)
    centres = pa.table({"town_code": list(codes), "intensity": intensity, "degree": degree(intensity)})
    con.register("quake_town_centres", centres)
    try:
        con.execute(RECORD_TOWNS_SQL, {"eid": event.event_id, "felt": felt_from})
    finally:
        con.unregister("quake_town_centres")
