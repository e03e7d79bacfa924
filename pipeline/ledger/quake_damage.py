"""灾情反馈 after an earthquake: the units' reports of what they found on the ground, taken into the ledger.

Files come from `data_raw/quake_feedback/<unit>/<event id>/` and are ingested and validated like every upload
(GE suite from schemas/quake_feedback.yaml; the intake refuses a folder that is not a declared, open event).
Each valid row is then checked here against the database, in file order:

* the object is found by its hazard number or its id (and kind, when an id names objects of two kinds);
* the object must be the acting unit's own (its responsible unit is the folder's unit, never a typed value);
* the report cannot predate the earthquake, and one object is reported once per file.

A row that passes is taken (已受理) into `quake_feedback_rows`; one that does not is returned (退回) with its
Chinese reason and changes nothing; the rest of the file still goes through. Each file is one batch of its
event (numbered in the order batches are taken) and is taken once, in one transaction.

Damage reaches the ledger here, under the 震损 rules of rules/quake/damage.yaml: an object found 严重破坏 or
毁坏 opens its 震损 hazard (numbered asset + rule like every hazard), or updates or reopens it, with the event
on its history; the object's other open hazards are raised to 重大 where the rules say so (挂牌督办 is the
government's decision, never made here: reference/duban.yaml proposes candidates). The earthquake response (pipeline/quake/) reads the taken rows from the
published snapshot for its 续报 and 终报.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.formats.yaml_file import load_yaml
from pipeline.intake.ingest import ingest_kind
from pipeline.intake.validate import validate_if_changed
from pipeline.ledger.exports import KIND_ZH
from pipeline.ledger.feedback import pending_uploads
from pipeline.ledger.model import (
    HARM_ZH,
    OPEN_STATUSES,
    QUAKE_RAISE_NOTE,
    ensure_ledger_schema,
    hazard_no_sql,
    record_events,
)
from pipeline.platform.clock import beijing_now
from pipeline.platform.failures import rollback
from pipeline.platform.paths import RULES_DIR
from pipeline.registries.events import declared_events
from pipeline.registries.templates import load_template
from pipeline.registries.units import resolve_acting_unit, unit_label
from pipeline.scoring.ruleset import RuleSetError, control_days_problems

KIND = "quake_feedback"
TAKEN, RETURNED = "已受理", "退回"
KIND_OF_ZH = {zh: kind for kind, zh in KIND_ZH.items()}
OPEN_SQL = "(" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"

QUAKE_FEEDBACK_DDL = [
    """CREATE TABLE IF NOT EXISTS quake_feedback_applied (
        file_id VARCHAR PRIMARY KEY, rel_path VARCHAR, event_id VARCHAR, unit VARCHAR, batch_seq INTEGER,
        applied_at TIMESTAMP, taken INTEGER, returned INTEGER)""",
    """CREATE TABLE IF NOT EXISTS quake_feedback_rows (
        file_id VARCHAR, rel_path VARCHAR, event_id VARCHAR, batch_seq INTEGER, row_no INTEGER, unit VARCHAR,
        outcome VARCHAR, reason_zh VARCHAR, kind VARCHAR, asset_id VARCHAR, asset_name VARCHAR, town_code VARCHAR,
        hazard_no VARCHAR, inspected BOOLEAN, damage_state VARCHAR, deaths INTEGER, injuries INTEGER,
        usable BOOLEAN, measures VARCHAR, report_date DATE, person VARCHAR, opened_hazard VARCHAR,
        raised_hazards VARCHAR)""",
]
ROW_COLUMNS = ("file_id", "rel_path", "event_id", "batch_seq", "row_no", "unit", "outcome", "reason_zh", "kind",
               "asset_id", "asset_name", "town_code", "hazard_no", "inspected", "damage_state", "deaths", "injuries",
               "usable", "measures", "report_date", "person", "opened_hazard", "raised_hazards")  # fmt: skip


@cache
def damage_rules(rules_dir: Path = RULES_DIR) -> dict:
    """rules/quake/damage.yaml, with its rules by kind."""
    raw = load_yaml((rules_dir / "quake" / "damage.yaml").read_text(encoding="utf-8"))
    raw["by_kind"] = {r["kind"]: r for r in raw["rules"]}
    problems = [
        p for r in raw["rules"] for p in control_days_problems(r, f"rules/quake/damage.yaml: rule {r.get('id')}")
    ]
    if problems:
        raise RuleSetError("rule set refused:\n  " + "\n  ".join(problems))
    return raw


def ensure_quake_feedback_schema(con: duckdb.DuckDBPyConnection) -> None:
    ensure_ledger_schema(con)
    for ddl in QUAKE_FEEDBACK_DDL:
        con.execute(ddl)


@dataclass
class BatchResult:
    file_id: str
    rel_path: str
    unit: str | None
    event_id: str
    batch_seq: int | None
    rows: list[dict] = field(default_factory=list)

    @property
    def taken(self) -> int:
        return sum(r["outcome"] == TAKEN for r in self.rows)

    @property
    def returned(self) -> int:
        return sum(r["outcome"] == RETURNED for r in self.rows)


def validate_quake_feedback(con: duckdb.DuckDBPyConnection, data_raw: Path) -> bool:
    """Ingest and validate the 灾情反馈 files (only when they changed); whether validation ran."""
    ingest_kind(con, data_raw, KIND)
    return validate_if_changed(con, load_template(KIND))[1]


def pending_batches(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str]]:
    """(file_id, rel_path, unit folder, event id) of the files not taken yet, earliest reports first."""
    return pending_uploads(con, KIND, "quake_feedback_applied")


def apply_pending(con: duckdb.DuckDBPyConnection, data_raw: Path) -> list[BatchResult]:
    """Take every new 灾情反馈 file (one transaction each) and bring its damage onto the ledger."""
    ensure_quake_feedback_schema(con)
    events = declared_events(data_raw)
    results = []
    for file_id, rel_path, folder_unit, event_id in pending_batches(con):
        con.execute("BEGIN TRANSACTION")
        try:
            result = _take_batch(con, file_id, rel_path, folder_unit, event_id, events.get(event_id))
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
        results.append(result)
    return results


def _take_batch(con: duckdb.DuckDBPyConnection, file_id: str, rel_path: str, folder_unit: str | None,
                event_id: str, origin: dt.datetime | None) -> BatchResult:  # fmt: skip
    acting = resolve_acting_unit(folder_unit)  # intake refused files from unknown folders
    seq = con.execute(
        "SELECT coalesce(max(batch_seq), 0) + 1 FROM quake_feedback_applied WHERE event_id = ?", [event_id]
    ).fetchone()[0]
    result = BatchResult(file_id, rel_path, acting, event_id, seq)
    base = {"file_id": file_id, "rel_path": rel_path, "event_id": event_id, "batch_seq": seq, "unit": acting}
    result.rows = [{**base, **row} for row in _judged_rows(con, file_id, acting, origin)]
    _record_rows(con, result.rows)
    _bring_onto_ledger(con, file_id, rel_path, acting)
    con.execute("INSERT INTO quake_feedback_applied VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [file_id, rel_path, event_id, acting, seq, beijing_now(), result.taken, result.returned])  # fmt: skip
    result.rows = _recorded_rows(con, file_id)
    return result


def _judged_rows(con: duckdb.DuckDBPyConnection, file_id: str, acting: str, origin: dt.datetime | None) -> list[dict]:
    """Every row of the file with its outcome (已受理 / 退回) and reason: the rows validation refused, then the
    valid rows checked against the objects they name, in file order (a second row for one object is returned)."""
    rows = [{"row_no": r, "asset_id": rec, "outcome": RETURNED, "reason_zh": reasons} for r, rec, reasons in con.execute(
        "SELECT row_no, record_id, reasons_zh FROM quarantine WHERE kind = ? AND file_id = ?", [KIND, file_id]
    ).fetchall()]  # fmt: skip
    seen: dict[tuple[str, str], int] = {}
    for row in _valid_rows(con, file_id):
        reason = _check(row, acting, origin, seen)
        if reason is None:
            seen[(row["kind"], row["asset_id"])] = row["row_no"]
        rows.append({**row, "outcome": RETURNED if reason else TAKEN, "reason_zh": reason or ""})
    return rows


def preview_rows(
    con: duckdb.DuckDBPyConnection, file_id: str, folder_unit: str, origin: dt.datetime | None
) -> list[dict]:
    """What taking the file would do to each row, without taking it (the web portal's preview): the store needs
    only the `hazards` and `scores` rows the file names."""
    rows = _judged_rows(con, file_id, resolve_acting_unit(folder_unit), origin)
    return sorted(({"row_no": r["row_no"], "asset_id": r["asset_id"] or r.get("object_id"), "outcome": r["outcome"],
                    "reason_zh": r["reason_zh"]} for r in rows), key=lambda r: r["row_no"])  # fmt: skip


# Each valid row with the object it names: by hazard number first, else by id (and kind); `matches` counts
# the objects an id names (two kinds can share an id), `hazard_asset` the object a hazard number names.
RESOLVE_SQL = """
WITH q AS (
    SELECT row_no, object_id, object_kind, hazard_no, inspected, damage_state, deaths, injuries, usable, measures,
           report_date, person
    FROM stg_quake_feedback WHERE file_id = $file_id
), kinds AS (SELECT * FROM (VALUES {kinds}) t(kind_zh, kind)),
by_hazard AS (
    SELECT q.row_no, h.kind, h.asset_id FROM q JOIN hazards h ON h.hazard_no = q.hazard_no
), by_id AS (
    SELECT q.row_no, s.kind, s.asset_id, count(*) OVER (PARTITION BY q.row_no) AS matches
    FROM q LEFT JOIN kinds k ON k.kind_zh = q.object_kind
    JOIN scores s ON s.asset_id = q.object_id AND (k.kind IS NULL OR s.kind = k.kind)
)
SELECT q.*, bh.kind AS hazard_kind, bh.asset_id AS hazard_asset, coalesce(bi.matches, 0) AS matches,
       coalesce(bh.kind, bi.kind) AS kind, coalesce(bh.asset_id, bi.asset_id) AS asset_id,
       s.asset_name, s.town_code, s.responsible_unit
FROM q
LEFT JOIN by_hazard bh USING (row_no)
LEFT JOIN (SELECT * FROM by_id QUALIFY row_number() OVER (PARTITION BY row_no ORDER BY kind) = 1) bi USING (row_no)
LEFT JOIN scores s ON s.kind = coalesce(bh.kind, bi.kind) AND s.asset_id = coalesce(bh.asset_id, bi.asset_id)
ORDER BY q.row_no
"""


def _valid_rows(con: duckdb.DuckDBPyConnection, file_id: str) -> list[dict]:
    kinds = ", ".join(f"('{zh}', '{k}')" for zh, k in KIND_OF_ZH.items())
    cur = con.execute(RESOLVE_SQL.format(kinds=kinds), {"file_id": file_id})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _check(row: dict, acting: str, origin: dt.datetime | None, seen: dict[tuple[str, str], int]) -> str | None:
    """Why a valid row is returned (Chinese, for the unit), or None when it is taken."""
    if row["hazard_no"] and row["hazard_kind"] is None:
        return f"隐患编号“{row['hazard_no']}”在台账中不存在"
    if row["hazard_no"] and row["object_id"] and row["object_id"] != row["hazard_asset"]:
        return f"隐患编号“{row['hazard_no']}”属于对象“{row['hazard_asset']}”，与对象编码“{row['object_id']}”不一致"
    if row["hazard_no"] is None and row["matches"] == 0:
        kind = f"{row['object_kind']}中" if row["object_kind"] else ""
        return f"对象编码“{row['object_id']}”在{kind}已登记的调查对象中不存在，请按排查清单的“编码”填写"
    if row["hazard_no"] is None and row["matches"] > 1:
        return f"对象编码“{row['object_id']}”对应多类对象，请填写对象类别"
    if row["responsible_unit"] != acting:
        return (f"不是本单位负责的对象（责任单位为{unit_label(row['responsible_unit'])}）："
                f"{unit_label(acting)}只能报告本单位负责的对象")  # fmt: skip
    if origin is not None and row["report_date"] < origin.date():
        return f"填报日期{row['report_date']}早于地震发生日期{origin:%Y-%m-%d}"
    if (key := (row["kind"], row["asset_id"])) in seen:
        return f"同一对象已在本文件第{seen[key]}行报告，同一批次每个对象只报一行"
    return None


def _record_rows(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    frame = pd.DataFrame([[r.get(c) for c in ROW_COLUMNS] for r in rows], columns=list(ROW_COLUMNS), dtype=object)
    con.register("quake_feedback_rows_df", frame)
    try:
        con.execute(
            "INSERT INTO quake_feedback_rows SELECT file_id, rel_path, event_id, batch_seq::INTEGER, row_no::INTEGER, "
            "unit, outcome, reason_zh, kind, asset_id, asset_name, town_code, hazard_no, inspected::BOOLEAN, "
            "damage_state, deaths::INTEGER, injuries::INTEGER, usable::BOOLEAN, measures, report_date::DATE, person, "
            "opened_hazard, raised_hazards FROM quake_feedback_rows_df"
        )
    finally:
        con.unregister("quake_feedback_rows_df")


def _recorded_rows(con: duckdb.DuckDBPyConnection, file_id: str) -> list[dict]:
    cur = con.execute("SELECT * FROM quake_feedback_rows WHERE file_id = ? ORDER BY row_no", [file_id])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# --- damage onto the ledger ---------------------------------------------------------------------------------


def _literal(text: object) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _in_list(values: list[str]) -> str:
    return "(" + ", ".join(_literal(v) for v in values) + ")"


def _damaged_sql(rules: dict) -> str:
    """The batch's taken rows that open a 震损 hazard, with its number, grade and texts (one row per object)."""
    cases = {key: [] for key in ("rule_id", "grade", "title", "source", "measure", "days", "review", "control")}
    for kind, r in rules["by_kind"].items():
        when = f"WHEN d.kind = '{kind}'"
        major = f"d.damage_state IN {_in_list(r['major_on'])} OR coalesce(({r['major_when']}), false)"
        cases["rule_id"].append(f"{when} THEN '{r['id']}'")
        cases["grade"].append(f"{when} THEN CASE WHEN {major} THEN '重大' ELSE '一般' END")
        cases["title"].append(f"{when} THEN {_literal(r['title_zh'])}")
        cases["source"].append(f"{when} THEN {_literal(r['source']['zh'])}")
        cases["measure"].append(f"{when} THEN {_literal(r['measure_zh'])}")
        cases["days"].append(f"{when} THEN {int(r['deadline_days'])}")
        cases["review"].append(f"{when} THEN {int(r['review_days'])}")
        cases["control"].append(
            f"{when} THEN {int(r['control_days'])}" if r.get("control_days") else f"{when} THEN NULL"
        )
    c = {k: "CASE " + " ".join(v) + " END" for k, v in cases.items()}
    harm = "CASE " + " ".join(f"WHEN d.kind = '{k}' THEN '{v}'" for k, v in HARM_ZH.items()) + " END"
    return f"""
    CREATE OR REPLACE TEMP TABLE quake_damaged AS
    WITH d AS (
        SELECT r.*, b."use" AS building_use, coalesce(br.lifeline_route, false) AS lifeline,
               s.lon, s.lat, s.level, s.level_zh
        FROM quake_feedback_rows r
        JOIN scores s ON s.kind = r.kind AND s.asset_id = r.asset_id
        LEFT JOIN (SELECT building_id, "use" FROM v_buildings QUALIFY row_number() OVER (PARTITION BY building_id) = 1) b
            ON r.kind = 'buildings' AND b.building_id = r.asset_id
        LEFT JOIN (SELECT bridge_id, lifeline_route FROM v_bridges QUALIFY row_number() OVER (PARTITION BY bridge_id) = 1) br
            ON r.kind = 'bridges' AND br.bridge_id = r.asset_id
        WHERE r.file_id = $file_id AND r.outcome = '{TAKEN}' AND r.damage_state IN {_in_list(rules["opens_on"])}
    )
    SELECT *, {hazard_no_sql("kind", "asset_id", "rule_id")} AS new_hazard_no FROM (
        SELECT d.*, {c["rule_id"]} AS rule_id, {c["grade"]} AS grade, {c["title"]} AS rule_title,
               {c["source"]} AS source_ref, {c["measure"]} AS measure_zh, {c["days"]} AS deadline_days,
               {c["review"]} AS review_days, {c["control"]}::INTEGER AS control_days,
               coalesce(d.asset_name, d.asset_id) || '：地震事件' || d.event_id || '后经现场排查为' || d.damage_state ||
                   '（' || strftime(d.report_date, '%Y-%m-%d') || '，' || d.person || '报告）。' || {harm} AS description
        FROM d)
    """


def _bring_onto_ledger(con: duckdb.DuckDBPyConnection, file_id: str, rel_path: str, unit: str) -> None:
    rules = damage_rules()
    con.execute(_damaged_sql(rules), {"file_id": file_id})
    note = "'地震事件' || d.event_id || '后现场排查为' || d.damage_state"
    changes = f"""
        SELECT d.new_hazard_no AS hazard_no, d.report_date AS event_date, h.status AS from_status,
               '待整改' AS to_status, $unit::VARCHAR AS unit, $rel_path::VARCHAR AS source_file,
               CASE WHEN h.hazard_no IS NULL THEN {note} || '，登记震损隐患（' || d.grade || '）'
                    ELSE {note} || '，震损隐患重新打开（编号不变）' END AS note
        FROM quake_damaged d LEFT JOIN hazards h ON h.hazard_no = d.new_hazard_no
        WHERE h.hazard_no IS NULL OR h.status NOT IN {OPEN_SQL}"""
    params = {"unit": unit, "rel_path": rel_path}
    con.execute(f"CREATE OR REPLACE TEMP TABLE quake_ledger_changes AS {changes}", params)
    con.execute("""
        INSERT INTO hazards BY NAME
        SELECT d.new_hazard_no AS hazard_no, d.kind, d.asset_id, d.asset_name, d.rule_id, d.town_code, d.lon, d.lat,
               d.description, d.grade AS hazard_grade, d.level AS risk_level, d.level_zh AS risk_level_zh,
               d.rule_title, d.source_ref, 'control' AS rectification, d.report_date AS found_date,
               d.report_date AS last_survey_date, d.unit AS responsible_unit, d.measure_zh AS measures,
               d.report_date + d.deadline_days AS deadline, '待整改' AS status, d.report_date AS updated_on,
               d.review_days, d.event_id AS origin_event, d.report_date + d.control_days AS control_deadline
        FROM quake_damaged d WHERE d.new_hazard_no NOT IN (SELECT hazard_no FROM hazards)""")
    con.execute(f"""
        UPDATE hazards h SET status = '待整改', hazard_grade = d.grade, description = d.description,
               deadline = d.report_date + d.deadline_days, extend_to = NULL, extend_reason = NULL,
               extend_requested_to = NULL, extend_status = NULL, acceptor = NULL, accept_date = NULL,
               accept_result = NULL, accept_opinion = NULL, updated_on = d.report_date, origin_event = d.event_id, measures = d.measure_zh,
               control_deadline = d.report_date + d.control_days, control_done_on = NULL
        FROM quake_damaged d
        WHERE h.hazard_no = d.new_hazard_no AND h.status NOT IN {OPEN_SQL}
          AND h.hazard_no IN (SELECT hazard_no FROM quake_ledger_changes)""")
    # a 震损 hazard still open from an earlier report or event: its texts and grade follow the latest report
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE quake_ledger_updates AS
        SELECT d.new_hazard_no AS hazard_no, d.report_date AS event_date, h.status AS from_status,
               h.status AS to_status, $unit::VARCHAR AS unit, $rel_path::VARCHAR AS source_file,
               {note} || '（震损隐患仍在，' ||
                   CASE WHEN d.grade = '重大' AND h.hazard_grade <> '重大' THEN '升为重大隐患' ELSE '状态不变' END
                   || '）' AS note
        FROM quake_damaged d JOIN hazards h ON h.hazard_no = d.new_hazard_no
        WHERE h.status IN {OPEN_SQL} AND h.hazard_no NOT IN (SELECT hazard_no FROM quake_ledger_changes)""",
        params,
    )
    con.execute("""
        UPDATE hazards h SET hazard_grade = CASE WHEN h.hazard_grade = '重大' THEN '重大' ELSE d.grade END,
               description = d.description, origin_event = d.event_id,
               updated_on = greatest(h.updated_on, d.report_date)
        FROM quake_damaged d WHERE h.hazard_no = d.new_hazard_no
          AND h.hazard_no IN (SELECT hazard_no FROM quake_ledger_updates)""")
    record_events(con, "quake_ledger_changes")
    record_events(con, "quake_ledger_updates")
    _raise_open_hazards(con, rules, file_id, unit, rel_path)
    con.execute("""
        UPDATE quake_feedback_rows r SET opened_hazard = d.new_hazard_no
        FROM quake_damaged d WHERE r.file_id = d.file_id AND r.row_no = d.row_no""")


def _raise_open_hazards(con: duckdb.DuckDBPyConnection, rules: dict, file_id: str, unit: str, rel_path: str) -> None:
    """The object's other open 一般 hazards become 重大 when it was found in a state that says so."""
    zs_rules = _in_list([r["id"] for r in rules["rules"]])
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE quake_raised AS
        SELECT h.hazard_no, r.report_date AS event_date, h.status AS from_status, h.status AS to_status,
               $unit::VARCHAR AS unit, $rel_path::VARCHAR AS source_file, r.row_no,
               '地震事件' || r.event_id || '后现场排查为' || r.damage_state || '，{QUAKE_RAISE_NOTE}' AS note
        FROM quake_feedback_rows r JOIN hazards h ON h.kind = r.kind AND h.asset_id = r.asset_id
        WHERE r.file_id = $file_id AND r.outcome = '{TAKEN}'
          AND r.damage_state IN {_in_list(rules["raise_open_to_major_on"])}
          AND h.status IN {OPEN_SQL} AND h.hazard_grade <> '重大' AND h.rule_id NOT IN {zs_rules}""",
        {"file_id": file_id, "unit": unit, "rel_path": rel_path},
    )
    con.execute("""
        UPDATE hazards h SET hazard_grade = '重大', updated_on = greatest(h.updated_on, c.event_date)
        FROM quake_raised c WHERE c.hazard_no = h.hazard_no""")
    record_events(con, "(SELECT * EXCLUDE (row_no) FROM quake_raised)")
    con.execute(
        """
        UPDATE quake_feedback_rows r SET raised_hazards = c.numbers
        FROM (SELECT row_no, string_agg(hazard_no, '、' ORDER BY hazard_no) AS numbers FROM quake_raised GROUP BY row_no) c
        WHERE r.file_id = $file_id AND r.row_no = c.row_no""",
        {"file_id": file_id},
    )


# --- receipts -----------------------------------------------------------------------------------------------


def taken_batches(con: duckdb.DuckDBPyConnection) -> list[BatchResult]:
    """Every current 灾情反馈 file already taken, with its rows as recorded (a receipt can always be rewritten)."""
    ensure_quake_feedback_schema(con)
    files = con.execute(
        "SELECT a.file_id, a.rel_path, a.unit, a.event_id, a.batch_seq FROM quake_feedback_applied a "
        "JOIN intake_files f USING (file_id) WHERE f.is_current ORDER BY a.event_id, a.batch_seq"
    ).fetchall()
    return [BatchResult(*f, rows=_recorded_rows(con, f[0])) for f in files]


def write_quake_feedback_receipts(con: duckdb.DuckDBPyConnection, receipts_dir: Path) -> list[Path]:
    return [write_receipt(r, receipts_dir) for r in taken_batches(con)]


RECEIPT_COLUMNS = {"row_no": "行号", "asset_id": "对象编码", "asset_name": "对象名称", "hazard_no": "隐患编号",
                   "outcome": "结果", "damage_state": "破坏等级", "opened_hazard": "登记的震损隐患",
                   "raised_hazards": "升为重大的隐患", "reason_zh": "退回原因"}  # fmt: skip


def write_receipt(result: BatchResult, receipts_dir: Path) -> Path:
    """The unit's receipt for one batch: what was taken, what was returned and why, what the ledger did."""
    from openpyxl import Workbook

    from pipeline.formats.excel_safe import xlsx_cell
    from pipeline.intake.receipts import receipt_path
    from pipeline.platform.atomic import atomic_path

    path = receipt_path(receipts_dir, result.rel_path, result.unit)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("回执")
    opened = sum(bool(r["opened_hazard"]) for r in result.rows)
    for row in [("项目", "内容"), ("文件", result.rel_path), ("报送单位", unit_label(result.unit)),
                ("地震事件", result.event_id), ("批次", f"第{result.batch_seq}批"), ("受理行数", result.taken),
                ("退回行数", result.returned), ("登记或更新的震损隐患", opened),
                ("说明", "退回的行未作任何更改，请按退回原因改正后重新报送；其余行已受理，将反映在续报中")]:  # fmt: skip
        ws.append([xlsx_cell(v) for v in row])
    ws = wb.create_sheet("逐行结果")
    ws.append(list(RECEIPT_COLUMNS.values()))
    for r in result.rows:
        ws.append([xlsx_cell(r.get(k)) for k in RECEIPT_COLUMNS])
    with atomic_path(path) as tmp:
        wb.save(tmp)
    return path
