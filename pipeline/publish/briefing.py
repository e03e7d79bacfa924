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

from pipeline.ledger.model import OVERDUE_KINDS
from pipeline.platform.atomic import atomic_path
from pipeline.platform.clock import as_of_label
from pipeline.publish.charts import CHARTS_BY_NAME, shelter_shortfall
from pipeline.publish.glyphs import settle_glyphs
from pipeline.publish.inputs import PublishInputs, short_town
from pipeline.publish.pdf_fonts import kept_font_subsets
from pipeline.publish.render import new_figure
from pipeline.publish.style import INK, LEVEL_COLOUR, MUTED, OVERDUE_COLOUR, check_cjk_font, clip, use_cjk_style

A4_INCHES = (8.27, 11.69)
BRIEFING_CHARTS = ("levels_by_town", "open_hazards_by_unit", "rectification_progress")
MAX_LISTED = 8  # overdue 重大隐患 listed one by one; all of them are counted per unit
HEIGHTS = (0.55, 0.75, 3.3, 2.0, 3.3, 0.4)  # header, tiles, two charts, progress, overdue list, footer (2 lines)
MAX_SHORT_TOWNS = 5  # towns short of shelter capacity named on the briefing (the chart names them all)


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
            ("未销号重大隐患", f"{self.open_major:,}", OVERDUE_COLOUR),
            ("红色风险对象", f"{self.red_assets:,}", LEVEL_COLOUR["red"]),
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


def shelter_line(inp: PublishInputs) -> str | None:
    """The standing shelter figure (issue 29 §3): the district's usable shelter capacity against the people to
    shelter, and the towns short of it (None before any shelter is surveyed)."""
    table = CHARTS_BY_NAME["shelter_capacity"].table(inp)
    if table.empty:
        return None
    short = shelter_shortfall(table)
    head = (f"应急避难场所：全区可用容量{int(table['可用避难容量'].sum()):,}人，"
            f"需避难{int(table['需避难人数'].sum()):,}人；")  # fmt: skip
    if short.empty:
        return head + "各乡镇容量均满足。"
    named = "、".join(
        f"{short_town(r['乡镇'])}缺{r['容量缺口']:,}人" for _, r in short.head(MAX_SHORT_TOWNS).iterrows()
    )
    more = f"等{len(short)}个乡镇" if len(short) > MAX_SHORT_TOWNS else ""
    return head + f"{len(short)}个乡镇容量不足：{named}{more}。"


# Where a leader finds the full list: the portal's page or the bureau, never a file path (issue 25 §8).
FOOTER_ZH = (
    "数据：各部门调查上报及整改反馈；逾期按{as_of:%Y年%m月%d日}计。"
    "逐项清单见利通区地震风险隐患排查平台“隐患台账”页，或向区应急管理局索取。"
)


def briefing_figure(inp: PublishInputs) -> tuple[Headline, object]:
    """The briefing drawn on an A4 figure: headline tiles, three charts, the overdue 重大隐患, the footer."""
    head = headline(inp)
    fig = new_figure(A4_INCHES)
    header, tiles, charts, progress, overdue, footer = fig.subfigures(6, 1, height_ratios=HEIGHTS)
    _header(header, inp.as_of)
    _tiles(tiles, head)
    left, right = charts.subfigures(1, 2, width_ratios=[1, 1.15])
    for sub, name in zip((left, right, progress), BRIEFING_CHARTS, strict=True):
        chart = CHARTS_BY_NAME[name]
        chart.draw(sub, chart.table(inp), inp, compact=True)
    _overdue_list(overdue, overdue_major(inp))
    if line := shelter_line(inp):
        footer.text(0.01, 0.78, line, fontsize=7.5, color=INK, va="center")
    footer.text(0.01, 0.28, FOOTER_ZH.format(as_of=inp.as_of), fontsize=7, color=MUTED, va="center")
    return head, fig


def write_briefing(inp: PublishInputs, path: Path, font_cache: Path | None = None) -> Headline:
    """The briefing saved at `path`; its font subsets kept in `font_cache` (pipeline/publish/pdf_fonts.py)."""
    use_cjk_style()
    check_cjk_font()
    head, fig = briefing_figure(inp)
    settle_glyphs(fig)  # a name's character the font cannot draw: 〓 (the degrees: FontMissingError)
    with atomic_path(path) as tmp, kept_font_subsets(font_cache):
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
    """The date it is overdue from: the control deadline of an immediate measure not reported in place (管控逾期),
    the deadline, or for a hazard under control its missed review."""
    if getattr(r, "overdue_kind", None) == OVERDUE_KINDS["control"]:
        return r.control_deadline
    return r.next_review if r.status == "管控中" and pd.notna(r.next_review) else r.deadline


PER_UNIT_EMS = 72  # a line of the per-unit counts, in widths of a Chinese character at their size (the page's)
MAX_UNIT_LINES = 7  # more units: the last line sums the rest (the table below keeps its room)
PER_UNIT_PT, PER_UNIT_SPACING = 7.5, 1.5  # their font size and line spacing
# the overdue list's axes, in inches: its part of the page less its title
OVERDUE_INCHES = A4_INCHES[1] * HEIGHTS[4] / sum(HEIGHTS) - 0.4


def _ems(text: str) -> float:
    """The width of `text` in widths of a Chinese character (a Latin letter or digit is about half of one)."""
    return sum(1 if ord(ch) > 0x2E80 else 0.55 for ch in text)


def per_unit_lines(by_unit: pd.Series, width: float = PER_UNIT_EMS, max_lines: int = MAX_UNIT_LINES) -> list[str]:
    """「单位 N 项」 per unit, most first, in lines of at most `width`: a line breaks between two units, never
    between a unit and its count (matplotlib's own wrapping breaks at spaces, which are inside the items). Past
    `max_lines`, the last line sums the units left (「其余 K 个单位共 M 项」): every hazard stays counted."""
    groups: list[list[tuple[str, int]]] = []
    for unit, n in by_unit.items():
        item = (f"{clip(unit, 20)} {n:,} 项", int(n))
        if groups and _ems("；".join(text for text, _ in [*groups[-1], item])) <= width:
            groups[-1].append(item)
        else:
            groups.append([item])
    if len(groups) > max_lines:
        rest = [n for group in groups[max_lines - 1 :] for _, n in group]
        groups = [*groups[: max_lines - 1], [(f"其余 {len(rest):,} 个单位共 {sum(rest):,} 项", sum(rest))]]
    return ["；".join(text for text, _ in group) + ("；" if i < len(groups) - 1 else "")
            for i, group in enumerate(groups)]  # fmt: skip


def _overdue_list(fig, rows: pd.DataFrame) -> None:
    """The overdue 重大隐患: how many, per unit, then the longest overdue in a table and, under it, what the
    table holds (the MAX_LISTED longest) and where the rest are."""
    ax = fig.add_subplot()
    ax.set_axis_off()
    if rows.empty:
        ax.set_title("逾期重大隐患：无", loc="left")
        return
    by_unit = rows.groupby("unit_name").size().sort_values(ascending=False, kind="stable")
    ax.set_title(f"逾期重大隐患共 {len(rows):,} 项，按责任单位：", loc="left", fontsize=11)
    lines = per_unit_lines(by_unit)
    line_height = PER_UNIT_PT * PER_UNIT_SPACING / 72 / OVERDUE_INCHES  # a line, as a fraction of the axes
    ax.text(0, 1.0, "\n".join(lines), fontsize=PER_UNIT_PT, va="top", linespacing=PER_UNIT_SPACING,
            transform=ax.transAxes, color=INK)  # fmt: skip
    listed = rows.head(MAX_LISTED)
    cells = [[clip(r.hazard_no, 40), clip(r.asset_name, 16), short_town(r.town_name), clip(r.unit_name, 14),
              f"{_due(r):%Y-%m-%d}", f"{int(r.overdue_days):,}"] for r in listed.itertuples()]  # fmt: skip
    top = 1.0 - line_height * len(lines) - 0.04
    tbl = ax.table(cellText=cells, colLabels=["隐患编号", "资产名称", "乡镇", "责任单位", "时限/复核", "逾期天数"],
                   bbox=[0, 0.09, 1, max(0.3, top - 0.09)], cellLoc="left", colLoc="left",
                   colWidths=[0.24, 0.22, 0.1, 0.22, 0.12, 0.1])  # fmt: skip
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(7)
    for col in range(6):
        tbl[0, col].set_facecolor("#e8e8e8")
    more = len(rows) - len(listed)
    note = f"上表为逾期最久的 {len(listed)} 项" + (f"，其余 {more:,} 项见隐患台账。" if more else "。")
    ax.text(0, 0.0, note, fontsize=7.5, color=MUTED, va="bottom", transform=ax.transAxes)
