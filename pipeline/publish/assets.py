"""Dagster assets of the publish stage (group "publish"): one asset per chart, and the briefing.

Each chart asset writes output/charts/<name>.png and .csv, shows the PNG in the UI (metadata), and
carries two checks: its numbers add up to the same total counted from its source, and every
glyph was drawn (a missing CJK font only warns in matplotlib; here it fails the check). A chart or briefing
whose inputs did not change since it was drawn is not drawn again: it reports the figures and checks it
recorded then (pipeline/platform/stage_inputs.py).
"""

import base64
import io
import json
from pathlib import Path

import dagster as dg
import duckdb

from pipeline.ledger.model import ledger_version
from pipeline.platform import stage_inputs
from pipeline.platform.atomic import write_bytes_atomic
from pipeline.platform.clock import as_of_label, district_today
from pipeline.platform.paths import RULES_DIR
from pipeline.platform.resources import LitongStore
from pipeline.publish.charts import CHARTS, Chart
from pipeline.scoring.assets import SCORED_KINDS
from pipeline.scoring.ruleset import ruleset_version

SOURCE_DEPS = {"scores": [f"scores_{k}" for k in SCORED_KINDS], "ledger": ["ledger_exports"]}


def preview_markdown(png: Path, cache: Path) -> str:
    """image_markdown of `png`, kept in `cache` for the picture it was made from (its size and time): a chart
    not drawn again is not quantised again on every run (a few tenths of a second each)."""
    stat = png.stat()
    key = [stat.st_size, stat.st_mtime_ns]
    kept = cache / f"{png.stem}.json"
    try:
        entry = json.loads(kept.read_text(encoding="utf-8"))
        if entry["png"] == key:
            return entry["markdown"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    markdown = image_markdown(png)
    cache.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(kept, json.dumps({"png": key, "markdown": markdown}).encode("utf-8"))
    return markdown


def image_markdown(png: Path) -> str:
    """The chart inline in the asset's metadata, as a 64-colour copy: every run stores it in the
    event log, and the full map PNG is ~0.4 MB (sample) to ~0.6 MB (1 M assets); the copy is ~4x smaller."""
    from PIL import Image  # matplotlib's own dependency

    buf = io.BytesIO()
    with Image.open(png) as im:
        im.convert("RGB").quantize(colors=64).save(buf, format="PNG", optimize=True)
    return f"![chart](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def publish_inputs(con: duckdb.DuckDBPyConnection, step: str, source: str = "ledger") -> str:
    """What a chart or the briefing shows: the scores, the ledger (its last event and size; not for a chart
    drawn from the scores alone, which runs before the ledger is updated), the rule set, the day (overdue,
    the as-of label), the names and the publishing code."""
    return stage_inputs.fingerprint(
        step, [stage_inputs.recorded(con, f"score:{k}") for k in SCORED_KINDS],
        ledger_version(con) if source == "ledger" else None,
        ruleset_version(RULES_DIR), district_today(), as_of_label(district_today()),
        stage_inputs.reference_version("units.csv", "towns.csv"), stage_inputs.code_version("pipeline/publish"),
    )  # fmt: skip


def chart_asset(chart: Chart) -> dg.AssetsDefinition:
    name = f"chart_{chart.name}"

    @dg.asset(
        name=name,
        group_name="publish",
        deps=SOURCE_DEPS[chart.source],
        description=f"{chart.title_zh} (output/charts/{chart.name}.png)",
        check_specs=[
            dg.AssetCheckSpec("numbers_add_up", asset=name, description=f"图中{chart.total_zh}合计等于数据源计数"),
            dg.AssetCheckSpec("all_glyphs_drawn", asset=name, description="没有缺字（中文字体可用）"),
        ],
    )
    def _chart(store: LitongStore) -> dg.MaterializeResult:
        from pipeline.publish.figures import chart_figures  # matplotlib stays out of definition loading
        from pipeline.publish.inputs import PublishInputs
        from pipeline.publish.render import render_chart

        out = store.out_dir() / "charts"
        with store.connect() as con:
            inputs = publish_inputs(con, chart.name, chart.source)
            detail = stage_inputs.recorded_detail(con, name)
            files = all((out / f"{chart.name}{ext}").is_file() for ext in (".png", ".csv"))
            if not (stage_inputs.recorded(con, name) == inputs and detail and files):
                inp = PublishInputs(con, district_today())
                figures = chart_figures(chart, inp)
                if detail and detail.get("figures") == figures and files:  # the same figures: the picture stands
                    detail = {**detail, "drawn_now": False}
                else:
                    r = render_chart(chart, inp, out)
                    shown = r.table.drop(columns=["level"], errors="ignore")
                    detail = {"png": str(r.png), "total": r.shown_total, "expected": r.expected_total,
                              "missing": r.missing_glyphs[:20], "drawn_now": True, "figures": figures,
                              "numbers": shown.head(40).to_markdown(index=False) if len(shown) else "暂无数据"}  # fmt: skip
                stage_inputs.record(con, name, inputs, {**detail, "drawn_now": False})
        png = out / f"{chart.name}.png"  # where the deployment is now (a recorded path may be a moved one's)
        return dg.MaterializeResult(
            metadata={
                "drawn_now": detail["drawn_now"],
                "png": dg.MetadataValue.path(str(png)),
                "chart": dg.MetadataValue.md(preview_markdown(png, store.cache_dir() / "chart_previews")),
                "numbers": dg.MetadataValue.md(detail["numbers"]),
                "total": detail["total"],
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="numbers_add_up",
                    passed=detail["total"] == detail["expected"],
                    metadata={"shown": detail["total"], "from_source": detail["expected"]},
                ),
                dg.AssetCheckResult(
                    check_name="all_glyphs_drawn",
                    passed=not detail["missing"],
                    metadata={"missing": dg.MetadataValue.json(detail["missing"])},
                ),
            ],
        )

    return _chart


chart_assets = [chart_asset(c) for c in CHARTS]


@dg.asset(
    group_name="publish",
    deps=["ledger_exports", *(a.key for a in chart_assets)],
    description="One-page A4 briefing for the district leadership (output/briefing/简报_<date>.pdf).",
)
def briefing(store: LitongStore) -> dg.MaterializeResult:
    from pipeline.publish.briefing import write_briefing
    from pipeline.publish.figures import briefing_figures
    from pipeline.publish.inputs import PublishInputs

    as_of = district_today()
    out = store.out_dir() / "briefing"
    dated = out / f"简报_{as_of.isoformat()}.pdf"
    with store.connect() as con:
        inputs = publish_inputs(con, "briefing")
        figures = stage_inputs.recorded_detail(con, "briefing")
        files = dated.is_file() and (out / "简报.pdf").is_file()
        written_now = False
        if not (stage_inputs.recorded(con, "briefing") == inputs and figures and files):
            inp = PublishInputs(con, as_of)
            shown = briefing_figures(inp)
            if not (figures and figures.get("shown") == shown and files):  # else the same figures: it stands
                head = write_briefing(inp, dated, store.cache_dir() / "pdf_fonts")
                write_bytes_atomic(out / "简报.pdf", dated.read_bytes())  # the newest under a fixed name, for bookmarks
                figures = {"found": head.found, "closed": head.closed, "rectification_rate": round(head.rate, 4),
                           "overdue": head.overdue, "under_control": head.under_control,
                           "red_assets": head.red_assets, "shown": shown}  # fmt: skip
                written_now = True
            stage_inputs.record(con, "briefing", inputs, figures)
    figures = {k: v for k, v in figures.items() if k != "shown"}
    return dg.MaterializeResult(
        metadata={"written_now": written_now, "pdf": dg.MetadataValue.path(str(out / "简报.pdf")),
                  "as_of": as_of.isoformat(), **figures}
    )  # fmt: skip


publish_assets = [*chart_assets, briefing]
