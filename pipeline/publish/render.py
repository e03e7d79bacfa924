"""Turn a chart into files: the PNG leaders read and the CSV of the numbers it shows."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.formats.excel_safe import write_safe_csv
from pipeline.platform.atomic import atomic_path
from pipeline.platform.clock import as_of_label
from pipeline.publish.charts import Chart
from pipeline.publish.glyphs import outline_problem
from pipeline.publish.inputs import PublishInputs
from pipeline.publish.style import MUTED, check_cjk_font, use_cjk_style

PNG_DPI = 110


@dataclass
class RenderedChart:
    chart: Chart
    png: Path
    csv: Path
    table: pd.DataFrame
    shown_total: int
    expected_total: int
    missing_glyphs: list[str]  # matplotlib's "Glyph … missing from font" warnings while drawing, and empty glyphs

    @property
    def adds_up(self) -> bool:
        return self.shown_total == self.expected_total


FOOTER_INCHES = 0.22  # the strip at the bottom kept for the as-of footer: nothing of the chart is drawn there


def new_figure(size: tuple[float, float], footer: bool = False):
    """A figure laid out by matplotlib (constrained); with `footer`, a strip at the bottom is left free for
    the as-of line (a footer drawn over the chart's area overlapped its axis labels)."""
    from matplotlib.figure import Figure  # not pyplot: no global state, nothing left open

    fig = Figure(figsize=size, layout="constrained")
    if footer:
        strip = FOOTER_INCHES / size[1]
        fig.get_layout_engine().set(rect=(0, strip, 1, 1 - strip))
    return fig


def draw_chart(chart: Chart, table: pd.DataFrame, inp: PublishInputs):
    """The chart drawn on a new figure, the as-of footer in its own strip at the bottom right."""
    fig = new_figure(chart.size, footer=True)
    chart.draw(fig, table, inp)
    fig.text(0.995, 0.004, as_of_label(inp.as_of), ha="right", va="bottom", fontsize=7, color=MUTED, gid="footer")
    return fig


def render_chart(chart: Chart, inp: PublishInputs, out_dir: Path) -> RenderedChart:
    use_cjk_style()
    check_cjk_font()
    out_dir.mkdir(parents=True, exist_ok=True)
    table = chart.table(inp)
    png = out_dir / f"{chart.name}.png"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = draw_chart(chart, table, inp)
        empty = outline_problem(fig)  # in the font's map but no outline (WenQuanYi's Ⅹ): no warning from matplotlib
        with atomic_path(png) as tmp:
            fig.savefig(tmp, dpi=PNG_DPI, format="png")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)] + empty
    csv_path = write_safe_csv(table, out_dir / f"{chart.name}.csv")
    return RenderedChart(chart, png, csv_path, table, chart.shown_total(table), chart.expected_total(inp), missing)
