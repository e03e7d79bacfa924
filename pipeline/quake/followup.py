"""续报 and 终报: what the units found on the ground, against what the 首报 estimated.

The ledger stage takes each unit's 灾情反馈 file as a numbered batch of its event (pipeline/ledger/
quake_damage.py); this module reads the taken rows from the published snapshot and writes, for every batch
not yet reported, **续报 N** (text + PDF): the event's figures through that batch — estimated objects at ≥ VI
against objects inspected, per town and kind, the confirmed damage states, casualties, objects not usable —
and what changed since the previous report. An object reported twice counts once, as its latest report says.

**终报** closes the event (`cli quake close`, or the UI): the 续报 still due, then the totals, every object at
≥ VI still not inspected (per responsible unit, and as a workbook), and the hazards the event opened or
raised. The closure is recorded in the bureau's folder first, so the intake refuses later batches.

Everything is recorded in the quake store's `quake_reports_issued`; writing again writes nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipeline.ledger.exports import KIND_ZH
from pipeline.platform.clock import beijing_now
from pipeline.quake import damage
from pipeline.quake.damage import Estimate, band_zh
from pipeline.quake.event import Event
from pipeline.quake.exposure import attach_snapshot, quake_db_path, quake_store, snapshot_has
from pipeline.quake.names import unit_name, unit_names
from pipeline.quake.reports import write_frame_xlsx, write_report
from pipeline.quake.respond import event_dir
from pipeline.quake.shaking import response_settings, roman
from pipeline.registries.events import close_event, closed_at
from pipeline.registries.templates import towns

STATES = ("基本完好", "轻微破坏", "中等破坏", "严重破坏", "毁坏")
LISTED = 20  # objects / hazards listed in a report's text (the workbook has all)

ISSUED_DDL = """CREATE TABLE IF NOT EXISTS quake_reports_issued (
    event_id VARCHAR, report_kind VARCHAR, seq INTEGER, through_batch INTEGER, written_at TIMESTAMP,
    ledger_as_of VARCHAR, txt VARCHAR, pdf VARCHAR)"""

# The report that stands for every object through batch $k: its latest inspection (a later batch supersedes an
# earlier one; within a batch an object has one row); a "not inspected yet" row only while there is none.
LATEST_SQL = """
CREATE OR REPLACE TEMP TABLE quake_confirmed AS
SELECT * FROM led.quake_feedback_rows
WHERE event_id = $eid AND outcome = '已受理' AND batch_seq <= $k
QUALIFY row_number() OVER (PARTITION BY kind, asset_id ORDER BY inspected DESC, batch_seq DESC, row_no DESC) = 1
"""

# Estimated (objects at ≥ VI from the event's exposure) against confirmed (inspected), per town and kind.
TOWN_KIND_SQL = """
WITH est AS (
    SELECT town_code, kind, max(degree) AS degree, count(*) FILTER (WHERE degree >= $felt) AS estimated
    FROM quake_exposure WHERE event_id = $eid GROUP BY ALL
), conf AS (
    SELECT town_code, kind, count(*) FILTER (WHERE inspected) AS inspected,
           {states},
           coalesce(sum(deaths), 0) AS deaths, coalesce(sum(injuries), 0) AS injuries,
           count(*) FILTER (WHERE inspected AND NOT usable) AS unusable
    FROM quake_confirmed GROUP BY ALL
)
SELECT coalesce(e.town_code, c.town_code) AS town_code, coalesce(e.kind, c.kind) AS kind, e.degree,
       coalesce(e.estimated, 0) AS estimated, coalesce(c.inspected, 0) AS inspected,
       {coalesced}, coalesce(c.deaths, 0) AS deaths, coalesce(c.injuries, 0) AS injuries,
       coalesce(c.unusable, 0) AS unusable
FROM est e FULL JOIN conf c ON c.town_code IS NOT DISTINCT FROM e.town_code AND c.kind = e.kind
WHERE coalesce(e.estimated, 0) > 0 OR c.town_code IS NOT NULL OR c.kind IS NOT NULL
ORDER BY e.degree DESC NULLS LAST, town_code, kind
"""
STATE_COLUMNS = [f"s{i}" for i in range(len(STATES))]


def _town_kind_sql() -> str:
    states = ", ".join(f"count(*) FILTER (WHERE damage_state = '{s}') AS s{i}" for i, s in enumerate(STATES))
    coalesced = ", ".join(f"coalesce(c.s{i}, 0) AS s{i}" for i in range(len(STATES)))
    return TOWN_KIND_SQL.format(states=states, coalesced=coalesced)


@dataclass
class Figures:
    """The event's figures through one batch."""

    through_batch: int
    rows: list[dict] = field(default_factory=list)  # per town and kind (TOWN_KIND_SQL)
    units: int = 0  # units that reported
    batches: int = 0
    estimated_damage: Estimate | None = None  # the 首报's estimate (pipeline/quake/damage.py), if recorded
    # the buildings inspected so far: (inspected, confirmed per state, the 首报's expected per state for exactly
    # those buildings, the latter as (low, likely, high) over the V band)
    inspected_buildings: int = 0
    confirmed_buildings: dict[str, int] = field(default_factory=dict)
    estimated_inspected: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    town_buildings: list[tuple[str, dict[str, int], dict[str, tuple[float, float, float]]]] = field(
        default_factory=list
    )
    names: dict[str, str] = field(default_factory=dict)  # unit code → name

    def total(self, key: str) -> int:
        return sum(int(r[key]) for r in self.rows)

    def states(self) -> dict[str, int]:
        return {s: self.total(c) for s, c in zip(STATES, STATE_COLUMNS, strict=True)}


def _attach(con: duckdb.DuckDBPyConnection, published: Path, live: Path) -> str | None:
    """Attach the snapshot as `led` (pipeline/quake/exposure.py); what the reports' footer says of it, or None
    when it holds no 灾情反馈 yet (or there is no database at all)."""
    attached = attach_snapshot(con, published, live)
    if attached is None or not snapshot_has(con, "quake_feedback_rows"):
        return None
    source, stamp = attached
    if source != published:
        return "当前台账（尚无发布的快照）"
    return f"截至发布时间 {stamp}" if stamp else "最近一次发布"


def figures(con: duckdb.DuckDBPyConnection, eid: str, k: int) -> Figures:
    params = {"eid": eid, "k": k}
    con.execute(LATEST_SQL, params)
    cur = con.execute(_town_kind_sql(), {"eid": eid, "felt": response_settings()["felt_from_intensity"]})
    names = [d[0] for d in cur.description]
    fig = Figures(k, [dict(zip(names, r, strict=True)) for r in cur.fetchall()])
    fig.estimated_damage = damage.estimate(con, eid)
    _compare_buildings(con, eid, fig)
    fig.names = unit_names(con, eid)
    fig.units, fig.batches = con.execute(
        "SELECT count(DISTINCT unit), count(*) FROM led.quake_feedback_applied WHERE event_id = $eid AND batch_seq <= $k",
        params,
    ).fetchone()
    return fig


# The inspected buildings of the event (latest report each) with the 首报's expected state probabilities for exactly
# those buildings (quake_damage ⋈ quake_damage_model, each V variant): confirmed against estimated, per town.
COMPARE_SQL = """
SELECT d.town_code, m.variant, count(*) AS n, {confirmed}, {expected}
FROM quake_confirmed c
JOIN quake_exposure e ON e.event_id = $eid AND e.kind = 'buildings' AND e.asset_id = c.asset_id
JOIN quake_damage d ON d.event_id = $eid AND d.priority = e.priority
JOIN quake_damage_model m ON m.event_id = $eid AND m.damage_class = d.damage_class AND m.degree = least(d.degree, 12)
WHERE c.kind = 'buildings' AND c.inspected
GROUP BY ALL ORDER BY d.town_code, m.variant
"""


def _compare_buildings(con: duckdb.DuckDBPyConnection, eid: str, fig: Figures) -> None:
    if fig.estimated_damage is None:
        return
    confirmed = ", ".join(f"count(*) FILTER (WHERE c.damage_state = '{s}') AS c{i}" for i, s in enumerate(STATES))
    expected = ", ".join(f"sum(m.{c}) AS e{i}" for i, c in enumerate(STATE_COLUMNS))
    rows = con.execute(COMPARE_SQL.format(confirmed=confirmed, expected=expected), {"eid": eid}).fetchall()
    per_town: dict[str, dict] = {}
    for town, variant, n, *vals in rows:
        t = per_town.setdefault(town, {"n": n, "conf": vals[: len(STATES)], "exp": {}})
        t["exp"][variant] = vals[len(STATES) :]
    names = towns()

    def bands(exp: dict[str, list[float]]) -> dict[str, tuple[float, float, float]]:
        out = {}
        for i, s in enumerate(STATES):
            v = [float(exp[x][i]) for x in damage.VARIANTS]
            out[s] = (min(v), v[1], max(v))
        return out

    total_exp = {v: [0.0] * len(STATES) for v in damage.VARIANTS}
    for town, t in per_town.items():
        conf = dict(zip(STATES, (int(x) for x in t["conf"]), strict=True))
        fig.town_buildings.append((names.get(town, town or "乡镇不明"), conf, bands(t["exp"])))
        fig.inspected_buildings += int(t["n"])
        for s, n in conf.items():
            fig.confirmed_buildings[s] = fig.confirmed_buildings.get(s, 0) + n
        for v in damage.VARIANTS:
            total_exp[v] = [a + float(b) for a, b in zip(total_exp[v], t["exp"][v], strict=True)]
    fig.estimated_inspected = bands(total_exp) if per_town else {}


def _vs(confirmed: dict[str, int], estimated: dict[str, tuple[float, float, float]]) -> str:
    return "；".join(f"{s}确认{confirmed.get(s, 0):,}栋、估计{band_zh(estimated[s], '栋')}" for s in STATES)


def _summary_lines(f: Figures) -> list[str]:
    states = f.states()
    lines = [
        f"  已收到{f.units}个单位{f.batches}批灾情反馈；估计Ⅵ度及以上的登记对象{f.total('estimated'):,}处，"
        f"已现场排查{f.total('inspected'):,}处。",
        "  现场确认：" + "，".join(f"{s}{n:,}处" for s, n in states.items())
        + f"；不能正常使用{f.total('unusable'):,}处；死亡{f.total('deaths'):,}人，受伤{f.total('injuries'):,}人。",
    ]  # fmt: skip
    est = f.estimated_damage
    if est is None or est.total is None:
        lines.append("  首报未给出房屋破坏数量估计，下列为现场确认数。")
        return lines
    sev = est.severe_from
    lines.append(f"  首报估计（{est.method_zh}）：Ⅵ度及以上区域内房屋{est.total.buildings:,}栋，"
                 f"{sev}及以上{band_zh(est.total.severe, '栋')}。")  # fmt: skip
    if f.inspected_buildings:
        lines.append(f"  已排查的{f.inspected_buildings:,}栋房屋，现场确认与首报对这些房屋的估计："
                     + _vs(f.confirmed_buildings, f.estimated_inspected) + "。")  # fmt: skip
    return lines


def _town_damage_lines(f: Figures) -> list[str]:
    """Per town, the inspected buildings: confirmed against the 首报's estimate for them."""
    if not f.town_buildings:
        return []
    lines = ["  房屋破坏（已排查房屋，现场确认与估计）："]
    lines += [f"  {town}：{_vs(conf, est)}" for town, conf, est in f.town_buildings]
    return lines


def _table_lines(f: Figures) -> list[str]:
    names = towns()
    lines = []
    for r in f.rows:
        town = names.get(r["town_code"], r["town_code"] or "乡镇不明")
        degree = f"估计{roman(r['degree'])}度，" if r["degree"] else ""
        damage = "，".join(f"{s}{r[c]}" for s, c in zip(STATES, STATE_COLUMNS, strict=True) if r[c])
        lines.append(f"  {town}·{KIND_ZH.get(r['kind'], r['kind'])}：{degree}Ⅵ度及以上{r['estimated']:,}处，"
                     f"已排查{r['inspected']:,}处" + (f"（{damage}）" if damage else ""))  # fmt: skip
    return lines or ["  无"]


def _changes_lines(con: duckdb.DuckDBPyConnection, eid: str, k: int, now: Figures, before: Figures | None) -> list[str]:
    batch = con.execute(
        "SELECT unit, rel_path, taken, returned FROM led.quake_feedback_applied WHERE event_id = ? AND batch_seq = ?",
        [eid, k],
    ).fetchone()
    lines = [
        f"  第{k}批：{unit_name(batch[0], now.names)}报送（{Path(batch[1]).name}），受理{batch[2]}行，退回{batch[3]}行。"
    ]
    old = before.states() if before else dict.fromkeys(STATES, 0)
    delta = [f"{s}{n - old[s]:+,}" for s, n in now.states().items() if n != old[s]]
    inspected = now.total("inspected") - (before.total("inspected") if before else 0)
    lines.append(f"  已排查对象{inspected:+,}处" + (f"；确认破坏：{'，'.join(delta)}" if delta else "") + "。")
    for d_key, label in (("deaths", "死亡"), ("injuries", "受伤")):
        change = now.total(d_key) - (before.total(d_key) if before else 0)
        if change:
            lines.append(f"  {label}人数{change:+,}人。")
    opened = con.execute(
        "SELECT opened_hazard, damage_state, asset_name FROM led.quake_feedback_rows WHERE event_id = ? AND batch_seq = ? "
        "AND opened_hazard IS NOT NULL ORDER BY opened_hazard",
        [eid, k],
    ).fetchall()
    raised = con.execute(
        "SELECT string_agg(raised_hazards, '、') FROM led.quake_feedback_rows WHERE event_id = ? AND batch_seq = ? "
        "AND raised_hazards IS NOT NULL",
        [eid, k],
    ).fetchone()[0]
    if opened:
        lines.append(
            f"  登记（或更新）震损隐患{len(opened)}项："
            + "、".join(f"{h}（{n or ''}{s}）" for h, s, n in opened[:LISTED])
        )
    if raised:
        lines.append(f"  升为重大的已有隐患：{raised}")
    return lines


def follow_up_text(event: Event, n: int, k: int, now: Figures, changes: list[str], as_of: str) -> str:
    lines = [f"利通区地震灾情续报（第{n}报，{event.event_id}）", "", f"一、震情：{event.describe_zh()}。", "",
             f"二、截至第{k}批灾情反馈："]  # fmt: skip
    lines += _summary_lines(now)
    lines += ["", "三、分乡镇、分类别（估计与现场确认）："] + _table_lines(now) + _town_damage_lines(now)
    lines += ["", "四、与上次报告相比："] + changes
    lines += ["", f"以上为各单位现场排查报告的汇总；估计数来自首报（烈度按衰减关系、房屋破坏按首报所述方法估计）。台账数据：{as_of}。"
                  "利通区应急管理局（地震局）"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _issued(con: duckdb.DuckDBPyConnection, eid: str, kind: str) -> tuple[int, int]:
    """(reports of this kind so far, the last batch they cover)."""
    return con.execute(
        "SELECT count(*), coalesce(max(through_batch), 0) FROM quake_reports_issued WHERE event_id = ? AND report_kind = ?",
        [eid, kind],
    ).fetchone()


def _record(con: duckdb.DuckDBPyConnection, eid: str, kind: str, seq: int, k: int, as_of: str, files) -> None:
    con.execute("INSERT INTO quake_reports_issued VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [eid, kind, seq, k, beijing_now(), as_of, str(files[0]), str(files[1])])  # fmt: skip


def _write_follow_ups(con: duckdb.DuckDBPyConnection, event: Event, out_dir: Path, as_of: str) -> list[Path]:
    eid = event.event_id
    written, last = _issued(con, eid, "续报")
    pending = [b for (b,) in con.execute(
        "SELECT batch_seq FROM led.quake_feedback_applied WHERE event_id = ? AND batch_seq > ? ORDER BY batch_seq",
        [eid, last]).fetchall()]  # fmt: skip
    files: list[Path] = []
    before = figures(con, eid, last) if last else None
    for k in pending:
        now = figures(con, eid, k)
        changes = _changes_lines(con, eid, k, now, before)
        written += 1
        pair = write_report(
            follow_up_text(event, written, k, now, changes, as_of), event_dir(out_dir, event), f"续报{written}"
        )
        _record(con, eid, "续报", written, k, as_of, pair)
        files += pair
        before = now
    return files


def follow_up(event: Event, published: Path, live: Path, out_dir: Path) -> list[Path]:
    """续报 N for every batch taken since the last report (none: nothing written)."""
    with quake_store(out_dir) as con:
        con.execute(ISSUED_DDL)
        as_of = _attach(con, published, live)
        if not as_of:
            return []
        return _write_follow_ups(con, event, out_dir, as_of)


# --- 终报 ----------------------------------------------------------------------------------------------------

NOT_INSPECTED_SQL = """
SELECT e.priority AS 优先序, e.responsible_unit AS 责任单位, e.kind AS 类别, e.asset_id AS 编码, e.asset_name AS 名称,
       e.town_code AS 乡镇, e.degree AS 估计烈度, e.hazard_nos AS 未销号隐患
FROM quake_exposure e
WHERE e.event_id = $eid AND e.degree >= $felt
  AND NOT EXISTS (SELECT 1 FROM quake_confirmed c WHERE c.kind = e.kind AND c.asset_id = e.asset_id AND c.inspected)
ORDER BY e.responsible_unit, e.priority
"""


def final_report_text(event: Event, total: Figures, not_inspected: list[dict], hazards: list[tuple],
                      raised: list[str], as_of: str, closed_by: str, closed: dt.datetime | None = None) -> str:  # fmt: skip
    lines = [f"利通区地震灾情终报（{event.event_id}）", "", f"一、震情：{event.describe_zh()}。", "",
             "二、灾情总计（各单位现场排查报告）："]  # fmt: skip
    lines += _summary_lines(total)
    lines += ["", "三、分乡镇、分类别（估计与现场确认）："] + _table_lines(total) + _town_damage_lines(total)
    by_unit = Counter(r["责任单位"] for r in not_inspected)
    lines += [
        "",
        f"四、估计Ⅵ度及以上但至结束仍未报告现场排查的对象：{len(not_inspected):,}处（清单见终报_未排查对象.xlsx）",
    ]
    lines += [f"  {u}：{n:,}处" for u, n in sorted(by_unit.items(), key=lambda x: (-x[1], x[0] or ""))]
    lines += ["", f"五、本次地震登记的震损隐患：{len(hazards)}项"]
    lines += [
        f"  {h}（{name}，{grade}，{status}，{unit_name(u, total.names)}）"
        for h, name, grade, status, u in hazards[:LISTED]
    ]
    if len(hazards) > LISTED:
        lines.append(f"  ……其余{len(hazards) - LISTED}项见隐患台账（震损隐患）")
    lines.append(
        f"  因震损升为重大的已有隐患：{len(raised)}项" + (f"（{'、'.join(raised[:LISTED])}）" if raised else "")
    )
    lines += ["", f"本事件已由{closed_by}于{closed or beijing_now():%Y-%m-%d %H:%M}结束，此后不再受理该事件的灾情反馈。"
                  f"台账数据：{as_of}。利通区应急管理局（地震局）"]  # fmt: skip
    return "\n".join(lines) + "\n"


# Nothing confirmed yet (no 灾情反馈 in the snapshot): every object at ≥ VI is not inspected.
NONE_CONFIRMED_SQL = """CREATE OR REPLACE TEMP TABLE quake_confirmed AS
SELECT NULL::VARCHAR AS kind, NULL::VARCHAR AS asset_id, NULL::BOOLEAN AS inspected WHERE false"""


def _final_figures(con: duckdb.DuckDBPyConnection, eid: str, reported: bool) -> tuple[int, Figures, list, list[str]]:
    """(last batch, totals through it, the event's 震损 hazards, the hazards it raised to 重大)."""
    if not reported:
        con.execute(NONE_CONFIRMED_SQL)
        return 0, Figures(0), [], []
    last = con.execute("SELECT coalesce(max(batch_seq), 0) FROM led.quake_feedback_applied WHERE event_id = ?",
                       [eid]).fetchone()[0]  # fmt: skip
    hazards = con.execute(
        "SELECT hazard_no, asset_name, hazard_grade, status, responsible_unit FROM led.hazards "
        "WHERE origin_event = ? ORDER BY hazard_grade DESC, hazard_no", [eid]).fetchall()  # fmt: skip
    raised = {h for (s,) in con.execute(
        "SELECT raised_hazards FROM led.quake_feedback_rows WHERE event_id = ? AND raised_hazards IS NOT NULL",
        [eid]).fetchall() for h in s.split("、")}  # fmt: skip
    return last, figures(con, eid, last), hazards, sorted(raised)


def close(event: Event, data_raw: Path, published: Path, live: Path, out_dir: Path, by: str) -> list[Path]:
    """Close the event (later batches are refused from now on), then write the 续报 still due and the 终报."""
    close_event(data_raw, event.event_id, by)
    eid = event.event_id
    folder = event_dir(out_dir, event)
    folder.mkdir(parents=True, exist_ok=True)
    with quake_store(out_dir) as con:
        con.execute(ISSUED_DDL)
        as_of = _attach(con, published, live)
        files = _write_follow_ups(con, event, out_dir, as_of) if as_of else []
        last, total, hazards, raised = _final_figures(con, eid, as_of is not None)
        not_inspected = con.execute(NOT_INSPECTED_SQL,
                                    {"eid": eid, "felt": response_settings()["felt_from_intensity"]}).df()  # fmt: skip
        not_inspected["类别"] = not_inspected["类别"].map(lambda k: KIND_ZH.get(k, k))
        not_inspected["乡镇"] = not_inspected["乡镇"].map(lambda c: towns().get(c, c))
        names = unit_names(con, eid)
        not_inspected["责任单位"] = not_inspected["责任单位"].map(lambda u: unit_name(u, names))
        text = final_report_text(
            event, total, not_inspected.to_dict("records"), hazards, raised, as_of or "—", by, closed_at(data_raw, eid)
        )  # the closure record's Beijing time, to the minute
        book = write_frame_xlsx(not_inspected, folder / "终报_未排查对象.xlsx", f"{eid} 未排查对象", "未排查对象")
        pair = write_report(text, folder, "终报")
        _record(con, eid, "终报", 1, last, as_of or "", pair)
    return [*files, *pair, book]


def pending_follow_ups(published: Path, out_dir: Path) -> dict[str, int]:
    """event id → last batch taken, for the events whose taken batches (in the published snapshot) run past
    their last 续报: what the sensor and `cli run` start a follow-up for. Read-only; a store being written just
    now counts as having reported nothing (the follow-up run itself writes each report once)."""
    if not published.exists():
        return {}
    con = duckdb.connect(str(published), read_only=True)
    try:
        if not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'quake_feedback_applied'").fetchall():
            return {}
        taken = dict(con.execute("SELECT event_id, max(batch_seq) FROM quake_feedback_applied GROUP BY 1").fetchall())
    finally:
        con.close()
    issued: dict[str, int] = {}
    try:
        store = duckdb.connect(str(quake_db_path(out_dir)), read_only=True)
        try:
            issued = dict(store.execute(
                "SELECT event_id, max(through_batch) FROM quake_reports_issued GROUP BY 1").fetchall())  # fmt: skip
        finally:
            store.close()
    except duckdb.Error:
        pass
    return {eid: k for eid, k in taken.items() if k > issued.get(eid, 0)}
