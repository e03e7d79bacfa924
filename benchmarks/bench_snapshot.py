"""Benchmark: publishing the read-only snapshot at the end of a run, against a bare file copy.

    python -m benchmarks.bench_snapshot                 # on the 1 M-building scoring benchmark database
    python -m benchmarks.bench_snapshot --rows 100000

The product checkpoints the database, copies it to a temp name, stamps it with the run and renames it
into place (pipeline/publish/snapshot.py); the floor is `shutil.copyfile` of the same file.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from benchmarks.bench_scoring import staged_db


def main() -> None:
    from pipeline.publish.snapshot import publish_snapshot, snapshot_info

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    db = staged_db(args.rows)
    work = Path(str(db).replace(".duckdb", "_snapshot.duckdb"))
    shutil.copy(db, work)
    target = work.parent / "published" / "snapshot.duckdb"
    try:
        t = time.perf_counter()
        shutil.copyfile(work, work.with_suffix(".copy"))
        floor = time.perf_counter() - t
        t = time.perf_counter()
        publish_snapshot(work, target, "bench", "bench")
        product = time.perf_counter() - t
        assert snapshot_info(target)["run_id"] == "bench"
        size = work.stat().st_size / 2**20
        print(f"snapshot of {size:,.0f} MB ({args.rows:,} buildings): product {product:.2f} s, "
              f"bare copy {floor:.2f} s, ratio {product / floor:.1f}x")  # fmt: skip
    finally:
        for p in (work, work.with_suffix(".copy"), target):
            p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
