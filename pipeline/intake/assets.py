"""Dagster assets of the intake stage: one ingest and one validation asset per survey kind.

`raw_<kind>`  ingests new and changed files under data_raw/<kind>/ (group "intake");
`stg_<kind>`  normalises and validates them with Great Expectations, writes staging,
              quarantine and the departments' receipts (group "validation"), and reports
              asset checks: every row accounted for (blocking: the one thing that makes
              downstream wrong), files refused (warning, listing each file and why: one bad
              file never stops the others), and the share of refused rows (warning).
"""

import dagster as dg

from pipeline.intake.ingest import ingest_kind
from pipeline.intake.receipts import write_due_receipts
from pipeline.intake.validate import validate_if_changed
from pipeline.platform import stage_inputs
from pipeline.platform.resources import LitongStore
from pipeline.registries import units as registry
from pipeline.registries.templates import KINDS, load_template

QUARANTINE_WARN_SHARE = 0.10

CONSERVATION_SQL = """
SELECT f.rel_path, f.rows_read,
       (SELECT count(*) FROM {stg} s WHERE s.file_id = f.file_id) AS valid,
       (SELECT count(*) FROM quarantine q WHERE q.file_id = f.file_id) AS quarantined
FROM intake_files f
WHERE f.kind = ? AND f.is_current AND f.status = 'ingested'
ORDER BY f.rel_path
"""


def build_raw_asset(kind: str) -> dg.AssetsDefinition:
    template = load_template(kind)

    @dg.asset(
        name=f"raw_{kind}",
        group_name="intake",
        description=f"{template.title} ({template.title_en}) survey files from data_raw/{kind}/, as text.",
        kinds={"duckdb"},
    )
    def _raw(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
        with store.connect() as con:
            s = ingest_kind(con, store.raw_dir(), kind)
            total = con.execute(
                f"SELECT count(*) FROM raw_{kind} JOIN intake_files USING (file_id) "
                "WHERE is_current AND status = 'ingested'"
            ).fetchall()[0][0]
        for rel, problem in s.unreadable.items():
            context.log.warning(f"{rel}: {problem}")
        return dg.MaterializeResult(
            metadata={
                "new_files": dg.MetadataValue.json(s.new_files),
                "unchanged_files": len(s.unchanged_files),
                "unreadable_files": dg.MetadataValue.json(s.unreadable),
                "rows_added": s.rows_added,
                "current_rows": total,
            }
        )

    return _raw


def _check_specs(kind: str) -> list[dg.AssetCheckSpec]:
    asset = f"stg_{kind}"
    return [
        dg.AssetCheckSpec("files_readable", asset=asset,
                          description="Warns when an upload was refused (encoding, columns, folder, unit, round, "
                                      "size); lists each refused file and why. The other files go on."),
        dg.AssetCheckSpec("rows_accounted_for", asset=asset, blocking=True,
                          description="For every file: rows read = valid rows + quarantined rows."),
        dg.AssetCheckSpec("quarantine_share", asset=asset,
                          description=f"Warns when more than {QUARANTINE_WARN_SHARE:.0%} of rows are refused."),
    ]  # fmt: skip


def _enterprise_scores(kind: str) -> list[str]:
    """The scoring steps that find the enterprises a kind's unit-code columns may name (a hazchem site's
    enterprise, a pipeline's operator): validated after them, a row naming an enterprise surveyed in the same
    run is accepted in that run, not one run later. Not for a kind those scorings read (no cycle)."""
    template = load_template(kind)
    owners = registry.enterprise_surveys()
    read_by_owners = {t for tables in owners.values() for t in tables}
    if not any(f.type == "unit_code" for f in template.fields) or f"stg_{kind}" in read_by_owners:
        return []
    return [f"scores_{k}" for k in owners if k != kind]


def build_staging_asset(kind: str) -> dg.AssetsDefinition:
    template = load_template(kind)
    deps = [f"raw_{kind}"] + [f"stg_{c.requires}" for c in template.cross_kind] + _enterprise_scores(kind)

    @dg.asset(
        name=f"stg_{kind}",
        group_name="validation",
        deps=deps,
        check_specs=_check_specs(kind),
        description=f"Validated, typed {template.title_en.lower()} records; refused rows go to quarantine.",
        kinds={"duckdb"},
    )
    def _stg(context: dg.AssetExecutionContext, store: LitongStore):
        with store.connect() as con:
            result, computed = validate_if_changed(con, template)  # nothing new: the tables stand as they are
            # the receipts this validation changed, of new uploads, and any missing on disk (not written last time)
            receipts = write_due_receipts(con, store.out_dir() / "receipts", kind)
            unreadable = con.execute(
                "SELECT rel_path, problem_zh FROM intake_files WHERE kind = ? AND is_current AND status <> 'ingested' "
                "ORDER BY rel_path",
                [kind],
            ).fetchall()
            conservation = con.execute(CONSERVATION_SQL.format(stg=f"stg_{kind}"), [kind]).fetchall()
        for r in receipts:
            if "error" in r:
                context.log.warning(f"{r['file']}: receipt not written ({r['error']})")
        context.log.info(
            f"接收 {result.valid:,} 行，退回 {result.quarantined:,} 行"
            + ("" if computed else "（上传文件和校验规则都没有变化：未重新校验）")
        )
        yield dg.MaterializeResult(
            metadata={
                "validated_now": computed,
                "rows": result.rows,
                "valid": result.valid,
                "quarantined": result.quarantined,
                "failures_by_check": dg.MetadataValue.md(_failures_md(result.failures_by_check)),
                "receipts": dg.MetadataValue.json([r["path"] for r in receipts if "error" not in r]),
                "receipts_not_written": dg.MetadataValue.json(
                    {r["file"]: r["error"] for r in receipts if "error" in r}
                ),
            }
        )
        yield from _check_results(kind, result, unreadable, conservation)

    return _stg


def _failures_md(by_check: dict[str, int]) -> str:
    if not by_check:
        return "No failed expectations."
    lines = ["| check | rows |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in by_check.items()]
    return "\n".join(lines)


def _check_results(kind, result, unreadable, conservation):
    asset = f"stg_{kind}"
    yield dg.AssetCheckResult(
        asset_key=asset, check_name="files_readable", passed=not unreadable,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"refused_files": len(unreadable), "refused": dg.MetadataValue.json({r: p for r, p in unreadable})},
    )  # fmt: skip
    broken = [r for r in conservation if r[1] != r[2] + r[3]]
    yield dg.AssetCheckResult(
        asset_key=asset, check_name="rows_accounted_for", passed=not broken,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "files": len(conservation),
            "rows_in": sum(r[1] for r in conservation),
            "valid": sum(r[2] for r in conservation),
            "quarantined": sum(r[3] for r in conservation),
            "mismatched_files": dg.MetadataValue.json([list(r) for r in broken]),
        },
    )  # fmt: skip
    share = result.quarantined / result.rows if result.rows else 0.0
    yield dg.AssetCheckResult(
        asset_key=asset, check_name="quarantine_share", passed=share <= QUARANTINE_WARN_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"share": round(share, 4), "quarantined": result.quarantined},
    )  # fmt: skip


@dg.asset(group_name="intake", description="Blank upload templates (XLSX and CSV) for every survey kind.")
def blank_templates(store: LitongStore) -> dg.MaterializeResult:
    from pipeline.intake.blank_templates import template_files, templates_inputs, write_blank_templates

    out = store.out_dir() / "templates"
    with store.connect() as con:  # the same schemas, names and code: the templates stand (issue 30)
        inputs = templates_inputs()
        written_now = stage_inputs.recorded(con, "blank_templates") != inputs or not all(
            p.is_file() for p in template_files(out)
        )
        if written_now:
            write_blank_templates(out)
            stage_inputs.record(con, "blank_templates", inputs)
    files = [str(p) for p in template_files(out)]
    return dg.MaterializeResult(metadata={"written_now": written_now, "files": dg.MetadataValue.json(files)})


raw_assets = [build_raw_asset(k) for k in KINDS]
staging_assets = [build_staging_asset(k) for k in KINDS]
intake_assets = [*raw_assets, *staging_assets, blank_templates]
