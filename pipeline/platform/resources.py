"""Dagster resources: where the store, the uploads and the outputs are; one writer per database."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from pipeline.platform import clock, failures, paths, store
from pipeline.platform.writer_lock import RUN_WAIT_SECONDS, fail_dead_runs, run_alive, wait_seconds, writer_lock
from pipeline.registries import uploads as upload_audit

QUAKE_TAG = "litong/quake"  # runs of quake_job: never hold (or wait for) the survey database's writer lock


class LitongStore(dg.ConfigurableResource):
    """The DuckDB file and the folders of one deployment. Empty = the defaults of paths.py
    (project folders, overridable by LITONG_DB / LITONG_DATA_RAW / LITONG_OUTPUT).

    In a run, the resource holds the database's writer lock from the run's first step to its last
    (pipeline/platform/writer_lock.py), and first marks failed any earlier run whose process died; it keeps the
    database open from the first step to the last (store.held_open), so a step's connection costs no file opening. Outside a run
    (a sensor reading data_raw/), and in an earthquake response run, it takes no lock."""

    database: str = ""
    data_raw: str = ""
    output: str = ""

    def db_path(self) -> Path:
        return Path(self.database) if self.database else paths.database_path()

    def raw_dir(self) -> Path:
        return Path(self.data_raw) if self.data_raw else paths.data_raw_dir()

    def out_dir(self) -> Path:
        return Path(self.output) if self.output else paths.output_dir()

    def cache_dir(self) -> Path:
        """Files kept between runs to save work (the ledger CSV's fragments), beside the database: never read
        by people, safe to delete (the next run writes them again)."""
        return self.db_path().parent / ".cache"

    def published_db_path(self) -> Path:
        """The snapshot readers use (published at the end of every run)."""
        return self.out_dir() / "published" / paths.PUBLISHED_DB_NAME

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The database, for one step. A full disk fails the step with a Chinese message naming the folder (the
        step's failure in the Dagster UI, on the command line and in `status`), the original error chained."""
        clock.use_data_raw(self.raw_dir())  # the district's date follows this deployment's data (its sample marker)
        upload_audit.use_output(self.out_dir())  # the portal's upload audit of this deployment
        try:
            with store.connect(self.db_path()) as con:
                yield con
        except Exception as e:
            if (message := failures.explain(e)) is None:
                raise
            raise dg.Failure(description=message) from e

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["LitongStore"]:
        run = context.dagster_run
        if run is None or run.tags.get(QUAKE_TAG):  # the quake response reads the snapshot, writes its own store
            yield self
            return
        db = self.db_path()
        what = f"Dagster 运行 {run.job_name}（{run.run_id[:8]}）"
        with run_alive(db, run.run_id), writer_lock(db, what, wait_seconds(RUN_WAIT_SECONDS), context.log.info):
            if context.instance is not None:
                for run_id in fail_dead_runs(context.instance, db, run.run_id):
                    context.log.warning(f"运行 {run_id[:8]} 的进程已不存在，已标记为失败")
            with store.held_open(db):  # one open database for all the run's steps
                yield self


class SparkResource(dg.ConfigurableResource):
    """The Spark session of the Spark engine (LITONG_ENGINE=spark; pipeline/engines/settings.py): the process's one
    session, whose master comes from the environment (LITONG_SPARK_MASTER, or spark-submit's own, or local[*]),
    as the validation's does. It starts on first use only: a run on the DuckDB engine never starts a JVM."""

    def session(self):  # -> pyspark.sql.SparkSession
        from pipeline.engines.seam import spark_session

        return spark_session()
