"""What the district sends within minutes of an event: the 首报 (PDF + the same as plain text), the 排查清单 per
responsible unit (XLSX, priority order) and the map of the isoseismals over the assets.

Every figure of the 首报 is one SQL count over the event's rows in the quake store (`first_report_figures`),
so the report and the tables agree by construction and a test can recount them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.atomic import atomic_path, write_bytes_atomic
from pipeline.clock import beijing_now
from pipeline.intake.schema import towns
from pipeline.ledger.exports import KIND_ZH, write_sheet
from pipeline.paths import RULES_DIR
from pipeline.publish.glyphs import settle_glyphs
from pipeline.publish.render import new_figure
from pipeline.publish.style import INK, MUTED, check_cjk_font, use_cjk_style
from pipeline.quake.event import DISTRICT_CENTRE, Event
from pipeline.quake.shaking import (
    district_intensity,
    district_relations,
    isoseismal_radii,
    response_settings,
    roman,
)
from pipeline.registry import unit_label
from pipeline.xlsx_stream import streamed_workbook

A4_INCHES = (8.27, 11.69)
LISTED = 12  # objects listed per group in the 首报; the 排查清单 has all
MAP_POINTS = 50_000  # dots drawn on the map (a random sample beyond that: the zones, not the count, matter)


@dataclass
class FirstReport:
    event: Event
    max_intensity: float
    felt: bool
    towns: list[tuple[str, int, int]] = field(default_factory=list)  # (town name, degree, assets at ≥ VI)
    kinds: dict[str, int] = field(default_factory=dict)  # assets at ≥ VI per kind
    structures: list[tuple[str, int]] = field(default_factory=list)  # buildings at ≥ VI per structure type
    damage: list[tuple[str, float]] | None = None  # expected buildings per damage state, when a matrix is given
    major_hazards: int = 0
    major_list: list[tuple] = field(default_factory=list)
    key_objects: dict[str, list[tuple]] = field(default_factory=dict)
    key_counts: dict[str, int] = field(default_factory=dict)
    check_now: list[tuple[str, int]] = field(default_factory=list)  # (unit, objects to check at once)
    method: str = ""
    ledger_as_of: str | None = None
    empty: bool = False  # the ledger has no located object: only the estimate at the district's centre


def first_report_figures(con: duckdb.DuckDBPyConnection, event: Event) -> FirstReport:
    eid = event.event_id
    settings = response_settings()
    felt_from = settings["felt_from_intensity"]
    key_from = settings["key_objects"]["from_intensity"]
    max_i, n_assets, method, as_of = con.execute(
        "SELECT max_intensity, assets, method, ledger_as_of FROM quake_events WHERE event_id = ?", [eid]
    ).fetchone()
    if not n_assets:  # nothing located on the ledger (yet): the estimate at the district's centre, nothing listed
        lon, lat = DISTRICT_CENTRE
        centre = float(district_intensity(event.magnitude, event.lon, event.lat, np.array([lon]), np.array([lat]),
                                          event.strike)[0])  # fmt: skip
        return FirstReport(event, centre, centre >= felt_from - 0.5, method=method, ledger_as_of=as_of, empty=True)
    report = FirstReport(event, float(max_i or 0), (max_i or 0) >= felt_from - 0.5, method=method, ledger_as_of=as_of)
    if not report.felt:
        return report
    shaken = f"event_id = '{eid}' AND degree >= {felt_from}"
    names = towns()
    report.towns = [(names.get(t, t or "乡镇不明"), d, n) for t, d, n in con.execute(
        f"SELECT town_code, max(degree), count(*) FILTER (WHERE {shaken}) FROM quake_exposure WHERE event_id = ? "
        "GROUP BY town_code ORDER BY max(intensity) DESC, town_code", [eid]).fetchall()]  # fmt: skip
    report.kinds = dict(
        con.execute(f"SELECT kind, count(*) FROM quake_exposure WHERE {shaken} GROUP BY kind").fetchall()
    )
    report.structures = con.execute(
        f"SELECT coalesce(structure_type, '不详'), count(*) FROM quake_exposure WHERE {shaken} AND kind = 'buildings' "
        "GROUP BY ALL ORDER BY count(*) DESC, 1"
    ).fetchall()
    report.damage = expected_damage(con, eid, felt_from)
    major = f"event_id = '{eid}' AND degree >= {key_from} AND open_major > 0"
    report.major_hazards = con.execute(
        f"SELECT coalesce(sum(open_major), 0) FROM quake_exposure WHERE {major}"
    ).fetchone()[0]
    report.major_list = con.execute(
        f"SELECT asset_name || '[' || asset_id || ']', degree, responsible_unit, hazard_nos FROM quake_exposure WHERE {major} "
        f"ORDER BY intensity DESC, open_major DESC, asset_id LIMIT {LISTED}"
    ).fetchall()
    for group in settings["key_objects"]["groups"]:
        label, cond = group["label"], group["when"]
        where = f"event_id = '{eid}' AND degree >= {key_from} AND {cond}"
        report.key_counts[label] = con.execute(f"SELECT count(*) FROM quake_exposure WHERE {where}").fetchone()[0]
        report.key_objects[label] = con.execute(
            f"SELECT asset_name || '[' || asset_id || ']', degree, responsible_unit, open_hazards FROM quake_exposure "
            f"WHERE {where} "
            f"ORDER BY intensity DESC, asset_id LIMIT {LISTED}"
        ).fetchall()
    report.check_now = con.execute(
        "SELECT responsible_unit, count(*) FROM quake_exposure WHERE event_id = ? AND check_at_once "
        "GROUP BY ALL ORDER BY count(*) DESC, 1", [eid]).fetchall()  # fmt: skip
    return report


def expected_damage(con: duckdb.DuckDBPyConnection, eid: str, felt_from: int) -> list[tuple[str, float]] | None:
    """Expected buildings per damage state from the vulnerability matrix (rules/reference), None when the
    matrix holds no sourced probabilities: then no damage figure is given at all."""
    matrix = pd.read_csv(RULES_DIR / "reference" / "quake_vulnerability.csv", dtype=str)
    matrix["probability"] = pd.to_numeric(matrix["probability"], errors="coerce")
    if matrix["probability"].isna().any():
        return None
    classes = pd.read_csv(RULES_DIR / "reference" / "quake_structure_class.csv", dtype=str)
    con.register("vuln_matrix", matrix)
    con.register("vuln_classes", classes)
    rows = con.execute(
        f"""
        SELECT m.damage_state, sum(m.probability) AS expected
        FROM quake_exposure e
        JOIN vuln_classes c ON c.structure_type = e.structure_type
        JOIN vuln_matrix m ON m.structure_class = CASE WHEN e.damage_class_weaker THEN c.weaker_class ELSE c.structure_class END
             AND m.intensity::INTEGER = least(e.degree, 10)
        WHERE e.event_id = ? AND e.kind = 'buildings' AND e.degree >= {felt_from}
        GROUP BY ALL
        """,
        [eid],
    ).fetchall()
    order = ["基本完好", "轻微破坏", "中等破坏", "严重破坏", "毁坏"]
    got = dict(rows)
    return [(s, float(got.get(s, 0.0))) for s in order]


def first_report_text(r: FirstReport) -> str:
    e = r.event
    lines = [f"利通区地震灾情首报（{e.event_id}）", "", f"一、震情：{e.describe_zh()}。"]
    lines.append(f"震中距我区中心约{e.epicentre_km():.0f}千米；按衰减关系估计我区最高烈度{roman(round(r.max_intensity))}度"
                 f"（{r.max_intensity:.1f}）。估计方法：{r.method}。")  # fmt: skip
    if r.empty:
        lines[-1] = (f"震中距我区中心约{e.epicentre_km():.0f}千米；按衰减关系估计我区中心烈度{roman(round(r.max_intensity))}度"
                     f"（{r.max_intensity:.1f}）。估计方法：{r.method}。")  # fmt: skip
        lines += ["", "二、影响：隐患台账中尚无可定位的登记对象（尚未调查或尚未发布），无法列出受影响对象和排查清单，"
                      "请各单位按估计烈度组织排查并及时报告。"]  # fmt: skip
        return "\n".join(lines) + "\n"
    if not r.felt:
        lines += [
            "",
            "二、影响：估计我区烈度均低于Ⅵ度，本次地震对我区无明显影响，不列出排查对象。各单位如发现异常请及时报告。",
        ]
        return "\n".join(lines) + "\n"
    lines += ["", "二、各乡镇估计烈度（Ⅵ度及以上的登记对象数）："]
    lines += [f"  {name}：{roman(d)}度，{n:,}处" for name, d, n in r.towns]
    lines += [
        "",
        "三、Ⅵ度及以上区域内的登记对象："
        + "，".join(f"{KIND_ZH.get(k, k)}{n:,}处" for k, n in sorted(r.kinds.items())),
    ]
    if r.structures:
        lines.append("  其中房屋按结构：" + "，".join(f"{s}{n:,}栋" for s, n in r.structures))
    if r.damage is None:
        lines.append("  房屋震害估计：尚无经核实来源的房屋易损性矩阵，本报不给出破坏数量估计，以现场排查为准。")
    else:
        lines.append("  房屋震害估计：" + "，".join(f"{s}约{v:,.0f}栋" for s, v in r.damage))
    lines += ["", f"四、Ⅵ度及以上区域内未销号的重大隐患：{r.major_hazards:,}项"]
    lines += [f"  {n}（{roman(d)}度，{unit_label(u)}）：{h}" for n, d, u, h in r.major_list]
    lines += ["", "五、Ⅵ度及以上区域内的重点对象："]
    for label, rows in r.key_objects.items():
        lines.append(f"  {label}：{r.key_counts[label]:,}处")
        lines += [f"    {n}（{roman(d)}度，{unit_label(u)}{f'，未销号隐患{h}项' if h else ''}）" for n, d, u, h in rows]
    lines += ["", "六、须立即排查的对象（排查清单已按责任单位生成）："]
    lines += [f"  {unit_label(u)}：{n:,}处" for u, n in r.check_now] or ["  无"]
    lines.append(f"  各单位现场排查后按“地震灾情反馈”模板报送至 data_raw/quake_feedback/<单位代码>/{e.event_id}/"
                 "（或平台上传），每受理一批即出一期续报。")  # fmt: skip
    footer = f"台账数据截至发布时间 {r.ledger_as_of}" if r.ledger_as_of else "台账数据：最近一次发布"
    lines += ["", f"以上为按衰减关系的快速估计，以现场调查为准。{footer}。利通区应急管理局（地震局）"]
    return "\n".join(lines) + "\n"


def write_first_report(r: FirstReport, out: Path) -> tuple[Path, Path]:
    """首报.txt and 首报.pdf."""
    return write_report(first_report_text(r), out, "首报")


def write_report(text: str, out: Path, stem: str) -> tuple[Path, Path]:
    """`<stem>.txt` (to paste) and `<stem>.pdf`: every line of the text, on as many A4 pages as it takes (long
    lines wrapped by display width, never cut), each page numbered 「第1页/共3页」 with the time it was made."""
    import matplotlib  # not at import time: loading the definitions must not import it
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    txt = write_bytes_atomic(out / f"{stem}.txt", text.encode("utf-8"))
    use_cjk_style()
    check_cjk_font()
    lines = text.splitlines()
    title, body = lines[0], [w for line in lines[1:] for w in wrap_display(line, WRAP_COLUMNS)]
    pages = [body[i : i + PAGE_LINES] for i in range(0, len(body), PAGE_LINES)] or [[]]
    made = f"生成时间 {beijing_now():%Y-%m-%d %H:%M}（北京时间）"
    figures = []
    for n, page in enumerate(pages, start=1):
        fig = Figure(figsize=A4_INCHES)  # text only: no layout engine (constrained layout drew every page twice)
        if n == 1:
            fig.text(0.5, 0.965, title, ha="center", va="top", fontsize=15, color=INK)
        else:
            fig.text(0.5, 0.975, f"{title}（续）", ha="center", va="top", fontsize=9, color=MUTED)
        fig.text(
            0.06,
            0.93,
            "\n".join(page).replace("$", r"\$"),
            ha="left",
            va="top",
            fontsize=BODY_PT,
            color=INK,
            linespacing=1.45,
        )
        fig.text(0.5, 0.015, f"第{n}页/共{len(pages)}页　{made}", ha="center", fontsize=7, color=MUTED)
        if replaced := settle_glyphs(fig):  # every character drawn has an outline (Ⅹ度 never loses its numeral)
            fig.text(0.5, 0.032, f"注：本页以“〓”代替字体无法显示的字符（{'、'.join(f'U+{ord(c):04X}' for c in replaced)}），原文见{stem}.txt",
                     ha="center", fontsize=7, color=MUTED)  # fmt: skip
        figures.append(fig)
    pdf = out / f"{stem}.pdf"
    # Type 3 glyphs: embedding the CJK font as Type 42 means subsetting all of it (twice the time per page); the
    # text stays extractable either way (tests/test_quake_reports.py reads it back).
    with atomic_path(pdf) as tmp, matplotlib.rc_context({"pdf.fonttype": 3}):
        with PdfPages(tmp, metadata={"Title": title}) as book:
            for fig in figures:
                book.savefig(fig)
    return txt, pdf


BODY_PT = 9
WRAP_COLUMNS = 108  # display columns per line at BODY_PT across the page's 0.88 (a CJK character is two)
PAGE_LINES = 56  # lines per page at BODY_PT × 1.45 between the title (0.93) and the footer


def display_width(text: str) -> int:
    """Columns the text takes: East Asian wide, full-width and ambiguous characters (Ⅹ, ①, °: full width in a
    CJK font) two, others one."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WFA" else 1 for ch in text)


def wrap_display(line: str, width: int) -> list[str]:
    """The line in pieces of at most `width` display columns (nothing dropped); the pieces after the first are
    indented two more than the line."""
    if display_width(line) <= width:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    pieces, current, used = [], "", 0
    for ch in line:
        w = display_width(ch)
        if used + w > width and current.strip():
            pieces.append(current)
            current, used = indent, len(indent)
        current += ch
        used += w
    pieces.append(current)
    return pieces


CHECKLIST_COLUMNS = {
    "priority": "优先序", "check_at_once": "立即排查", "why": "立即排查原因", "kind": "类别", "asset_id": "编码",
    "asset_name": "名称", "town_name": "乡镇", "intensity": "估计烈度", "degree_zh": "烈度(度)", "distance_km": "震中距(千米)",
    "pga_ms2": "PGA(m/s²)", "pgv_ms": "PGV(m/s)", "open_major": "未销号重大隐患", "open_hazards": "未销号隐患",
    "hazard_nos": "隐患编号", "building_use": "用途", "structure_type": "结构类型", "occupants": "常住(使用)人数",
    "lon": "经度", "lat": "纬度",
}  # fmt: skip


def write_checklists(con: duckdb.DuckDBPyConnection, event: Event, out: Path) -> list[Path]:
    """排查清单_<unit>.xlsx: one per responsible unit with objects at ≥ VI, in priority order."""
    felt_from = response_settings()["felt_from_intensity"]
    df = con.execute(
        "SELECT * FROM quake_exposure WHERE event_id = ? AND degree >= ? ORDER BY priority",
        [event.event_id, felt_from],
    ).df()
    if df.empty:  # not felt (below VI everywhere): nothing to check, and no checklist of an earlier run stays
        for stale in (out / "排查清单").glob("排查清单_*.xlsx"):
            stale.unlink()
        return []
    df["kind"] = df["kind"].map(KIND_ZH).fillna(df["kind"])
    df["town_name"] = df["town_code"].map(towns()).fillna("乡镇不明")
    df["degree_zh"] = df["degree"].map(roman)
    df["check_at_once"] = np.where(df["check_at_once"], "是", "")
    written = []
    for unit, part in df.groupby(df["responsible_unit"].fillna("未明确"), sort=True):
        path = out / "排查清单" / f"排查清单_{unit}.xlsx"
        written.append(_write_xlsx(part, path, f"{event.event_id} 震后排查清单 {unit_label(unit)}"))
    for stale in set((out / "排查清单").glob("排查清单_*.xlsx")) - set(written):  # a unit no longer concerned
        stale.unlink()
    return written


def _write_xlsx(df: pd.DataFrame, path: Path, title: str) -> Path:
    return write_frame_xlsx(df[list(CHECKLIST_COLUMNS)].rename(columns=CHECKLIST_COLUMNS), path, title, "排查清单")


def write_frame_xlsx(df: pd.DataFrame, path: Path, title: str, sheet: str) -> Path:
    """One sheet through the ledger export's streaming writer (frozen header, filters, neutralised text),
    headed by the frame's column names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with streamed_workbook(path, title) as wb:
        write_sheet(wb, sheet, [str(c) for c in df.columns], df.astype(object).where(df.notna(), None).values.tolist())
    return path


def write_map(con: duckdb.DuckDBPyConnection, event: Event, out: Path) -> Path:
    """Isoseismal ellipses (the district's relations, larger of the two) over the assets and town labels;
    nothing is downloaded (no basemap)."""
    use_cjk_style()
    df = con.execute("SELECT lon, lat, degree, town_code FROM quake_exposure WHERE event_id = ?", [event.event_id]).df()
    fig = new_figure((8, 7))
    ax = fig.add_subplot()
    km_lon = 111.32 * np.cos(np.radians(event.lat))
    colours = {6: "#f2c500", 7: "#ff8c1a", 8: "#d62728", 9: "#8b0000", 10: "#4b0000", 11: "#200000"}
    radii: dict[int, tuple[float, float]] = {}
    for rel in district_relations():
        for d, (ra, rb) in isoseismal_radii(event.magnitude, rel).items():
            old = radii.get(d, (0.0, 0.0))
            radii[d] = (max(old[0], ra), max(old[1], rb if event.strike is not None else ra))
    s, t = np.radians(event.strike or 0.0), np.linspace(0, 2 * np.pi, 241)
    for d, (ra, rb) in sorted(radii.items()):  # the ellipse in km along/across the strike, then to degrees
        along, across = ra * np.cos(t), rb * np.sin(t)
        east, north = along * np.sin(s) + across * np.cos(s), along * np.cos(s) - across * np.sin(s)
        ax.plot(event.lon + east / km_lon, event.lat + north / 111.32, color=colours.get(d, INK), lw=1.4,
                label=f"{roman(d)}度区外缘")  # fmt: skip
    if len(df):
        centres = df.groupby("town_code")[["lon", "lat"]].median()
        shown = df.sample(MAP_POINTS, random_state=0) if len(df) > MAP_POINTS else df  # the picture, not every dot
        ax.scatter(shown["lon"], shown["lat"], s=2, c=shown["degree"].map(lambda d: colours.get(int(d), "#9aa5b1")),
                   alpha=0.6)  # fmt: skip
        for code, (x, y) in centres.iterrows():
            ax.text(x, y, towns().get(code, code), fontsize=8, ha="center", color=INK)
    ax.plot([event.lon], [event.lat], marker="*", ms=14, color="#d62728", ls="none", label="震中")
    ax.set_title(f"{event.event_id} 估计烈度分布\n{event.describe_zh()}", fontsize=9)
    ax.set_xlabel("经度")
    ax.set_ylabel("纬度")
    ax.set_aspect(1 / np.cos(np.radians(event.lat)))
    ax.legend(loc="upper right", fontsize=7)
    if len(df):
        pad = 0.1
        ax.set_xlim(min(df["lon"].min(), event.lon) - pad, max(df["lon"].max(), event.lon) + pad)
        ax.set_ylim(min(df["lat"].min(), event.lat) - pad, max(df["lat"].max(), event.lat) + pad)
    path = out / "烈度分布图.png"
    settle_glyphs(fig)  # 「Ⅹ度区外缘」: every character of the legend drawn
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
