"""Tables between DuckDB and Spark, through Arrow (no pandas: its nullable types need Arrow anyway)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def duckdb_to_spark(spark: SparkSession, con: duckdb.DuckDBPyConnection, sql: str, view: str) -> DataFrame:
    """The result of a DuckDB query as a Spark temporary view (small tables: reference tables, examples)."""
    table = con.sql(sql).to_arrow_table()
    df = spark.createDataFrame(table)
    df.createOrReplaceTempView(view)
    return df
