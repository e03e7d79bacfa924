"""The daily refresh: overdue is derived from the date, so the ledger, charts and briefing are
republished every morning even when nobody uploads anything."""

import dagster as dg

from pipeline.wiring.jobs import daily_job

daily_refresh = dg.ScheduleDefinition(
    name="daily_refresh",
    job=daily_job,
    cron_schedule="0 7 * * *",
    execution_timezone="Asia/Shanghai",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="07:00 Beijing time: refresh overdue, the ledger exports, the charts and the briefing.",
)
