"""Benchmark: what a run costs when nothing changed, and when one new file arrives, on a large district (issue 14).

    python -m benchmarks.bench_incremental                 # 1 M buildings (the scoring benchmark's database)
    python -m benchmarks.bench_incremental --exports       # also the ledger exports (the first takes minutes)

A copy of the scoring benchmark's validated 1 M-building store goes through intake, validation and scoring of
every kind and the ledger update (and the exports), through the product's skipping entry points, five times.
Pass 1 does everything (every file version is validated once, every asset scored); its scoring finds the
enterprises, which a kind naming one of them would be validated against again in pass 2; pass 3 has nothing to
do (its floor is no work at all: its time is the whole overhead of finding out). Pass 4 adds one new file of
`--new-rows` buildings (a town's first buildings resurveyed in the second round): only that file is validated,
only its buildings scored and looked at by the ledger. Its floor is bare DuckDB reading and checking that
file. Pass 5 finds nothing new again. Each pass prints its time per stage.
"""

from __future__ import annotations

import argparse
import csv
import resource
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.bench_scoring import DATA, staged_db


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def one_pass(
    db: Path, raw: Path | None = None, exports: Path | None = None
) -> tuple[float, dict[str, bool], dict[str, float]]:
    """Intake of `raw` (when given), validation and scoring of every kind and the ledger update (and the
    exports), through the product's skipping entry points: (seconds, which steps worked, seconds per stage)."""
    from pipeline.intake.ingest import ingest_kind
    from pipeline.intake.validate import validate_if_changed
    from pipeline.ledger.assets import update_ledger_if_changed
    from pipeline.platform import store
    from pipeline.platform.paths import RULES_DIR
    from pipeline.registries.templates import KINDS, load_template
    from pipeline.scoring.assets import SCORED_KINDS, score_if_changed
    from pipeline.scoring.ruleset import ruleset_version

    done: dict[str, bool] = {}
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    def timed(step: str, work):
        started = time.perf_counter()
        out = work()
        seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - started
        return out

    with store.connect(db) as con:
        for kind in KINDS:
            if raw is not None:
                timed("ingest", lambda kind=kind: ingest_kind(con, raw, kind))
            done[f"validate {kind}"] = timed(
                "validate", lambda kind=kind: validate_if_changed(con, load_template(kind))[1]
            )
        for kind, deps in SCORED_KINDS.items():
            done[f"score {kind}"] = timed("score", lambda kind=kind, deps=deps: score_if_changed(
                con, kind, deps, ruleset_version(RULES_DIR))[1])  # fmt: skip
        done["ledger"] = timed("ledger", lambda: update_ledger_if_changed(con)[1])
        if exports is not None:
            done["exports"] = timed("exports", lambda: export_if_changed(con, exports))
    return time.perf_counter() - t, done, seconds


def draw_charts_and_briefing(db: Path, out: Path) -> float:
    """The six charts and the briefing as the publish stage draws them after a change (all of them: each
    shows the whole district), in seconds."""
    from pipeline.platform import store
    from pipeline.platform.clock import district_today
    from pipeline.publish.briefing import write_briefing
    from pipeline.publish.charts import CHARTS
    from pipeline.publish.inputs import PublishInputs
    from pipeline.publish.render import render_chart
    from pipeline.scoring.ruleset import install

    t = time.perf_counter()
    with store.connect(db) as con:
        install(con)  # the hazchem view the grade chart reads, as the publish stage has it
        inputs = PublishInputs(con, district_today())
        for chart in CHARTS:
            render_chart(chart, inputs, out)
        write_briefing(inputs, out / "简报.pdf")
    return time.perf_counter() - t


def export_if_changed(con, out: Path) -> bool:
    """The ledger exports as the asset writes them, when their inputs changed."""
    from pipeline.ledger.assets import exports_inputs
    from pipeline.ledger.exports import export_ledger
    from pipeline.platform import stage_inputs
    from pipeline.platform.clock import district_today

    inputs = exports_inputs(con)
    if stage_inputs.recorded(con, "exports") == inputs:
        return False
    export_ledger(con, district_today(), out, cache_dir=out.parent / "cache")
    stage_inputs.record(con, "exports", inputs)
    return True


def data_raw_with_new_file(base: Path, root: Path, rows: int) -> Path:
    """A data_raw holding the benchmark's files (linked, so they are the same versions) and one new file: the
    first `rows` buildings of a town's file resurveyed in the second round. Only the survey files: the generator's
    `done` marker beside them would be a stray upload (bench_run's first run links only the CSVs too)."""
    for f in base.rglob("*.csv"):
        if f.is_file():
            target = root / f.relative_to(base)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f.resolve())
    source = sorted((base / "buildings" / "ZJJ" / "2023-1").glob("*.csv"))[0]
    with open(source, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        body = [row for _, row in zip(range(rows), reader, strict=False)]
    date = header.index("调查日期")
    for row in body:
        row[date] = "2023-10-15"
    new = root / "buildings" / "ZJJ" / "2023-2" / "复查_新增.csv"
    new.parent.mkdir(parents=True)
    with open(new, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *body])
    return new


def floor_new_file(new: Path) -> float:
    """Bare DuckDB on the new file alone: read it, run the same per-field checks (bench_intake's query) and keep
    its rows in a table."""
    import duckdb

    from benchmarks.bench_intake import bare_duckdb_sql

    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(bare_duckdb_sql(str(new))).fetchall()
    con.execute(f"CREATE TABLE kept AS SELECT * FROM read_csv('{new}', all_varchar=true, header=true)")
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--new-rows", type=int, default=10_000)
    parser.add_argument("--exports", action="store_true", help="also the ledger exports (the first takes minutes)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_incremental_"))
    db = work / "litong.duckdb"
    shutil.copy(staged_db(args.rows), db)
    exports = work / "ledger" if args.exports else None
    passes = [one_pass(db, exports=exports)]
    peak_first = _peak_gb()  # the whole run from scratch: every file version validated, scored, exported
    passes += [one_pass(db, exports=exports) for _ in range(2)]
    new = data_raw_with_new_file(DATA / f"scoring_{args.rows}_raw", work / "data_raw", args.new_rows)
    passes.append(one_pass(db, work / "data_raw", exports))
    passes.append(one_pass(db, work / "data_raw", exports))
    floor = floor_new_file(new)
    publish = draw_charts_and_briefing(db, work / "charts")
    print(f"{args.rows:,} buildings: intake, validation, scoring and the ledger update, five passes")
    labels = ["everything new", "after the first scoring found the enterprises",
              "nothing changed (floor 0 s, target ≤ 3 s)",
              f"one new file of {args.new_rows:,} rows (floor {floor:.2f} s: bare DuckDB reads and checks it)",
              "nothing changed after it, files scanned"]  # fmt: skip
    for i, ((seconds, done, stages), label) in enumerate(zip(passes, labels, strict=True), 1):
        worked = ", ".join(k for k, v in done.items() if v) or "none"
        print(f"  pass {i}: {seconds:7.2f} s  steps that worked: {worked}  ({label})")
        print("          " + "  ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
    print(f"  one new file: product {passes[3][0]:.2f} s, floor {floor:.2f} s, ratio {passes[3][0] / floor:.1f}x "
          "(target: core stages ≤ 10 s)")  # fmt: skip
    print(f"  then the charts and the briefing: {publish:.2f} s (target ≤ 15 s)")
    print(f"  peak RSS: {peak_first:.2f} GB after pass 1, {_peak_gb():.2f} GB in all (target ≤ 4 GB at 5 M)")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
