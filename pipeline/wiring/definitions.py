"""Dagster definitions: only assembles what the stage modules define.

Stages, as asset groups in the UI: intake -> validation -> scoring -> ledger -> publish (-> quake: one
partition per earthquake, reading the published snapshot).
"""

import dagster as dg

from pipeline.platform.progress import progress_logger
from pipeline.platform.resources import LitongStore, SparkResource
from pipeline.quake.assets import close_earthquake_job, declare_earthquake_job, quake_followup_job, quake_job
from pipeline.wiring.assets import all_assets, every_asset
from pipeline.wiring.jobs import daily_job, feedback_job, intake_job, main_job
from pipeline.wiring.schedules import daily_refresh
from pipeline.wiring.sensors import data_raw_sensor, earthquake_sensor

__all__ = ["all_assets", "defs"]  # all_assets: the survey pipeline's (main_job); tests materialize them

defs = dg.Definitions(
    assets=every_asset,
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
