"""The leaders' charts. Each chart is a `Chart`: the numbers it shows (a table, saved beside the PNG),
how to draw them on a (sub)figure, and two totals that must agree: the total the chart shows and the
same total counted independently from its source. The briefing draws the same charts, compact.

Every draw function takes a Figure or SubFigure, so a chart looks the same alone and in the briefing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pipeline.ledger.exports import KIND_ZH
from pipeline.publish.inputs import GRADES, TOP_N, PublishInputs, short_town
from pipeline.publish.style import INK, LEVEL_COLOUR, LEVEL_ZH, LEVELS, MUTED, OVERDUE_COLOUR, clip, wrap
from pipeline.registries.templates import towns

EMPTY_ZH = "暂无数据"
OPEN_PARTS = {  # open hazards by where they stand; together they are every hazard not 已销号
    "逾期": OVERDUE_COLOUR,
    "整改期限内": "#f28e2b",
    "已整改待验收": "#59a14f",
    "管控中": "#9c755f",
}
MAX_UNITS = 20  # the rest of the units are summed as 其他单位, so the total still adds up


@dataclass(frozen=True)
class Chart:
    name: str  # file stem and asset name: chart_<name>
    title_zh: str
    source: str  # "scores" or "ledger": which stage the asset waits for
    table: Callable[[PublishInputs], pd.DataFrame]
    draw: Callable[..., None]  # draw(figure, table, inputs, compact=False)
    shown_total: Callable[[pd.DataFrame], int]
    expected_total: Callable[[PublishInputs], int]
    total_zh: str  # what the total counts, for the check's message
    size: tuple[float, float] = (10, 6)
    reads: tuple[str, ...] = ()  # what `draw` reads of the inputs besides its table (PublishInputs' properties)


def _empty(fig, title: str) -> None:
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, EMPTY_ZH, ha="center", va="center", fontsize=16, color=MUTED, transform=ax.transAxes)
    ax.set_axis_off()


def _axes_or_empty(fig, title: str, empty: bool):
    """The chart's axes, or None after drawing 暂无数据 under the title when there is nothing to show."""
    if empty:
        _empty(fig, title)
        return None
    return fig.add_subplot()


def _stacked_barh(ax, labels: list[str], parts: dict[str, list[int]], colours: dict[str, str]) -> None:
    """Horizontal stacked bars, first label on top, each bar's total written at its end."""
    left = [0] * len(labels)
    for part, values in parts.items():
        ax.barh(labels, values, left=left, color=colours[part], label=part, height=0.7)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:,}", va="center", fontsize=8, color=INK)
    if not ax.yaxis_inverted():  # first label on top (a shared axis is inverted once)
        ax.invert_yaxis()
    ax.set_xlim(0, max(left + [1]) * 1.15)
    ax.grid(axis="x", alpha=0.3)


# ---------------------------------------------------------------------------------------------
# Risk levels by town and asset kind
# ---------------------------------------------------------------------------------------------
def levels_by_town_table(inp: PublishInputs) -> pd.DataFrame:
    s = inp.score_counts
    table = s.pivot_table(index=["kind_zh", "town_name"], columns="level", values="n", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=LEVELS, fill_value=0).astype(int)
    table.columns.name = None
    table["合计"] = table.sum(axis=1)
    return table.reset_index().rename(columns={"kind_zh": "资产类别", "town_name": "乡镇"})


def draw_levels_by_town(fig, table: pd.DataFrame, inp: PublishInputs, compact: bool = False) -> None:
    title = "各乡镇风险等级（按资产类别）"
    if table.empty:
        _empty(fig, title)
        return
    if compact:  # all kinds together, one bar per town
        merged = table.groupby("乡镇", sort=False)[LEVELS].sum()
        merged = merged.loc[merged.sum(axis=1).sort_values(ascending=False).index]
        ax = fig.add_subplot()
        _stacked_barh(ax, [short_town(t) for t in merged.index], {LEVEL_ZH[lv]: merged[lv].tolist() for lv in LEVELS},
                      {LEVEL_ZH[lv]: LEVEL_COLOUR[lv] for lv in LEVELS})  # fmt: skip
        ax.set_title("各乡镇资产风险等级（全部类别）")
        fig.legend(loc="outside lower center", ncol=2, frameon=False, fontsize=7)
        return
    kinds = [k for k in KIND_ZH.values() if k in set(table["资产类别"])]
    town_order = [t for t in (*towns().values(), "乡镇不明") if t in set(table["乡镇"])]
    axes = fig.subplots(1, len(kinds), squeeze=False, sharey=True)[0]
    for ax, kind in zip(axes, kinds, strict=True):
        part = table[table["资产类别"] == kind].set_index("乡镇")[[*LEVELS, "合计"]].reindex(town_order, fill_value=0)
        _stacked_barh(ax, [short_town(t) for t in town_order], {LEVEL_ZH[lv]: part[lv].tolist() for lv in LEVELS},
                      {LEVEL_ZH[lv]: LEVEL_COLOUR[lv] for lv in LEVELS})  # fmt: skip
        ax.set_title(f"{kind}（{int(part['合计'].sum()):,}）", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False)
    fig.suptitle(title)


# ---------------------------------------------------------------------------------------------
# Open hazards by responsible unit, overdue marked
# ---------------------------------------------------------------------------------------------
def open_by_unit_table(inp: PublishInputs) -> pd.DataFrame:
    led = inp.ledger_counts
    open_ = led[led["status"] != "已销号"].copy()
    open_["part"] = "整改期限内"
    open_.loc[open_["status"] == "已整改待验收", "part"] = "已整改待验收"
    open_.loc[open_["status"] == "管控中", "part"] = "管控中"
    open_.loc[open_["overdue"], "part"] = "逾期"  # past the deadline, or (管控中) a missed review
    table = open_.pivot_table(index="unit_name", columns="part", values="n", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=list(OPEN_PARTS), fill_value=0).astype(int)
    table.columns.name = None
    table["合计"] = table.sum(axis=1)
    table = table.sort_values(["合计", "逾期"], ascending=False)
    if len(table) > MAX_UNITS:
        rest = table.iloc[MAX_UNITS - 1 :].sum().rename("其他单位")
        table = pd.concat([table.iloc[: MAX_UNITS - 1], rest.to_frame().T])
    return table.rename_axis("责任单位").reset_index()


def draw_open_by_unit(fig, table: pd.DataFrame, inp: PublishInputs, compact: bool = False) -> None:
    title = "各责任单位未销号隐患（深红为逾期）"
    ax = _axes_or_empty(fig, title, table.empty)
    if ax is None:
        return
    labels = [clip(u, 16) for u in table["责任单位"]]
    _stacked_barh(ax, labels, {p: table[p].tolist() for p in OPEN_PARTS}, OPEN_PARTS)
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncol=2 if compact else 4, frameon=False, fontsize=7 if compact else 8)
    if compact:
        ax.tick_params(axis="y", labelsize=7)


# ---------------------------------------------------------------------------------------------
# Rectification progress over time
# ---------------------------------------------------------------------------------------------
def progress_table(inp: PublishInputs) -> pd.DataFrame:
    """Per day with a change: hazards found so far, and hazards closed (已销号) as of that day."""
    daily = inp.events_daily
    if daily.empty:
        return pd.DataFrame({"日期": [], "累计发现": [], "累计销号": [], "未销号": []})
    daily = daily.assign(日期=pd.to_datetime(daily["event_date"]))
    table = pd.DataFrame({"日期": daily["日期"], "累计发现": daily["found"].cumsum(),
                          "累计销号": daily["closed"].cumsum()})  # fmt: skip
    table["未销号"] = table["累计发现"] - table["累计销号"]
    return table


def draw_progress(fig, table: pd.DataFrame, inp: PublishInputs, compact: bool = False) -> None:
    title = "隐患整改进度（累计）"
    ax = _axes_or_empty(fig, title, table.empty)
    if ax is None:
        return
    ax.step(table["日期"], table["累计发现"], where="post", color=LEVEL_COLOUR["red"], label="累计发现")
    ax.step(table["日期"], table["累计销号"], where="post", color="#2ca02c", label="累计销号")
    ax.fill_between(table["日期"], table["累计销号"], table["累计发现"], step="post", color="#f4b6b6", alpha=0.5,
                    label="未销号")  # fmt: skip
    last = table.iloc[-1]
    for col, colour in (("累计发现", LEVEL_COLOUR["red"]), ("累计销号", "#2ca02c")):
        ax.annotate(f"{int(last[col]):,}", (last["日期"], last[col]), textcoords="offset points", xytext=(4, 0),
                    va="center", color=colour, fontsize=9)  # fmt: skip
    rate = last["累计销号"] / last["累计发现"] if last["累计发现"] else 0
    ax.set_title(f"{title}：已销号 {int(last['累计销号']):,} / 发现 {int(last['累计发现']):,}（{rate:.1%}）")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate() if not compact else ax.tick_params(axis="x", labelsize=7, rotation=30)


# ---------------------------------------------------------------------------------------------
# Map of assets coloured by level
# ---------------------------------------------------------------------------------------------
MARKERS = {"房屋建筑": ("o", 4), "桥梁": ("^", 28), "危险化学品单位": ("s", 30), "油气长输管道": ("D", 26)}


def map_table(inp: PublishInputs) -> pd.DataFrame:
    s = inp.score_counts
    table = s.pivot_table(index="kind_zh", columns="level", values="n", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=LEVELS, fill_value=0)
    table.columns.name = None
    table["无坐标"] = s.groupby("kind_zh")["unlocated"].sum()
    table = table.fillna(0).astype(int)
    table["合计"] = table[LEVELS].sum(axis=1)
    return table.rename_axis("资产类别").reset_index()


def draw_map(fig, table: pd.DataFrame, inp: PublishInputs, compact: bool = False) -> None:
    """Assets by position over the district's outline (reference/boundaries: no tiles, nothing downloaded),
    one marker per map cell of about a pixel; town labels at the centre of each town's surveyed assets,
    moved apart where they would overlap."""
    from matplotlib.lines import Line2D

    from pipeline.publish.basemap import draw_outline
    from pipeline.publish.labels import TownLabels

    title = "资产风险等级分布图"
    ax = _axes_or_empty(fig, title, table.empty)
    if ax is None:
        return
    draw_outline(ax)
    located = inp.map_cells
    for kind, (marker, size) in MARKERS.items():
        for level in reversed(LEVELS):  # red drawn last, on top
            sel = located[(located["kind_zh"] == kind) & (located["level"] == level)]
            if len(sel):
                ax.scatter(sel["lon"], sel["lat"], s=size * (0.5 if compact else 1), marker=marker, alpha=0.75,
                           color=LEVEL_COLOUR[level], edgecolors="none" if marker == "o" else INK, linewidths=0.4)  # fmt: skip
    ax.set_aspect(1 / 0.79)  # a degree of longitude is cos(38°) of a degree of latitude
    ax.set_xlabel("经度（°E）")
    ax.set_ylabel("纬度（°N）")
    ax.set_title(title)
    totals = table[LEVELS].sum()
    handles = [Line2D([], [], marker="o", ls="", color=LEVEL_COLOUR[lv], label=f"{LEVEL_ZH[lv]} {int(totals[lv]):,}")
               for lv in LEVELS]  # fmt: skip
    handles += [Line2D([], [], marker=m, ls="", color="white", markeredgecolor=INK, label=k)
                for k, (m, _) in MARKERS.items() if k in set(table["资产类别"])]  # fmt: skip
    unlocated = int(table["无坐标"].sum())
    if unlocated:
        handles.append(Line2D([], [], ls="", label=f"无坐标未标注 {unlocated:,}"))
    ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.9)
    ax.grid(alpha=0.2)
    centres = inp.town_centres[["town_name", "lon", "lat"]]
    TownLabels(ax, [(short_town(t), x, y) for t, x, y in centres.itertuples(index=False)], fontsize=7 if compact else 9)


# ---------------------------------------------------------------------------------------------
# Top ten assets
# ---------------------------------------------------------------------------------------------
MAIN_REASONS = 3  # reasons shown in full in the chart; the CSV has the others too
TOP_POINTS = "封顶前累计分"  # the points of every finding, before the score's cap of 100: what ranks the top ten


def split_reasons(reasons: object) -> list[str]:
    """The scores' reasons one by one (`B01 …（60分）；B19 …（40分）`, most points first; a title may hold a
    ；, a reason always ends with its points)."""
    return [r for r in re.split(r"(?<=分）)；", reasons if isinstance(reasons, str) else "") if r]


def top_assets_table(inp: PublishInputs) -> pd.DataFrame:
    """The top ten by points before the cap (the capped 得分 is 100 for all of them in a district with many
    hazards), then hazards; equal points and hazards share a rank. The main reasons in full, the rest beside."""
    s = inp.top_assets
    keys = list(zip(s["raw_points"].round(1), s["n_hazards"], strict=True))
    reasons = [split_reasons(r) for r in s["top_reasons"]]
    return pd.DataFrame({
        "排名": [1 + sum(other > key for other in keys) for key in keys], "资产类别": s["kind_zh"],
        "资产编码": s["asset_id"], "名称": s["asset_name"], "乡镇": s["town_name"], TOP_POINTS: s["raw_points"].round(1),
        "隐患数": s["n_hazards"].astype(int), "得分（封顶100）": s["score"].round(1),
        "风险等级": s["level"].map(LEVEL_ZH), "主要原因": ["；".join(r[:MAIN_REASONS]) for r in reasons],
        "其余原因": ["；".join(r[MAIN_REASONS:]) for r in reasons],
    })  # fmt: skip


def top_assets_cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The chart's table: the header and, per asset, its cells (a tie's rank marked 并列; the name with its code
    below; the main reasons in full, one a line, and how many more)."""
    ranks = table["排名"].tolist()
    header = ["排名", "资产（名称/编码）", "类别", "乡镇", TOP_POINTS, "隐患数", "风险等级",
              f"主要原因（前{MAIN_REASONS}项，全文）"]  # fmt: skip
    rows = []
    for r in table.itertuples(index=False):
        more = len(split_reasons(r.其余原因))
        lines = [wrap(reason, 44) for reason in split_reasons(r.主要原因)] + ([f"另有{more}项原因"] if more else [])
        rank = f"{r.排名}" + ("（并列）" if ranks.count(r.排名) > 1 else "")
        rows.append([rank, f"{wrap(r.名称, 14, 2)}\n{clip(r.资产编码, 30)}", r.资产类别, clip(short_town(r.乡镇), 10),
                     f"{getattr(r, TOP_POINTS):g}", f"{r.隐患数}", r.风险等级, "\n".join(lines)])  # fmt: skip
    return header, rows


def draw_top_assets(fig, table: pd.DataFrame, inp: PublishInputs, compact: bool = False) -> None:
    title = f"风险最高的{TOP_N}个资产（按{TOP_POINTS}排名，得分封顶100）"
    ax = _axes_or_empty(fig, title, table.empty)
    if ax is None:
        return
    ax.set_axis_off()
    header, rows = top_assets_cells(table)
    tbl = ax.table(cellText=rows, colLabels=header, bbox=[0, 0, 1, 1], cellLoc="left", colLoc="left")
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(8)
    tbl.auto_set_column_width(list(range(len(header))))
    for row, cells in enumerate(rows, start=1):  # a row as tall as its most lines: bbox keeps the proportions
        height = max(c.count("\n") + 1 for c in cells)
        for col in range(len(header)):
            tbl[row, col].set_height(height)
    level_col = header.index("风险等级")
    by_zh = {zh: level for level, zh in LEVEL_ZH.items()}
    for row, level in enumerate(table["风险等级"].map(by_zh), start=1):
        tbl[row, level_col].set_facecolor(LEVEL_COLOUR.get(level, "white"))
        tbl[row, level_col].get_text().set_color("white" if level in ("red", "blue") else INK)
    for col in range(len(header)):
        tbl[0, col].set_facecolor("#e8e8e8")
        tbl[0, col].set_height(1.2)
    ax.set_title(title)


# ---------------------------------------------------------------------------------------------
# Hazchem major hazard sources by grade
# ---------------------------------------------------------------------------------------------
def hazchem_table(inp: PublishInputs) -> pd.DataFrame:
    g = inp.hazchem_grades
    computed = g["computed_grade"].value_counts().reindex(GRADES, fill_value=0)
    declared = g["declared_grade"].fillna("未申报").value_counts().reindex([*GRADES, "未申报"], fill_value=0)
    table = pd.DataFrame({"等级": [*GRADES, "未申报"], "按GB 18218计算": [*computed.tolist(), 0],
                          "单位申报": declared.tolist()})  # fmt: skip
    return table


# GB 18218 grades as the charts colour them: 一级 (the most dangerous) to 四级 as the risk levels red to blue,
# a site that is not a major hazard source grey; the units' declared grade hatched in the same colour.
GRADE_COLOUR = {"一级": LEVEL_COLOUR["red"], "二级": LEVEL_COLOUR["orange"], "三级": LEVEL_COLOUR["yellow"],
                "四级": LEVEL_COLOUR["blue"], "非重大危险源": "#8c96a0", "未申报": "#9aa5b1"}  # fmt: skip


def draw_hazchem(fig, table: pd.DataFrame, inp: PublishInputs, compact: bool = False) -> None:
    from matplotlib.patches import Patch

    title = "危险化学品重大危险源分级（GB 18218—2018）"
    ax = _axes_or_empty(fig, title, table.empty or table["按GB 18218计算"].sum() == 0)
    if ax is None:
        return
    x = range(len(table))
    width = 0.38
    colours = [GRADE_COLOUR[g] for g in table["等级"]]
    bars_c = ax.bar([i - width / 2 for i in x], table["按GB 18218计算"], width, color=colours, edgecolor=INK,
                    linewidth=0.5, label="按GB 18218计算")  # fmt: skip
    bars_d = ax.bar([i + width / 2 for i in x], table["单位申报"], width, color="white", edgecolor=colours,
                    hatch="///", linewidth=1.0, label="单位申报")  # fmt: skip
    ax.bar_label(bars_c, fontsize=8)
    ax.bar_label(bars_d, fontsize=8)
    ax.set_xticks(list(x), table["等级"])
    ax.set_ylabel("单位数")
    ax.set_ylim(0, max(1, table[["按GB 18218计算", "单位申报"]].to_numpy().max()) * 1.12)
    total = int(table["按GB 18218计算"].sum())
    ax.set_title(f"{title}：共{total}家")
    handles = [Patch(facecolor=MUTED, edgecolor=INK, linewidth=0.5, label="按GB 18218计算（实心，颜色即等级）"),
               Patch(facecolor="white", edgecolor=MUTED, hatch="///", label="单位申报（斜线）")]  # fmt: skip
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)


# ---------------------------------------------------------------------------------------------
# Shelter capacity per town against the people to shelter (issue 29 §3)
# ---------------------------------------------------------------------------------------------
def shelter_capacity_table(inp: PublishInputs) -> pd.DataFrame:
    c = inp.shelter_capacity
    return pd.DataFrame({
        "乡镇": c["town_name"].tolist(), "常住人口": c["population"].astype(int).tolist(),
        "需避难人数": c["people_to_shelter"].astype(int).tolist(), "可用避难容量": c["usable_capacity"].astype(int).tolist(),
        "容量缺口": c["capacity_gap"].clip(lower=0).astype(int).tolist(), "可用场所数": c["usable_shelters"].astype(int).tolist(),
    })  # fmt: skip


def shelter_shortfall(table: pd.DataFrame) -> pd.DataFrame:
    """The towns short of capacity, largest gap first."""
    return table[table["容量缺口"] > 0].sort_values("容量缺口", ascending=False, kind="stable")


def draw_shelter_capacity(fig, table: pd.DataFrame, inp: PublishInputs, compact: bool = False) -> None:
    title = "各乡镇应急避难场所容量与需避难人数"
    ax = _axes_or_empty(fig, title, table.empty)
    if ax is None:
        return
    rows = table.iloc[::-1]
    y = range(len(rows))
    short = rows["容量缺口"] > 0
    ax.barh(y, rows["需避难人数"], color="white", edgecolor=INK, linewidth=0.8, label="需避难人数")
    ax.barh(y, rows["可用避难容量"], height=0.5, color=[OVERDUE_COLOUR if s else "#59a14f" for s in short],
            label="可用避难容量（红：不足）")  # fmt: skip
    ax.set_yticks(list(y), [short_town(t) for t in rows["乡镇"]])
    for i, (cap, need) in enumerate(zip(rows["可用避难容量"], rows["需避难人数"], strict=True)):
        ax.text(max(cap, need), i, f" {cap / need:.0%}" if need else "", va="center", fontsize=7, color=MUTED)
    ax.set_xlabel("人")
    n_short = int(short.sum())
    ax.set_title(f"{title}：{n_short}个乡镇容量不足" if n_short else f"{title}：各乡镇容量均满足")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)


CHARTS: list[Chart] = [
    Chart("levels_by_town", "各乡镇风险等级", "scores", levels_by_town_table, draw_levels_by_town,
          lambda t: int(t["合计"].sum()) if len(t) else 0, lambda i: i.scored_total(), "已评分资产", (16, 7)),
    Chart("open_hazards_by_unit", "各责任单位未销号隐患", "ledger", open_by_unit_table, draw_open_by_unit,
          lambda t: int(t["合计"].sum()) if len(t) else 0,
          lambda i: i.open_total, "未销号隐患", (10, 6)),
    Chart("rectification_progress", "隐患整改进度", "ledger", progress_table, draw_progress,
          lambda t: int(t["未销号"].iloc[-1]) if len(t) else 0,
          lambda i: i.open_total, "未销号隐患", (10, 5)),
    Chart("asset_map", "资产风险等级分布图", "scores", map_table, draw_map,
          lambda t: int(t["合计"].sum()) if len(t) else 0, lambda i: i.scored_total(), "已评分资产", (9, 8),
          ("map_cells", "town_centres")),
    Chart("top_assets", "风险最高的资产", "scores", top_assets_table, draw_top_assets,
          lambda t: len(t), lambda i: min(TOP_N, i.scored_total()), "列出的资产", (14, 9)),
    Chart("hazchem_grades", "危险化学品重大危险源分级", "scores", hazchem_table, draw_hazchem,
          lambda t: int(t["按GB 18218计算"].sum()) if len(t) else 0,
          lambda i: i.scored_total("hazchem_sites"), "已评分危险化学品单位", (9, 5)),
    Chart("shelter_capacity", "各乡镇应急避难场所容量", "scores", shelter_capacity_table, draw_shelter_capacity,
          lambda t: int(t["可用避难容量"].sum()) if len(t) else 0,
          lambda i: int(i.shelter_capacity["counted"].sum()), "可用避难容量（人）", (9, 6)),
]  # fmt: skip
CHARTS_BY_NAME = {c.name: c for c in CHARTS}
