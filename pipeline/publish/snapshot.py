"""The published snapshot: a copy of the database taken at the end of every run, for readers.

Readers (`cli status`, `explain`, `export`, the web page, the earthquake response) open the snapshot
read-only, so they never wait behind a long run holding the writer lock, and never see a half-done
run: the snapshot is taken after the last stage, while the run still holds the lock, and renamed into
place whole. A run that failed publishes nothing, and readers keep the last complete picture, which
`snapshot_info` dates.

Nothing it holds changed (issue 30): no copy. What the snapshot holds is the database file as checkpointed
(DuckDB rewrites it only when something was committed: a run that changed nothing leaves its size and
modification time as they were) and the code that stamps it; their fingerprint is kept in a small JSON
beside the snapshot (STATE_NAME) with the size and time of the snapshot it made. A run that finds both the
same publishes nothing and records itself there as the run that confirmed the snapshot (`snapshot_info`
reports it; `published_at` stays the time the data was published).

When something changed, publishing costs a file copy and no more: the asset register its readers need is kept
in the store by asset (pipeline/publish/asset_register.py: only the rows of the assets that changed are
written), so the copy carries it and is only stamped (`snapshot_info`, a one-row table). The file is copied
whole by the kernel: on this file system (ext4, no reflinks) a copy is the fastest way DuckDB allows
(benchmarks/bench_snapshot.py measures it against ATTACH + COPY FROM DATABASE and EXPORT DATABASE); DuckDB
has no way to bring an older copy up to date in place, and a reader may hold the old one open.
"""

import functools
import json
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb

from pipeline.platform import faults, stage_inputs, store
from pipeline.platform.atomic import atomic_path, write_bytes_atomic
from pipeline.platform.clock import beijing_now
from pipeline.platform.paths import PROJECT_ROOT
from pipeline.platform.resources import LitongStore
from pipeline.publish.asset_register import update_asset_register
from pipeline.publish.snapshot_state import STATE_NAME as STATE_NAME  # re-exported: where readers found it
from pipeline.publish.snapshot_state import _file_id, _read_state, _state_path, snapshot_info
from pipeline.registries.templates import KINDS
from pipeline.scoring.assets import SCORED_KINDS

STAMP_FILES = ("pipeline/publish/snapshot.py", "pipeline/publish/asset_register.py")


@functools.cache
def stamp_version() -> str:
    """The code that stamps a snapshot (snapshot_info, the asset register) and DuckDB's version."""
    return stage_inputs.fingerprint(stage_inputs.files_version(*(PROJECT_ROOT / f for f in STAMP_FILES)),
                                    duckdb.__version__)  # fmt: skip


def source_fingerprint(db_path: Path) -> str:
    """What a snapshot of `db_path` (checkpointed: its WAL is empty) would hold."""
    return stage_inputs.fingerprint(_file_id(db_path), stamp_version())


def _write_state(target: Path, fingerprint: str, run_id: str, job_name: str) -> None:
    state = {"source": fingerprint, "snapshot": _file_id(target), "run_id": run_id, "job_name": job_name,
             "confirmed_at": beijing_now().isoformat()}  # fmt: skip
    write_bytes_atomic(_state_path(target), json.dumps(state, ensure_ascii=False).encode("utf-8"))


def publish_snapshot(db_path: Path, target: Path, run_id: str, job_name: str) -> dict:
    """Bring the asset register its readers need up to date in the database (pipeline/publish/asset_register.py),
    then copy the database (checkpointed, no connection open) to `target`, stamped with the run — unless the
    snapshot there already holds what the database holds (then only the state beside it names this run). The
    result says whether it copied and how many rows of the register were written."""
    seconds, started = {}, time.monotonic()

    def lap(part: str) -> None:  # where a publication's seconds went, in its metadata
        nonlocal started
        seconds[part] = round(time.monotonic() - started, 2)
        started = time.monotonic()

    with store.connect(db_path) as con:
        register = update_asset_register(con)
        lap("register")
        con.execute("CHECKPOINT")  # everything committed is in the main file; the WAL is empty
        lap("checkpoint")
    fingerprint = source_fingerprint(db_path)
    state = _read_state(target)
    if state is not None and state.get("source") == fingerprint:
        _write_state(target, fingerprint, run_id, job_name)
        info = snapshot_info(target) or {}
        return {**info, "copied": False, "register_rows_written": register.rows_written, "seconds": seconds}
    info = {"published_at": beijing_now(), "run_id": run_id, "job_name": job_name}
    _state_path(target).unlink(missing_ok=True)  # from here until the new state, the old one describes nothing
    with atomic_path(target) as tmp:
        shutil.copyfile(db_path, tmp)
        lap("copy")
        con = duckdb.connect(str(tmp))
        try:
            con.execute(
                "CREATE OR REPLACE TABLE snapshot_info AS SELECT ?::TIMESTAMP AS published_at, "
                "?::VARCHAR AS run_id, ?::VARCHAR AS job_name",
                [info["published_at"], run_id, job_name],
            )
            con.execute("CHECKPOINT")
        finally:
            con.close()
        lap("stamp")
        faults.point("snapshot:before_rename")
    _write_state(target, fingerprint, run_id, job_name)
    return {**info, "copied": True, "register_rows_written": register.rows_written, "seconds": seconds}


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
        metadata={"path": dg.MetadataValue.path(str(target)), "published_at": str(info.get("published_at")),
                  "bytes": target.stat().st_size, "copied": info["copied"],
                  "register_rows_written": info["register_rows_written"],
                  "seconds": dg.MetadataValue.json(info["seconds"])}
    )  # fmt: skip
