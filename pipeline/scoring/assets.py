"""Dagster assets of the scoring stage: one per scored asset kind (group "scoring").

Each reads the validated staging tables (so it only runs when their blocking checks
passed), loads and verifies the whole rule set, and rewrites that kind's findings and
scores. The rule set's version is in every row and in the asset metadata.
"""

import dagster as dg

from pipeline import faults
from pipeline.resources import LitongStore
from pipeline.scoring.engine import score_kind
from pipeline.scoring.explain import top_assets_markdown
from pipeline.scoring.ruleset import install, load_ruleset
from pipeline.scoring.worklist import write_worklist

SCORED_KINDS = {
    "buildings": ["stg_buildings"],
    "bridges": ["stg_bridges"],
    "hazchem_sites": ["stg_hazchem_sites", "stg_hazchem_inventory"],
    "pipelines": ["stg_pipelines"],
}


def build_scores_asset(kind: str, deps: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"scores_{kind}",
        group_name="scoring",
        deps=deps,
        description=f"Seismic risk findings and scores of {kind} by the rules in rules/.",
        kinds={"duckdb"},
    )
    def _scores(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
        ruleset = load_ruleset()
        with store.connect() as con:
            result = score_kind(con, ruleset, kind)
            top = top_assets_markdown(con, kind)
        context.log.info(f"{kind}: {result.assets} assets, {result.findings} findings, levels {result.levels}")
        faults.point(f"scores_{kind}:done")
        return dg.MaterializeResult(
            metadata={
                "ruleset_version": result.ruleset_version,
                "run_id": result.run_id,
                "assets": result.assets,
                "findings": result.findings,
                "rules": len(ruleset.for_kind(kind)),
                "levels": dg.MetadataValue.json(result.levels),
                "top_assets": dg.MetadataValue.md(top),
                "seconds": round(result.seconds, 3),
            }
        )

    return _scores


@dg.asset(
    group_name="scoring",
    deps=["scores_buildings"],
    kinds={"duckdb"},
    description="待鉴定清单: buildings that need a 抗震性能鉴定 — first the crowded places the law names "
    "(防震减灾法 Art. 39, 国务院令第744号 Art. 19–21) without an appraisal, then low screening scores (S < 2.0), "
    "lowest S first. Table appraisal_worklist and output/worklists/待鉴定清单.xlsx/.csv.",
)
def appraisal_worklist(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
    ruleset = load_ruleset()
    with store.connect() as con:
        install(con, ruleset.rules_dir)  # the view the worklist reads, as scored
        result = write_worklist(con, store.out_dir() / "worklists")
    context.log.info(f"待鉴定清单: {result.rows} buildings ({result.legal} by law, {result.low_score} by low S)")
    return dg.MaterializeResult(
        metadata={
            "rows": result.rows,
            "by_law": result.legal,
            "low_screening_score": result.low_score,
            "xlsx": str(result.files[0]),
            "csv": str(result.files[1]),
            "ruleset_version": ruleset.version,
        }
    )


scoring_assets = [*(build_scores_asset(k, d) for k, d in SCORED_KINDS.items()), appraisal_worklist]
