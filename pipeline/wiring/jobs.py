"""The jobs people and the sensor/schedule run. Every job writes the one DuckDB file, so every job
carries the same tag, which dagster.yaml limits to one run at a time (DuckDB has a single writer)."""

import dagster as dg

WRITES_DATABASE = {"litong/database": "write"}

main_job = dg.define_asset_job(
    "main_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("quake"),
    description="Everything, from uploads to the charts and the briefing (not the earthquake response: quake_job).",
    tags=WRITES_DATABASE,
)
intake_job = dg.define_asset_job(
    "intake_job",
    selection=dg.AssetSelection.groups("intake", "validation") | dg.AssetSelection.assets("published_snapshot"),
    description="Ingest and validate the survey uploads, write receipts, publish the snapshot.",
    tags=WRITES_DATABASE,
)
feedback_job = dg.define_asset_job(
    "feedback_job",
    selection=dg.AssetSelection.assets("ledger_feedback").downstream(),
    description="Apply new rectification feedback files, then refresh the ledger exports, charts and briefing.",
    tags=WRITES_DATABASE,
)
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.assets("ledger_exports") | dg.AssetSelection.groups("publish"),
    description="Recompute what depends on the date (overdue) and republish the ledger, charts and briefing.",
    tags=WRITES_DATABASE,
)
