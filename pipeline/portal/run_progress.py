"""The pipeline runs in progress, and why the last one failed, as the Dagster instance records them (for the
upload status page: a clerk whose file waits learns that the last run stopped, e.g. on a full disk).

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


@dataclass(frozen=True)
class RunFailure:
    job: str
    ended_at: str  # local time, to the minute
    reasons_zh: list[str]  # a full disk named with its folder, else the step that failed (for the operators)

    @property
    def disk_full(self) -> bool:
        return any(r.startswith("磁盘空间不足") for r in self.reasons_zh)

    @property
    def summary_zh(self) -> str:
        """For a clerk's page: what happened and what becomes of the file, no server path."""
        if self.disk_full:
            return (f"上次处理（{self.ended_at}）因服务器磁盘空间不足未能完成。已提交的文件都已保存，"
                    "管理员清理磁盘空间后的下一次运行会处理它们")  # fmt: skip
        return (f"上次处理（{self.ended_at}）未成功完成。已提交的文件都已保存，下一次运行会再处理它们；"
                "如长时间未处理，请联系区应急管理局（地震局）")  # fmt: skip


def last_failure() -> RunFailure | None:
    """The last finished run, if it failed (None once a later run went through, or without an instance)."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    try:
        import datetime as dt

        import dagster as dg

        from pipeline.platform.failures import run_failure_zh

        instance = _instance()
        done = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=done), limit=1)
        if not runs or runs[0].status != dg.DagsterRunStatus.FAILURE:
            return None
        run = runs[0]
        stats = instance.get_run_stats(run.run_id)
        from pipeline.platform.clock import DISTRICT_TZ

        ended = (dt.datetime.fromtimestamp(stats.end_time, DISTRICT_TZ).strftime("%Y-%m-%d %H:%M")
                 if stats.end_time else "")  # Beijing time, whatever the server's clock  # fmt: skip
        return RunFailure(run.job_name, ended, run_failure_zh(instance, run.run_id) or ["运行未成功完成"])
    except Exception:  # best effort: the page goes on without it
        log.warning("could not read the Dagster instance for the last run's failure", exc_info=True)
        return None
