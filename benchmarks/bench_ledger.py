"""Benchmark: the ledger update for ~1 M hazard findings over two survey rounds.

    python benchmarks/bench_ledger.py                # on the 1 M-building scoring benchmark database
    python benchmarks/bench_ledger.py --rows 100000

Round 1 opens every hazard; round 2 is simulated on the same database by moving every score
and finding to a new survey round and dropping a tenth of the hazard findings, so the update
refreshes ~90 % of the hazards and clears ~10 % (已整改待验收). Each is timed against the
scoring step of the same data. Target (issue 4): no slower than scoring itself.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import duckdb

from benchmarks.bench_scoring import staged_db


def main() -> None:
    from pipeline.ledger.survey_update import update_from_findings
    from pipeline.scoring.engine import score_kind
    from pipeline.scoring.ruleset import load_ruleset

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    work = Path(str(staged_db(args.rows)).replace(".duckdb", "_ledger.duckdb"))
    shutil.copy(staged_db(args.rows), work)
    ruleset = load_ruleset()
    con = duckdb.connect(str(work))
    for table in ("hazards", "hazard_events"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    t = time.perf_counter()
    for kind in ruleset.kinds:
        score_kind(con, ruleset, kind)
    scoring = time.perf_counter() - t
    hazards = con.execute("SELECT count(*) FROM findings WHERE hazard").fetchall()[0][0]
    t = time.perf_counter()
    r1 = update_from_findings(con)
    round1 = time.perf_counter() - t
    con.execute("UPDATE scores SET survey_round = '2099-1', survey_date = survey_date + 365")
    con.execute("UPDATE findings SET survey_round = '2099-1', survey_date = survey_date + 365")
    con.execute("DELETE FROM findings WHERE hazard AND hash(asset_id || rule_id) % 10 = 0")
    t = time.perf_counter()
    r2 = update_from_findings(con)
    round2 = time.perf_counter() - t
    print(f"\n== ledger update, {args.rows:,} buildings + other kinds: {hazards:,} hazard findings ==")
    print(f"scoring (all kinds)     : {scoring:6.2f} s")
    print(f"round 1 (open all)      : {round1:6.2f} s  ratio to scoring {round1 / scoring:4.2f}  new {r1.new:,}")
    print(f"round 2 (refresh/clear) : {round2:6.2f} s  ratio to scoring {round2 / scoring:4.2f}  "
          f"still present {r2.refreshed:,}, cleared {r2.resurvey_cleared:,}")  # fmt: skip
    print(f"events: {con.execute('SELECT count(*) FROM hazard_events').fetchall()[0][0]:,}   target: ratio <= 1")
    con.close()
    work.unlink()


if __name__ == "__main__":
    main()
