"""Dagster assets of the publish stage (group "publish"): one asset per chart, and the briefing.

Each chart asset writes output/charts/<name>.png and .csv, shows the PNG in the UI (metadata), and
carries two checks: its numbers add up to the same total counted from its source, and every
glyph was drawn (a missing CJK font only warns in matplotlib; here it fails the check).
"""

import base64
import io
from pathlib import Path

import dagster as dg

from pipeline.atomic import write_bytes_atomic
from pipeline.clock import district_today
from pipeline.publish.charts import CHARTS, Chart
from pipeline.resources import LitongStore
from pipeline.scoring.assets import SCORED_KINDS

SOURCE_DEPS = {"scores": [f"scores_{k}" for k in SCORED_KINDS], "ledger": ["ledger_exports"]}


def image_markdown(png: Path) -> str:
    """The chart inline in the asset's metadata, as a 64-colour copy: every run stores it in the
    event log, and the full map PNG is ~0.4 MB (sample) to ~0.6 MB (1 M assets); the copy is ~4x smaller."""
    from PIL import Image  # matplotlib's own dependency

    buf = io.BytesIO()
    with Image.open(png) as im:
        im.convert("RGB").quantize(colors=64).save(buf, format="PNG", optimize=True)
    return f"![chart](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


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
        from pipeline.publish.inputs import PublishInputs  # matplotlib stays out of definition loading
        from pipeline.publish.render import render_chart

        with store.connect() as con:
            r = render_chart(chart, PublishInputs(con, district_today()), store.out_dir() / "charts")
        shown = r.table.drop(columns=["level"], errors="ignore")
        return dg.MaterializeResult(
            metadata={
                "png": dg.MetadataValue.path(str(r.png)),
                "chart": dg.MetadataValue.md(image_markdown(r.png)),
                "numbers": dg.MetadataValue.md(shown.head(40).to_markdown(index=False) if len(shown) else "暂无数据"),
                "total": r.shown_total,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="numbers_add_up",
                    passed=r.adds_up,
                    metadata={"shown": r.shown_total, "from_source": r.expected_total},
                ),
                dg.AssetCheckResult(
                    check_name="all_glyphs_drawn",
                    passed=not r.missing_glyphs,
                    metadata={"missing": dg.MetadataValue.json(r.missing_glyphs[:20])},
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
    from pipeline.publish.inputs import PublishInputs

    as_of = district_today()
    out = store.out_dir() / "briefing"
    dated = out / f"简报_{as_of.isoformat()}.pdf"
    with store.connect() as con:
        head = write_briefing(PublishInputs(con, as_of), dated)
    latest = write_bytes_atomic(out / "简报.pdf", dated.read_bytes())  # the newest under a fixed name, for bookmarks
    return dg.MaterializeResult(
        metadata={
            "pdf": dg.MetadataValue.path(str(latest)),
            "as_of": as_of.isoformat(),
            "found": head.found,
            "closed": head.closed,
            "rectification_rate": round(head.rate, 4),
            "overdue": head.overdue,
            "under_control": head.under_control,
            "red_assets": head.red_assets,
        }
    )


publish_assets = [*chart_assets, briefing]
