"""The DuckDB engine: every stage's work in this process, over the store (the default; issue 31's seam).

* Validation: Great Expectations on pandas frames of the rows, one column and CHUNK_ROWS rows at a time, read
  from DuckDB through Arrow (`_run_in_chunks`); in the portal's preview workers a small batch is checked on the
  frames directly (`allow_small_path`).
* Scoring: the scoring stage's SQL runs in the store itself; nothing is published elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from pipeline.engines.base import ScoringJob
from pipeline.engines.expectations import Expectation, failure_frame, no_failures, suite_for
from pipeline.platform.store import quote

if TYPE_CHECKING:
    from pipeline.registries.templates import Template

log = logging.getLogger(__name__)


def run_suite(
    load_column: Callable[[str], pd.DataFrame], t: Template, expectations: list[Expectation], wide: bool = False
) -> tuple[pd.DataFrame, bool]:
    """Run the suite with Great Expectations; returns one row per (row key, failed check).

    The expectations of each column are validated on a one-column frame, loaded just for
    them: GE filters the whole batch frame for every metric (one wide frame costs columns x
    expectations), and one column at a time keeps memory to one column. A few rows (`wide`) are validated
    as one frame of all the columns, with one suite: then GE's cost is its ~0.2 s per validation, ~40
    validations of one column each for a kind's 150 rows (issue 30: every small kind's staging took 15-70 s)."""
    frames, success = [], True
    by_column: dict[str, list[Expectation]] = {}
    for e in expectations:
        by_column.setdefault("" if wide else e.column, []).append(e)
    for column, group in by_column.items():
        batch_def, suite = suite_for(t.kind, group)
        if wide:
            frame = pd.concat([load_column(c) for c in dict.fromkeys(e.column for e in group)], axis=1)
        else:
            frame = load_column(column)
        batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        success = success and bool(result.success)
        for r in result.results:
            e = group[r.expectation_config.meta["index"]]
            if r.exception_info.get("raised_exception"):
                raise RuntimeError(f"expectation {e.check_id} on {e.column} raised: {r.exception_info}")
            keys = r.result.get("unexpected_index_list") or []
            if keys:
                frames.append(failure_frame(e, keys))
    return (pd.concat(frames, ignore_index=True) if frames else no_failures()), success


CHUNK_ROWS = 500_000  # rows per Great Expectations batch: one huge file is checked in parts
WIDE_ROWS = 20_000  # up to this many rows, one frame of all the columns (run_suite's `wide`)


def column_loader(con: duckdb.DuckDBPyConnection, table: str, lo: int, hi: int) -> Callable[[str], pd.DataFrame]:
    """Loads one column of the rows `lo < _row_key <= hi` of `table` via Arrow (much faster than `.df()`),
    indexed by row key."""

    def load(column: str) -> pd.DataFrame:
        arrow = con.sql(
            f"SELECT _row_key, {quote(column)} FROM {table} WHERE _row_key > {int(lo)} AND _row_key <= {int(hi)} "
            "ORDER BY _row_key"  # the normalised rows are stored in no particular order (normalize.py)
        ).to_arrow_table()
        df = arrow.to_pandas(date_as_object=False).set_index("_row_key")
        df.index.name = None  # GE then reports plain index values
        return df

    return load


SMALL_ROWS = 2_000
# In the portal's preview workers only (allow_small_path), a batch of up to SMALL_ROWS rows is checked on the
# frames directly, exactly as Great Expectations' pandas engine computes it (its column-map metrics, quoted in
# _SMALL_CHECKS): GE spends ~17 ms per expectation building its metric graph whatever the rows, 2.5 s for the
# buildings template's 144 expectations on a 13-row file (issue 27 §4: a preview <= 2 s). A preview only says what
# the run will do; the run's validation, the one the ledger and the receipts keep, always goes through GE, and the
# equivalence of the two is tested on the whole sample (tests/test_validation_small.py).
_small_path_allowed = False


def allow_small_path() -> None:
    """Let this process check small batches without GE: called by the portal's preview workers, never by a run."""
    global _small_path_allowed
    _small_path_allowed = True


_SMALL_CHECKS: dict[str, Callable[[pd.Series, dict], pd.Series]] = {  # non-null values -> unexpected
    # ColumnValuesMatchRegex._pandas: column.astype(str).str.contains(regex)
    "ExpectColumnValuesToMatchRegex": lambda v, kw: ~v.astype(str).str.contains(kw["regex"]),
    "ExpectColumnValuesToNotMatchRegex": lambda v, kw: v.astype(str).str.contains(kw["regex"]),
    # ColumnValuesInSet._pandas: column.isin(value_set)
    "ExpectColumnValuesToBeInSet": lambda v, kw: ~v.isin(kw["value_set"]),
    "ExpectColumnValuesToNotBeInSet": lambda v, kw: v.isin(kw["value_set"]),
    # ColumnValuesBetween._pandas_vectorized, inclusive bounds (strict_* never set here)
    "ExpectColumnValuesToBeBetween": lambda v, kw: (
        (v < kw["min_value"] if kw.get("min_value") is not None else False)
        | (v > kw["max_value"] if kw.get("max_value") is not None else False)
    ),
    "ExpectColumnValuesToNotBeNull": None,  # on every row: null is what is unexpected
    "ExpectColumnValuesToBeNull": None,
}


def run_suite_small(
    load_column: Callable[[str], pd.DataFrame], expectations: list[Expectation]
) -> tuple[pd.DataFrame, bool]:
    """The same failures as `run_suite` (row key, check, columns, reason), computed as GE's pandas engine does:
    a column-map expectation looks at the non-null values only (GE filters them with isnull() first), the null
    ones' own expectations at every value."""
    frames, columns = [], {}
    for e in expectations:
        if e.column not in columns:
            columns[e.column] = load_column(e.column)[e.column]
        values = columns[e.column]
        if e.ge_type == "ExpectColumnValuesToNotBeNull":
            bad = values.isnull()
        elif e.ge_type == "ExpectColumnValuesToBeNull":
            bad = ~values.isnull()
        else:
            present = values[~values.isnull()]
            bad = _SMALL_CHECKS[e.ge_type](present, e.kwargs)
            bad = pd.Series(bad, index=present.index) if not isinstance(bad, pd.Series) else bad
        keys = [int(k) for k in bad.index[bad.to_numpy(dtype=bool)]]
        if keys:
            frames.append(failure_frame(e, keys))
    return (pd.concat(frames, ignore_index=True) if frames else no_failures()), not frames


def _run_in_chunks(
    con: duckdb.DuckDBPyConnection, table: str, t: Template, expectations: list[Expectation]
) -> tuple[pd.DataFrame, bool]:
    """The suite over the rows of `table` (which has `_row_key`), CHUNK_ROWS rows at a time, each column's
    distinct values once per chunk (`distinct_loader`); each failing value's rows then found in the chunk."""
    lo, hi = con.execute(f"SELECT coalesce(min(_row_key), 1) - 1, coalesce(max(_row_key), 0) FROM {table}").fetchall()[
        0
    ]
    if _small_path_allowed and 0 < hi - lo <= SMALL_ROWS and all(e.ge_type in _SMALL_CHECKS for e in expectations):
        try:
            return run_suite_small(column_loader(con, table, lo, hi), expectations)
        except (TypeError, ValueError):  # values GE would compare one by one (mixed types): GE decides
            log.info("small batch of %s: values of mixed types, validated by Great Expectations", t.kind)
    if 0 < hi - lo <= WIDE_ROWS:
        return run_suite(column_loader(con, table, lo, hi), t, expectations, True)  # wide
    frames, success = [], True
    while lo < hi:
        top = min(lo + CHUNK_ROWS, hi)
        failures, ok = run_suite(distinct_loader(con, table, lo, top), t, expectations)
        frames.append(rows_of_values(con, table, lo, top, failures, expectations))
        success = success and ok
        lo += CHUNK_ROWS
    return (pd.concat(frames, ignore_index=True) if frames else no_failures()), success


def run_by_rows(
    con: duckdb.DuckDBPyConnection, table: str, t: Template, expectations: list[Expectation]
) -> tuple[pd.DataFrame, bool]:
    """The suite over every row of `table` as its own value, CHUNK_ROWS rows at a time: what `_run_in_chunks`
    computes on distinct values (tests/test_validation_distinct.py compares the two row for row)."""
    lo, hi = con.execute(f"SELECT coalesce(min(_row_key), 1) - 1, coalesce(max(_row_key), 0) FROM {table}").fetchall()[
        0
    ]
    frames, success = [], True
    while lo < hi:
        failures, ok = run_suite(column_loader(con, table, lo, min(lo + CHUNK_ROWS, hi)), t, expectations)
        frames.append(failures)
        success = success and ok
        lo += CHUNK_ROWS
    return (pd.concat(frames, ignore_index=True) if frames else no_failures()), success


def distinct_loader(con: duckdb.DuckDBPyConnection, table: str, lo: int, hi: int) -> Callable[[str], pd.DataFrame]:
    """Loads the distinct values of one column among the rows `lo < _row_key <= hi` of `table`, each indexed by
    the first row key holding it.

    Every expectation of the suites is a column-map expectation (whether a row passes depends on its value
    alone: null, regex, set, range), so Great Expectations judging each distinct value once judges every row:
    a district's columns repeat few values (towns, kinds, years, yes/no, the check flags), and a 1 M-row chunk
    becomes a frame of hundreds of rows for most columns (issue 30: validation was the largest core cost)."""

    def load(column: str) -> pd.DataFrame:
        col = quote(column)
        arrow = con.sql(
            f"SELECT min(_row_key) AS _row_key, {col} FROM {table} "
            f"WHERE _row_key > {int(lo)} AND _row_key <= {int(hi)} GROUP BY {col} ORDER BY 1"
        ).to_arrow_table()
        df = arrow.to_pandas(date_as_object=False).set_index("_row_key")
        df.index.name = None
        return df

    return load


def rows_of_values(
    con: duckdb.DuckDBPyConnection,
    table: str,
    lo: int,
    hi: int,
    failures: pd.DataFrame,
    expectations: list[Expectation],
) -> pd.DataFrame:
    """The failures of a suite run on distinct values (`distinct_loader`: each failing value named by its first
    row key), for every row of the chunk holding that value, ordered as the suite ran (by expectation, then
    row key)."""
    if failures.empty:
        return failures
    column_of = {}
    for e in expectations:
        column_of.setdefault(e.check_id, set()).add(e.column)
    frames = []
    for (check_id, columns, problem_zh), group in failures.groupby(["check_id", "columns", "problem_zh"], sort=False):
        (column,) = column_of[check_id]  # one column per check id (the templates' definitions)
        col = quote(column)
        con.register("__failed_values", group[["row_key"]])
        try:
            keys = [
                k
                for (k,) in con.execute(
                    f"SELECT t._row_key FROM __failed_values f JOIN {table} r ON r._row_key = f.row_key "
                    f"JOIN {table} t ON t.{col} IS NOT DISTINCT FROM r.{col} "
                    f"WHERE t._row_key > {int(lo)} AND t._row_key <= {int(hi)} ORDER BY t._row_key"
                ).fetchall()
            ]
        finally:
            con.unregister("__failed_values")
        frames.append(
            pd.DataFrame(
                {
                    "row_key": pd.array(keys, dtype="int64"),
                    "check_id": check_id,
                    "columns": columns,
                    "problem_zh": problem_zh,
                }
            )  # fmt: skip
        )
    return pd.concat(frames, ignore_index=True)


class DuckDBEngine:
    """The default engine: validation with GE on pandas frames read from the store, scoring as SQL in the store."""

    name = "duckdb"

    def validate_rows(
        self, con: duckdb.DuckDBPyConnection, table: str, t: Template, expectations: list[Expectation]
    ) -> tuple[pd.DataFrame, bool]:
        return _run_in_chunks(con, table, t, expectations)

    def rule_problems(self, ruleset: object, kind: str) -> list[str]:
        return []  # the rule set's own verification (DuckDB) is the check

    def scores_whole_kinds(self) -> bool:
        return False

    def score_input(self, con: duckdb.DuckDBPyConnection, job: ScoringJob) -> None:
        for sql in job.input_sql:
            con.execute(sql)

    def insert_results(self, con: duckdb.DuckDBPyConnection, job: ScoringJob) -> None:
        con.execute(f"INSERT INTO findings {job.findings_row}")
        con.execute(f"INSERT INTO scores {job.scores_from_hits}")

    def finish(self, job: ScoringJob) -> None:
        pass
