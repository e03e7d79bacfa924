"""Benchmark: the buildings of a generated province scored by DuckDB and by Spark (local[1], local[2]), with the
bare-DuckDB floor, and the parity of the two engines on every finding and score.

    python -m benchmarks.bench_spark                 # 1 000 000 and 5 000 000 buildings
    python -m benchmarks.bench_spark --rows 1000000  # one size

The validated survey comes from benchmarks/bench_scoring.py's cache (benchmarks/data/scoring_<rows>.duckdb);
each engine scores a copy of it. Spark's time is split into publishing the staging table as Parquet (first
publication: every town) and the scoring proper (views, rules, findings, scores written as Parquet), then the
load into the store. The floor is one bare DuckDB SELECT with a CASE per rule (bench_scoring.bare_query).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.bench_scoring import bare_query, staged_db

KIND = "buildings"


def score_copy(db: Path, work: Path, master: str | None) -> tuple[float, dict, Path]:
    """Score the buildings of a copy of `db` (on Spark when `master`); (seconds, phases, the copy)."""
    from pipeline.engines.duckdb import DuckDBEngine
    from pipeline.engines.spark import scoring as spark_scoring
    from pipeline.engines.spark.engine import SparkEngine
    from pipeline.platform import store
    from pipeline.scoring.engine import score_kind
    from pipeline.scoring.ruleset import load_ruleset

    copy = work / f"{master or 'duckdb'}.duckdb".replace("[", "_").replace("]", "")
    shutil.copy(db, copy)
    ruleset = load_ruleset()
    phases: dict[str, float] = {}
    target = DuckDBEngine()
    if master:
        from pipeline.engines.spark.session import get_spark, stop_spark

        stop_spark()
        t = time.perf_counter()
        session = get_spark(master)
        phases["session start"] = time.perf_counter() - t
        target = SparkEngine(work / f"warehouse_{copy.stem}", lambda: session)
        score = spark_scoring.score_on_spark

        def timed_score(*a, **k):
            out = score(*a, **k)
            phases.update(out.seconds)
            return out

        spark_scoring.score_on_spark = timed_score
    try:
        with store.connect(copy) as con:
            t = time.perf_counter()
            score_kind(con, ruleset, KIND, engine=target, tables=("stg_buildings",))
            seconds = time.perf_counter() - t
    finally:
        if master:
            spark_scoring.score_on_spark = score
    return seconds, phases, copy


def parity(a: Path, b: Path) -> dict[str, float]:
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    out = {}
    for name, cols, table in [
        ("findings", "asset_id, rule_id, points, hard, hazard, evidence::VARCHAR", "findings"),
        ("scores/levels", "asset_id, level, hard_rule, n_findings, n_hazards, top_reasons", "scores"),
    ]:
        q = f"SELECT {cols} FROM {{}}.{table} WHERE kind = '{KIND}'"
        out[name] = con.execute(
            f"SELECT (SELECT count(*) FROM ({q.format('a')} EXCEPT ALL {q.format('b')})) + "
            f"(SELECT count(*) FROM ({q.format('b')} EXCEPT ALL {q.format('a')}))"
        ).fetchall()[0][0]
    out["max |score difference|"] = con.execute(
        f"SELECT coalesce(max(abs(x.score - y.score)), 0) FROM a.scores x JOIN b.scores y USING (kind, asset_id) "
        f"WHERE kind = '{KIND}'"
    ).fetchall()[0][0]
    out["assets"] = con.execute(f"SELECT count(*) FROM a.scores WHERE kind = '{KIND}'").fetchall()[0][0]
    return out


def run(rows: int, masters: list[str]) -> None:
    from pipeline.scoring.ruleset import install, load_ruleset

    db = staged_db(rows)
    with tempfile.TemporaryDirectory(dir=db.parent) as tmp:
        work = Path(tmp)
        duck_s, _, duck_db = score_copy(db, work, None)
        with duckdb.connect(str(duck_db)) as con:
            install(con)  # the views, as the scoring read them
            t = time.perf_counter()
            con.execute(bare_query(load_ruleset(), KIND))
            floor = time.perf_counter() - t
        print(f"\n== {rows:,} buildings: bare DuckDB floor {floor:.2f} s ==")
        print(f"DuckDB        {duck_s:7.2f} s   ratio to floor {duck_s / floor:5.1f}x")
        for master in masters:
            seconds, phases, spark_db = score_copy(db, work, master)
            spark_part = sum(v for k, v in phases.items() if k != "session start")
            phases["load into the store"] = seconds - spark_part
            detail = ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
            print(f"Spark {master:<8}{seconds:7.2f} s   ratio to floor {seconds / floor:5.1f}x   "
                  f"vs DuckDB {seconds / duck_s:4.1f}x   ({detail})")  # fmt: skip
            if master == masters[-1]:
                p = parity(duck_db, spark_db)
                print(f"parity DuckDB vs Spark {master}: {p['assets']:,} assets; rows that differ: findings "
                      f"{p['findings']}, scores/levels {p['scores/levels']}; max |score difference| "
                      f"{p['max |score difference|']:.1e}")  # fmt: skip


def main() -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--masters", default="local[1],local[2]")
    args = parser.parse_args()
    for rows in args.rows or [1_000_000, 5_000_000]:
        run(rows, args.masters.split(","))


if __name__ == "__main__":
    main()
