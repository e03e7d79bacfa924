"""Runs started at 确认提交: a confirmed upload does not wait for the upload sensor's next tick.

At confirm the portal asks for a run of the landed kind. One background thread per portal starts
`python -m pipeline.cli run --kind K --first` (the intake and validation, which write the receipts, or the
feedback's application, then the published snapshot: the receipt or the changed hazard shows in seconds), then
`run --kind K` (everything downstream: scores, ledger, charts, briefing). The CLI takes the database's writer
lock (pipeline/platform/writer_lock.py) as every writer does, waiting behind a run already going (the sensor's, the
daemon's, a person's) instead of refusing; the thread itself never starts a second run while its own is
going: what is confirmed meanwhile is queued; the kinds confirmed during a first pass get their own first pass
before the full run, the full run covers them all, and what comes during the full run waits for its end.

The pipeline stays the one writer of the database: the portal only starts its command line.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.platform.clock import beijing_now
from pipeline.platform.paths import PROJECT_ROOT
from pipeline.platform.writer_lock import RUN_WAIT_SECONDS, WAIT_ENV

log = logging.getLogger(__name__)


@dataclass
class Launch:
    """One command started: for the tests and the benchmark (what ran, when, with what result)."""

    kinds: tuple[str, ...]
    first: bool
    started: float
    ended: float | None = None
    code: int | None = None


@dataclass
class Runner:
    data_raw: Path
    output: Path
    database: Path
    log_dir: Path
    launches: list[Launch] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._working = False  # from taking the kinds to the end of their runs (set under the lock)
        self._thread: threading.Thread | None = None

    def request(self, kind: str) -> None:
        """A file of `kind` was landed: run it as soon as the run going (if any) ends."""
        with self._cond:
            self._pending.add(kind)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="litong-runner", daemon=True)
                self._thread.start()
            self._cond.notify()

    def busy(self) -> bool:
        with self._cond:
            return bool(self._pending) or self._working  # not the process: none yet while it is being started

    def stop(self) -> None:
        """The portal stops: nothing new starts; a run going is left to finish (it holds the writer lock and
        ends by itself; killing it would only leave a failed run to redo)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._working = False
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                kinds = tuple(sorted(self._pending))
                self._pending.clear()
                self._working = True
            self._run(kinds, True)
            follow = set(kinds)
            while more := self._take():  # confirmed during the first pass: their receipts before the long run
                self._run(more, True)
                follow |= set(more)
            self._run(tuple(sorted(follow)), False)

    def _take(self) -> tuple[str, ...]:
        with self._cond:
            kinds = () if self._stopping else tuple(sorted(self._pending))
            self._pending.clear()
            return kinds

    def _run(self, kinds: tuple[str, ...], first: bool) -> None:
        args = [sys.executable, "-m", "pipeline.cli", "run", *[a for k in kinds for a in ("--kind", k)]]
        args += ["--first"] if first else []
        env = {**os.environ, "LITONG_DATA_RAW": str(self.data_raw), "LITONG_OUTPUT": str(self.output),
               "LITONG_DB": str(self.database), WAIT_ENV: str(RUN_WAIT_SECONDS)}  # fmt: skip
        launch = Launch(kinds, first, time.time())
        self.launches.append(launch)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log_dir / "runs.log", "ab") as out:
                out.write(f"\n== {beijing_now():%Y-%m-%d %H:%M:%S} {' '.join(args[3:])}\n".encode())
                out.flush()
                process = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
                launch.code = process.wait()
                out.write(f"-- ended {launch.code} after {time.time() - launch.started:.1f} s\n".encode())
        except OSError:
            log.exception("could not start the pipeline run for %s", kinds)
            launch.code = -1
        finally:
            launch.ended = time.time()
        if launch.code:
            log.warning("the pipeline run for %s ended with %s (see %s)", kinds, launch.code, self.log_dir / "runs.log")
