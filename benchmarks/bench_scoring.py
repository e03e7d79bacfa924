"""Benchmark: score 1 M buildings plus the other kinds, against one bare DuckDB query.

    python benchmarks/bench_scoring.py               # 1 000 000 buildings (+150 bridges, 40 sites, 15 pipelines)
    python benchmarks/bench_scoring.py --rows 100000

The survey is generated, ingested and validated once into benchmarks/data/ (cached). The
bare query computes the same per-asset sums of points as one SELECT with a CASE per rule.
Target (issue 3): scoring within 2x of that bare query.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"


def staged_db(rows: int) -> Path:
    """A DuckDB file with the validated survey of `rows` buildings and the default other kinds."""
    db = DATA / f"scoring_{rows}.duckdb"
    if db.exists():
        return db
    from pipeline.intake.ingest import ingest_kind
    from pipeline.intake.validate import normalize, validate
    from pipeline.platform import store
    from pipeline.registries.templates import KINDS, load_template
    from sample.generate import generate

    raw = DATA / f"scoring_{rows}_raw"
    if not raw.exists():
        generate(raw, buildings=rows, seed=11, formats="csv")
    t = time.perf_counter()
    with store.connect(db) as con:
        for kind in KINDS:
            ingest_kind(con, raw, kind)
            normalize(con, load_template(kind))
            validate(con, load_template(kind))
    print(f"(prepared {db.name}: intake took {time.perf_counter() - t:.1f} s)")
    return db


def bare_query(ruleset, kind: str) -> str:
    spec = ruleset.kinds[kind]
    cases = " + ".join(
        f"(CASE WHEN coalesce(({r.when}), false) THEN {r.points} ELSE 0 END)" for r in ruleset.for_kind(kind)
    )
    return f"CREATE OR REPLACE TEMP TABLE bare_{kind} AS SELECT {spec.id} AS asset_id, least(100, {cases}) AS score FROM {spec.view}"


def main() -> None:
    from pipeline.scoring.engine import score_kind
    from pipeline.scoring.ruleset import install, load_ruleset

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    db = staged_db(args.rows)
    ruleset = load_ruleset()
    con = duckdb.connect(str(db))
    install(con)
    total_pipeline = total_bare = 0.0
    print(f"\n== scoring {args.rows:,} buildings + other kinds (rule set {ruleset.version}) ==")
    for kind in ruleset.kinds:
        t = time.perf_counter()
        con.execute(bare_query(ruleset, kind))
        bare = time.perf_counter() - t
        result = score_kind(con, ruleset, kind)
        same = con.execute(
            f"SELECT count(*) FROM bare_{kind} b JOIN scores s ON s.kind = '{kind}' AND s.asset_id = b.asset_id "
            "WHERE s.score <> b.score"
        ).fetchall()[0][0]
        total_pipeline += result.seconds
        total_bare += bare
        print(f"{kind:<15} assets {result.assets:>9,}  findings {result.findings:>9,}  scoring {result.seconds:6.2f} s  "
              f"bare {bare:6.2f} s  ratio {result.seconds / bare:4.1f}x  score mismatches vs bare: {same}")  # fmt: skip
    print(
        f"{'total':<15} scoring {total_pipeline:.2f} s, bare {total_bare:.2f} s, "
        f"ratio {total_pipeline / total_bare:.1f}x (target <= 2x)"
    )
    levels = con.execute("SELECT kind, level, count(*) FROM scores GROUP BY ALL ORDER BY ALL").fetchall()
    print("levels:", levels)


if __name__ == "__main__":
    main()
