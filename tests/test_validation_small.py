"""Issue 27 §4: a small batch (a preview, a decision) is checked without Great Expectations' per-expectation cost,
with exactly GE's results: the same failing rows for every expectation of every kind, on the whole sample
district (its bad rows included) and on values made to sit on every edge."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import normalised_rows

from pipeline.engines import duckdb as duck_engine
from pipeline.engines.duckdb import run_suite, run_suite_small
from pipeline.engines.expectations import Expectation
from pipeline.intake.validate import cross_expectations, row_expectations
from pipeline.registries.templates import KINDS, load_template

TODAY = dt.date(2025, 6, 30)


def _failures(frame: pd.DataFrame) -> set[tuple[int, str]]:
    return {(int(k), c) for k, c in zip(frame["row_key"], frame["check_id"], strict=True)}


@pytest.mark.parametrize("kind", [*KINDS, "feedback"])
def test_the_small_path_fails_the_same_rows_as_great_expectations_on_the_sample(sample, kind):
    deployment, _ = sample
    t = load_template(kind)
    with normalised_rows(deployment.db, kind) as (load, rows):
        assert rows > 5, f"the sample has rows of {kind}"  # 6 reservoirs and dykes, 8 water works (issue 29)
        expectations = row_expectations(t, TODAY)
        by_ge, ge_ok = run_suite(load, t, expectations)
        small, small_ok = run_suite_small(load, expectations)
    assert _failures(small) == _failures(by_ge)
    assert small_ok == ge_ok
    merged = small.merge(by_ge, on=["row_key", "check_id"], suffixes=("", "_ge"))
    assert (merged["problem_zh"] == merged["problem_zh_ge"]).all() and (merged["columns"] == merged["columns_ge"]).all()


def test_the_small_path_matches_great_expectations_on_every_edge():
    t = load_template("buildings")
    frame = pd.DataFrame(
        {
            "txt": ["1", "", None, "x1", "12", "1.0", np.nan, " 2"],
            "num": [0.0, 1.0, None, 1949.0, 1950.0, 2100.0, 2101.0, np.nan],
            "day": pd.to_datetime(
                ["1949-12-31", "1950-01-01", None, "2025-06-30", "2025-07-01", None, "2000-01-01", "2100-01-01"]
            ),  # fmt: skip
            "flag": pd.array([True, False, None, True, False, None, True, False], dtype="object"),
        },
        index=pd.Index(range(101, 109)),
    )
    expectations = [
        Expectation("ExpectColumnValuesToNotBeNull", "txt", {}, "a", ("txt",), "空"),
        Expectation("ExpectColumnValuesToBeNull", "txt", {}, "b", ("txt",), "非空"),
        Expectation("ExpectColumnValuesToMatchRegex", "txt", {"regex": r"^\d+$"}, "c", ("txt",), "格式"),
        Expectation("ExpectColumnValuesToNotMatchRegex", "txt", {"regex": r"^x"}, "d", ("txt",), "错误值"),
        Expectation("ExpectColumnValuesToBeInSet", "txt", {"value_set": ["1", "12"]}, "e", ("txt",), "取值"),
        Expectation(
            "ExpectColumnValuesToBeBetween", "num", {"min_value": 1950, "max_value": 2100}, "f", ("num",), "范围"
        ),
        Expectation("ExpectColumnValuesToBeBetween", "num", {"min_value": 1, "max_value": None}, "g", ("num",), "下限"),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            "day",
            {"min_value": dt.datetime(1950, 1, 1), "max_value": dt.datetime(2025, 6, 30)},
            "h",
            ("day",),
            "日期",
        ),  # fmt: skip
        Expectation("ExpectColumnValuesToNotBeInSet", "flag", {"value_set": [False]}, "i", ("flag",), "核对"),
    ]

    def load(column: str) -> pd.DataFrame:
        return frame[[column]]

    by_ge, ge_ok = run_suite(load, t, expectations)
    small, small_ok = run_suite_small(load, expectations)
    assert _failures(small) == _failures(by_ge)
    assert small_ok == ge_ok is False
    assert {k for k, c in _failures(small) if c == "f"} == {101, 102, 104, 107}  # 0, 1, 1949 and 2101 out of range


def test_only_a_preview_worker_takes_the_small_path_and_only_for_a_small_batch(monkeypatch):
    """A run always validates with Great Expectations; a preview worker (duck_engine.allow_small_path) checks a
    small batch on the frames and a large one with GE."""
    calls = []
    monkeypatch.setattr(duck_engine, "run_suite", lambda *a: calls.append("ge") or (duck_engine.no_failures(), True))
    monkeypatch.setattr(
        duck_engine, "run_suite_small", lambda *a: calls.append("small") or (duck_engine.no_failures(), True)
    )
    con = duckdb.connect()
    t = load_template("buildings")

    def check(rows: int) -> None:
        con.execute(f"CREATE OR REPLACE TABLE x AS SELECT range + 1 AS _row_key, 1 AS flag FROM range({rows})")
        duck_engine._run_in_chunks(con, "x", t, cross_expectations(t))

    monkeypatch.setattr(duck_engine, "_small_path_allowed", False)
    check(13)
    assert calls == ["ge"]  # a run
    duck_engine.allow_small_path()  # as the preview worker does (monkeypatch restores the flag)
    for rows in (13, duck_engine.SMALL_ROWS + 1):
        check(rows)
    assert calls == ["ge", "small", "ge"]
