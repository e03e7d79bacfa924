"""Tables between DuckDB and Spark, through Arrow (no pandas: its nullable types need Arrow anyway)."""

from __future__ import annotations

import re
from pathlib import Path
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


def read_path(path: Path) -> str:
    """A local path as Spark's reader takes it: Hadoop expands glob characters ([ ] { } * ?) in a path to read,
    so they are escaped (a warehouse under a folder named like local[2] is still one folder)."""
    return re.sub(r"([\[\]{}*?\\])", r"\\\1", str(path))
