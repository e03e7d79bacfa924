"""The DuckDB engine: every stage's work in this process, over the store (the default; issue 31's seam).

* Validation: Great Expectations on pandas frames of the rows, one column and CHUNK_ROWS rows at a time, read
  from DuckDB through Arrow (`_run_in_chunks`); in the portal's preview workers a small batch is checked on the
  frames directly (`allow_small_path`).
* Scoring: the scoring stage's SQL runs in the store itself; nothing is published elsewhere.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from pipeline.engines.base import ScoringJob
from pipeline.engines.expectations import Expectation, failure_frame, no_failures, suite_for
from pipeline.platform.store import quote

if TYPE_CHECKING:
    from pipeline.registries.templates import Template

log = logging.getLogger(__name__)


def run_suite(
    load_column: Callable[[str], pd.DataFrame], t: Template, expectations: list[Expectation]
) -> tuple[pd.DataFrame, bool]:
    """Run the suite with Great Expectations; returns one row per (row key, failed check), by expectation then
    row key.

    GE spends ~20-50 ms per expectation building and resolving its metric graph whatever the rows (the buildings'
    row suite, 70 expectations: ~3.5 s on 13 rows; issue 30), and it filters the whole batch frame for every
    metric. Every expectation here is a column-map one (a value passes or fails on its own), so one type with the
    same arguments on several columns of one dtype is one GE expectation on the stack of those columns' values
    (the buildings' 70 expectations are 33 stacks), each stack validated as its own one-column frame."""
    failed: dict[int, list[int]] = {}
    success = True
    columns = _ColumnCache(load_column, [e.column for e in expectations])
    for group in _same_check_groups(expectations):
        for stack in _stacks(group, expectations, columns):
            success = _validate_stack(t.kind, expectations[stack.members[0]], stack, failed) and success
    frames = [failure_frame(expectations[i], failed[i]) for i in sorted(failed)]
    return (pd.concat(frames, ignore_index=True) if frames else no_failures()), success


STACK_COLUMN = "value"
STACK_VALUES = 50_000  # values in one stack at most: long columns stacked cost GE more than alone (1 M: 5.7 s -> 7.6 s)


@dataclass
class _Stack:
    """Several columns' values one after the other (RangeIndex), with each value's row key and the position in
    `members` (expectation indexes) of the expectation it is checked for."""

    members: list[int]
    values: pd.Series
    keys: np.ndarray
    owner: np.ndarray


class _ColumnCache:
    """Each column loaded once per suite run and dropped after its last use (memory: only the columns still due)."""

    def __init__(self, load_column: Callable[[str], pd.DataFrame], uses: list[str]) -> None:
        self.load_column, self.due, self.frames = load_column, Counter(uses), {}

    def take(self, column: str) -> pd.Series:
        if column not in self.frames:
            self.frames[column] = self.load_column(column)[column]
        self.due[column] -= 1
        return self.frames[column] if self.due[column] else self.frames.pop(column)


def _same_check_groups(expectations: list[Expectation]) -> list[list[int]]:
    """The expectations' indexes grouped by GE type and arguments, in the order of their first member."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(expectations):
        groups.setdefault((e.ge_type, repr(e.kwargs)), []).append(i)
    return list(groups.values())


def _stacks(group: list[int], expectations: list[Expectation], columns: _ColumnCache) -> Iterator[_Stack]:
    """The stacks of one group: columns of one dtype together (concatenating them changes no value or dtype, so
    GE judges each value as it does in its own column; a categorical's categories are part of its dtype), at most
    STACK_VALUES values each."""
    pending: dict[object, list[tuple[int, pd.Series]]] = {}
    for i in group:
        values = columns.take(expectations[i].column)
        same = pending.setdefault(values.dtype, [])
        if same and sum(len(v) for _, v in same) + len(values) > STACK_VALUES:
            yield _stack(same)
            same.clear()
        same.append((i, values))
    for same in pending.values():
        if same:
            yield _stack(same)


def _stack(parts: list[tuple[int, pd.Series]]) -> _Stack:
    return _Stack(
        members=[i for i, _ in parts],
        values=pd.concat([v for _, v in parts], ignore_index=True).rename(STACK_COLUMN),
        keys=np.concatenate([v.index.to_numpy(dtype=np.int64) for _, v in parts]),
        owner=np.repeat(np.arange(len(parts)), [len(v) for _, v in parts]),
    )


def _validate_stack(kind: str, e: Expectation, stack: _Stack, failed: dict[int, list[int]]) -> bool:
    """Validate one stack with GE (the expectation `e` on the stack's column); adds the row keys each member
    fails on to `failed`; returns GE's success."""
    batch_def, suite = suite_for(kind, [replace(e, column=STACK_COLUMN, check_id="", columns=(), problem_zh="")])
    batch = batch_def.get_batch(batch_parameters={"dataframe": stack.values.to_frame()})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    (r,) = result.results
    if r.exception_info.get("raised_exception"):
        raise RuntimeError(f"expectation {e.check_id} on {e.column} raised: {r.exception_info}")
    positions = np.asarray(r.result.get("unexpected_index_list") or [], dtype=np.int64)
    for at, i in enumerate(stack.members):
        keys = stack.keys[positions[stack.owner[positions] == at]]
        if len(keys):
            failed.setdefault(i, []).extend(int(k) for k in keys)
    return bool(result.success)


CHUNK_ROWS = 500_000  # rows per Great Expectations batch: one huge file is checked in parts
WIDE_ROWS = 20_000  # up to this many rows, each row's own values (no distinct values to map back to rows)


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
        return run_suite(column_loader(con, table, lo, hi), t, expectations)
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
