"""Benchmark: the ledger exports at scale (issue 14).

    python -m benchmarks.bench_exports                  # the 1 M-building database (~0.56 M hazards)
    python -m benchmarks.bench_exports --rows 100000
    python -m benchmarks.bench_exports --db path/to/scoring_1000000_publish.duckdb

Opens the publish benchmark's database read-only (as `cli export` opens the snapshot; made once by
bench_publish.ledger_db, reused), then times: export_ledger into an empty folder (every town and unit
workbook written), the bare floor (one DuckDB COPY of the ledger query to CSV: no BOM, no neutraliser, no
XLSX), and a second export with nothing changed (the town and unit workbooks skipped). Prints the ratio
to the floor and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    from benchmarks.bench_publish import ledger_db
    from pipeline.ledger.exports import export_ledger, ledger_sql, register_reference
    from pipeline.platform import store
    from pipeline.platform.clock import district_today

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="the ledger database (default: bench_publish's for --rows)")
    args = parser.parse_args()
    db = args.db or ledger_db(args.rows)
    out = Path(tempfile.mkdtemp(prefix="bench_exports_"))
    as_of = district_today()
    with store.connect_read(db, db) as con:
        t = time.perf_counter()
        first = export_ledger(con, as_of, out / "ledger", cache_dir=out / "cache")
        product = time.perf_counter() - t
        peak_first = _peak_gb()
        sizes = {p.name: p.stat().st_size / 1e6 for p in first.files[:5]}
        print(f"export of {first.hazards:,} hazards ({first.overdue:,} overdue): {product:.1f} s, "
              f"{len(first.written)} town/unit workbooks written, {len(first.skipped)} skipped, "
              f"peak RSS {peak_first:.2f} GB")  # fmt: skip
        print("  " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in sizes.items()))

        register_reference(con)
        t = time.perf_counter()
        con.execute(f"COPY ({ledger_sql()}) TO '{out / 'floor.csv'}' (FORMAT csv, HEADER)", {"as_of": as_of})
        floor = time.perf_counter() - t
        print(f"bare DuckDB COPY of the ledger query to CSV: {floor:.1f} s; product / floor {product / floor:.1f}x")

        t = time.perf_counter()
        again = export_ledger(con, as_of, out / "ledger", cache_dir=out / "cache")
        second = time.perf_counter() - t
        print(f"second export, nothing changed: {second:.1f} s ({second / floor:.1f}x the floor), "
              f"{len(again.written)} written, {len(again.skipped)} skipped")  # fmt: skip
    print(f"peak RSS {_peak_gb():.2f} GB")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
