"""Benchmark: ingest + validation of N building rows, against the same checks as bare DuckDB SQL.

    python benchmarks/bench_intake.py                 # 100 000 and 1 000 000 rows
    python benchmarks/bench_intake.py --rows 200000
    python benchmarks/bench_intake.py --rows 5000000 --one-file      # one upload of 5 M rows (streamed)

Each measurement runs in a fresh subprocess so its peak memory (max RSS) is its own.
Generated files are cached under benchmarks/data/ (git-ignored).
Target (issue 2): 1 M rows ingested and validated within 5x the bare-DuckDB time, peak < 3 GB.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"


def ensure_data(rows: int) -> Path:
    out = DATA / f"buildings_{rows}"
    if not (out / "done").exists():
        from sample.generate import generate

        t = time.perf_counter()
        generate(out, buildings=rows, bridges=0, sites=0, pipelines=0, seed=7, formats="csv")
        (out / "done").write_text(f"{time.perf_counter() - t:.1f}")
    return out


def one_file(rows: int) -> Path:
    """The same buildings as one upload: every generated file's rows in one CSV (a district sending its
    whole survey at once; read as a stream, benchmarks the memory bound of issue 14)."""
    out = DATA / f"buildings_{rows}_one"
    target = out / "buildings" / "ZJJ" / "2023-1" / "全区房屋.csv"
    if (out / "done").exists():
        return out
    target.parent.mkdir(parents=True, exist_ok=True)
    header: list[str] | None = None
    with open(target, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        for source in sorted((ensure_data(rows) / "buildings").rglob("*.csv")):
            with open(source, encoding="utf-8-sig", newline="") as g:
                reader = csv.reader(g)
                own = next(reader)
                if header is None:
                    header = own
                    writer.writerow(header)
                where = [own.index(h) if h in own else None for h in header]
                writer.writerows([r[i] if i is not None and i < len(r) else "" for i in where] for r in reader)
    (out / "done").write_text("ok")
    return out


def bare_duckdb_sql(files_glob: str) -> str:
    """The same per-field checks as the suite, as one DuckDB query over the raw CSV.

    Light cleaning only (trim, thousands separators, unit suffixes, accepted spellings), no
    provenance, no messages: what a hand-written SQL check would do."""
    from pipeline.intake.normalize import NUMBER_UNITS, lit_list
    from pipeline.registries.templates import UNKNOWN_MARKERS, load_template, towns, units

    t = load_template("buildings")
    fails = []
    for f in t.fields:
        v = f"nullif(trim(\"{f.header}\"), '')"
        if f.type in ("integer", "decimal", "year", "date"):
            v = f"CASE WHEN regexp_matches({v}, '[０-９]') THEN translate({v}, '０１２３４５６７８９．', '0123456789.') ELSE {v} END"
        unknown = [m for m in UNKNOWN_MARKERS if m not in f.spelling_map()]
        if f.required:
            fails.append(f"{v} IS NULL OR {v} IN {lit_list(unknown)}")
        if f.type in ("integer", "decimal"):
            num = f"TRY_CAST(regexp_replace(replace({v}, ',', ''), '({NUMBER_UNITS})$', '') AS DOUBLE)"
            fails.append(f"{v} IS NOT NULL AND {v} NOT IN {lit_list(unknown)} AND {num} IS NULL")
            if f.min is not None:
                fails.append(f"{num} < {f.min}")
            if f.max is not None:
                fails.append(f"{num} > {f.max}")
        if f.type == "year":
            fails.append(f"{v} IS NOT NULL AND {v} NOT IN {lit_list(unknown)} AND NOT regexp_matches({v}, '^\\d{{4}}')")
        if f.type == "date":
            parsed = f"try_strptime(replace(replace(replace(replace({v}, '/', '-'), '年', '-'), '月', '-'), '日', ''), '%Y-%m-%d')"
            fails.append(f"{v} IS NOT NULL AND {v} NOT IN {lit_list(unknown)} AND {parsed} IS NULL")
        if f.allowed_values():
            accepted = set(f.spelling_map()) | set(UNKNOWN_MARKERS)
            fails.append(f"{v} NOT IN {lit_list(sorted(accepted))}")
        if f.type == "town_code":
            fails.append(f"{v} NOT IN {lit_list([*towns(), *towns().values()])}")
        if f.type == "unit_code":
            fails.append(f"{v} NOT IN {lit_list(units())}")
    any_fail = " OR ".join(f"coalesce({x}, false)" for x in fails)
    return (
        f"SELECT count(*), count(*) FILTER (WHERE {any_fail}), "
        f'count(*) - count(DISTINCT "房屋编码") '
        f"FROM read_csv('{files_glob}', all_varchar=true, header=true, union_by_name=true)"
    )


def run_bare(data: Path) -> dict:
    import duckdb

    con = duckdb.connect()
    t = time.perf_counter()
    total, failing, dup = con.execute(bare_duckdb_sql(str(data / "buildings" / "*" / "*" / "*.csv"))).fetchall()[0]
    return {"seconds": time.perf_counter() - t, "rows": total, "failing_rows": failing, "duplicate_ids": dup}


def run_pipeline(data: Path) -> dict:
    import great_expectations  # noqa: F401  (import time is not intake time)

    from pipeline.intake.ingest import ingest_kind
    from pipeline.intake.receipts import write_receipts
    from pipeline.intake.validate import normalize, validate
    from pipeline.platform import store
    from pipeline.registries.templates import load_template

    template = load_template("buildings")
    with tempfile.TemporaryDirectory() as tmp, store.connect(Path(tmp) / "bench.duckdb") as con:
        phases = {}
        t = time.perf_counter()
        ingest_kind(con, data, "buildings")
        phases["ingest"] = time.perf_counter() - t
        t = time.perf_counter()
        normalize(con, template)
        phases["normalize"] = time.perf_counter() - t
        t = time.perf_counter()
        result = validate(con, template)
        phases["validate"] = time.perf_counter() - t
        t = time.perf_counter()
        write_receipts(con, Path(tmp) / "receipts", "buildings")
        phases["receipts"] = time.perf_counter() - t
    intake = phases["ingest"] + phases["normalize"] + phases["validate"]
    return {"seconds": intake, "phases": phases, "rows": result.rows, "valid": result.valid,
            "quarantined": result.quarantined}  # fmt: skip


def child(mode: str, data: Path) -> None:
    out = run_bare(data) if mode == "bare" else run_pipeline(data)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def measure(mode: str, data: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(data)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--one-file", action="store_true", help="all rows in one uploaded CSV (streamed)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    for rows in args.rows:
        data = one_file(rows) if args.one_file else ensure_data(rows)
        bare = measure("bare", data)
        pipe = measure("pipeline", data)
        ratio = pipe["seconds"] / bare["seconds"]
        print(f"\n== {rows:,} building rows{' in one file' if args.one_file else ''} ==")
        print(f"bare DuckDB read + checks : {bare['seconds']:7.2f} s  {rows / bare['seconds']:>12,.0f} rows/s  "
              f"peak {bare['peak_rss_mb']:7.0f} MB  ({bare['failing_rows']:,} failing rows)")  # fmt: skip
        phases = "  ".join(f"{k} {v:.2f}s" for k, v in pipe["phases"].items())
        print(f"pipeline ingest+validate  : {pipe['seconds']:7.2f} s  {rows / pipe['seconds']:>12,.0f} rows/s  "
              f"peak {pipe['peak_rss_mb']:7.0f} MB  ({pipe['quarantined']:,} quarantined)")  # fmt: skip
        print(f"  phases: {phases}")
        print(f"ratio pipeline / bare     : {ratio:5.1f}x   (target <= 5x; peak target < 3072 MB)")


if __name__ == "__main__":
    main()
