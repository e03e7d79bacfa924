"""Benchmark: the charts and the briefing over a large ledger.

    python -m benchmarks.bench_publish                 # 1 M buildings (~1.2 M hazards)
    python -m benchmarks.bench_publish --rows 100000

Scores and opens the ledger on the scoring benchmark's database (not timed), then times the aggregates
the charts read (DuckDB; a million assets never become pandas rows), each chart (PNG + CSV) and the
briefing PDF, and reports the PNG sizes (the chart is also embedded in the Dagster asset's metadata).
Target (issue 14): charts and briefing after one new file ≤ 15 s at 1 M buildings.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.bench_scoring import staged_db


def ledger_db(rows: int) -> Path:
    """The scoring benchmark's database, scored and with its ledger opened (made once, then reused)."""
    from pipeline.ledger.survey_update import update_from_findings
    from pipeline.scoring.engine import score_kind
    from pipeline.scoring.ruleset import load_ruleset

    work = Path(str(staged_db(rows)).replace(".duckdb", "_publish.duckdb"))
    if not work.exists():
        shutil.copy(staged_db(rows), work)
        con = duckdb.connect(str(work))
        ruleset = load_ruleset()
        for kind in ruleset.kinds:
            score_kind(con, ruleset, kind)
        update_from_findings(con)
        con.close()
    return work


def main() -> None:
    from pipeline.platform.clock import district_today
    from pipeline.publish.briefing import write_briefing
    from pipeline.publish.charts import CHARTS
    from pipeline.publish.inputs import PublishInputs
    from pipeline.publish.render import render_chart

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    work = ledger_db(args.rows)
    out = Path(tempfile.mkdtemp(prefix="bench_publish_"))
    con = duckdb.connect(str(work))
    inp = PublishInputs(con, district_today())
    t = time.perf_counter()
    n_scores, n_hazards = inp.scored_total(), int(inp.ledger_counts["n"].sum())
    n_cells, n_days = len(inp.map_cells), len(inp.events_daily)
    print(
        f"aggregate {n_scores:,} scores and {n_hazards:,} hazards in DuckDB ({n_cells:,} map cells, {n_days:,} days "
        f"with changes): {time.perf_counter() - t:.1f} s"
    )
    total = time.perf_counter() - t
    for chart in CHARTS:
        t = time.perf_counter()
        r = render_chart(chart, inp, out)
        took = time.perf_counter() - t
        total += took
        print(f"chart {chart.name:<24}{took:6.1f} s  {r.png.stat().st_size / 1e3:7.0f} kB  adds up: {r.adds_up}")
    t = time.perf_counter()
    write_briefing(inp, out / "简报.pdf")
    took = time.perf_counter() - t
    total += took
    print(f"briefing                      {took:6.1f} s  {(out / '简报.pdf').stat().st_size / 1e3:7.0f} kB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"publish stage in all: {total:.1f} s, peak RSS {peak:.2f} GB")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
