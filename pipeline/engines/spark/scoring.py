"""Score a kind on Apache Spark with the same rule files (LITONG_ENGINE=spark; issue 16).

1. The kind's staging tables are published as Parquet partitioned by town, incrementally
   (staging.py), and read by Spark as tables.
2. The reference tables and the rule titles go to Spark as they are installed in DuckDB.
3. The kind's view (rules/views/<kind>.sql), the scan with every rule condition, the findings and the scores
   are the scoring stage's own SQL (pipeline/scoring/engine.py, handed over as a ScoringJob), transpiled
   (pipeline/engines/spark/transpile.py), and written as Parquet under `<warehouse>/scoring/<kind>/run=<run_id>/`.
4. The scoring stage (scoring/engine.py score_kind) loads that Parquet into the store in one transaction
   (SparkEngine.insert_results); the hazard ledger then updates
   set-based from the scores in DuckDB, as after a DuckDB scoring. Why DuckDB: the ledger is the district's
   official record, its hazard numbers and history are written all-or-nothing in one ACID transaction, and
   it holds hazards (a few per cent of the assets), not assets; Spark over plain Parquet has no such
   transaction. A national ledger would move to a table format with transactions (Delta Lake or Iceberg) on
   Spark; the set-based SQL of pipeline/ledger would carry over.

The rule set is checked for Spark before anything runs: a condition or view that does not translate, or that
Spark does not accept, stops the scoring with the rule or view named (`rules.check`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from pipeline.engines.base import SCORING_INPUT, ScoringJob
from pipeline.engines.spark import rules as spark_rules
from pipeline.engines.spark import staging, transpile
from pipeline.engines.spark.frames import read_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class SparkScoring:
    run_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)  # by phase (benchmarks/bench_spark.py prints them)

    @property
    def input(self) -> Path:
        return self.run_dir / "input"

    @property
    def findings(self) -> Path:
        return self.run_dir / "findings"

    @property
    def scores(self) -> Path:
        return self.run_dir / "scores"


def score_on_spark(
    spark: SparkSession, con: duckdb.DuckDBPyConnection, job: ScoringJob, warehouse: Path
) -> SparkScoring:
    """Findings and scores of every asset of the kind, computed by Spark and written as Parquet (the store is
    not changed here: SparkEngine.insert_results loads them in the scoring's transaction)."""
    ruleset, kind = job.ruleset, job.kind
    out = run_folder(warehouse, kind, job.run_id)
    clock = _Phases(out.seconds)
    with clock("check rules on Spark"):
        spark_rules.check(spark, ruleset, kind)
    with clock("publish staging as Parquet"):
        for table in job.tables:
            folder, _ = staging.publish(con, table, warehouse / "staging", job.staging_context(table))
            spark_rules.register_parquet(spark, con, table, folder)
    with clock("reference tables and views"):
        spark_rules.register_reference(spark, con, ruleset)
        spark_rules.create_views(spark, ruleset, kind)
    with clock("view and rules → input"):
        _write(spark, transpile.query(job.input_select), out.input, SCORING_INPUT)
    with clock("findings"):
        _write(spark, transpile.query(job.findings_row), out.findings, "findings")
    with clock("scores"):
        _write(spark, transpile.query(job.scores_sql), out.scores, None)
    return out


def run_folder(warehouse: Path, kind: str, run_id: str) -> SparkScoring:
    """Where a scoring of the kind keeps its Parquet."""
    return SparkScoring(warehouse / "scoring" / kind / f"run={run_id}")


class _Phases:
    def __init__(self, into: dict[str, float]):
        self.into = into

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.into[name] = time.perf_counter() - started


def _write(spark: SparkSession, sql: str, path: Path, view: str | None) -> None:
    """The query's result as Parquet at `path` (replaced whole), then read back as the temporary view `view`."""
    spark.sql(sql).write.mode("overwrite").parquet(str(path))
    if view:
        spark.read.parquet(read_path(path)).createOrReplaceTempView(view)


def forget_other_runs(warehouse: Path, kind: str, run_id: str) -> None:
    """Once the store holds a run, the Parquet of the kind's earlier (or abandoned) runs goes."""
    for old in (warehouse / "scoring" / kind).glob("run=*"):
        if old.name != f"run={run_id}":
            shutil.rmtree(old, ignore_errors=True)
