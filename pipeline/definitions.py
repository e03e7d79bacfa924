"""Dagster definitions: only assembles what the stage modules define."""

from __future__ import annotations

import dagster as dg

from pipeline.intake.assets import intake_assets
from pipeline.ledger.assets import ledger_assets
from pipeline.resources import LitongStore
from pipeline.scoring.assets import scoring_assets

all_assets = [*intake_assets, *scoring_assets, *ledger_assets]

main_job = dg.define_asset_job(
    "main_job",
    selection=dg.AssetSelection.all(),
    description="Everything, from uploads to outputs.",
)
intake_job = dg.define_asset_job(
    "intake_job",
    selection=dg.AssetSelection.groups("intake", "validation"),
    description="Ingest and validate the survey uploads, write receipts.",
)

defs = dg.Definitions(
    assets=all_assets,
    jobs=[main_job, intake_job],
    resources={"store": LitongStore()},
    executor=dg.in_process_executor,
)
