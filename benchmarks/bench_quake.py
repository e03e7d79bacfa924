"""Benchmark: an earthquake's 首报 and 排查清单 on a large district, beside the bare floor of the same shaking.

    python -m benchmarks.bench_quake                 # 1 M buildings (bench_publish's database, made once)
    python -m benchmarks.bench_quake --rows 100000

Product: `first_report()` from the event to the 首报 (read every asset of the snapshot's asset register, which
publishing writes — timed apart —, intensity along and across the strike by bisection, the check-at-once
reasons and priorities, the quake store, the towns' degrees, the 首报's SQL counts, text + PDF), then
`checklists_and_map()` (the 排查清单 per responsible unit, the map, the PDF of the 首报附件).
Floor: bare DuckDB + numpy doing the same shaking and writing the per-asset event table: the register's
coordinates fetched as numpy, the same elliptical intensity of the two relations (the product's numerical kernel,
shaking.district_intensity: the floor measures everything around it), its degree, and every register row with
its intensity and degree written as a table of a fresh DuckDB file. Targets (issue 28 §4): 首报 ≤ 2× the floor and ≤ 10 s; the 排查清单 ≤ 30 s.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from benchmarks.bench_publish import ledger_db
from pipeline.quake.shaking import district_intensity

EVENT = {"time": "2025-06-30 14:23:05", "lon": 106.19, "lat": 37.93, "depth_km": 10, "magnitude": 6.5, "strike": 30}


def floor_run(db: Path, out: Path) -> tuple[float, int]:
    """The floor's seconds and rows: the register's coordinates, the intensity and degree of every asset,
    the per-asset event table written into a new DuckDB file."""
    t = time.perf_counter()
    con = duckdb.connect(str(out / "floor.duckdb"))
    con.execute(f"ATTACH '{db}' AS led (READ_ONLY)")
    arrays = con.execute("SELECT lon, lat FROM led.asset_register").fetchnumpy()
    lon, lat = (np.ma.filled(arrays[c].astype(float), np.nan) for c in ("lon", "lat"))
    intensity = district_intensity(EVENT["magnitude"], EVENT["lon"], EVENT["lat"], lon, lat, EVENT["strike"])
    con.register("shaken", pa.table({"intensity": intensity, "degree": np.floor(intensity).astype(np.int32)}))
    con.execute("CREATE TABLE event_assets AS SELECT * FROM led.asset_register POSITIONAL JOIN shaken "
                "WHERE lon IS NOT NULL AND lat IS NOT NULL")  # fmt: skip
    n = con.execute("SELECT count(*) FROM event_assets").fetchone()[0]
    con.close()
    return time.perf_counter() - t, n


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
    event = event_from(EVENT)
    out = Path(tempfile.mkdtemp(prefix="bench_quake_"))
    try:
        floor, n = floor_run(db, out)
        t = time.perf_counter()
        response = first_report(event, db, db, out)
        product = time.perf_counter() - t
        t = time.perf_counter()
        files = checklists_and_map(event, out)
        rest = time.perf_counter() - t
    finally:
        shutil.rmtree(out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    at_vi = sum(n for _, _, n in response.report.towns)
    print(
        f"{n:,} assets ({at_vi:,} at Ⅵ+), event {event.event_id} strike 30°, {len(response.files) + len(files)} files"
    )
    print(f"{'':<28}{'product':>10}{'floor':>10}{'ratio':>8}")
    print(f"{'event → 首报 (txt + pdf)':<28}{product:9.2f}s{floor:9.2f}s{product / floor:7.1f}×"
          "   (target ≤ 2× and ≤ 10 s)")  # fmt: skip
    print(f"{'then 排查清单, map, 附件 pdf':<28}{rest:9.2f}s   ({len(files) - 2} workbooks; target ≤ 30 s)")
    print(f"{'(at publish: asset register':<28}{register:9.2f}s)")
    print(f"peak RSS {peak:.2f} GB")


if __name__ == "__main__":
    main()
