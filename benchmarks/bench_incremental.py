"""Benchmark: what a run costs when nothing changed, on a large district (issue 14).

    python -m benchmarks.bench_incremental                 # 1 M buildings (the scoring benchmark's database)

A copy of the scoring benchmark's validated 1 M-building store: validation and scoring of every kind through the
product's skipping entry points, three times. The first pass does everything; its scoring finds the enterprises
(hazchem sites, pipeline operators), which a kind naming one of them in its rows would be validated against again
in the second pass; the third has nothing to do. The floor of the last passes is no work at all (0 s): their time
is the whole overhead of finding out.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.bench_scoring import staged_db


def one_pass(db: Path) -> tuple[float, dict[str, bool]]:
    from pipeline import stage_inputs, store
    from pipeline.intake.schema import KINDS, load_template
    from pipeline.intake.validate import validate_if_changed
    from pipeline.paths import RULES_DIR
    from pipeline.scoring.assets import SCORED_KINDS, scoring_inputs
    from pipeline.scoring.engine import score_kind
    from pipeline.scoring.ruleset import load_ruleset, ruleset_version

    done: dict[str, bool] = {}
    t = time.perf_counter()
    with store.connect(db) as con:
        for kind in KINDS:
            done[f"validate {kind}"] = validate_if_changed(con, load_template(kind))[1]
        for kind, deps in SCORED_KINDS.items():
            inputs = scoring_inputs(con, ruleset_version(RULES_DIR), deps)
            done[f"score {kind}"] = stage_inputs.recorded(con, f"score:{kind}") != inputs
            if done[f"score {kind}"]:
                score_kind(con, load_ruleset(), kind)
                stage_inputs.record(con, f"score:{kind}", inputs)
    return time.perf_counter() - t, done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_incremental_")) / "litong.duckdb"
    shutil.copy(staged_db(args.rows), work)
    passes = [one_pass(work) for _ in range(3)]
    print(f"{args.rows:,} buildings: validation and scoring of every kind, three times over the same files")
    labels = ["everything new", "after the first scoring found the enterprises",
              "nothing changed (floor 0 s, target ≤ 3 s)"]  # fmt: skip
    for i, ((seconds, done), label) in enumerate(zip(passes, labels, strict=True), 1):
        worked = ", ".join(k for k, v in done.items() if v) or "none"
        print(f"  pass {i}: {seconds:7.2f} s  steps that worked: {worked}  ({label})")
    shutil.rmtree(work.parent)


if __name__ == "__main__":
    main()
