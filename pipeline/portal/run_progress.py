"""The pipeline runs in progress, as the Dagster instance records them (for the upload status page).

Read-only and best effort: without `DAGSTER_HOME` (no instance), or if the instance cannot be read, the page
just says the file waits for the next run; it never fails because of this.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cache

log = logging.getLogger(__name__)
ACTIVE_ZH = {"QUEUED": "排队中", "NOT_STARTED": "准备中", "STARTING": "启动中", "STARTED": "运行中"}


@dataclass(frozen=True)
class RunProgress:
    job: str
    status_zh: str
    done: int
    total: int
    current: str | None  # the step running now


@cache
def _instance():
    import dagster as dg

    return dg.DagsterInstance.get()


def active_runs(limit: int = 5) -> list[RunProgress]:
    if not os.environ.get("DAGSTER_HOME"):
        return []
    try:
        import dagster as dg
        from dagster import DagsterEventType

        instance = _instance()
        statuses = [getattr(dg.DagsterRunStatus, s) for s in ACTIVE_ZH]
        out = []
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=statuses), limit=limit):
            stats = instance.get_run_stats(run.run_id)
            plan = (
                instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
                if run.execution_plan_snapshot_id
                else None
            )
            total = len(plan.step_keys_to_execute) if plan else 0
            started = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_START, limit=1,
                                                   ascending=False).records  # fmt: skip
            current = started[0].event_log_entry.step_key if started else None
            out.append(RunProgress(run.job_name, ACTIVE_ZH.get(run.status.value, run.status.value),
                                   stats.steps_succeeded, total, current))  # fmt: skip
        return out
    except Exception:  # best effort: the page goes on without it
        log.warning("could not read the Dagster instance for run progress", exc_info=True)
        return []
