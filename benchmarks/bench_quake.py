"""Benchmark: an earthquake's 首报 on a large district, beside a bare DuckDB query doing the same shaking.

    python -m benchmarks.bench_quake                 # 1 M buildings
    python -m benchmarks.bench_quake --rows 100000

Product: `respond()` from the event to its files (read every asset of the snapshot's asset register, which
publishing writes — timed apart —, intensity along and across the strike by bisection, priorities, the quake store, 首报 text +
PDF, 排查清单 per unit, the map). Floor: one DuckDB query over the same scores computing the epicentral
distance and the larger long-axis intensity of the two relations per asset and counting assets per town and
degree. Target (issue 12): product ≤ 2× the floor and ≤ 60 s in all.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.bench_publish import ledger_db

FLOOR_SQL = """
WITH d AS (
    SELECT kind, asset_id, town_code,
           2 * 6371 * asin(sqrt(pow(sin(radians(lat - {lat}) / 2), 2)
               + cos(radians({lat})) * cos(radians(lat)) * pow(sin(radians(lon - {lon}) / 2), 2))) AS r
    FROM scores WHERE lon IS NOT NULL
), i AS (
    SELECT *, round(least(greatest(6.4580 + 1.2746 * {m} - 4.4709 * log10(r + 25),
                                   5.7123 + 1.3626 * {m} - 4.2903 * log10(r + 25)),
                          5.7123 + 1.3626 * {m} - 4.2903 * log10(25)), 1) AS intensity
    FROM d
)
SELECT town_code, floor(intensity + 0.5)::INTEGER AS degree, count(*) FROM i GROUP BY ALL
"""


def main() -> None:
    from pipeline.publish.asset_register import write_asset_register
    from pipeline.quake.event import event_from
    from pipeline.quake.respond import checklists_and_map, first_report

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    db = ledger_db(args.rows)
    con = duckdb.connect(str(db))
    t = time.perf_counter()
    write_asset_register(con)  # what publishing the snapshot adds (its cost is the run's, not the event's)
    register = time.perf_counter() - t
    con.close()
    event = event_from({"time": "2025-06-30 14:23:05", "lon": 106.19, "lat": 37.93, "depth_km": 10,
                        "magnitude": 6.5, "strike": 35})  # fmt: skip
    con = duckdb.connect(str(db), read_only=True)
    n = con.execute("SELECT count(*) FROM scores").fetchone()[0]
    t = time.perf_counter()
    con.execute(FLOOR_SQL.format(lon=event.lon, lat=event.lat, m=event.magnitude)).fetchall()
    floor = time.perf_counter() - t
    con.close()
    out = Path(tempfile.mkdtemp(prefix="bench_quake_"))
    t = time.perf_counter()
    response = first_report(event, db, db, out)
    product = time.perf_counter() - t
    t = time.perf_counter()
    files = checklists_and_map(event, out)
    rest = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{n:,} assets, event {event.event_id}, {len(response.files) + len(files)} files")
    print(f"{'':<26}{'product':>10}{'floor':>10}{'ratio':>9}")
    print(
        f"{'event → 首报 (txt + pdf)':<26}{product:9.1f}s{floor:9.2f}s{product / floor:8.0f}×   (target ≤ 2×, ≤ 60 s)"
    )
    print(f"{'then 排查清单 + map':<26}{rest:9.1f}s   ({len(files) - 1} workbooks)")
    print(f"{'(at publish: asset register':<26}{register:9.1f}s)")
    print(f"peak RSS {peak:.2f} GB")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
