"""The one-page A4 briefing (简报) for the district leadership, as a PDF.

Headline figures, the three charts that say most (risk by town, open hazards by unit with the
overdue part, rectification progress) and the overdue 重大隐患 with their units. One matplotlib
figure of A4 size saved as PDF is one page by construction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.atomic import atomic_path
from pipeline.clock import as_of_label
from pipeline.publish.charts import CHARTS_BY_NAME
from pipeline.publish.inputs import PublishInputs, short_town
from pipeline.publish.render import new_figure
from pipeline.publish.style import INK, LEVEL_COLOUR, MUTED, OVERDUE_COLOUR, check_cjk_font, clip, use_cjk_style

A4_INCHES = (8.27, 11.69)
BRIEFING_CHARTS = ("levels_by_town", "open_hazards_by_unit", "rectification_progress")
MAX_LISTED = 8  # overdue 重大隐患 listed one by one; all of them are counted per unit


@dataclass(frozen=True)
class Headline:
    found: int
    closed: int
    overdue: int
    under_control: int
    red_assets: int
    open_major: int

    @property
    def rate(self) -> float:
        return self.closed / self.found if self.found else 0.0

    def tiles(self) -> list[tuple[str, str, str]]:
        """(label, value, colour) in reading order."""
        return [
            ("发现隐患", f"{self.found:,}", INK),
            ("已销号", f"{self.closed:,}", "#2ca02c"),
            ("整改率", f"{self.rate:.1%}", "#2ca02c"),
            ("逾期未整改", f"{self.overdue:,}", OVERDUE_COLOUR),
            ("管控中", f"{self.under_control:,}", "#9c755f"),
            ("重大风险（红色）资产", f"{self.red_assets:,}", LEVEL_COLOUR["red"]),
        ]


def headline(inp: PublishInputs) -> Headline:
    led = inp.ledger_counts

    def count(mask) -> int:
        return int(led.loc[mask, "n"].sum())

    reds = inp.score_counts
    return Headline(
        found=count(led["n"] > 0),
        closed=count(led["status"] == "已销号"),
        overdue=count(led["overdue"]),
        under_control=count(led["status"] == "管控中"),
        red_assets=int(reds.loc[reds["level"] == "red", "n"].sum()),
        open_major=count((led["status"] != "已销号") & (led["hazard_grade"] == "重大")),
    )


def overdue_major(inp: PublishInputs) -> pd.DataFrame:
    """Overdue 重大隐患, longest overdue first."""
    return inp.overdue_major


def write_briefing(inp: PublishInputs, path: Path) -> Headline:
    use_cjk_style()
    check_cjk_font()
    head = headline(inp)
    fig = new_figure(A4_INCHES)
    header, tiles, charts, progress, overdue, footer = fig.subfigures(
        6, 1, height_ratios=[0.55, 0.75, 3.3, 2.0, 3.3, 0.25]
    )
    _header(header, inp.as_of)
    _tiles(tiles, head)
    left, right = charts.subfigures(1, 2, width_ratios=[1, 1.15])
    for sub, name in ((left, "levels_by_town"), (right, "open_hazards_by_unit"), (progress, "rectification_progress")):
        chart = CHARTS_BY_NAME[name]
        chart.draw(sub, chart.table(inp), inp, compact=True)
    _overdue_list(overdue, overdue_major(inp))
    footer.text(0.01, 0.5, f"数据：各部门地震风险隐患调查上报及整改反馈；逾期按{inp.as_of:%Y年%m月%d日}计。"
                "详见隐患台账（output/ledger/隐患台账.xlsx）。", fontsize=7, color=MUTED, va="center")  # fmt: skip
    with atomic_path(path) as tmp:
        title = f"利通区地震风险隐患排查整治简报（{as_of_label(inp.as_of)}）"
        fig.savefig(tmp, format="pdf", metadata={"Title": title})
    return head


def _header(fig, as_of: dt.date) -> None:
    fig.text(0.5, 0.62, "利通区地震风险隐患排查整治简报", ha="center", va="center", fontsize=17, color=INK)
    fig.text(0.5, 0.18, f"{as_of_label(as_of)}　·　利通区应急管理局（地震局）", ha="center", va="center",
             fontsize=9, color=MUTED)  # fmt: skip


def _tiles(fig, head: Headline) -> None:
    tiles = head.tiles()
    for i, (label, value, colour) in enumerate(tiles):
        x = (i + 0.5) / len(tiles)
        fig.text(x, 0.6, value, ha="center", va="center", fontsize=16, color=colour)
        fig.text(x, 0.2, label, ha="center", va="center", fontsize=8, color=MUTED)


def _due(r):
    """The date it is overdue from: the deadline, or for a hazard under control its missed review."""
    return r.next_review if r.status == "管控中" and pd.notna(r.next_review) else r.deadline


def _overdue_list(fig, rows: pd.DataFrame) -> None:
    ax = fig.add_subplot()
    ax.set_axis_off()
    if rows.empty:
        ax.set_title("逾期重大隐患：无", loc="left")
        return
    by_unit = rows.groupby("unit_name").size().sort_values(ascending=False)
    ax.set_title(f"逾期重大隐患共 {len(rows):,} 项，按责任单位：", loc="left", fontsize=11)
    per_unit = "；".join(f"{clip(u, 20)} {n:,}" for u, n in by_unit.items())
    ax.text(0, 1.0, per_unit, fontsize=7.5, va="top", wrap=True, transform=ax.transAxes, color=INK)
    listed = rows.head(MAX_LISTED)
    cells = [[clip(r.hazard_no, 40), clip(r.asset_name, 16), short_town(r.town_name), clip(r.unit_name, 14),
              f"{_due(r):%Y-%m-%d}", f"{int(r.overdue_days):,}"] for r in listed.itertuples()]  # fmt: skip
    tbl = ax.table(cellText=cells, colLabels=["隐患编号", "资产名称", "乡镇", "责任单位", "时限/复核", "逾期天数"],
                   bbox=[0, 0.02, 1, 0.72], cellLoc="left", colLoc="left",
                   colWidths=[0.24, 0.22, 0.1, 0.22, 0.12, 0.1])  # fmt: skip
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(7)
    for col in range(6):
        tbl[0, col].set_facecolor("#e8e8e8")
    more = len(rows) - len(listed)
    note = f"逾期最久的 {len(listed)} 项如上" + (f"，其余 {more:,} 项见隐患台账。" if more else "。")
    ax.text(0, 0.78, note, fontsize=7.5, color=MUTED, transform=ax.transAxes)
