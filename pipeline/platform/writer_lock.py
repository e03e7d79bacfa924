"""One writer of the database at a time, enforced by OS file locks that die with their holder.

* The **writer lock** (`<database>.writer.lock`) is held for a whole run by whoever writes: a run in the
  Dagster UI or daemon, `cli run` / `refresh`, `cli feedback`. It is an `flock`: the kernel releases it
  when the holding process ends, however it ends (kill -9 included), so nothing stays locked. A second
  writer waits a bounded time, saying so, then refuses with a message naming the holder; it never starts
  half-way and fails later.
* Every run also holds a **run lock** (`<database folder>/.litong-runs/<run id>.lock`) for as long as its
  process lives. A run that Dagster still shows as STARTED but whose run lock is free died without
  telling anyone (kill -9, power loss); the next writer, and the upload sensor on every tick, mark it
  failed, so it blocks neither the CLI nor the UI's run queue (whose tag limit would otherwise wait for
  it forever).

Reentrant within one process: `cli feedback --apply` holds the lock and then runs the daily job, whose
run takes the same lock again.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.platform.clock import beijing_now

WAIT_ENV = "LITONG_WRITER_WAIT"
RUN_WAIT_SECONDS = 900.0  # a run queued behind another waits up to 15 minutes
CLI_WAIT_SECONDS = 60.0
POLL_SECONDS = 0.2
DEAD_RUN_GRACE_SECONDS = 60  # a STARTED run with no run-lock file yet may still be starting up
RECHECK_SECONDS = 1.0  # a run whose lock is free is looked at again after this, before it is failed
WRITE_TAG = ("litong/database", "write")

_held: dict[str, list[int]] = {}  # lock file -> [fd, depth], for this process


class WriterBusy(Exception):
    """Another process is writing the database (Chinese message, for the person waiting)."""


def lock_path(db_path: Path) -> Path:
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".writer.lock")


def runs_dir(db_path: Path) -> Path:
    return Path(db_path).parent / ".litong-runs"


def wait_seconds(default: float) -> float:
    value = os.environ.get(WAIT_ENV)
    return float(value) if value else default


def holder(db_path: Path) -> str:
    """Who holds (or last held) the writer lock, as people read it."""
    try:
        info = json.loads(lock_path(db_path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "未知进程"
    return f"{info.get('what', '未知运行')}，进程 {info.get('pid', '?')}，开始于 {info.get('since', '?')}"


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _key(path: Path) -> str:
    return str(Path(path).resolve())  # resolves whether or not the file exists yet


@contextmanager
def _flock(path: Path, on_busy: Callable[[], None]) -> Iterator[tuple[int, bool]]:
    """Hold an exclusive flock on `path`, reentrant in this process; yields (fd, first: this is the outermost
    hold). `on_busy` is called while another process holds it; it raises to give up."""
    key = _key(path)
    if key in _held:
        _held[key][1] += 1
        try:
            yield _held[key][0], False
        finally:
            _held[key][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while not _try_flock(fd):
            on_busy()
            time.sleep(POLL_SECONDS)
    except BaseException:
        os.close(fd)
        raise
    _held[key] = [fd, 1]
    try:
        yield fd, True
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            del _held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@contextmanager
def writer_lock(
    db_path: Path, what: str, wait: float = CLI_WAIT_SECONDS, say: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the database's writer lock for the block. Waits up to `wait` seconds for another writer (telling
    `say` once), then raises WriterBusy."""
    path = lock_path(db_path)
    deadline = time.monotonic() + wait
    told = False

    def on_busy() -> None:
        nonlocal told
        if time.monotonic() >= deadline:
            raise WriterBusy(
                f"数据库 {db_path} 正被另一个运行写入（{holder(db_path)}）：同一时间只允许一个运行写入，"
                f"已等待 {wait:.0f} 秒，请等它结束后再试"
            )
        if not told and say is not None:
            say(f"数据库正被另一个运行写入（{holder(db_path)}），等待其结束（最多 {wait:.0f} 秒）……")
            told = True

    with _flock(path, on_busy) as (fd, first):
        if first:  # the outermost holder in this process says who holds the lock
            info = {"pid": os.getpid(), "what": what, "since": f"{beijing_now():%Y-%m-%d %H:%M:%S}"}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info, ensure_ascii=False).encode(), 0)
        yield


@contextmanager
def run_alive(db_path: Path, run_id: str) -> Iterator[None]:
    """Held for as long as the run's process lives: proof that the run is not dead."""

    def never_busy() -> None:  # one run id, one process
        raise RuntimeError(f"run {run_id} is already running in another process")

    path = runs_dir(db_path) / f"{run_id}.lock"
    with _flock(path, never_busy):  # the file stays: free and present = the run's process has ended
        yield


def _run_is_dead(db_path: Path, run_id: str, started: float | None) -> bool:
    """The run's lock file is free (its process ended), or it never appeared long after the run started."""
    path = runs_dir(db_path) / f"{run_id}.lock"
    if not path.exists():
        return started is not None and time.time() - started > DEAD_RUN_GRACE_SECONDS
    if _key(path) in _held:
        return False  # held by this very process
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        if not _try_flock(fd):
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def fail_dead_runs(instance, db_path: Path, current_run_id: str | None = None) -> list[str]:
    """Mark failed every run that Dagster shows as in progress on this database but whose process is gone;
    remove the run-lock files of finished runs. Returns the run ids marked failed.

    A run that has just released its lock may not have recorded its success yet: a run found dead is
    looked at again a moment later and marked only if it is still shown in progress."""
    import dagster as dg

    in_progress = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=in_progress, tags={WRITE_TAG[0]: WRITE_TAG[1]}))
    candidates = []
    for run in runs:
        if run.run_id == current_run_id:
            continue
        record = instance.get_run_record_by_id(run.run_id)
        started = (record.start_time or record.create_timestamp.timestamp()) if record else None
        if _run_is_dead(db_path, run.run_id, started):
            candidates.append(run.run_id)
    _remove_finished_run_locks(db_path, {r.run_id for r in runs})
    if not candidates:
        return []
    time.sleep(RECHECK_SECONDS)
    dead = []
    for run_id in candidates:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in in_progress and _run_is_dead(db_path, run_id, None):
            instance.report_run_failed(run, message="运行进程已不存在（被终止或崩溃），标记为失败；数据库未被锁定")
            dead.append(run_id)
    return dead


def _remove_finished_run_locks(db_path: Path, in_progress: set[str]) -> None:
    folder = runs_dir(db_path)
    if not folder.is_dir():
        return
    for path in folder.glob("*.lock"):
        if path.stem not in in_progress and _run_is_dead(db_path, path.stem, None):
            path.unlink(missing_ok=True)
