"""Issue 30: a run validates each column's distinct values with Great Expectations (engine.distinct_loader) and
finds the rows holding each failing value in DuckDB; every row gets exactly the failures — check, columns and
Chinese reason — that Great Expectations gives when it judges every row as its own value (engine.run_by_rows),
on the whole sample district (its bad rows included), across chunk boundaries, and on the checks across rows."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from pipeline.engines import duckdb as engine  # the DuckDB engine's validation
from pipeline.intake.normalize import cross_sql, norm_table
from pipeline.intake.validate import cross_expectations, row_expectations
from pipeline.registries.templates import KINDS, load_template

TODAY = dt.date(2025, 6, 30)


def _rows(frame: pd.DataFrame) -> list[tuple[int, str, str, str]]:
    """The failures row for row (a row failing twice the same way counts twice)."""
    return sorted(
        (int(k), c, cols, p)
        for k, c, cols, p in zip(
            frame["row_key"], frame["check_id"], frame["columns"], frame["problem_zh"], strict=True
        )
    )


def _both(con: duckdb.DuckDBPyConnection, table: str, kind: str, expectations) -> tuple[list, list]:
    t = load_template(kind)
    by_values, values_ok = engine._run_in_chunks(con, table, t, expectations)
    by_rows, rows_ok = engine.run_by_rows(con, table, t, expectations)
    assert values_ok == rows_ok
    return _rows(by_values), _rows(by_rows)


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("kind", [*KINDS, "feedback"])
def test_distinct_values_fail_the_same_rows_with_the_same_reasons_as_every_row(sample, kind, wide, monkeypatch):
    """Each column's distinct values (WIDE_ROWS 0), or a small table's rows (`wide`: each row's own values)."""
    deployment, _ = sample
    monkeypatch.setattr(engine, "_small_path_allowed", False)
    monkeypatch.setattr(engine, "WIDE_ROWS", 10**9 if wide else 0)
    con = duckdb.connect(str(deployment.db), read_only=True)
    try:
        by_values, by_rows = _both(con, norm_table(kind), kind, row_expectations(load_template(kind), TODAY))
        assert by_values == by_rows
        if kind in ("buildings", "bridges", "hazchem_sites", "hazchem_inventory", "pipelines"):
            assert by_rows, f"the sample's {kind} has rows that fail a check"  # the other kinds' sample rows pass
        # three chunks: a value's rows in other chunks are judged with their own chunk (GE costs ~0.2 s a column)
        rows = con.execute(f"SELECT count(*) FROM {norm_table(kind)}").fetchall()[0][0]
        monkeypatch.setattr(engine, "CHUNK_ROWS", max(2, rows // 3 + 1))
        by_values_7, _ = _both(con, norm_table(kind), kind, row_expectations(load_template(kind), TODAY))
        assert by_values_7 == by_rows
        # the checks across rows and files, on every row
        con.execute(f"CREATE TEMP TABLE __affected AS SELECT _row_key, file_id, row_no FROM {norm_table(kind)}")
        con.execute(f"CREATE TEMP TABLE __cross AS {cross_sql(load_template(kind))}")
        cross_values, cross_rows = _both(con, "__cross", kind, cross_expectations(load_template(kind)))
        assert cross_values == cross_rows
    finally:
        con.close()


def test_a_value_repeated_on_many_rows_fails_on_each_of_them(monkeypatch):
    """Every row holding a failing value fails, nulls included, whatever chunk it is in, and each once per
    expectation it fails."""
    monkeypatch.setattr(engine, "_small_path_allowed", False)
    monkeypatch.setattr(engine, "CHUNK_ROWS", 4)
    monkeypatch.setattr(engine, "WIDE_ROWS", 0)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE x AS SELECT i + 1 AS _row_key, "
        "['1950', 'x', NULL, '1950', 'x', '2024', NULL, 'x', '1950', 'x'][i + 1] AS txt, "
        "[1.0, 1949.0, NULL, 1949.0, 2101.0, 2000.0, 1949.0, NULL, 1.0, 1949.0][i + 1] AS num "
        "FROM range(10) r(i)"
    )
    expectations = [
        engine.Expectation("ExpectColumnValuesToNotBeNull", "txt", {}, "a", ("txt",), "必填项为空"),
        engine.Expectation("ExpectColumnValuesToMatchRegex", "txt", {"regex": r"^\d{4}$"}, "b", ("txt",), "格式"),
        engine.Expectation(
            "ExpectColumnValuesToBeBetween", "num", {"min_value": 1950, "max_value": 2100}, "c", ("num", "txt"), "范围"
        ),
    ]
    by_values, by_rows = _both(con, "x", "buildings", expectations)
    assert by_values == by_rows
    monkeypatch.setattr(engine, "WIDE_ROWS", 20)  # the same on each row's own values
    assert _both(con, "x", "buildings", expectations)[0] == by_rows
    assert [k for k, c, _, _ in by_values if c == "a"] == [3, 7]
    assert [k for k, c, _, _ in by_values if c == "b"] == [2, 5, 8, 10]
    assert [k for k, c, _, _ in by_values if c == "c"] == [1, 2, 4, 5, 7, 9, 10]
    assert {(cols, p) for _, c, cols, p in by_values if c == "c"} == {("num,txt", "范围")}


def test_great_expectations_gets_one_row_per_distinct_value_not_per_row(monkeypatch):
    """Memory: a column of 200,000 rows and a handful of values reaches Great Expectations as a frame of that
    handful (main loaded every row of a 500,000-row chunk into pandas for every column); every row still fails."""
    monkeypatch.setattr(engine, "_small_path_allowed", False)
    t = load_template("buildings")
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE x AS SELECT i + 1 AS _row_key, ['1998', '2001', '不详年', NULL][i % 4 + 1] AS txt "
        "FROM range(200000) r(i)"
    )
    expectations = [
        engine.Expectation("ExpectColumnValuesToMatchRegex", "txt", {"regex": r"^\d{4}$"}, "b", ("txt",), "格式"),
    ]
    frames = []
    real_run_suite = engine.run_suite

    def recording(load_column, *args):
        def load(column: str) -> pd.DataFrame:
            frame = load_column(column)
            frames.append(len(frame))
            return frame

        return real_run_suite(load, *args)

    monkeypatch.setattr(engine, "run_suite", recording)
    failures, ok = engine._run_in_chunks(con, "x", t, expectations)
    assert frames == [4] and not ok
    assert len(failures) == 50_000 and set(failures["row_key"]) == set(range(3, 200_001, 4))


def test_a_small_table_is_validated_on_its_rows_one_expectation_at_a_time(monkeypatch):
    """A kind of a few hundred rows is validated on each row's own values (no distinct values to map back), one
    GE expectation per validation, on a one-column frame (test_validation_stacks.py: several columns sharing
    an expectation are one stack)."""
    monkeypatch.setattr(engine, "_small_path_allowed", False)
    t = load_template("buildings")
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE x AS SELECT i + 1 AS _row_key, CASE WHEN i % 3 = 0 THEN 'x' ELSE '1998' END AS txt, "
        "CASE WHEN i % 5 = 0 THEN NULL ELSE 2000.0 + i END AS num FROM range(150) r(i)"
    )
    expectations = [
        engine.Expectation("ExpectColumnValuesToMatchRegex", "txt", {"regex": r"^\d{4}$"}, "b", ("txt",), "格式"),
        engine.Expectation("ExpectColumnValuesToNotBeNull", "num", {}, "a", ("num",), "必填项为空"),
        engine.Expectation(
            "ExpectColumnValuesToBeBetween", "num", {"min_value": 1950, "max_value": 2100}, "c", ("num",), "范围"
        ),
    ]
    suites = []
    real_suite_for = engine.suite_for
    monkeypatch.setattr(
        engine, "suite_for", lambda kind, group, *a: suites.append(len(group)) or real_suite_for(kind, group, *a)
    )
    failures, ok = engine._run_in_chunks(con, "x", t, expectations)
    assert suites == [1, 1, 1] and not ok
    assert sorted(failures.loc[failures["check_id"] == "b", "row_key"]) == list(range(1, 151, 3))
    assert sorted(failures.loc[failures["check_id"] == "a", "row_key"]) == list(range(1, 151, 5))
    assert sorted(failures.loc[failures["check_id"] == "c", "row_key"]) == [i + 1 for i in range(101, 150) if i % 5]
