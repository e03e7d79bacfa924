"""The published snapshot's stamps as readers see them: when and by which run it was published, and the
state beside it (what it was made from, the last run that confirmed it). Apart from the asset
(pipeline/publish/snapshot.py) so that `cli status` and a `cli run` with nothing to do read them without
loading Dagster."""

import json
from pathlib import Path

import duckdb

STATE_NAME = "snapshot_state.json"  # beside the snapshot: what it was made from, and the last run that confirmed it


def _file_id(path: Path) -> list[int]:
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


def _state_path(target: Path) -> Path:
    return Path(target).parent / STATE_NAME


def _read_state(target: Path) -> dict | None:
    """The state recorded beside `target`, when it describes the snapshot on disk (same size and time)."""
    try:
        state = json.loads(_state_path(target).read_text(encoding="utf-8"))
        return state if state.get("snapshot") == _file_id(target) else None
    except (OSError, ValueError, AttributeError):
        return None


def snapshot_info(path: Path) -> dict | None:
    """When and by which run a snapshot was published; None when there is none. A later run that found
    nothing changed and confirmed it is the `run_id` (and `job_name`) reported; `published_at` stays the
    time the data was published."""
    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute("SELECT published_at, run_id, job_name FROM snapshot_info").fetchall()
    except duckdb.CatalogException:
        return None
    finally:
        con.close()
    if not row:
        return None
    info = dict(zip(("published_at", "run_id", "job_name"), row[0], strict=True))
    state = _read_state(path)
    if state is not None and state.get("run_id"):
        info.update(run_id=state["run_id"], job_name=state.get("job_name", info["job_name"]))
    return info
