"""The validation's expectations as Great Expectations runs them, on either engine (issue 31).

An `Expectation` is one check of a template in our words (the GE expectation, its column, the check id, the
columns and the Chinese problem on the receipt; built by pipeline/intake/validate.py from schemas/<kind>.yaml).
`suite_for` makes the GE suite of a list of them once per process, for pandas frames (the DuckDB engine) or Spark
DataFrames (the Spark engine); a failure is reported as `failure_frame` rows, the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pandas as pd


@dataclass(frozen=True)
class Expectation:
    """One expectation of the suite, in our words (turned into a GE object in `run_suite`)."""

    ge_type: str  # class name in great_expectations.expectations
    column: str
    kwargs: dict
    check_id: str
    columns: tuple[str, ...]
    problem_zh: str


@cache
def _context():
    """One ephemeral GE context per process (it writes nothing to disk), progress bars off."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


_SUITES: dict[tuple[str, bool, str], tuple] = {}


def suite_for(kind: str, expectations: list[Expectation], on_spark: bool = False):
    """The batch definition and suite of one template's expectations, built once per process, for pandas
    frames or (`on_spark`) Spark DataFrames (validate_spark.py).

    The suite is created with all its expectations at once: adding them one by one makes GE
    re-serialise the whole suite each time (quadratic; seconds per validation)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    key = (kind, on_spark, repr(expectations))
    if key in _SUITES:
        return _SUITES[key]
    context = _context()
    name = f"survey_{kind}_{len(_SUITES)}"
    batch_def = _batch_definition(kind, on_spark)
    ge_expectations = [
        getattr(gxe, e.ge_type)(column=e.column, **e.kwargs, meta={"index": i, "check_id": e.check_id})
        for i, e in enumerate(expectations)
    ]
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=ge_expectations))
    _SUITES[key] = (batch_def, suite)
    return _SUITES[key]


_BATCH_DEFINITIONS: dict[tuple[str, bool], object] = {}


def _batch_definition(kind: str, on_spark: bool):
    """One data source and batch definition per kind and engine, shared by its suites (the frame is a batch
    parameter): adding a data source costs GE ~0.1 s, and a kind validates column by column (issue 30)."""
    key = (kind, on_spark)
    if key not in _BATCH_DEFINITIONS:
        context, name = _context(), f"survey_{kind}_{'spark' if on_spark else 'pandas'}"
        source = context.data_sources.add_spark(name) if on_spark else context.data_sources.add_pandas(name)
        _BATCH_DEFINITIONS[key] = source.add_dataframe_asset(f"norm_{kind}").add_batch_definition_whole_dataframe(
            "current_files"
        )
    return _BATCH_DEFINITIONS[key]


def failure_frame(e: Expectation, row_keys: list[int]) -> pd.DataFrame:
    """The rows an expectation failed on, with its check id, columns and the receipt's reason."""
    return pd.DataFrame({"row_key": pd.array(row_keys, dtype="int64"), "check_id": e.check_id,
                         "columns": ",".join(e.columns), "problem_zh": e.problem_zh})  # fmt: skip


def no_failures() -> pd.DataFrame:
    return pd.DataFrame(
        {"row_key": pd.Series([], dtype="int64")}
        | {c: pd.Series([], dtype="str") for c in ("check_id", "columns", "problem_zh")}
    )
