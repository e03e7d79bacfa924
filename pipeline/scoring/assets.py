"""Dagster assets of the scoring stage: one per scored asset kind (group "scoring").

Each reads the validated staging tables (so it only runs when their blocking checks
passed), loads and verifies the whole rule set, and rewrites that kind's findings and
scores. The rule set's version is in every row and in the asset metadata.
"""

import dagster as dg
import duckdb

from pipeline.engines.base import Engine
from pipeline.engines.seam import current
from pipeline.engines.settings import engine as engine_name
from pipeline.intake.receipts import inventory_files_without_q, write_receipts
from pipeline.platform import faults, stage_inputs
from pipeline.platform.paths import RULES_DIR
from pipeline.platform.resources import LitongStore
from pipeline.registries.risk_levels import colour_zh
from pipeline.scoring import changes
from pipeline.scoring.engine import ScoringResult, score_kind
from pipeline.scoring.explain import top_assets_markdown
from pipeline.scoring.ruleset import install, load_kinds, load_ruleset, ruleset_version
from pipeline.scoring.worklist import WORKLIST_NAME, WORKLIST_TABLE, WorklistResult, write_worklist

# Every kind of rules/kinds.yaml, with the staging tables its view reads.
SCORED_KINDS = {k: spec.deps for k, spec in load_kinds().items()}


def scoring_inputs(con: duckdb.DuckDBPyConnection, ruleset_version: str, deps: list[str]) -> str:
    """The rule set (its version covers every rule, view and reference table), what validation gave of the
    kinds the scoring reads (pipeline/intake/validate.py staged_version), the scoring code and the engine (a
    change of engine scores again, on the engine asked for)."""
    validated = [stage_inputs.recorded(con, f"staged:{d.removeprefix('stg_')}") for d in deps]
    return stage_inputs.fingerprint(
        ruleset_version, validated, stage_inputs.code_version("pipeline/scoring", "pipeline/engines"), engine_name()
    )


def score_if_changed(
    con: duckdb.DuckDBPyConnection, kind: str, deps: list[str], version: str, engine: Engine | None = None
) -> tuple[ScoringResult, bool]:
    """(result, whether it was scored now). Nothing validated differently since the kind was last scored: the
    findings and scores stand. Otherwise only the assets whose staged rows changed are scored again
    (pipeline/scoring/changes.py) — all of them when the rule set or the scoring code changed, when most of a
    kind was rewritten, or on the first scoring. `engine` computes it (default: the deployment's; Spark scores
    the whole kind)."""
    inputs = scoring_inputs(con, version, deps)
    ruleset_kind = load_kinds()[kind]
    last, whole = changes.collect(con, deps, ruleset_kind.id)
    own = changes.owned(deps, ruleset_kind.id)
    if stage_inputs.recorded(con, f"score:{kind}") == inputs:
        changes.forget(con, own, last)  # the same rows were staged again: nothing to score
        return last_scoring(con, kind), False
    base = stage_inputs.fingerprint(version, stage_inputs.code_version("pipeline/scoring", "pipeline/engines"))
    whole = whole or stage_inputs.recorded(con, f"score_base:{kind}") != base
    ruleset = load_ruleset(con=con)  # parsed (and verified, if this store has not seen it) only when it is used
    result = score_kind(con, ruleset, kind, None if whole else changes.CHANGED_ASSETS,
                        lambda c: changes.forget(c, own, last), engine, tuple(deps))  # fmt: skip
    stage_inputs.record(con, f"score:{kind}", inputs)
    stage_inputs.record(con, f"score_base:{kind}", base)
    return result, True


def last_scoring(con: duckdb.DuckDBPyConnection, kind: str) -> ScoringResult:
    """The kind's last scoring as the store holds it."""
    run_id, version = con.execute(
        "SELECT run_id, ruleset_version FROM scoring_runs WHERE kind = ? ORDER BY scored_at DESC LIMIT 1", [kind]
    ).fetchone()
    assets, findings = con.execute(
        "SELECT (SELECT count(*) FROM scores WHERE kind = $k), (SELECT count(*) FROM findings WHERE kind = $k)",
        {"k": kind},
    ).fetchone()
    levels = dict(con.execute("SELECT level, count(*) FROM scores WHERE kind = ? GROUP BY level", [kind]).fetchall())
    return ScoringResult(kind, run_id, version, assets, findings, levels, 0.0)


def levels_zh(levels: dict[str, int]) -> str:
    """`红色 3 橙色 6 黄色 4 蓝色 1`: the assets of each risk level, highest first."""
    return " ".join(f"{zh} {levels.get(lv, 0):,}" for lv, zh in colour_zh().items())


def build_scores_asset(kind: str, deps: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"scores_{kind}",
        group_name="scoring",
        deps=deps,
        description=f"Seismic risk findings and scores of {kind} by the rules in rules/.",
        kinds={"duckdb", "spark"},
    )
    def _scores(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
        engine = current(store.out_dir())  # its Parquet, on Spark, under the deployment's output
        on_spark = engine.name == "spark"
        with store.connect() as con:
            result, scored_now = score_if_changed(con, kind, deps, ruleset_version(RULES_DIR), engine)
            if scored_now and kind == "hazchem_sites":  # the inventory receipts name the chemicals without a Q (H20)
                write_receipts(con, store.out_dir() / "receipts", "hazchem_inventory",
                               only_files=inventory_files_without_q(con))  # fmt: skip
            top = top_assets_markdown(con, kind)
            n_rules = con.execute(
                "SELECT count(*) FROM rules WHERE kind = ? AND ruleset_version = ?", [kind, result.ruleset_version]
            ).fetchone()[0]
        context.log.info(
            f"评分对象 {result.assets:,} 个，触发规则 {result.findings:,} 条；{levels_zh(result.levels)}"
            + (
                ("（在 Spark 上计算）" if on_spark else "")
                if scored_now
                else "（校验结果和规则都没有变化：未重新评分）"
            )
        )
        faults.point(f"scores_{kind}:done")
        return dg.MaterializeResult(
            metadata={
                "scored_now": scored_now,
                "engine": engine.name,
                "ruleset_version": result.ruleset_version,
                "run_id": result.run_id,
                "assets": result.assets,
                "findings": result.findings,
                "rules": n_rules,
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
    out = store.out_dir() / "worklists"
    with store.connect() as con:
        inputs = stage_inputs.fingerprint(stage_inputs.recorded(con, "score:buildings"), worklist_base())
        written_now = stage_inputs.recorded(con, "worklist") != inputs or not all(
            (out / f"{WORKLIST_NAME}{ext}").is_file() for ext in (".xlsx", ".csv"))  # fmt: skip
        if written_now:  # only the buildings scored again since, and the files of their towns
            install(con, RULES_DIR)  # the view the worklist reads, as scored
            whole = stage_inputs.recorded(con, "worklist_base") != worklist_base()
            result = write_worklist(con, out, store.cache_dir() / "worklist_csv", whole=whole)
            stage_inputs.record(con, "worklist", inputs)
            stage_inputs.record(con, "worklist_base", worklist_base())
        else:  # the same scores: the table and the files stand
            rows, legal = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE worklist_class = 1) FROM {WORKLIST_TABLE}"
            ).fetchone()
            result = WorklistResult(rows, legal, rows - legal, [out / f"{WORKLIST_NAME}{e}" for e in (".xlsx", ".csv")])
    context.log.info(f"待鉴定房屋 {result.rows:,} 栋（依法须鉴定 {result.legal:,} 栋，评分低 {result.low_score:,} 栋）")
    return dg.MaterializeResult(
        metadata={
            "rows": result.rows,
            "by_law": result.legal,
            "low_screening_score": result.low_score,
            "xlsx": str(result.files[0]),
            "csv": str(result.files[1]),
            "written_now": written_now,
            "table_rows_written": result.table_rows_written,
            "town_files_written": len(result.written),
            "town_files_skipped": len(result.skipped),
            "ruleset_version": ruleset_version(RULES_DIR),
        }
    )


def worklist_base() -> str:
    """What every row of the 待鉴定清单 depends on besides its building's scoring: the rule set (views,
    reference tables), the scoring code and the names of towns and units. A change rebuilds it whole."""
    return stage_inputs.fingerprint(ruleset_version(RULES_DIR), stage_inputs.code_version("pipeline/scoring", "pipeline/engines"),
                                    stage_inputs.reference_version("towns.csv", "units.csv"))  # fmt: skip


scoring_assets = [*(build_scores_asset(k, d) for k, d in SCORED_KINDS.items()), appraisal_worklist]
