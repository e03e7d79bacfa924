"""The engine seam (issue 31): what the stages ask of an engine, and the one place an engine is chosen.

A stage says *what* to compute — the validation's expectations, the scoring's SQL over a kind's view — and an
engine computes it: `DuckDBEngine` (pipeline/engines/duckdb.py) in this process, over the store;
`SparkEngine` (pipeline/engines/spark/engine.py) on Apache Spark, from the staging published as Parquet. The
stages call `current()` and the methods of `Engine`; they import neither implementation, and only the Spark
implementation imports pyspark (a DuckDB run never starts a JVM: tests/test_spark.py).

The engines know no stage: what they need of one comes as arguments (the expectations, a `ScoringJob` with its
SQL and its rule set). So the floors stay in order — the engines on the ground floor, beside the store — and
no import goes round in a circle (tests/test_architecture.py).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.engines.base import Engine
from pipeline.engines.settings import engine as engine_name
from pipeline.engines.settings import spark_warehouse


def current(output_dir: Path | None = None) -> Engine:
    """The engine this deployment asks for (LITONG_ENGINE; pipeline/engines/settings.py). `output_dir` is
    where a Spark engine keeps its Parquet (LITONG_SPARK_WAREHOUSE, else <output>/spark)."""
    if engine_name() == "spark":
        from pipeline.engines.spark.engine import SparkEngine  # pyspark only on the Spark engine

        return SparkEngine(spark_warehouse(output_dir))
    from pipeline.engines.duckdb import DuckDBEngine

    return DuckDBEngine()


def spark_session():  # -> pyspark.sql.SparkSession
    """The Spark engine's session, started on first use (a JVM): for what hands it out (the Dagster resource)."""
    from pipeline.engines.spark.session import get_spark

    return get_spark()
