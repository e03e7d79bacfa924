"""What the district sends within minutes of an event: the 首报 (PDF + the same as plain text), the 排查清单 per
responsible unit (XLSX, priority order) and the map of the isoseismals over the assets.

Every figure of the 首报 is one SQL count over the event's rows in the quake store (`first_report_figures`),
so the report and the tables agree by construction and a test can recount them.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.formats.excel_safe import sql_text
from pipeline.formats.xlsx_stream import fetch_xml, row_xml_sql, streamed_workbook
from pipeline.ledger.exports import KIND_ZH, write_sheet
from pipeline.platform.atomic import atomic_path, write_bytes_atomic
from pipeline.platform.clock import beijing_now
from pipeline.platform.paths import RULES_DIR
from pipeline.publish.basemap import draw_outline
from pipeline.publish.glyphs import settle_glyphs
from pipeline.publish.render import new_figure
from pipeline.publish.style import INK, MUTED, check_cjk_font, use_cjk_style
from pipeline.quake import damage
from pipeline.quake.damage import STATES, Estimate, band_zh
from pipeline.quake.event import DISTRICT_CENTRE, Event
from pipeline.quake.names import unit_name, unit_names
from pipeline.quake.shaking import (
    degree,
    district_intensity,
    district_relations,
    isoseismal_radii,
    response_settings,
    roman,
    shown,
)
from pipeline.registries.templates import towns
from pipeline.registries.units import unit_label

A4_INCHES = (8.27, 11.69)
ANNEX = "首报附件"  # the 首报's long lists
EXCEL_MAX_ROWS = 1_048_576  # rows of a sheet, the header included
MAP_POINTS = 50_000  # dots drawn on the map (a random sample beyond that: the zones, not the count, matter)


@dataclass
class KeyObject:
    """One key object at ≥ the key degree, as the reports name it."""

    group: str
    name: str
    town: str
    degree: int
    unit: str  # the responsible unit's name
    open_hazards: int
    open_major: int
    state: str | None  # buildings: the model's most likely state; None: no fragility model for the kind
    p_severe: float | None  # buildings: P(≥ 严重破坏), most likely V
    repairs: float | None = None  # pipelines: expected repairs by ALA (2001) wave passage (the 排查清单's figure)
    label: str | None = None  # what the register says of it beside its name (a dam's safety class: rules/kinds.yaml)


@dataclass
class SupplyObject:
    """A water plant or main at ≥ the listed degree (response.yaml water_supply) and the towns it serves."""

    name: str
    label: str | None
    town: str
    degree: int
    unit: str
    towns_served: list[str]


@dataclass
class Shelter:
    """A shelter of a shaken town, its state at its estimated degree (response.yaml shelters.states)."""

    name: str
    label: str | None
    town: str
    degree: int
    design_intensity: int | None
    state: str
    why: str
    capacity: float


@dataclass
class ShelterTown:
    """A shaken town's shelters: the capacity of those counted usable against the people in buildings estimated
    `need_from` or worse (a band: lowest, most likely, highest)."""

    name: str
    degree: int
    shelters: int
    usable: int
    usable_capacity: float
    capacity: float
    need: tuple[float, float, float]

    @property
    def short(self) -> float:
        """People beyond the usable capacity, at the most likely need."""
        return max(0.0, self.need[1] - self.usable_capacity)


@dataclass
class FirstReport:
    event: Event
    max_intensity: float
    felt: bool
    towns: list[tuple[str, int, int]] = field(default_factory=list)  # (town name, degree, assets at ≥ VI)
    kinds: dict[str, int] = field(default_factory=dict)  # assets at ≥ VI per kind
    structures: list[tuple[str, int]] = field(default_factory=list)  # buildings at ≥ VI per structure type
    damage: Estimate | None = None  # buildings per damage state and the people in them (pipeline/quake/damage.py)
    major_hazards: int = 0
    major_list: list[tuple] = field(default_factory=list)  # (object, town, degree, unit name, open major hazards)
    key_objects: dict[str, list[KeyObject]] = field(default_factory=dict)  # every key object per group
    key_counts: dict[str, int] = field(default_factory=dict)
    check_now: list[tuple[str, int]] = field(default_factory=list)  # (unit name, objects to check at once)
    checklists: list[tuple[str, int, int]] = field(default_factory=list)  # (unit name, objects at ≥ VI, at once)
    method: str = ""
    ledger_as_of: str | None = None
    empty: bool = False  # the ledger has no located object: only the estimate at the district's centre
    max_degree: int = 0
    supply: list[SupplyObject] = field(default_factory=list)  # water plants and mains at ≥ their listed degree
    supply_from: int = 7
    shelters: list[Shelter] = field(default_factory=list)  # every shelter of the shaken towns
    shelter_towns: list[ShelterTown] = field(default_factory=list)
    shelter_need_from: str = "中等破坏"


ANNEX_LISTED = 300  # objects listed per group in the annex; the 排查清单 has all
PAGE_LISTED = 8  # key objects named on the 首报's page (one per group: seven groups in response.yaml)


def shaking_method_zh(method: str) -> str:
    """The attenuation estimate in words (the store keeps relation identifiers; a reader never sees them)."""
    with open(RULES_DIR / "reference" / "quake_attenuation.csv", encoding="utf-8") as f:
        regions = {r["relation_id"]: r["region"].split(" ")[0] for r in csv.DictReader(f)}
    used = [z for rid, z in regions.items() if rid in method]
    words = "按《中国地震动参数区划图》（GB 18306-2015）编图所用烈度衰减关系估计"
    if len(used) > 1:
        words += f"（{'、'.join(used)}两组系数取大值）"
    elif used:
        words += f"（{used[0]}系数）"
    if "无走向" in method:
        words += "，未给出断层走向，按长轴方向的圆形等震线估计"
    return words


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
        return FirstReport(event, float(shown(centre)), bool(degree(centre) >= felt_from), method=method,
                           ledger_as_of=as_of, empty=True, max_degree=int(degree(centre)))  # fmt: skip
    top = con.execute("SELECT max(degree) FROM quake_exposure WHERE event_id = ?", [eid]).fetchone()[0] or 0
    max_i = float(max_i or 0)  # shown cut to 0.1 (its degree unchanged: 6.96 is Ⅵ, shown 6.9)
    report = FirstReport(event, float(shown(max_i)), top >= felt_from, method=method, ledger_as_of=as_of,
                         max_degree=int(top))  # fmt: skip
    if not report.felt:
        return report
    shaken = f"event_id = '{eid}' AND degree >= {felt_from}"
    names, units = towns(), unit_names(con, eid)
    report.towns = [(names.get(t, t), d, n) for t, d, n in con.execute(  # by its buildings or centre (towns.py)
        "SELECT town_code, degree, assets_felt FROM quake_towns WHERE event_id = ? ORDER BY intensity DESC, town_code",
        [eid]).fetchall()]  # fmt: skip
    report.kinds = dict(
        con.execute(f"SELECT kind, count(*) FROM quake_exposure WHERE {shaken} GROUP BY kind").fetchall()
    )
    report.structures = con.execute(
        f"SELECT coalesce(structure_type, '不详'), count(*) FROM quake_exposure WHERE {shaken} AND kind = 'buildings' "
        "GROUP BY ALL ORDER BY count(*) DESC, 1"
    ).fetchall()
    report.damage = damage.estimate(con, eid)
    major = f"event_id = '{eid}' AND degree >= {key_from} AND open_major > 0"
    report.major_hazards = con.execute(
        f"SELECT coalesce(sum(open_major), 0) FROM quake_exposure WHERE {major}"
    ).fetchone()[0]
    report.major_list = [(n, names.get(t, "乡镇不明"), d, unit_name(u, units), m) for n, t, d, u, m in con.execute(
        f"SELECT asset_name, town_code, degree, responsible_unit, open_major FROM quake_exposure WHERE {major} "
        f"ORDER BY intensity DESC, open_major DESC, asset_id LIMIT {ANNEX_LISTED}").fetchall()]  # fmt: skip
    for group in settings["key_objects"]["groups"]:
        label, cond = group["label"], group["when"]
        where = f"e.event_id = '{eid}' AND e.degree >= {key_from} AND {cond}"
        report.key_counts[label] = con.execute(f"SELECT count(*) FROM quake_exposure e WHERE {where}").fetchone()[0]
        # the strongest-shaken first, then their estimated states (the join over the few listed, not the million)
        rows = con.execute(
            "SELECT k.asset_name, k.town_code, k.degree, k.responsible_unit, k.open_hazards, k.open_major, "
            "d.likely_state, d.p_severe, CASE WHEN k.kind = 'pipelines' THEN k.expected_repairs END, k.label "
            "FROM (SELECT e.asset_name, e.town_code, e.degree, e.responsible_unit, e.open_hazards, e.open_major, "
            "e.kind, e.priority, e.intensity, e.asset_id, e.expected_repairs, e.label FROM quake_exposure e "
            f"WHERE {where} ORDER BY e.intensity DESC, e.open_major DESC, e.asset_id LIMIT {ANNEX_LISTED}) k "
            f"LEFT JOIN (SELECT * FROM quake_damage WHERE event_id = '{eid}') d "
            "ON k.kind = 'buildings' AND d.priority = k.priority "
            "ORDER BY d.p_severe DESC NULLS LAST, k.intensity DESC, k.asset_id"
        ).fetchall()
        report.key_objects[label] = [
            KeyObject(
                label, n or "（未填写名称）", names.get(t, "乡镇不明"), d, unit_name(u, units), h, m, st, p, rr, lb
            )
            for n, t, d, u, h, m, st, p, rr, lb in rows
        ]
    report.check_now = [(unit_name(u, units), n) for u, n in con.execute(
        "SELECT responsible_unit, count(*) FROM quake_exposure WHERE event_id = ? AND check_at_once "
        "GROUP BY ALL ORDER BY count(*) DESC, 1", [eid]).fetchall()]  # fmt: skip
    report.checklists = [(unit_name(u, units), n, m) for u, n, m in con.execute(
        f"SELECT responsible_unit, count(*), count(*) FILTER (WHERE check_at_once) FROM quake_exposure WHERE {shaken} "
        "GROUP BY ALL ORDER BY count(*) FILTER (WHERE check_at_once) DESC, count(*) DESC, 1").fetchall()]  # fmt: skip
    _supply(con, report, settings, names, units)
    _shelters(con, report, settings, names, felt_from)
    return report


def _town_names(codes: str | None, names: dict[str, str]) -> list[str]:
    return [names.get(c, c) for c in (codes or "").split(";") if c]


def _supply(con: duckdb.DuckDBPyConnection, r: FirstReport, settings: dict, names: dict, units: dict) -> None:
    """Water plants and mains at ≥ response.yaml water_supply.from_intensity, with the towns they serve."""
    ws = settings.get("water_supply")
    if not ws:
        return
    r.supply_from = int(ws["from_intensity"])
    rows = con.execute(
        "SELECT asset_name, label, town_code, degree, responsible_unit, towns_served FROM quake_exposure "
        f"WHERE event_id = ? AND degree >= {r.supply_from} AND ({ws['when']}) "
        "ORDER BY intensity DESC, asset_id", [r.event.event_id]).fetchall()  # fmt: skip
    r.supply = [SupplyObject(n or "（未填写名称）", lb, names.get(t, "乡镇不明"), d, unit_name(u, units), _town_names(ts, names))
                for n, lb, t, d, u, ts in rows]  # fmt: skip


def _shelters(con: duckdb.DuckDBPyConnection, r: FirstReport, settings: dict, names: dict, felt_from: int) -> None:
    """The shelters of the towns at ≥ the felt degree, each with its state at its own degree (the first rule of
    response.yaml shelters.states that holds), and per town the counted capacity against the people in buildings
    estimated shelters.need_from or worse (damage.people_from_state)."""
    sh = settings.get("shelters")
    if not sh:
        return
    eid = r.event.event_id
    r.shelter_need_from = sh["need_from"]
    state = " ".join(f"WHEN {x['when']} THEN {sql_text(x['state'])}" for x in sh["states"])
    why = " ".join(f"WHEN {x['when']} THEN {sql_text(x['why'])}" for x in sh["states"])
    shaken = con.execute("SELECT town_code, degree FROM quake_towns WHERE event_id = ? AND degree >= ? "
                         "ORDER BY intensity DESC, town_code", [eid, felt_from]).fetchall()  # fmt: skip
    rows = con.execute(
        f"SELECT asset_name, label, town_code, degree, design_intensity, CASE {state} END, CASE {why} END, "
        f"coalesce(capacity, 0) FROM quake_exposure WHERE event_id = ? AND ({sh['when']}) "
        "ORDER BY town_code, degree DESC, asset_id", [eid]).fetchall()  # fmt: skip
    need = damage.people_from_state(con, eid, sh["need_from"])
    counted = set(sh["counted"])
    for code, d in shaken:
        mine = [x for x in rows if x[2] == code]
        r.shelters += [Shelter(n or "（未填写名称）", lb, names.get(t, t), dg, di, st, w, float(c))
                       for n, lb, t, dg, di, st, w, c in mine]  # fmt: skip
        usable = [x for x in mine if x[5] in counted]
        r.shelter_towns.append(ShelterTown(names.get(code, code), d, len(mine), len(usable),
                                           float(sum(x[7] for x in usable)), float(sum(x[7] for x in mine)),
                                           need.get(code, (0.0, 0.0, 0.0))))  # fmt: skip


def _key_zh(k: KeyObject) -> str:
    """「某小学教学楼（金积镇，Ⅷ度，估计中等破坏；金积镇人民政府）」"""
    if k.state is not None:
        state = f"估计{k.state}" + (
            f"，严重破坏及以上可能性约{k.p_severe:.0%}" if k.p_severe and k.p_severe >= 0.05 else ""
        )
    else:
        state = "未作破坏估计（无可用的易损性来源），须现场检查"
        if k.repairs is not None:  # ALA (2001) wave-passage repair rate: a sourced figure, not a damage state
            state = f"按ALA（2001）波动破坏率估计修复点约{k.repairs:.2f}处，须现场检查"
    hazards = (
        f"，未销号隐患{k.open_hazards}项" + (f"（重大{k.open_major}项）" if k.open_major else "")
        if k.open_hazards
        else ""
    )
    label = f"{k.label}，" if k.label else ""
    return f"{k.name}（{label}{k.town}，{roman(k.degree)}度，{state}{hazards}；{k.unit}）"


def _supply_page_line(r: FirstReport) -> list[str]:
    if not r.supply:
        return []
    served = list(dict.fromkeys(t for s in r.supply for t in s.towns_served))
    named = "、".join(s.name for s in r.supply[:3]) + ("等" if len(r.supply) > 3 else "")
    towns_zh = f"，可能停水的乡镇：{'、'.join(served)}" if served else "，未填写供水乡镇"
    return [f"  供水：{roman(r.supply_from)}度及以上的供水厂站和干管{len(r.supply):,}处（{named}）{towns_zh}。"]


def _shelter_page_lines(r: FirstReport) -> list[str]:
    if not r.shelter_towns:
        return []
    counts: dict[str, int] = {}
    for s in r.shelters:
        counts[s.state] = counts.get(s.state, 0) + 1
    cap = sum(t.usable_capacity for t in r.shelter_towns)
    need = tuple(sum(t.need[i] for t in r.shelter_towns) for i in range(3))
    states = "，".join(f"{k}{n:,}处" for k, n in counts.items())
    lines = [f"  应急避难场所：Ⅵ度及以上乡镇共{len(r.shelters):,}处（{states or '无登记'}），可用容量{cap:,.0f}人；"
             f"{r.shelter_need_from}及以上房屋内人员{band_zh(need, '人')}。"]  # fmt: skip
    short = sorted((t for t in r.shelter_towns if t.short >= 1), key=lambda t: -t.short)
    if short:
        lines.append("  避难容量不足的乡镇：" + "；".join(
            f"{t.name}可用{t.usable_capacity:,.0f}人、需约{t.need[1]:,.0f}人" for t in short[:3])
            + ("等" if len(short) > 3 else "") + "（明细见附件）。")  # fmt: skip
    return lines


def _most_important(r: FirstReport) -> list[KeyObject]:
    """The few key objects named on the page: the first of each group (its buildings most likely to be badly
    damaged first, by P(≥严重破坏); then open major hazards, then degree), so every kind of key object is seen."""
    order = lambda k: (-(k.p_severe or 0.0), -k.open_major, -k.degree, k.name)  # noqa: E731
    return [min(rows, key=order) for rows in r.key_objects.values() if rows][:PAGE_LISTED]


def _towns_by_degree(r: FirstReport, felt_from: int) -> list[str]:
    by: dict[int, list[str]] = {}
    for name, d, _ in r.towns:
        if d >= felt_from:
            by.setdefault(d, []).append(name)
    return [f"  {roman(d)}度：{'、'.join(names)}" for d, names in sorted(by.items(), reverse=True)]


def _damage_page_lines(est: Estimate | None) -> list[str]:
    if est is None or est.total is None:
        return ["三、房屋震害估计：Ⅵ度及以上区域内无登记房屋。"]
    t, sev = est.total, est.severe_from
    lines = [
        f"三、房屋震害估计（{est.method_zh}，为估计数，以现场调查为准）：",
        f"  Ⅵ度及以上区域内登记房屋{t.buildings:,}栋，常住（使用）人员{t.people:,.0f}人。",
        f"  估计{sev}及以上{band_zh(t.severe, '栋')}，其中常住（使用）人员{band_zh(t.people_severe, '人')}。",
        "  各破坏等级：" + "；".join(f"{s}{band_zh(t.states[s], '栋')}" for s in reversed(STATES)) + "。",
    ]
    worst = sorted(est.towns, key=lambda a: -a.severe[1])[:3]
    if worst and worst[0].severe[1] >= 0.5:
        lines.append(f"  {sev}及以上较多的乡镇：" + "；".join(f"{a.name}{band_zh(a.severe, '栋')}" for a in worst
                                                          if a.severe[1] >= 0.5) + "。")  # fmt: skip
    band = "区间按各类结构易损性指数的合理范围给出，" if est.banded else ""
    lines.append(f"  说明：{band}{est.scale_note_zh}；本报不估计人员伤亡。")
    return lines


def first_report_text(r: FirstReport) -> str:
    """The 首报 itself: one A4 page a leader reads (the long lists are in first_report_annex_text)."""
    e = r.event
    felt_from = response_settings()["felt_from_intensity"]
    method = shaking_method_zh(r.method)
    lines = [
        f"利通区地震灾情首报（{e.event_id}）",
        "",
        f"一、震情：{e.describe_zh()}，震中距我区中心约{e.epicentre_km():.0f}千米。",
    ]
    if r.empty:
        lines += [f"二、烈度：{method}，我区中心烈度{roman(r.max_degree)}度（{r.max_intensity:.1f}）。", "",
                  "三、影响：隐患台账中尚无可定位的登记对象（尚未调查或尚未发布），无法列出受影响对象和排查清单，"
                  "请各单位按估计烈度组织排查并及时报告。"]  # fmt: skip
        return "\n".join(lines) + "\n"
    lines.append(f"二、烈度：{method}，我区最高烈度{roman(r.max_degree)}度（计算值{r.max_intensity:.1f}）。")
    if not r.felt:
        lines += [
            "",
            "三、影响：估计我区烈度均低于Ⅵ度，本次地震对我区无明显影响，不列出排查对象。各单位如发现异常请及时报告。",
        ]
        return "\n".join(lines) + "\n"
    lines += _towns_by_degree(r, felt_from)
    lines += ["", *_damage_page_lines(r.damage), ""]
    counts = "，".join(f"{label}{n:,}处" for label, n in r.key_counts.items())
    lines.append(f"四、Ⅵ度及以上区域内的重点对象：{counts}；未销号的重大隐患{r.major_hazards:,}项。")
    if important := _most_important(r):
        lines.append("  各类中最需关注的：")
        lines += [f"  {k.group}：{_key_zh(k)}" for k in important]
    lines += [*_supply_page_line(r), *_shelter_page_lines(r)]
    at_once = sum(n for _, n in r.check_now)
    lines += [
        "",
        f"五、正在开展：已按责任单位生成排查清单{len(r.checklists):,}份（Ⅵ度及以上全部登记对象），其中须立即排查"
        f"{at_once:,}处、涉及{len(r.check_now):,}个单位。各单位现场排查后填写“地震灾情反馈”表，"
        "通过利通区地震隐患平台上传；每受理一批即出一期续报。",
        "",
        "全部重点对象、重大隐患、各单位排查对象数和分乡镇震害估计见《首报附件》。",
    ]
    footer = f"台账数据截至发布时间 {r.ledger_as_of}" if r.ledger_as_of else "台账数据：最近一次发布"
    lines += [f"以上均为快速估计，以现场调查为准。{footer}。利通区应急管理局（地震局）"]
    return "\n".join(lines) + "\n"


def first_report_annex_text(r: FirstReport) -> str:
    """首报附件: the lists the page leaves out (every key object, the major hazards, the units' checks, the
    damage estimate per town, the method and its data)."""
    e = r.event
    lines = [f"利通区地震灾情首报附件（{e.event_id}）", "", f"震情：{e.describe_zh()}。", ""]
    est = r.damage
    lines.append("一、分乡镇房屋震害估计（Ⅵ度及以上区域内登记房屋；估计数，以现场调查为准）：")
    if est is None or not est.towns:
        lines.append("  无")
    else:
        for a in [*est.towns, *([est.total] if est.total else [])]:
            lines.append(f"  {a.name}（最高{roman(a.degree)}度）：房屋{a.buildings:,}栋，常住（使用）人员{a.people:,.0f}人；"
                         f"{est.severe_from}及以上{band_zh(a.severe, '栋')}，其中人员{band_zh(a.people_severe, '人')}。")  # fmt: skip
            lines.append("    " + "；".join(f"{s}{band_zh(a.states[s], '栋')}" for s in STATES) + "。")
    lines += ["", "二、Ⅵ度及以上区域内的重点对象："]
    for label, rows in r.key_objects.items():
        lines.append(f"  {label}：{r.key_counts[label]:,}处")
        lines += [f"    {_key_zh(k)}" for k in rows]
        if r.key_counts[label] > len(rows):
            lines.append(f"    ……其余{r.key_counts[label] - len(rows):,}处见各单位排查清单")
    lines += _supply_annex_lines(r) + _shelter_annex_lines(r)
    lines += ["", f"三、Ⅵ度及以上区域内未销号的重大隐患：{r.major_hazards:,}项"]
    lines += [f"  {n}（{t}，{roman(d)}度，{u}）：重大隐患{m}项" for n, t, d, u, m in r.major_list]
    lines += ["  （隐患编号和整改要求见各单位排查清单和隐患台账）"] if r.major_list else []
    lines += ["", "四、各责任单位排查清单（Ⅵ度及以上的登记对象，其中须立即排查的）："]
    lines += [f"  {u}：{n:,}处，其中须立即排查{m:,}处" for u, n, m in r.checklists] or ["  无"]
    lines += ["", "五、估计方法："]
    lines.append(f"  烈度：{shaking_method_zh(r.method)}；各对象取所在等震线的烈度。")
    if est is not None:
        lines.append(f"  房屋震害：{est.method_zh}。平均震害等级μD = 2.5[1 + tanh((I + 6.25V − 13.1)/2.3)]，"
                     "D0–D5按β分布；易损性指数V按房屋结构对应的EMS-98易损性类别取值，区间取V的合理范围；"
                     "已知鉴定为C/D级或无圈梁构造柱的砌体房屋按弱一级类别估计。")  # fmt: skip
        lines.append("  破坏等级对应（判断）：D0、D1为基本完好，D2轻微破坏，D3中等破坏，D4严重破坏，D5毁坏。")
        lines.append(
            f"  {est.scale_note_zh}。桥梁、危险化学品设施和管道无可用的破坏等级易损性来源，不估计破坏等级（管道给出按ALA（2001）波动破坏率估计的修复点数），须现场检查。"
        )
    return "\n".join(lines) + "\n"


def _supply_annex_lines(r: FirstReport) -> list[str]:
    lines = [f"  {roman(r.supply_from)}度及以上的供水厂站和干管：{len(r.supply):,}处"]
    for s in r.supply:
        label = f"{s.label}，" if s.label else ""
        served = f"可能停水的乡镇：{'、'.join(s.towns_served)}" if s.towns_served else "未填写供水乡镇"
        lines.append(f"    {s.name}（{label}{s.town}，{roman(s.degree)}度；{s.unit}）：{served}")
    return lines


def _shelter_annex_lines(r: FirstReport) -> list[str]:
    if not r.shelter_towns:
        return []
    lines = [f"  Ⅵ度及以上乡镇的应急避难场所（可用：估计烈度不高于其抗震设防烈度且场址可用；可用容量对比"
             f"{r.shelter_need_from}及以上房屋内人员，估计数）："]  # fmt: skip
    for t in r.shelter_towns:
        lines.append(f"    {t.name}（{roman(t.degree)}度）：避难场所{t.shelters:,}处，可用{t.usable:,}处、可用容量"
                     f"{t.usable_capacity:,.0f}人；{r.shelter_need_from}及以上房屋内人员{band_zh(t.need, '人')}"
                     + (f"，缺口约{t.short:,.0f}人" if t.short >= 1 else "") + "。")  # fmt: skip
        for s in (x for x in r.shelters if x.town == t.name):
            design = f"设防{roman(s.design_intensity)}度" if s.design_intensity and s.design_intensity >= 6 else (
                "不设防" if s.design_intensity else "设防烈度未记录")  # fmt: skip
            label = f"{s.label}，" if s.label else ""
            lines.append(
                f"      {s.name}（{label}{roman(s.degree)}度，{design}，容量{s.capacity:,.0f}人）：{s.state}（{s.why}）"
            )
    return lines


def write_first_report(r: FirstReport, out: Path) -> tuple[Path, Path, Path]:
    """首报.txt/.pdf (one page: what goes out first) and 首报附件.txt (the long lists). The annex's PDF follows
    with the 排查清单 (write_annex_pdf): after a strong event it runs to some thirty pages, which take longer to
    draw than everything else of the 首报."""
    annex = write_bytes_atomic(out / f"{ANNEX}.txt", first_report_annex_text(r).encode("utf-8"))
    return (*write_report(first_report_text(r), out, "首报"), annex)


def write_annex_pdf(out: Path) -> Path | None:
    """首报附件.pdf from the annex text the 首报 wrote (None when there is none)."""
    text = out / f"{ANNEX}.txt"
    return write_report(text.read_text(encoding="utf-8"), out, ANNEX)[1] if text.exists() else None


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


def _checklist_select(event_id: str, felt_from: int) -> str:
    """The 排查清单 columns of the event's rows at ≥ the felt degree, as people read them (kinds and towns by
    name, the degree as a numeral, the intensity cut to 0.1 after its degree was taken), with `unit`
    (the workbook it goes to) and `priority` (its order)."""
    kinds = " ".join(f"WHEN {sql_text(k)} THEN {sql_text(v)}" for k, v in KIND_ZH.items())
    names = " ".join(f"WHEN {sql_text(k)} THEN {sql_text(v)}" for k, v in towns().items())
    numerals = "[" + ", ".join(sql_text(roman(d)) for d in range(1, 13)) + "]"
    values = {
        "priority": "priority", "check_at_once": "CASE WHEN check_at_once THEN '是' ELSE '' END", "why": "why",
        "kind": f"CASE kind {kinds} ELSE kind END", "asset_id": "asset_id", "asset_name": "asset_name",
        "town_name": f"CASE town_code {names} ELSE '乡镇不明' END",
        "intensity": "floor(intensity * 10 + 1e-9) / 10",  # shaking.shown
        "degree_zh": f"CASE WHEN degree BETWEEN 1 AND 12 THEN {numerals}[degree] ELSE '—' END",
    }  # fmt: skip
    columns = ", ".join(f'{values.get(c, c)} AS "{c}"' for c in CHECKLIST_COLUMNS)
    return (f"SELECT coalesce(responsible_unit, '未明确') AS unit, {columns} FROM quake_exposure "
            f"WHERE event_id = {sql_text(event_id)} AND degree >= {int(felt_from)}")  # fmt: skip


def write_checklists(con: duckdb.DuckDBPyConnection, event: Event, out: Path) -> list[Path]:
    """排查清单_<unit>.xlsx: one per responsible unit with objects at ≥ VI, in priority order. Each row's
    <row> element is rendered by DuckDB once (xlsx_stream.row_xml_sql), then each unit's rows are streamed
    into its workbook in priority order: no cell is built in Python (132 s for the 59 workbooks at 1 M
    assets when pandas and Python built every cell)."""
    felt_from = response_settings()["felt_from_intensity"]
    query = _checklist_select(event.event_id, felt_from)
    row = row_xml_sql(con, query, hidden=["unit"])
    con.execute(f"CREATE OR REPLACE TEMP TABLE quake_checklist_rows AS SELECT unit, priority, {row} AS xml "
                f"FROM ({query})")  # fmt: skip
    try:
        counts = con.execute("SELECT unit, count(*) FROM quake_checklist_rows GROUP BY unit ORDER BY unit").fetchall()
        written = []
        per_sheet = EXCEL_MAX_ROWS - 1
        for unit, n in counts:  # none when not felt (below VI everywhere): no checklist of an earlier run stays
            path = out / "排查清单" / f"排查清单_{unit}.xlsx"
            path.parent.mkdir(parents=True, exist_ok=True)
            with streamed_workbook(path, f"{event.event_id} 震后排查清单 {unit_label(unit)}") as wb:
                n_sheets = -(-n // per_sheet)
                for i in range(n_sheets):
                    rows = fetch_xml(con, "SELECT xml FROM quake_checklist_rows WHERE unit = ? ORDER BY priority "
                                          f"LIMIT {per_sheet} OFFSET {i * per_sheet}", [unit])  # fmt: skip
                    title = "排查清单" if n_sheets == 1 else f"排查清单({i + 1})"
                    wb.add_sheet(title, list(CHECKLIST_COLUMNS.values()), rows, min(per_sheet, n - i * per_sheet))
            written.append(path)
    finally:
        con.execute("DROP TABLE IF EXISTS quake_checklist_rows")
    for stale in set((out / "排查清单").glob("排查清单_*.xlsx")) - set(written):  # a unit no longer concerned
        stale.unlink()
    return written


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
    draw_outline(ax)  # the district's outline and its neighbours under everything (reference/boundaries)
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
        from pipeline.publish.labels import TownLabels  # matplotlib: not at import time (the definitions load this)

        names = towns()
        TownLabels(ax, [(names.get(code, code), x, y) for code, (x, y) in centres.iterrows()], fontsize=8)  # apart
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
