"""Issue 30: Great Expectations costs ~20-50 ms per expectation whatever the rows, so the engine validates one type
of expectation with the same arguments on several columns of one dtype as ONE expectation on the stack of those
columns' values (engine.run_suite). Every row must get exactly the failures — check, columns and Chinese reason —
that GE gives each expectation on its own column (`_one_by_one`, main's way): on the whole sample district, on
columns of different dtypes sharing an expectation, and with a stack split at STACK_VALUES. And the work: the
buildings' row suite reaches GE as 31-33 expectations, not 70."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from conftest import normalised_rows

from pipeline.engines import duckdb as engine
from pipeline.engines.expectations import Expectation, failure_frame, no_failures, suite_for
from pipeline.intake.normalize import cross_sql, norm_table
from pipeline.intake.validate import cross_expectations, row_expectations
from pipeline.registries.templates import KINDS, load_template

TODAY = dt.date(2025, 6, 30)


def _one_by_one(load_column, kind: str, expectations: list[Expectation]) -> tuple[pd.DataFrame, bool]:
    """Each expectation validated by GE alone, on a frame of its own column indexed by row key."""
    frames, success = [], True
    for e in expectations:
        batch_def, suite = suite_for(kind, [e])
        result = batch_def.get_batch(batch_parameters={"dataframe": load_column(e.column)}).validate(
            suite, result_format={"result_format": "COMPLETE"}
        )
        success = success and bool(result.success)
        (r,) = result.results
        assert not r.exception_info.get("raised_exception")
        keys = r.result.get("unexpected_index_list") or []
        if keys:
            frames.append(failure_frame(e, [int(k) for k in keys]))
    return (pd.concat(frames, ignore_index=True) if frames else no_failures()), success


def _rows(frame: pd.DataFrame) -> list[tuple[int, str, str, str]]:
    """The failures row for row, in the order given (a row failing twice the same way counts twice)."""
    return [
        (int(k), c, cols, p)
        for k, c, cols, p in zip(
            frame["row_key"], frame["check_id"], frame["columns"], frame["problem_zh"], strict=True
        )
    ]


@pytest.mark.parametrize("kind", [*KINDS, "feedback"])
def test_stacks_fail_the_same_rows_with_the_same_reasons_as_each_expectation_alone(sample, kind):
    deployment, _ = sample
    t = load_template(kind)
    with normalised_rows(deployment.db, kind) as (load, _):
        expectations = row_expectations(t, TODAY)
        stacked, stacked_ok = engine.run_suite(load, t, expectations)
        alone, alone_ok = _one_by_one(load, kind, expectations)
        assert _rows(stacked) == _rows(alone) and stacked_ok == alone_ok  # same order too: by expectation, row key
        if kind == "buildings":
            assert len(alone) > 100, "the sample's buildings have rows that fail"
    con = duckdb.connect(str(deployment.db), read_only=True)
    try:
        con.execute(f"CREATE TEMP TABLE __affected AS SELECT _row_key, file_id, row_no FROM {norm_table(kind)}")
        con.execute(f"CREATE TEMP TABLE __cross AS {cross_sql(t)}")
        load = engine.column_loader(con, "__cross", 0, 10**12)
        stacked, stacked_ok = engine.run_suite(load, t, cross_expectations(t))
        alone, alone_ok = _one_by_one(load, kind, cross_expectations(t))
        assert _rows(stacked) == _rows(alone) and stacked_ok == alone_ok
    finally:
        con.close()


def _crafted() -> tuple[duckdb.DuckDBPyConnection, list[Expectation]]:
    """Columns of different dtypes under the same expectation (an integer and a float range, a boolean with and
    without nulls, text), each with failing values, nulls and an edge."""
    con = duckdb.connect()
    con.execute("""
        CREATE TABLE x AS SELECT i + 1 AS _row_key,
            [0, 5, 11, NULL, 10, -1][i % 6 + 1]::BIGINT AS n_int,
            [0.0, 10.5, 10.0, NULL, -0.1, 3.0][i % 6 + 1]::DOUBLE AS n_float,
            [0, 3, 12, 10, 7, 1][i % 6 + 1]::BIGINT AS n_int_full,
            [true, false, NULL, true, true, false][i % 6 + 1] AS flag_nulls,
            [true, false, true, true, false, true][i % 6 + 1] AS flag,
            [false, NULL, NULL, true, NULL, NULL][i % 6 + 1] AS flag_b,
            ['是', '否', '不是', NULL, '是', '#N/A'][i % 6 + 1] AS yes_a,
            ['否', '否', NULL, '是', 'x', '是'][i % 6 + 1] AS yes_b
        FROM range(30) r(i)
    """)  # fmt: skip
    between = {"min_value": 0, "max_value": 10}
    flags = {"value_set": [False]}
    yes = {"value_set": ["是", "否"]}
    expectations = [
        Expectation("ExpectColumnValuesToBeBetween", "n_int", between, "a", ("n_int",), "范围"),
        Expectation("ExpectColumnValuesToNotBeInSet", "flag_nulls", flags, "f1", ("flag_nulls",), "不符1"),
        Expectation("ExpectColumnValuesToBeBetween", "n_float", between, "b", ("n_float",), "范围"),
        Expectation("ExpectColumnValuesToBeInSet", "yes_a", yes, "y1", ("yes_a",), "取值1"),
        Expectation("ExpectColumnValuesToNotBeInSet", "flag", flags, "f2", ("flag", "yes_a"), "不符2"),
        Expectation("ExpectColumnValuesToBeBetween", "n_int_full", between, "c", ("n_int_full",), "范围"),
        Expectation("ExpectColumnValuesToNotBeNull", "yes_a", {}, "r1", ("yes_a",), "必填1"),
        Expectation("ExpectColumnValuesToNotBeInSet", "flag_b", flags, "f3", ("flag_b",), "不符3"),
        Expectation("ExpectColumnValuesToBeInSet", "yes_b", yes, "y2", ("yes_b",), "取值2"),
        Expectation("ExpectColumnValuesToNotBeNull", "yes_b", {}, "r2", ("yes_b",), "必填2"),
        Expectation("ExpectColumnValuesToBeInSet", "yes_a", yes, "y3", ("yes_a", "yes_b"), "取值3"),  # twice a column
    ]
    return con, expectations


@pytest.mark.parametrize("stack_values", [10**6, 40])
def test_columns_of_different_dtypes_under_one_expectation_fail_as_alone(monkeypatch, stack_values):
    """40: a stack holds at most 40 values, so a group of 30-row columns is split (each column whole)."""
    monkeypatch.setattr(engine, "STACK_VALUES", stack_values)
    monkeypatch.setattr(engine, "_small_path_allowed", False)
    t = load_template("buildings")
    con, expectations = _crafted()
    for load in (engine.column_loader(con, "x", 0, 30), engine.distinct_loader(con, "x", 0, 30)):
        stacked, stacked_ok = engine.run_suite(load, t, expectations)
        alone, alone_ok = _one_by_one(load, "buildings", expectations)
        assert _rows(stacked) == _rows(alone) and not stacked_ok and not alone_ok
    by_check = {c: sorted(k for k, cc, _, _ in _rows(stacked) if cc == c) for c in ("a", "b", "f1", "y3", "r2")}
    assert by_check == {"a": [3, 6], "b": [2, 5], "f1": [2], "y3": [3, 6], "r2": [3]}  # the distinct values' keys
    every_row, _ = engine._run_in_chunks(con, "x", t, expectations)  # 30 rows: each row's own values
    assert sorted(k for k, c, _, _ in _rows(every_row) if c == "a") == [k for k in range(1, 31) if k % 6 in (3, 0)]


def test_the_buildings_row_suite_reaches_great_expectations_as_one_expectation_per_stack(sample, monkeypatch):
    """Work: one GE expectation per type, arguments and dtype (main: all 70 of the buildings' row suite, one frame
    of 53 columns filtered for every metric)."""
    deployment, _ = sample
    t = load_template("buildings")
    given: list[int] = []
    real_suite_for = engine.suite_for
    monkeypatch.setattr(
        engine, "suite_for", lambda kind, group, *a: given.append(len(group)) or real_suite_for(kind, group, *a)
    )
    monkeypatch.setattr(engine, "_small_path_allowed", False)
    con = duckdb.connect(str(deployment.db), read_only=True)
    try:
        expectations = row_expectations(t, TODAY)
        engine._run_in_chunks(con, norm_table("buildings"), t, expectations)
        load = engine.column_loader(con, norm_table("buildings"), 0, 10**12)
        groups = {(e.ge_type, repr(e.kwargs), load(e.column)[e.column].dtype) for e in expectations}
    finally:
        con.close()
    assert len(expectations) == 70 and len(groups) <= 33  # 33 at 1 M rows; the sample's few nulls leave 31
    # one expectation per GE validation, a stack per group and dtype, split at STACK_VALUES values (the sample's
    # ~20 k rows a column: a stack holds two columns), so fewer validations than expectations
    assert given == [1] * len(given) and len(groups) <= len(given) < len(expectations)
