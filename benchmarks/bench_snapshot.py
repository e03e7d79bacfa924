"""Benchmark: publishing the read-only snapshot at the end of a run, against the ways DuckDB can copy a database.

    python -m benchmarks.bench_snapshot                 # on the 1 M-building scoring benchmark database
    python -m benchmarks.bench_snapshot --rows 100000
    python -m benchmarks.bench_snapshot --db PATH       # any store (e.g. the one `bench_run --keep` leaves)

The product checkpoints the database, copies it to a temp name, stamps it with the run and the asset register
and renames it into place (pipeline/publish/snapshot.py); published again with nothing changed it copies
nothing (issue 30). Beside it, the ways to make the copy: a file copy (`shutil.copyfile`, the kernel's
sendfile), ATTACH of a new file + COPY FROM DATABASE (DuckDB rewrites every table), EXPORT DATABASE to
Parquet (not a database readers can open; for comparison), and the asset register alone.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.bench_scoring import staged_db


def _timed(work) -> float:
    t = time.perf_counter()
    work()
    return time.perf_counter() - t


def copy_methods(db: Path, work: Path) -> dict[str, float]:
    """Seconds of each way of copying `db` into `work`."""
    out = {"file copy (shutil.copyfile)": _timed(lambda: shutil.copyfile(db, work / "copy.duckdb"))}

    def attach_copy() -> None:
        con = duckdb.connect()
        con.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
        con.execute(f"ATTACH '{work / 'attached.duckdb'}' AS dst")
        con.execute("COPY FROM DATABASE src TO dst")
        con.close()

    def export() -> None:
        con = duckdb.connect(str(db), read_only=True)
        con.execute(f"EXPORT DATABASE '{work / 'export'}' (FORMAT parquet)")
        con.close()

    def register() -> None:
        from pipeline.publish.asset_register import write_asset_register

        con = duckdb.connect(str(work / "copy.duckdb"))
        write_asset_register(con)
        con.execute("CHECKPOINT")
        con.close()

    out["ATTACH + COPY FROM DATABASE"] = _timed(attach_copy)
    out["EXPORT DATABASE (parquet)"] = _timed(export)
    out["asset register on the copy"] = _timed(register)
    return out


def main() -> None:
    from pipeline.publish.snapshot import publish_snapshot, snapshot_info

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="a store to publish (default: the scoring benchmark's)")
    args = parser.parse_args()
    db = args.db or staged_db(args.rows)
    work = Path(tempfile.mkdtemp(prefix="bench_snapshot_"))
    store = work / "store.duckdb"
    shutil.copy(db, store)
    target = work / "published" / "snapshot.duckdb"
    try:
        methods = copy_methods(store, work)
        changed = _timed(lambda: publish_snapshot(store, target, "bench", "bench"))
        assert snapshot_info(target)["run_id"] == "bench"
        same = _timed(lambda: publish_snapshot(store, target, "bench-2", "bench"))
        assert snapshot_info(target)["run_id"] == "bench-2"
        size = store.stat().st_size / 2**20
        print(f"snapshot of {size:,.0f} MB ({db.name}):")
        for name, seconds in methods.items():
            print(f"  {name:<32} {seconds:6.2f} s")
        print(f"  product, something changed       {changed:6.2f} s (copy, stamp, register, checkpoint, rename)")
        print(f"  product, nothing changed         {same:6.2f} s (target ≤ 1 s at 1 M)")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
