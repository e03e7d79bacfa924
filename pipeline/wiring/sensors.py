"""The upload sensor: a new, changed or removed file in data_raw/ starts a run.

A run covers what depends on the changed files: the changed survey kinds' assets and everything
downstream of them (ledger, charts, briefing), plus the feedback step when feedback changed; when
only feedback files changed, feedback_job applies them and republishes. A file outside the kind
folders starts everything (intake registers it as misplaced, with a receipt). The cursor keeps (size, mtime) of every file already handed to a run,
so an unchanged file never starts one. A file written in the last SETTLE_SECONDS is left for the
next tick: a department's copy may still be in progress. Office lock files (~$…) and hidden files
are ignored.
"""

import hashlib
import json
import time
from pathlib import Path

import dagster as dg

from pipeline.platform.resources import LitongStore
from pipeline.quake.assets import quake_events, quake_followup_job, quake_job
from pipeline.quake.event import DECLARING_UNIT, EVENTS_FOLDER, EventError, declaring_unit, read_event
from pipeline.registries.events import CLOSED_FOLDER
from pipeline.registries.templates import KINDS
from pipeline.wiring.jobs import feedback_job, main_job

SETTLE_SECONDS = 10
Stamps = dict[str, list[int]]


def _ignored(rel: Path) -> bool:
    """Hidden files and folders, Office lock files, unfinished downloads."""
    hidden = any(part.startswith(".") for part in rel.parts)
    return hidden or rel.name.startswith("~$") or rel.suffix.lower() in {".tmp", ".part", ".crdownload"}


def scan(root: Path, now: float | None = None) -> tuple[Stamps, list[str]]:
    """(size, mtime_ns) of every settled upload under root, and the files still being written."""
    now = time.time() if now is None else now
    settled: Stamps = {}
    settling: list[str] = []
    if not root.is_dir():
        return settled, settling
    for p in sorted(root.rglob("*")):
        if not p.is_file() or _ignored(p.relative_to(root)):
            continue
        st = p.stat()
        rel = p.relative_to(root).as_posix()
        if now - st.st_mtime < SETTLE_SECONDS:
            settling.append(rel)
        else:
            settled[rel] = [st.st_size, st.st_mtime_ns]
    return settled, settling


def changes(previous: Stamps, current: Stamps) -> list[str]:
    """Files added, changed or removed since the previous run request (the earthquake folder is the
    earthquake sensor's, never a survey run's)."""
    return sorted(rel for rel in previous.keys() | current.keys()
                  if previous.get(rel) != current.get(rel) and not rel.startswith(f"{EVENTS_FOLDER}/"))  # fmt: skip


def what_to_run(changed: list[str]) -> tuple[str, list[dg.AssetKey] | None]:
    """The job, and the assets of it to run (None: the whole job), for these changed files."""
    folders = {rel.split("/", 1)[0] if "/" in rel else "" for rel in changed}
    if folders == {"feedback"}:
        return feedback_job.name, None
    if not folders <= {*KINDS, "feedback", "quake_feedback"}:
        return main_job.name, None
    from pipeline.wiring.assets import every_asset  # the asset graph, only when a selection is asked for

    roots = [f"raw_{k}" for k in sorted(folders - {"feedback", "quake_feedback"})]
    roots += ["ledger_feedback"] if "feedback" in folders else []
    roots += ["ledger_quake_damage"] if "quake_feedback" in folders else []
    return main_job.name, sorted(dg.AssetSelection.assets(*roots).downstream().resolve(every_asset))


def _fail_dead_runs(context: dg.SensorEvaluationContext, store: LitongStore) -> None:
    """A run killed without a word (kill -9) would hold the UI's one-writer queue slot forever: mark it
    failed on every tick (pipeline/platform/writer_lock.py tells a dead run by its free run lock)."""
    from pipeline.platform.writer_lock import fail_dead_runs

    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a sensor context built without an instance (tests)
        return
    for run_id in fail_dead_runs(instance, store.db_path()):
        context.log.warning(f"run {run_id} was still shown in progress but its process is gone: marked failed")


@dg.sensor(
    name="data_raw_sensor",
    jobs=[main_job, feedback_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts a run when a department drops a new or changed file in data_raw/.",
)
def data_raw_sensor(context: dg.SensorEvaluationContext, store: LitongStore):
    _fail_dead_runs(context, store)
    previous: Stamps = json.loads(context.cursor) if context.cursor else {}
    settled, settling = scan(store.raw_dir())
    # a file still being written keeps its old stamp (or stays absent) until it settles
    current = {**{r: s for r, s in previous.items() if r in settling}, **settled}
    changed = changes(previous, current)
    if not changed:
        waiting = f"; waiting for {len(settling)} file(s) still being written" if settling else ""
        return dg.SkipReason(f"No new or changed files in data_raw/{waiting}")
    job_name, selection = what_to_run(changed)
    digest = hashlib.sha256(json.dumps({r: current.get(r) for r in changed}, sort_keys=True).encode()).hexdigest()
    context.update_cursor(json.dumps(current, sort_keys=True))
    context.log.info(f"{len(changed)} changed file(s) -> {job_name}: {', '.join(changed[:10])}")
    return dg.RunRequest(
        run_key=digest[:32],
        job_name=job_name,
        asset_selection=selection,
        tags={"litong/trigger": "data_raw_sensor", "litong/changed_files": str(len(changed))},
    )


@dg.sensor(
    name="earthquake_sensor",
    jobs=[quake_job, quake_followup_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="An event file in data_raw/earthquakes/YJJ/ starts the earthquake response for that event; "
    "灾情反馈 batches a published snapshot has taken since an event's last 续报 start its follow-up.",
)
def earthquake_sensor(context: dg.SensorEvaluationContext, store: LitongStore):
    previous: Stamps = json.loads(context.cursor) if context.cursor else {}
    settled, _ = scan(store.raw_dir() / EVENTS_FOLDER)
    # event files only: the bureau's 已结束/ records closures (written by close_earthquake_job), not events
    current = {
        f"{EVENTS_FOLDER}/{rel}": stamp for rel, stamp in settled.items() if f"/{CLOSED_FOLDER}/" not in f"/{rel}"
    }
    changed = [rel for rel in sorted(current) if previous.get(rel) != current[rel]]
    context.update_cursor(json.dumps(current, sort_keys=True))
    requests, new_keys = [], []
    for rel in changed:
        problem, event = _event_of(store, rel)
        if problem:
            refused_note(store, rel, problem)
            context.log.warning(f"{rel}: {problem}")
            continue
        if event.event_id not in new_keys:
            new_keys.append(event.event_id)
            requests.append(dg.RunRequest(run_key=f"{event.event_id}:{current[rel][1]}", partition_key=event.event_id,
                                          job_name=quake_job.name, tags={"litong/trigger": "earthquake_sensor"}))  # fmt: skip
    requests += _follow_up_requests(store, {r.partition_key for r in requests})
    if not requests:
        return dg.SkipReason("No new earthquake event and no new 灾情反馈 batch")
    return dg.SensorResult(run_requests=requests,
                           dynamic_partitions_requests=[quake_events.build_add_request(new_keys)])  # fmt: skip


def _follow_up_requests(store: LitongStore, responding: set[str]) -> list[dg.RunRequest]:
    """One quake_followup_job run per event with batches past its last 续报 (keyed by the last batch, so a
    batch starts one run however many ticks see it)."""
    from pipeline.quake.followup import pending_follow_ups

    pending = pending_follow_ups(store.published_db_path(), store.out_dir())
    return [dg.RunRequest(run_key=f"followup:{eid}:{k}", partition_key=eid, job_name=quake_followup_job.name,
                          tags={"litong/trigger": "earthquake_sensor"})
            for eid, k in sorted(pending.items()) if eid not in responding]  # fmt: skip


def _event_of(store: LitongStore, rel: str):
    if declaring_unit(rel) != DECLARING_UNIT:
        return f"地震事件只能由区应急管理局（地震局）在 data_raw/{EVENTS_FOLDER}/{DECLARING_UNIT}/ 中登记", None
    try:
        return None, read_event(store.raw_dir() / rel)
    except EventError as e:
        return str(e), None


def refused_note(store: LitongStore, rel: str, problem: str) -> Path:
    """The Chinese reason an event file was not taken, beside the quake outputs."""
    from pipeline.platform.atomic import write_bytes_atomic

    path = store.out_dir() / "quake" / "未受理" / (Path(rel).name + "_未受理.txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(path, f"{rel}\n未受理：{problem}\n".encode())
