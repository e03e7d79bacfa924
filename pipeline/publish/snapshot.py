"""The published snapshot: a copy of the database taken at the end of every run, for readers.

Readers (`cli status`, `explain`, `export`, the web page, the earthquake response) open the snapshot
read-only, so they never wait behind a long run holding the writer lock, and never see a half-done
run: the snapshot is taken after the last stage, while the run still holds the lock, and renamed into
place whole. A run that failed publishes nothing, and readers keep the last complete picture, which
`snapshot_info` dates.
"""

import shutil
from pathlib import Path

import dagster as dg
import duckdb

from pipeline import faults, store
from pipeline.atomic import atomic_path
from pipeline.clock import beijing_now
from pipeline.intake.schema import KINDS
from pipeline.publish.asset_register import write_asset_register
from pipeline.resources import LitongStore
from pipeline.scoring.assets import SCORED_KINDS


def publish_snapshot(db_path: Path, target: Path, run_id: str, job_name: str) -> dict:
    """Copy the database (checkpointed, no connection open) to `target`, stamped with the run and with the asset
    register its readers need (pipeline/publish/asset_register.py)."""
    with store.connect(db_path) as con:
        con.execute("CHECKPOINT")  # everything committed is in the main file; the WAL is empty
    info = {"published_at": beijing_now(), "run_id": run_id, "job_name": job_name}
    with atomic_path(target) as tmp:
        shutil.copyfile(db_path, tmp)
        con = duckdb.connect(str(tmp))
        try:
            con.execute(
                "CREATE OR REPLACE TABLE snapshot_info AS SELECT ?::TIMESTAMP AS published_at, "
                "?::VARCHAR AS run_id, ?::VARCHAR AS job_name",
                [info["published_at"], run_id, job_name],
            )
            write_asset_register(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        faults.point("snapshot:before_rename")
    return info


def snapshot_info(path: Path) -> dict | None:
    """When and by which run a snapshot was published; None when there is none."""
    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute("SELECT published_at, run_id, job_name FROM snapshot_info").fetchall()
    except duckdb.CatalogException:
        return None
    finally:
        con.close()
    return dict(zip(("published_at", "run_id", "job_name"), row[0], strict=True)) if row else None


@dg.asset(
    group_name="publish",
    deps=["briefing", "ledger_exports", "appraisal_worklist", *(f"stg_{k}" for k in KINDS),
          *(f"scores_{k}" for k in SCORED_KINDS)],
    description="A read-only copy of the database published at the end of the run (output/published/), "
    "for status, explain, export, the web page and the earthquake response.",
)  # fmt: skip
def published_snapshot(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
    target = store.published_db_path()
    info = publish_snapshot(store.db_path(), target, context.run_id, context.dagster_run.job_name)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(target)), "published_at": str(info["published_at"]),
                  "bytes": target.stat().st_size}
    )  # fmt: skip
