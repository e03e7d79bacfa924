"""Every asset of the house, stage by stage: what the Dagster definitions load and what the upload sensor
selects from (a module of its own, so the sensor needs not import the definitions, which import the sensor)."""

from pipeline.intake.assets import intake_assets
from pipeline.ledger.assets import ledger_assets
from pipeline.publish.assets import publish_assets
from pipeline.publish.snapshot import published_snapshot
from pipeline.quake.assets import quake_assets
from pipeline.scoring.assets import scoring_assets

all_assets = [*intake_assets, *scoring_assets, *ledger_assets, *publish_assets, published_snapshot]
"""The survey pipeline's assets (main_job); the earthquake response's are quake_assets."""

every_asset = [*all_assets, *quake_assets]
"""What the definitions hold."""
