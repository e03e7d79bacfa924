"""Rectification feedback files (template part 5): preview, then apply in file order.

Files come from `data_raw/feedback/<unit>/<batch>/`, are ingested and validated like surveys
(GE suite from schemas/feedback.yaml), and are then applied in file order: each row either
changes its hazard (status, measures, …, plus an event) or is refused with a reason and
changes nothing; the rest of the file still applies. A file is applied once, in one
transaction; `preview` runs the same logic and rolls back. Rows are checked one by one in file order
against the hazard's state, and written set-based in waves (one row per hazard per wave), so a file of
thousands of rows costs a few statements, not a few per row.

The acting unit of every row is the unit the file came from (its folder; later the web page's
account), resolved by pipeline/registries/units.py — never the 填报单位 typed in the row. An empty 填报单位
takes the folder's unit; a different one refuses the row. Acceptance (已销号 / 验收不通过) and extension
decisions are taken only from the folder of the hazard's supervising department (by sector,
pipeline/ledger/supervision.py); it writes its own record (验收人, 验收日期, 验收结论, and the row's
整改(管控)措施 text as 验收意见, with 评估报告编号/评估专家) and never overwrites the unit's 五落实 (措施, 责任人,
资金, 时限, 预案).

整改状态 管控措施已落实 is a step, not a status: the responsible unit reports that the immediate control of a hazard
with a control deadline (停止使用, 封闭, 疏散, 限载 …) is in place; the hazard keeps its status, control_done_on takes
the report date and the row's 整改(管控)措施 text goes to 管控措施/监测 (the 整改措施 of 五落实 stays). A unit moving
such a hazard to 管控中 has put its controls in place too (control_done_on, if not reported before).

Decisions travel the same way (监管决定, issue 26 §3 and §1): 挂牌督办 (the notice: 督办通知书编号, 督办期限, and the
row's 整改(管控)措施 as 督办要求) and 督办核销 only from the folder of a unit of reference/duban.yaml's issuers (the
district government), 核销 only by the unit that issued the notice and only once the hazard is 已销号; 认定为重大
(the reason in 整改(管控)措施) only from the hazard's supervising department or the government, on an open 一般
hazard. Like an extension decision, a decision row leaves 整改状态 as it is (the row must repeat it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import duckdb
import pandas as pd

from pipeline.intake.ingest import ingest_kind
from pipeline.intake.validate import validate_if_changed
from pipeline.ledger.duban import issuers
from pipeline.ledger.model import (
    CONTROL_DONE,
    DECISION_RAISE_NOTE,
    OPEN_STATUSES,
    SUPERVISE_CLOSED,
    SUPERVISING,
    ensure_ledger_schema,
    record_events,
    unit_actor,
)
from pipeline.ledger.supervision import hazard_supervisor
from pipeline.platform import faults
from pipeline.platform.clock import beijing_now
from pipeline.platform.failures import rollback
from pipeline.registries.templates import load_template
from pipeline.registries.units import TOP_UNIT, resolve_acting_unit, unit_label

FEEDBACK_COLUMNS = (
    "hazard_no, unit, status, measures, funds_wan, person, report_date, extend_to, extend_reason, "
    "monitoring, plan_no, plan_finish, assessment_no, expert, acceptor, accept_date, accept_result, "
    "extension_decision, row_no, decision, notice_no, notice_deadline, photos"
)


@dataclass
class RowResult:
    row_no: int
    hazard_no: str | None
    unit: str | None  # the acting unit (the file's folder), not the value typed in the row
    outcome: str  # 已执行 / 退回 / 此前已执行 (将执行 in a preview)
    reason_zh: str
    from_status: str | None = None
    to_status: str | None = None
    digest: str | None = None  # what the row reported (row_digest), for a valid row


@dataclass
class FileResult:
    file_id: str
    rel_path: str
    department: str | None
    rows: list[RowResult] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(r.outcome in ("已执行", "将执行") for r in self.rows)

    @property
    def refused(self) -> int:
        return sum(r.outcome == "退回" for r in self.rows)

    @property
    def repeated(self) -> int:
        return sum(r.outcome == REPEATED for r in self.rows)


REPEATED = "此前已执行"


def row_digest(row: dict) -> str:
    """What a feedback row reports: every column but its row number and the 填报单位 typed (which may only repeat
    the folder's unit). A unit that sends a corrected file again, or the same rows in a new file, sends rows
    already applied: each is recognised by this, said to be applied before, and neither applied twice nor
    refused."""
    reported = {k: str(v) for k, v in sorted(row.items()) if k not in ("row_no", "unit") and v is not None}
    return hashlib.sha256(json.dumps(reported, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]


def _applied_before(con: duckdb.DuckDBPyConnection, acting: str, digests: list[str]) -> dict[str, str]:
    """digest → why the row is not applied again (Chinese): the file, row and day it was applied, for the rows
    of `digests` that this unit already had applied."""
    if not digests:
        return {}
    found = con.execute(
        """
        SELECT r.row_digest, arg_min(r.rel_path, a.applied_at), arg_min(r.row_no, a.applied_at), min(a.applied_at)
        FROM feedback_results r JOIN feedback_applied a USING (file_id)
        WHERE r.unit = ? AND r.outcome = '已执行' AND r.row_digest IN (SELECT unnest(?::VARCHAR[]))
        GROUP BY r.row_digest
        """,
        [acting, digests],
    ).fetchall()
    return {d: f"与{PurePosixPath(rel).name}第{row}行相同，已于{when:%Y-%m-%d %H:%M}执行，不再重复执行"
            for d, rel, row, when in found}  # fmt: skip


def validate_feedback(con: duckdb.DuckDBPyConnection, data_raw: Path) -> bool:
    """Ingest and validate the feedback files (only when they changed); whether validation ran."""
    ingest_kind(con, data_raw, "feedback")
    return validate_if_changed(con, load_template("feedback"))[1]


def pending_uploads(con: duckdb.DuckDBPyConnection, kind: str, applied_table: str) -> list[tuple[str, str, str, str]]:
    """(file_id, rel_path, unit folder, second folder) of the `kind` files (feedback, 灾情反馈) not in
    `applied_table` yet, in the order their reports were made (earliest report date first), so that a
    supervisor's acceptance arriving in the same run as the unit's 'done' report follows it."""
    return con.execute(
        f"""
        SELECT f.file_id, f.rel_path, f.department, f.survey_round FROM intake_files f
        LEFT JOIN (SELECT file_id, min(report_date) AS first_report FROM stg_{kind} GROUP BY file_id) r
            USING (file_id)
        WHERE f.kind = ? AND f.is_current AND f.status = 'ingested'
          AND f.file_id NOT IN (SELECT file_id FROM {applied_table})
        ORDER BY r.first_report NULLS LAST, f.rel_path
        """,
        [kind],
    ).fetchall()


def pending_files(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """Feedback files not applied yet, earliest reports first: (file_id, rel_path, unit folder)."""
    return [row[:3] for row in pending_uploads(con, "feedback", "feedback_applied")]


# 五落实 of a 重大 hazard (责任、措施、资金、时限、预案): the label and the feedback/ledger column that carries it
FIVE_IN_PLACE = (("责任人", "person"), ("整改(管控)措施", "measures"), ("整改资金(万元)", "funds_wan"),
                 ("计划完成时限", "plan_finish"), ("应急预案编号", "plan_no"))  # fmt: skip


def _check(h: dict | None, row: dict, acting: str) -> tuple[str | None, str | None]:
    """(reason to refuse, target status). The reason is Chinese, for the unit. `acting` is the unit the
    file came from; the row's own 填报单位 may only repeat it."""
    if row["unit"] and row["unit"] != acting:
        return (
            f"填报单位{unit_label(row['unit'])}与报送单位{unit_label(acting)}不一致：本文件由{acting}报送，"
            "只能以本单位身份填报（填报单位可不填）",
            None,
        )
    if h is None:
        return f"隐患编号“{row['hazard_no']}”在台账中不存在", None
    if row["status"] == CONTROL_DONE:
        return _check_control(h, row, acting), h["status"]
    target = row["status"]
    if target == "待整改":  # the template allows it for a 监管决定 row, which repeats the hazard's status
        return "整改状态不能填“待整改”（该状态由调查登记产生）；报送整改进展请填整改中、管控中或已整改待验收", None
    if target == "已销号" and row["accept_result"] == "不通过":
        target = "整改中"  # acceptance failed: back to rectification
    actor = unit_actor(h["status"], target)
    if actor is None:
        return f"不允许的状态变更：当前为“{h['status']}”，不能改为“{row['status']}”", None
    supervisor = hazard_supervisor(h)
    if actor == "responsible" and acting != h["responsible_unit"]:
        return f"不是本单位负责的隐患（责任单位为{unit_label(h['responsible_unit'])}）", None
    if actor == "supervisor" and acting == h["responsible_unit"]:
        return "责任单位不能验收自己的整改，验收销号须由监管单位填报", None
    if actor == "supervisor" and acting != supervisor:
        return f"验收销号须由该隐患的行业监管部门{unit_label(supervisor)}报送（按区行业监管分工）", None
    if h["hazard_grade"] == "重大" and target in ("整改中", "管控中") and h["status"] != target:
        missing = [name for name, key in FIVE_IN_PLACE if row[key] is None and h.get(key) is None]
        if missing:
            return f"重大隐患转为{target}须“五落实”（责任、措施、资金、时限、预案），缺少：{'、'.join(missing)}", None
    if h["hazard_grade"] == "重大" and target == "已销号" and not (row["assessment_no"] or row["expert"]):
        return "重大隐患验收销号须填写评估报告编号或评估专家", None
    if h["updated_on"] and row["report_date"] < h["updated_on"]:
        return f"填报日期早于该隐患最近一次变更日期（{h['updated_on']}），请核对", None
    if row["extend_to"] and row["extend_to"] <= h["deadline"]:
        return f"申请延期至应晚于原整改时限（{h['deadline']}）", None
    return None, target


def _check_control(h: dict, row: dict, acting: str) -> str | None:
    """Why a 管控措施已落实 report is refused (Chinese), or None. The step keeps the hazard's status (the
    transitions table lets the responsible unit report it in 待整改, 整改中 and 管控中) and records the day."""
    if acting != h["responsible_unit"]:
        return f"不是本单位负责的隐患（责任单位为{unit_label(h['responsible_unit'])}），管控措施落实情况由责任单位填报"
    if h["control_deadline"] is None:
        return "该隐患没有管控时限（其整改措施不要求立即停止使用、封闭、疏散或限载），不能填报“管控措施已落实”，请按整改进展填报整改状态"
    if unit_actor(h["status"], h["status"]) != "responsible":
        return f"当前为“{h['status']}”，不能填报“管控措施已落实”"
    if h["control_done_on"] is not None:
        return f"该隐患已于{h['control_done_on']}报告管控措施已落实，不再重复填报"
    if row["report_date"] < h["found_date"]:
        return f"填报日期早于该隐患的发现日期（{h['found_date']}），请核对"
    if h["updated_on"] and row["report_date"] < h["updated_on"]:
        return f"填报日期早于该隐患最近一次变更日期（{h['updated_on']}），请核对"
    if row["extend_to"]:
        return "填报“管控措施已落实”的行不能同时申请延期，请另填一行整改进展并申请延期"
    return None


def _check_decision(h: dict | None, row: dict, acting: str) -> str | None:
    """Why a supervisor's extension decision is refused (Chinese), or None."""
    if h is None:
        return f"隐患编号“{row['hazard_no']}”在台账中不存在"
    supervisor = hazard_supervisor(h)
    if acting != supervisor:
        return f"延期审批须由该隐患的行业监管部门{unit_label(supervisor)}报送（按区行业监管分工）"
    if h["extend_status"] != "待审批":
        return "该隐患没有待审批的延期申请"
    if row["status"] != h["status"]:
        return f"审批延期时整改状态应填该隐患当前状态“{h['status']}”"
    return None


def _check_supervision(h: dict | None, row: dict, acting: str) -> str | None:
    """Why a 监管决定 (认定为重大 / 挂牌督办 / 督办核销) is refused (Chinese, naming the units), or None."""
    if h is None:
        return f"隐患编号“{row['hazard_no']}”在台账中不存在"
    decision = row["decision"]
    if row["status"] != h["status"]:
        return f"报送监管决定（{decision}）时整改状态应填该隐患当前状态“{h['status']}”"
    if decision == "认定为重大":
        supervisor = hazard_supervisor(h)
        if acting not in (supervisor, TOP_UNIT):
            return (f"认定为重大须由该隐患的监管部门{unit_label(supervisor)}或{unit_label(TOP_UNIT)}报送，"
                    f"{unit_label(acting)}无权认定")  # fmt: skip
        if h["status"] not in OPEN_STATUSES:
            return f"该隐患为“{h['status']}”，只能对未销号的隐患认定为重大"
        if h["hazard_grade"] == "重大":
            return "该隐患已是重大隐患"
        return None
    allowed = issuers()
    if decision == "挂牌督办":
        if acting not in allowed:
            return (f"挂牌督办只能由区人民政府或其安委会办公室（{'、'.join(unit_label(u) for u in allowed)}）下达，"
                    f"{unit_label(acting)}无权挂牌督办")  # fmt: skip
        if h["hazard_grade"] != "重大":
            return f"挂牌督办只适用于重大隐患，该隐患为{h['hazard_grade']}隐患"
        if h["status"] not in OPEN_STATUSES:
            return f"该隐患为“{h['status']}”，只能对未销号的重大隐患挂牌督办"
        if h["supervise_status"] == SUPERVISING:
            return f"该隐患已挂牌督办（督办通知书{h['supervise_no']}，督办单位{unit_label(h['supervise_unit'])}）"
        return None
    # 督办核销
    if h["supervise_status"] != SUPERVISING:
        return "该隐患没有督办中的挂牌督办，无需核销"
    if acting != h["supervise_unit"]:
        return f"督办核销须由下达督办通知书{h['supervise_no']}的{unit_label(h['supervise_unit'])}报送"
    if row["notice_no"] and row["notice_no"] != h["supervise_no"]:
        return f"督办通知书编号“{row['notice_no']}”与该隐患的督办通知书“{h['supervise_no']}”不一致"
    if h["status"] != "已销号":
        return (f"该隐患尚未验收销号（当前为“{h['status']}”），督办核销须在监管单位验收销号之后；"
                "在此之前仍为督办中")  # fmt: skip
    return None


# One wave of accepted rows, set-based: the hazard's new values and the event each row records.
WAVE_COLUMNS = ("hazard_no", "decision", "approved", "target", "from_status", "measures", "person", "funds_wan",
                "extend_to", "extend_reason", "monitoring", "plan_no", "plan_finish", "assessment_no", "expert",
                "accepting", "acceptor", "accept_date", "accept_result", "report_date", "unit", "source_file",
                "note", "controlling", "action", "notice_no", "notice_deadline")  # fmt: skip

APPLY_DECISIONS = """
UPDATE hazards h SET extend_status = CASE WHEN w.approved THEN '已批准' ELSE '不予批准' END,
    extend_to = CASE WHEN w.approved THEN h.extend_requested_to ELSE h.extend_to END
FROM feedback_wave w WHERE w.decision AND w.action::VARCHAR IS NULL AND w.hazard_no = h.hazard_no"""

# 监管决定: 认定为重大 raises the grade; 挂牌督办 records the notice (督办中); 督办核销 closes it (已核销). updated_on is
# left as it is (a decision is no report of the unit's: a 管控中 hazard's review cycle runs on).
APPLY_SUPERVISION = f"""
UPDATE hazards h SET
    hazard_grade = CASE WHEN w.action::VARCHAR = '认定为重大' THEN '重大' ELSE h.hazard_grade END,
    supervise_no = CASE WHEN w.action::VARCHAR = '挂牌督办' THEN w.notice_no::VARCHAR ELSE h.supervise_no END,
    supervise_unit = CASE WHEN w.action::VARCHAR = '挂牌督办' THEN w.unit ELSE h.supervise_unit END,
    supervise_date = CASE WHEN w.action::VARCHAR = '挂牌督办' THEN w.report_date::DATE ELSE h.supervise_date END,
    supervise_deadline = CASE WHEN w.action::VARCHAR = '挂牌督办' THEN w.notice_deadline::DATE
                              ELSE h.supervise_deadline END,
    supervise_requirement = CASE WHEN w.action::VARCHAR = '挂牌督办' THEN w.measures ELSE h.supervise_requirement END,
    supervise_status = CASE w.action::VARCHAR WHEN '挂牌督办' THEN '{SUPERVISING}' WHEN '督办核销' THEN '{SUPERVISE_CLOSED}'
                            ELSE h.supervise_status END,
    supervise_closed_on = CASE w.action::VARCHAR WHEN '挂牌督办' THEN NULL WHEN '督办核销' THEN w.report_date::DATE
                               ELSE h.supervise_closed_on END
FROM feedback_wave w WHERE w.action::VARCHAR IS NOT NULL AND w.hazard_no = h.hazard_no"""

APPLY_ROWS = """
UPDATE hazards h SET status = w.target,
    measures = CASE WHEN w.accepting OR w.controlling THEN h.measures ELSE w.measures END,
    person = CASE WHEN w.accepting THEN h.person ELSE w.person END,
    funds_wan = CASE WHEN w.accepting THEN h.funds_wan ELSE coalesce(w.funds_wan::DOUBLE, h.funds_wan) END,
    extend_requested_to = coalesce(w.extend_to::DATE, h.extend_requested_to),
    extend_reason = coalesce(w.extend_reason, h.extend_reason),
    extend_status = CASE WHEN w.extend_to IS NOT NULL THEN '待审批' ELSE h.extend_status END,
    monitoring = CASE WHEN w.accepting THEN h.monitoring
                      WHEN w.controlling THEN w.measures || coalesce('；监测：' || w.monitoring, '')
                      ELSE coalesce(w.monitoring, h.monitoring) END,
    control_done_on = CASE WHEN w.controlling THEN w.report_date::DATE
                           WHEN w.target = '管控中' AND h.control_deadline IS NOT NULL
                               THEN coalesce(h.control_done_on, w.report_date::DATE)
                           ELSE h.control_done_on END,
    plan_no = CASE WHEN w.accepting THEN h.plan_no ELSE coalesce(w.plan_no, h.plan_no) END,
    plan_finish = CASE WHEN w.accepting THEN h.plan_finish ELSE coalesce(w.plan_finish::DATE, h.plan_finish) END,
    assessment_no = coalesce(w.assessment_no, h.assessment_no),
    expert = coalesce(w.expert, h.expert),
    acceptor = CASE WHEN w.accepting THEN w.acceptor ELSE h.acceptor END,
    accept_date = CASE WHEN w.accepting THEN w.accept_date::DATE ELSE h.accept_date END,
    accept_result = CASE WHEN w.accepting THEN w.accept_result ELSE h.accept_result END,
    accept_opinion = CASE WHEN w.accepting THEN w.measures ELSE h.accept_opinion END,
    updated_on = w.report_date::DATE
FROM feedback_wave w WHERE NOT w.decision AND w.hazard_no = h.hazard_no"""

WAVE_EVENTS = """(SELECT hazard_no, report_date::DATE AS event_date, from_status,
    CASE WHEN decision THEN from_status ELSE target END AS to_status, unit, source_file, note FROM feedback_wave)"""


def _text(v: object) -> str | None:
    return None if v is None else (v.isoformat() if isinstance(v, dt.date) else str(v))


def _wave_row(row: dict, h: dict, target: str | None, acting: str, source: str) -> dict:
    """The values one accepted row writes (`target` None: a supervisor's extension decision, or a 监管决定)."""
    if target is None and row.get("decision"):
        note = _decision_note(row, h, acting)
        values = {"decision": True, "approved": False, "target": h["status"], "accepting": False,
                  "action": row["decision"]}  # fmt: skip
    elif target is None:
        approved = row["extension_decision"] == "批准"
        note = (f"延期申请（至{h['extend_requested_to']}）{'批准' if approved else '不予批准'}"
                f"{'' if approved else '，整改时限不变'}：{row['measures']}")  # fmt: skip
        values = {
            "decision": True,
            "approved": approved,
            "target": h["status"],
            "accepting": False,
            "controlling": False,
        }
    else:
        note = row["measures"] + (f"；申请延期至{row['extend_to']}（待监管单位审批）：{row['extend_reason']}"
                                  if row["extend_to"] else "")  # fmt: skip
        accepting = unit_actor(h["status"], target) == "supervisor"
        controlling = row["status"] == CONTROL_DONE
        if controlling:
            note = f"{CONTROL_DONE}（管控时限{h['control_deadline']}）：{row['measures']}"
        if photo_note := _photo_note(row.get("photos") or ""):
            note += f"；{photo_note}"
        values = {
            "decision": False,
            "approved": False,
            "target": target,
            "accepting": accepting,
            "controlling": controlling,
        }
    out = {k: _text(row.get(k)) for k in WAVE_COLUMNS if k in row}
    out.update(values, from_status=h["status"], unit=acting, source_file=source, note=note)
    return out


PHOTO_ITEM = re.compile(r"(整改前|整改后):([0-9a-f]{64})")


def _photo_note(value: str) -> str:
    """The 整改照片 column (整改前:<sha256>;整改后:<sha256>…, written by the portal's form) in the event's note:
    整改前照片：h1、h2；整改后照片：h3 (the portal shows the photos of a hazard from its events' notes)."""
    by_label: dict[str, list[str]] = {}
    for label, sha in PHOTO_ITEM.findall(value.lower().replace("：", ":")):
        by_label.setdefault(label, []).append(sha)
    return "；".join(f"{label}照片：{'、'.join(hashes)}" for label, hashes in by_label.items())


def _decision_note(row: dict, h: dict, acting: str) -> str:
    """The event of a 监管决定, in words: who decided what, and the reason or the notice."""
    who = unit_label(acting)
    if row["decision"] == "认定为重大":
        return f"{DECISION_RAISE_NOTE}：{who}认定，隐患等级一般 → 重大，理由：{row['measures']}（须落实“五落实”）"
    if row["decision"] == "挂牌督办":
        return (f"挂牌督办：{who}下达督办通知书{row['notice_no']}，督办期限{_text(row['notice_deadline'])}，"
                f"督办要求：{row['measures']}")  # fmt: skip
    return f"督办核销：{who}确认督办通知书{h['supervise_no']}督办的隐患已整改销号，予以核销：{row['measures']}"


def _apply_wave(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """Apply accepted rows of distinct hazards together: two UPDATEs and one INSERT of events."""
    frame = pd.DataFrame([[r.get(k) for k in WAVE_COLUMNS] for r in rows], columns=list(WAVE_COLUMNS), dtype=object)
    for flag in ("decision", "approved", "accepting", "controlling"):
        frame[flag] = frame[flag].astype(bool)
    con.register("feedback_wave_df", frame)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE feedback_wave AS SELECT * FROM feedback_wave_df")
    finally:
        con.unregister("feedback_wave_df")
    con.execute(APPLY_DECISIONS)
    con.execute(APPLY_SUPERVISION)
    con.execute(APPLY_ROWS)
    record_events(con, WAVE_EVENTS)


def _hazards(con: duckdb.DuckDBPyConnection, numbers: list[str]) -> dict[str, dict]:
    cur = con.execute(
        "SELECT hazard_no, status, responsible_unit, hazard_grade, deadline, updated_on, person, measures, funds_wan, "
        "plan_finish, plan_no, extend_requested_to, extend_status, sector_supervisor, found_date, control_deadline, "
        "control_done_on, supervise_no, supervise_unit, supervise_status FROM hazards WHERE hazard_no IN "
        "(SELECT unnest(?::VARCHAR[]))",
        [numbers],
    )
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def _waves(rows: list[dict]) -> list[list[dict]]:
    """Rows in file order, split so that each wave holds at most one row per hazard: a hazard's second row
    in the file is checked against the state its first row left."""
    waves: list[list[dict]] = []
    seen: dict[str | None, int] = {}
    for row in rows:
        k = seen.get(row["hazard_no"], 0)
        seen[row["hazard_no"]] = k + 1
        if k == len(waves):
            waves.append([])
        waves[k].append(row)
    return waves


def _run_file(con: duckdb.DuckDBPyConnection, file_id: str, rel_path: str, dept: str | None) -> FileResult:
    result = FileResult(file_id, rel_path, dept)
    acting = resolve_acting_unit(dept)  # the folder's unit; intake refused files from unknown folders
    cur = con.execute(f"SELECT {FEEDBACK_COLUMNS} FROM stg_feedback WHERE file_id = ? ORDER BY row_no", [file_id])
    names = [d[0] for d in cur.description]
    valid = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    refused = con.execute(
        "SELECT row_no, json_extract_string(raw_json, '$.hazard_no'), reasons_zh FROM quarantine "
        "WHERE kind = 'feedback' AND file_id = ?",
        [file_id],
    ).fetchall()
    result.rows += [RowResult(r, h, acting, "退回", reason) for r, h, reason in refused]
    for row in valid:
        row["digest"] = row_digest(row)
    before = _applied_before(con, acting, [row["digest"] for row in valid])
    result.rows += [RowResult(row["row_no"], row["hazard_no"], acting, REPEATED, before[row["digest"]],
                              digest=row["digest"]) for row in valid if row["digest"] in before]  # fmt: skip
    valid = [row for row in valid if row["digest"] not in before]
    for wave in _waves(valid):
        state = _hazards(con, [r["hazard_no"] for r in wave])
        accepted = []
        for row in wave:
            h = state.get(row["hazard_no"])
            if row["decision"] and not (row["unit"] and row["unit"] != acting):
                reason, target = _check_supervision(h, row, acting), None
            elif row["extension_decision"] and not (row["unit"] and row["unit"] != acting):
                reason, target = _check_decision(h, row, acting), None
            else:
                reason, target = _check(h, row, acting)
            if reason:
                result.rows.append(RowResult(row["row_no"], row["hazard_no"], acting, "退回", reason,
                                             digest=row["digest"]))  # fmt: skip
                continue
            accepted.append(_wave_row(row, h, target, acting, rel_path))
            to_status = target or h["status"]
            result.rows.append(RowResult(row["row_no"], row["hazard_no"], acting, "已执行", "", h["status"], to_status,
                                         row["digest"]))  # fmt: skip
        if accepted:
            _apply_wave(con, accepted)
    result.rows.sort(key=lambda r: r.row_no)
    return result


def preview(con: duckdb.DuckDBPyConnection, file_id: str) -> FileResult:
    """What applying the file would do; nothing is changed."""
    ensure_ledger_schema(con)
    rel_path, dept = con.execute(
        "SELECT rel_path, department FROM intake_files WHERE file_id = ?", [file_id]
    ).fetchall()[0]
    con.execute("BEGIN TRANSACTION")
    try:
        result = _run_file(con, file_id, rel_path, dept)
    finally:
        con.execute("ROLLBACK")
    for r in result.rows:  # nothing was applied: say what would be
        r.outcome = "将执行" if r.outcome == "已执行" else r.outcome
    return result


def _record_results(con: duckdb.DuckDBPyConnection, file_id: str, rel_path: str, rows: list[RowResult]) -> None:
    """One INSERT for the file's row outcomes (executemany costs a statement per row)."""
    frame = pd.DataFrame(
        [(file_id, rel_path, r.row_no, r.hazard_no, r.unit, r.outcome, r.reason_zh, r.from_status, r.to_status,
          r.digest) for r in rows],
        columns=["file_id", "rel_path", "row_no", "hazard_no", "unit", "outcome", "reason_zh", "from_status",
                 "to_status", "row_digest"],
        dtype=object,
    )  # fmt: skip
    con.register("feedback_results_df", frame)
    try:
        con.execute(
            "INSERT INTO feedback_results BY NAME SELECT file_id, rel_path, row_no::INTEGER AS row_no, hazard_no, unit, "
            "outcome, reason_zh, from_status, to_status, row_digest FROM feedback_results_df"
        )
    finally:
        con.unregister("feedback_results_df")


def apply_pending(con: duckdb.DuckDBPyConnection, only: str | None = None) -> list[FileResult]:
    """Apply every current feedback file not applied before (or only the file `only`); one transaction
    per file."""
    ensure_ledger_schema(con)
    results = []
    for file_id, rel_path, dept in pending_files(con):
        if only is not None and file_id != only:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            result = _run_file(con, file_id, rel_path, dept)
            _record_results(con, file_id, rel_path, result.rows)
            con.execute(
                "INSERT INTO feedback_applied VALUES (?, ?, ?, ?, ?)",
                [file_id, rel_path, beijing_now(), result.applied, result.refused],
            )
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
        results.append(result)
        faults.point("ledger_feedback:after_first_file")
    return results


def applied_results(con: duckdb.DuckDBPyConnection) -> list[FileResult]:
    """Every current feedback file already applied, with its rows' outcomes as recorded in the ledger's
    database (so a receipt can always be written again from what was applied, e.g. after a crash)."""
    ensure_ledger_schema(con)
    files = con.execute(
        "SELECT a.file_id, a.rel_path, f.department FROM feedback_applied a JOIN intake_files f USING (file_id) "
        "WHERE f.is_current ORDER BY a.rel_path"
    ).fetchall()
    rows = con.execute(
        "SELECT file_id, row_no, hazard_no, unit, outcome, reason_zh, from_status, to_status, row_digest "
        "FROM feedback_results ORDER BY file_id, row_no"
    ).fetchall()
    by_file: dict[str, list[RowResult]] = {}
    for file_id, *r in rows:
        by_file.setdefault(file_id, []).append(RowResult(*r))
    return [FileResult(fid, rel, dept, by_file.get(fid, [])) for fid, rel, dept in files]


def write_feedback_receipts(
    con: duckdb.DuckDBPyConnection, receipts_dir: Path, fresh: list[FileResult] | None = None
) -> list[Path]:
    """The receipt of every applied feedback file, (re)written from the database: a file whose rows are
    in the ledger always has its receipt, even when the run that applied it died before writing it.

    `fresh` (the files this run applied): only their receipts and the missing ones are written; the others
    stand (a file's recorded outcomes never change once applied), so one decision does not rewrite the
    district's 170 receipts (4.6 s, issue 27 §4)."""
    from pipeline.intake.receipts import receipt_path

    applied = applied_results(con)
    if fresh is not None:
        now = {r.file_id for r in fresh}
        applied = [r for r in applied if r.file_id in now
                   or not receipt_path(receipts_dir, r.rel_path, r.department).is_file()]  # fmt: skip
    return [write_feedback_receipt(r, receipts_dir) for r in applied]


def write_feedback_receipt(result: FileResult, receipts_dir: Path) -> Path:
    from openpyxl import Workbook

    from pipeline.formats.excel_safe import xlsx_cell
    from pipeline.intake.receipts import receipt_path
    from pipeline.platform.atomic import atomic_path

    path = receipt_path(receipts_dir, result.rel_path, result.department)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("回执")
    summary = [
        ("项目", "内容"),
        ("文件", result.rel_path),
        ("报送单位", unit_label(result.department)),
        ("执行行数", result.applied),
        ("退回行数", result.refused),
    ]
    if result.repeated:
        summary.append(("此前已执行行数", result.repeated))
    summary.append(("说明", "退回的行未作任何更改，请按退回原因改正后重新报送"
                    + ("；“此前已执行”的行与本单位此前报送并已执行的行相同，不再重复执行" if result.repeated else "")
                    + "；其余行已执行"))  # fmt: skip
    for row in summary:
        ws.append([xlsx_cell(v) for v in row])
    ws = wb.create_sheet("逐行结果")
    ws.append(["行号", "隐患编号", "报送单位", "结果", "原状态", "新状态", "退回原因"])
    for r in result.rows:
        ws.append([xlsx_cell(v) for v in (r.row_no, r.hazard_no, unit_label(r.unit) if r.unit else None, r.outcome,
                                          r.from_status, r.to_status, r.reason_zh)])  # fmt: skip
    with atomic_path(path) as tmp:
        wb.save(tmp)
    return path
