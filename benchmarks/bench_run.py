"""Benchmark: the real `cli run`, as a user runs it, on N generated buildings, beside a bare-DuckDB floor (issue 30).

    python -m benchmarks.bench_run                      # 1 M buildings (make bench)
    python -m benchmarks.bench_run --rows 200000        # while developing
    python -m benchmarks.bench_run --scratch-only       # the from-scratch run and its floor only

Four runs of `python -m pipeline.cli run` (a subprocess, its own DAGSTER_HOME, output and database in a
temporary folder, district date 2025-06-30): from scratch; again with nothing new (one run does all its work, so
this one starts no Dagster run: pipeline/platform/run_state.py); with one new file of `--new-rows` buildings
(住建局's first buildings resurveyed in the second round: they lie in every town); then with nothing changed
(again no Dagster run). For each it prints the whole
run's seconds, each step's seconds (from the run's own Dagster events: STEP_START to STEP_SUCCESS) and the peak
resident memory of the whole process tree (the run and every process it starts, summed, polled from /proc every
50 ms), beside the floor: bare DuckDB doing the same work for the buildings in a child process measured the
same way (from scratch: read every file, the same per-field checks, keep the rows typed, every rule's findings
and the scores; the new file: read, check and keep it; nothing changed: no work, 0 s).

Each run also prints the process tree's peak memory while each step ran (the largest first).

The generated survey is cached in benchmarks/data/run_<N>_raw (generation takes minutes at 1 M).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
TODAY = "2025-06-30"
PAGE = os.sysconf("SC_PAGE_SIZE")


def raw_data(rows: int) -> Path:
    """The generated survey of `rows` buildings and the default other kinds (cached)."""
    out = DATA / f"run_{rows}_raw"
    if not (out / "done").exists():
        from sample.generate import generate

        shutil.rmtree(out, ignore_errors=True)
        generate(out, buildings=rows, seed=11, formats="csv")
        (out / "done").write_text("ok")
    return out


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants, from /proc (no psutil)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            rss[pid] = int(fields[21]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_measured(cmd: list[str], env: dict[str, str], log: Path, samples: list | None = None) -> tuple[float, int, int]:
    """(seconds, peak bytes of the process tree, exit code) of `cmd`, its output into `log`; each poll's
    (epoch seconds, tree bytes) appended to `samples` when given (the peak of each step)."""
    t = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        while proc.poll() is None:
            rss = _tree_rss(proc.pid)
            peak = max(peak, rss)
            if samples is not None:
                samples.append((time.time(), rss))
            time.sleep(0.05)
    return time.perf_counter() - t, peak, proc.returncode


_seen_runs: set[str] = set()


def step_windows(dagster_home: Path) -> dict[str, tuple[float, float]]:
    """(start, end) epoch seconds of each step of the last run in `dagster_home`, from its Dagster events (none
    when that run was measured before: the `cli run` started no Dagster run)."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        if run.run_id in _seen_runs:
            return {}
        _seen_runs.add(run.run_id)
        started: dict[str, float] = {}
        windows: dict[str, tuple[float, float]] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or not record.step_key:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[record.step_key] = record.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                windows[record.step_key] = (started.get(record.step_key, record.timestamp), record.timestamp)
    return windows


def step_peaks(windows: dict[str, tuple[float, float]], samples: list[tuple[float, int]]) -> dict[str, int]:
    """The process tree's peak bytes while each step ran."""
    return {k: max((rss for t, rss in samples if start <= t <= end), default=0) for k, (start, end) in windows.items()}


# --- the floor: bare DuckDB, the same work for the buildings ---------------------------------------------


def floor_scratch(raw: Path, store_copy: Path) -> None:
    """Read every building file, run the per-field checks, keep the rows; then, over the product's validated
    buildings (a copy of its store), every rule's findings and the scores, as one query each."""
    import duckdb

    from benchmarks.bench_intake import bare_duckdb_sql
    from pipeline.scoring.ruleset import install, load_ruleset

    files = str(raw / "buildings" / "*" / "*" / "*.csv")
    con = duckdb.connect()
    con.execute(bare_duckdb_sql(files)).fetchall()
    con.execute(f"CREATE TABLE kept AS SELECT * FROM read_csv('{files}', all_varchar=true, header=true, "
                "union_by_name=true)")  # fmt: skip
    con.close()
    ruleset = load_ruleset()
    con = duckdb.connect(str(store_copy))
    install(con)
    t = time.perf_counter()
    spec, rules = ruleset.kinds["buildings"], ruleset.for_kind("buildings")
    fired = " UNION ALL ".join(
        f"SELECT {spec.id} AS asset_id, '{r.id}' AS rule_id, {r.points} AS points FROM {spec.view} "
        f"WHERE coalesce(({r.when}), false)"
        for r in rules
    )
    con.execute(f"CREATE TEMP TABLE bare_findings AS {fired}")
    con.execute("CREATE TEMP TABLE bare_scores AS SELECT asset_id, least(100, sum(points)) AS score "
                "FROM bare_findings GROUP BY asset_id")  # fmt: skip
    print(json.dumps({"rules_seconds": time.perf_counter() - t}))


def floor_new_file(new: Path) -> None:
    import duckdb

    from benchmarks.bench_intake import bare_duckdb_sql

    con = duckdb.connect()
    con.execute(bare_duckdb_sql(str(new))).fetchall()
    con.execute(f"CREATE TABLE kept AS SELECT * FROM read_csv('{new}', all_varchar=true, header=true)")


def data_raw_with_new_file(base: Path, root: Path, rows: int) -> Path:
    from benchmarks.bench_incremental import data_raw_with_new_file as add

    return add(base, root, rows)


# --- the three runs ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--new-rows", type=int, default=10_000)
    parser.add_argument("--scratch-only", action="store_true", help="only the from-scratch run and its floor")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    parser.add_argument("--floor", nargs="+", help=argparse.SUPPRESS)  # a floor child: scratch RAW DB | new FILE
    args = parser.parse_args()
    if args.floor:
        if args.floor[0] == "scratch":
            floor_scratch(Path(args.floor[1]), Path(args.floor[2]))
        else:
            floor_new_file(Path(args.floor[1]))
        return
    raw = raw_data(args.rows)
    work = Path(tempfile.mkdtemp(prefix="bench_run_"))
    home, out, data_raw = work / "dagster_home", work / "output", work / "data_raw"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    data_raw.mkdir()
    for f in raw.rglob("*.csv"):  # the same file versions, linked
        target = data_raw / f.relative_to(raw)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(f.resolve())
    env = {**os.environ, "DAGSTER_HOME": str(home), "LITONG_OUTPUT": str(out), "LITONG_DATA_RAW": str(data_raw),
           "LITONG_TODAY": TODAY, "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("LITONG_DB", None)
    cli = [sys.executable, "-m", "pipeline.cli", "run"]
    log = work / "runs.log"
    results = []
    peaks: dict[str, dict[str, int]] = {}

    def one(label: str, floor_cmd: list[str] | None) -> None:
        samples: list[tuple[float, int]] = []
        seconds, peak, code = run_measured(cli, env, log, samples)
        windows = step_windows(home)
        steps = {k: end - start for k, (start, end) in windows.items()}
        peaks[label] = step_peaks(windows, samples)
        if floor_cmd:
            f_seconds, f_peak, f_code = run_measured([sys.executable, "-m", "benchmarks.bench_run", "--floor",
                                                       *floor_cmd], env, log)  # fmt: skip
            assert f_code == 0, f"the floor failed, see {log}"
        else:
            f_seconds, f_peak = 0.0, 0
        results.append((label, seconds, peak, code, steps, f_seconds, f_peak))
        print(f"{label}: run {seconds:.1f} s (exit {code}), peak {peak / 1e9:.2f} GB; "
              f"floor {f_seconds:.1f} s, {f_peak / 1e9:.2f} GB", flush=True)  # fmt: skip

    one("from scratch", None)
    store_copy = work / "floor.duckdb"
    shutil.copy(out / "litong.duckdb", store_copy)
    f_seconds, f_peak, f_code = run_measured(
        [sys.executable, "-m", "benchmarks.bench_run", "--floor", "scratch", str(raw), str(store_copy)], env, log
    )
    assert f_code == 0, f"the floor failed, see {log}"
    store_copy.unlink()
    label, seconds, peak, code, steps, _, _ = results[0]
    results[0] = (label, seconds, peak, code, steps, f_seconds, f_peak)
    if not args.scratch_only:
        one("second run, nothing new", None)  # the first confirmed what it left: no Dagster run
        shutil.rmtree(data_raw)
        new = data_raw_with_new_file(raw, data_raw, args.new_rows)
        one(f"one new {args.new_rows:,}-row file", ["new", str(new)])
        one("nothing changed", None)

    print(f"\n== `cli run` on {args.rows:,} buildings (district date {TODAY}), beside bare DuckDB ==")
    print(f"{'run':<26} {'product':>9} {'peak':>8} {'floor':>8} {'peak':>8}  steps (s, largest first)")
    for label, seconds, peak, code, steps, f_seconds, f_peak in results:
        top = sorted(steps.items(), key=lambda kv: -kv[1])
        shown = "; ".join(f"{k} {v:.1f}" for k, v in top[:8])
        failed = "" if code == 0 else f" (exit {code})"
        print(f"{label:<26} {seconds:8.1f}s {peak / 1e9:6.2f}GB {f_seconds:7.1f}s {f_peak / 1e9:6.2f}GB  "
              f"{shown}{failed}")  # fmt: skip
        top_rss = sorted(peaks[label].items(), key=lambda kv: -kv[1])[:6]
        print(f"{'':<26} peak RSS by step (GB): " + "; ".join(f"{k} {v / 1e9:.2f}" for k, v in top_rss))
        print(f"{'':<26} steps in all {sum(steps.values()):.1f} s; outside the steps (start-up, status, summary) "
              f"{seconds - sum(steps.values()):.1f} s")  # fmt: skip
    print(f"log: {log}")
    failed = any(code != 0 for _, _, _, code, *_ in results)
    if failed:  # what went wrong, and the folder kept to look into it
        print("a run failed; the end of its log:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        print(f"kept: {work}")
    elif not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
