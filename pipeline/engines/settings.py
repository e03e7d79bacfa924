"""Which engine scores: the one place it is chosen (issue 16).

`LITONG_ENGINE=duckdb` (the default) scores in the DuckDB store, on one machine. `LITONG_ENGINE=spark` runs the
same rule files, transpiled, on Apache Spark over the staging tables published as Parquet (pipeline/engines/spark/,
pipeline/engines/spark/scoring.py); its master comes from `LITONG_SPARK_MASTER` (or, under spark-submit, from
the submit's own `--master`). Nothing here imports pyspark: the DuckDB run never starts a JVM.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from pipeline.platform import paths

ENGINES = ("duckdb", "spark")

# pyspark 4.3 warns on import that pandas 3 is newer than it knows. It is imported by the Spark engine and, when
# installed, by Great Expectations on either engine; the engine moves tables through Arrow only.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


class EngineError(ValueError):
    """The engine setting names no engine we have."""


def engine() -> str:
    value = os.environ.get("LITONG_ENGINE", "duckdb").strip().lower() or "duckdb"
    if value not in ENGINES:
        raise EngineError(f"LITONG_ENGINE={value!r}: must be one of {', '.join(ENGINES)}")
    return value


def spark_master() -> str | None:
    """`LITONG_SPARK_MASTER` (local[2], spark://host:7077, yarn, k8s://…); None leaves it to spark-submit,
    else local[*]."""
    return os.environ.get("LITONG_SPARK_MASTER") or None


def spark_warehouse(output_dir: Path | None = None) -> Path:
    """Where the Spark engine keeps its Parquet (the published staging tables and each scoring's results):
    `LITONG_SPARK_WAREHOUSE`, else output/spark."""
    given = os.environ.get("LITONG_SPARK_WAREHOUSE")
    return Path(given) if given else (output_dir or paths.output_dir()) / "spark"
