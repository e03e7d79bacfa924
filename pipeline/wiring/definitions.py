"""Dagster definitions: only assembles what the stage modules define.

Stages, as asset groups in the UI: intake -> validation -> scoring -> ledger -> publish (-> quake: one
partition per earthquake, reading the published snapshot).
"""

import dagster as dg

from pipeline.intake.assets import intake_assets
from pipeline.ledger.assets import ledger_assets
from pipeline.platform.progress import progress_logger
from pipeline.platform.resources import LitongStore, SparkResource
from pipeline.publish.assets import publish_assets
from pipeline.publish.snapshot import published_snapshot
from pipeline.quake.assets import (
    close_earthquake_job,
    declare_earthquake_job,
    quake_assets,
    quake_followup_job,
    quake_job,
)
from pipeline.scoring.assets import scoring_assets
from pipeline.wiring.jobs import daily_job, feedback_job, intake_job, main_job
from pipeline.wiring.schedules import daily_refresh
from pipeline.wiring.sensors import data_raw_sensor, earthquake_sensor

all_assets = [*intake_assets, *scoring_assets, *ledger_assets, *publish_assets, published_snapshot]
"""The survey pipeline's assets (main_job); the earthquake response's are quake_assets."""

defs = dg.Definitions(
    assets=[*all_assets, *quake_assets],
    jobs=[
        main_job,
        intake_job,
        feedback_job,
        daily_job,
        quake_job,
        quake_followup_job,
        declare_earthquake_job,
        close_earthquake_job,
    ],
    schedules=[daily_refresh],
    sensors=[data_raw_sensor, earthquake_sensor],
    resources={"store": LitongStore(), "spark": SparkResource()},
    loggers={"progress": progress_logger},
    executor=dg.in_process_executor,
)
