"""The validation suite on Spark DataFrames (LITONG_ENGINE=spark; issue 16).

The same expectations as the DuckDB engine's (built once by pipeline/intake/validate.py: check id, columns and
the Chinese problem on the receipt; pipeline/engines/expectations.py), run by Great Expectations' Spark datasource over a Spark DataFrame of the rows to check, so the
quarantine reasons are those of the pandas run. GE reports a failing row by the `_row_key` column
(`unexpected_index_column_names`), as it reports the pandas index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from pipeline.engines.expectations import Expectation, failure_frame, no_failures, suite_for
from pipeline.platform.store import quote
from pipeline.registries.templates import Template

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROW_KEY = "_row_key"


def run_suite_on_spark(df: DataFrame, t: Template, expectations: list[Expectation]) -> tuple[pd.DataFrame, bool]:
    """One row per (row key, failed check), as the DuckDB engine's run_suite returns it, from a Spark DataFrame with a
    `_row_key` column and the expectations' columns."""
    if not expectations:
        return no_failures(), True
    batch_def, suite = suite_for(t.kind, expectations, on_spark=True)
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY]}
    )
    frames = []
    for r in result.results:
        e = expectations[r.expectation_config.meta["index"]]
        if r.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {e.check_id} on {e.column} raised on Spark: {r.exception_info}")
        keys = [row[ROW_KEY] for row in (r.result.get("unexpected_index_list") or [])]
        if keys:
            frames.append(failure_frame(e, keys))
    return (pd.concat(frames, ignore_index=True) if frames else no_failures()), bool(result.success)


def rows_on_spark(
    spark: SparkSession, con: duckdb.DuckDBPyConnection, table: str, expectations: list[Expectation]
) -> DataFrame:
    """The rows of `table` (which has `_row_key`) with the columns the expectations read, as a Spark DataFrame."""
    columns = [ROW_KEY, *dict.fromkeys(e.column for e in expectations)]
    arrow = con.sql(f"SELECT {', '.join(quote(c) for c in columns)} FROM {table}").to_arrow_table()
    return spark.createDataFrame(arrow)
