"""The Spark engine behind the seam (LITONG_ENGINE=spark; pipeline/engines/seam.py chooses it).

* Validation: the same expectations by Great Expectations' Spark datasource over a Spark DataFrame of the rows
  (validate.py).
* Rules: a condition or view that does not translate to Spark SQL is refused when the rule set loads
  (rules.translation_problems); whether Spark accepts the rest is checked on Spark before scoring (rules.check).
* Scoring: the kind's staging published as Parquet by town (staging.py), the stage's SQL transpiled and run on
  Spark, its input, findings and scores written as Parquet (scoring.py) and loaded into the store in the
  scoring's one transaction. Spark scores a kind whole.

The session starts on first use (a JVM, a few seconds): loading the rule set or choosing the engine starts none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from pipeline.engines.base import SCORING_INPUT, ScoringJob
from pipeline.engines.expectations import Expectation
from pipeline.engines.spark import rules, scoring, session, validate
from pipeline.formats.excel_safe import sql_text

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pipeline.registries.templates import Template


class SparkEngine:
    name = "spark"

    def __init__(self, warehouse: Path, spark: Callable[[], SparkSession] | None = None):
        self.warehouse = warehouse
        self.spark = spark or session.get_spark  # the process's one session (its master: settings.spark_master)

    def validate_rows(
        self, con: duckdb.DuckDBPyConnection, table: str, t: Template, expectations: list[Expectation]
    ) -> tuple[pd.DataFrame, bool]:
        rows = validate.rows_on_spark(self.spark(), con, table, expectations)
        return validate.run_suite_on_spark(rows, t, expectations)

    def rule_problems(self, ruleset: Any, kind: str) -> list[str]:
        return rules.translation_problems(ruleset, kind)

    def scores_whole_kinds(self) -> bool:
        return True

    def score_input(self, con: duckdb.DuckDBPyConnection, job: ScoringJob) -> None:
        out = scoring.score_on_spark(self.spark(), con, job, self.warehouse)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {SCORING_INPUT} AS "
                    f"SELECT * EXCLUDE (hits) FROM read_parquet({_parquet(out.input)})")  # fmt: skip

    def insert_results(self, con: duckdb.DuckDBPyConnection, job: ScoringJob) -> None:
        out = scoring.run_folder(self.warehouse, job.kind, job.run_id)
        con.execute(f"INSERT INTO findings BY NAME SELECT * FROM read_parquet({_parquet(out.findings)})")
        con.execute(f"INSERT INTO scores BY NAME SELECT * FROM read_parquet({_parquet(out.scores)})")

    def finish(self, job: ScoringJob) -> None:
        scoring.forget_other_runs(self.warehouse, job.kind, job.run_id)


def _parquet(folder: Path) -> str:
    """read_parquet's arguments for the Parquet files Spark wrote in `folder` (the run=… folder is no column)."""
    return f"{sql_text(str(folder / '*.parquet'))}, hive_partitioning = false"
