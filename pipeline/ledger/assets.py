"""Dagster assets of the ledger stage (group "ledger").

hazard_ledger        brings the ledger up to date with the latest scores (one transaction)
ledger_quake_damage  takes the units' 灾情反馈 after an earthquake; damage opens 震损 hazards; receipts
ledger_feedback      validates and applies the units' feedback files, writes their receipts
ledger_exports   the ledger as XLSX per town and per unit, CSV and Parquet, summaries per town and per unit
"""

import dagster as dg
import duckdb

from pipeline.intake.receipts import write_receipts
from pipeline.ledger import quake_damage
from pipeline.ledger.duban import DUBAN_FILE, PROPOSALS_NAME
from pipeline.ledger.exports import EXPORT_FILES, PART_FOLDERS, export_ledger
from pipeline.ledger.feedback import apply_pending, validate_feedback, write_feedback_receipts
from pipeline.ledger.model import WITHDRAWN, ledger_version
from pipeline.ledger.supervision import SUPERVISION_FILE
from pipeline.ledger.survey_update import LedgerUpdate, update_from_findings
from pipeline.platform import faults, stage_inputs
from pipeline.platform.clock import as_of_label, district_today
from pipeline.platform.paths import RULES_DIR
from pipeline.platform.resources import LitongStore
from pipeline.scoring.assets import SCORED_KINDS
from pipeline.scoring.ruleset import ruleset_version


def ledger_inputs(con: duckdb.DuckDBPyConnection) -> str:
    """The scorings the ledger update reads, the assets they scored that it has not looked at yet, the unit
    registry and the supervision table (who supervises each hazard) and the ledger code: the same findings
    change nothing. Not the ledger itself: the update looks only at assets scored again since it last ran, so a
    change made after it (feedback, 灾情反馈, later in the same run) leaves it nothing to do — with it, every
    run that applied feedback left the next run an update to make."""
    return stage_inputs.fingerprint(
        [stage_inputs.recorded(con, f"score:{k}") for k in SCORED_KINDS], _not_yet_looked_at(con),
        stage_inputs.reference_version("units.csv", SUPERVISION_FILE), stage_inputs.code_version("pipeline/ledger"),
    )  # fmt: skip


def _not_yet_looked_at(con: duckdb.DuckDBPyConnection) -> int:
    """Rows in the scorings' log of rescored assets (emptied by the ledger update)."""
    has = con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'rescored_assets'").fetchall()
    return con.execute("SELECT count(*) FROM rescored_assets").fetchone()[0] if has else 0


def update_ledger_if_changed(con: duckdb.DuckDBPyConnection) -> tuple[LedgerUpdate, bool]:
    """(counts, whether it updated now). Only the assets scored again since the last update are looked at,
    unless the unit registry, the supervision table or the ledger code changed since (then every asset)."""
    if stage_inputs.recorded(con, "ledger") == ledger_inputs(con):
        return LedgerUpdate(0, 0, 0, 0), False
    base = stage_inputs.fingerprint(stage_inputs.reference_version("units.csv", SUPERVISION_FILE),
                                    stage_inputs.code_version("pipeline/ledger"))  # fmt: skip
    counts = update_from_findings(con, only_rescored=stage_inputs.recorded(con, "ledger_base") == base)
    stage_inputs.record(con, "ledger", ledger_inputs(con))
    stage_inputs.record(con, "ledger_base", base)
    return counts, True


@dg.asset(group_name="ledger", deps=[f"scores_{k}" for k in SCORED_KINDS], kinds={"duckdb"},
          description="隐患台账: one hazard per hazard rule firing on an asset, followed through rectification.")  # fmt: skip
def hazard_ledger(store: LitongStore) -> dg.MaterializeResult:
    with store.connect() as con:
        counts, updated_now = update_ledger_if_changed(con)
        for kind, files in counts.kept_open_files.items():  # their receipts say which hazards stay open, and why
            write_receipts(con, store.out_dir() / "receipts", kind, only_files=files)
        by_status = dict(con.execute("SELECT status, count(*) FROM hazards GROUP BY status").fetchall())
    faults.point("hazard_ledger:done")
    return dg.MaterializeResult(
        metadata={"updated_now": updated_now, "new": counts.new, "reopened": counts.reopened, "still_present": counts.refreshed,
                  "cleared_by_resurvey": counts.resurvey_cleared,
                  "kept_open_blank_resurvey": counts.kept_open, "regraded": counts.regraded, "rerouted": counts.rerouted, "by_status": dg.MetadataValue.json(by_status)}
    )  # fmt: skip


def _refused_files(context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, kind: str) -> list[tuple]:
    """(path, Chinese reason) of the kind's files refused as a whole, each also in the run's log."""
    refused = con.execute(
        "SELECT rel_path, problem_zh FROM intake_files WHERE kind = ? AND is_current AND status <> 'ingested'", [kind]
    ).fetchall()
    for rel, problem in refused:
        context.log.warning(f"{rel}: {problem}")
    return refused


@dg.asset(group_name="ledger", deps=[hazard_ledger], kinds={"duckdb"},
          description="灾情反馈 from data_raw/quake_feedback/<unit>/<event id>/: validated, checked against the units' "
                      "own objects, taken as batches of their event; damage found 严重/毁坏 opens 震损 hazards.")  # fmt: skip
def ledger_quake_damage(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
    with store.connect() as con:
        validated = quake_damage.validate_quake_feedback(con, store.raw_dir())
        results = quake_damage.apply_pending(con, store.raw_dir())
        written = (
            quake_damage.write_quake_feedback_receipts(con, store.out_dir() / "receipts")
            if validated or results
            else []
        )
        receipts = [str(p) for p in written]
        unreadable = _refused_files(context, con, "quake_feedback")
    return dg.MaterializeResult(
        metadata={"batches_taken": dg.MetadataValue.json({r.rel_path: f"{r.event_id} 第{r.batch_seq}批" for r in results}),
                  "rows_taken": sum(r.taken for r in results), "rows_returned": sum(r.returned for r in results),
                  "hazards_opened": sum(bool(x["opened_hazard"]) for r in results for x in r.rows),
                  "receipts": dg.MetadataValue.json(receipts), "refused_files": dg.MetadataValue.json(dict(unreadable))}
    )  # fmt: skip


@dg.asset(group_name="ledger", deps=[ledger_quake_damage], kinds={"duckdb"},
          description="Rectification feedback files from data_raw/feedback/<unit>/, applied row by row.")  # fmt: skip
def ledger_feedback(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
    with store.connect() as con:
        validated = validate_feedback(con, store.raw_dir())
        results = apply_pending(con)
        written = write_feedback_receipts(con, store.out_dir() / "receipts", results) if validated or results else []
        receipts = [str(p) for p in written]
        unreadable = _refused_files(context, con, "feedback")
    return dg.MaterializeResult(
        metadata={"files_applied": len(results), "rows_applied": sum(r.applied for r in results),
                  "rows_refused": sum(r.refused for r in results), "receipts": dg.MetadataValue.json(receipts),
                  "unreadable_files": dg.MetadataValue.json(dict(unreadable))}
    )  # fmt: skip


def exports_inputs(con: duckdb.DuckDBPyConnection) -> str:
    """The ledger as it stands (its last event and size), the rule set (titles and citations), the day (overdue
    days, the as-of label), the names of towns and units, and the ledger code."""
    return stage_inputs.fingerprint(
        ledger_version(con), ruleset_version(RULES_DIR), district_today(), as_of_label(district_today()),
        stage_inputs.reference_version("units.csv", "towns.csv", DUBAN_FILE), stage_inputs.code_version("pipeline/ledger"),
    )  # fmt: skip


@dg.asset(group_name="ledger", deps=[ledger_feedback],
          description="The ledger: a workbook per town and per unit (only those that changed are rewritten), "
                      "the district's summary workbook, the full ledger as Excel-safe CSV and Parquet.")  # fmt: skip
def ledger_exports(store: LitongStore) -> dg.MaterializeResult:
    out = store.out_dir() / "ledger"
    with store.connect() as con:
        inputs = exports_inputs(con)
        if stage_inputs.recorded(con, "exports") == inputs and all(
            (out / f"{name}{ext}").is_file() for name, ext in [*EXPORT_FILES, (PROPOSALS_NAME, ".csv")]
        ):  # the same ledger on the same day: every file stands (each town's file is checked on a change)
            hazards = con.execute(f"SELECT count(*) FROM hazards WHERE status <> '{WITHDRAWN}'").fetchone()[0]
            return dg.MaterializeResult(metadata={"exported_now": False, "hazards": hazards})
        result = export_ledger(con, district_today(), out, cache_dir=store.cache_dir() / "ledger_csv")
        stage_inputs.record(con, "exports", inputs)
    by_town = result.by_town
    counts = {f"{by}_files_{what}": sum(p.parent.name == folder for p in paths)
              for by, folder in PART_FOLDERS.items()
              for what, paths in (("written", result.written), ("skipped", result.skipped))}  # fmt: skip
    return dg.MaterializeResult(
        metadata={"exported_now": True, "hazards": result.hazards, "overdue": result.overdue, **counts,
                  "xlsx": str(result.files[0]), "csv": str(result.files[1]), "parquet": str(result.files[2]),
                  "duban_proposed": result.proposed, "duban_proposals": str(result.proposals[0]),
                  "duban_proposals_written": result.proposals_written, "rows_rendered": result.rows_rendered,
                  "rows_computed": result.rows_computed, "csv_fragments_written": result.csv_fragments_written,
                  "parquet_fragments_written": result.parquet_fragments_written,
                  "by_town": dg.MetadataValue.md(by_town.to_markdown(index=False) if len(by_town) else "empty")}
    )  # fmt: skip


ledger_assets = [hazard_ledger, ledger_quake_damage, ledger_feedback, ledger_exports]
