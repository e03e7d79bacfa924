"""Bring the ledger up to date with the latest scoring: set-based, one transaction.

* a hazard rule firing on an asset with no ledger entry      -> new hazard, 待整改
* an open hazard that still fires                            -> last survey date/round, level refreshed
* a closed (已销号) hazard that fires in a newer survey round  -> reopened, 待整改, same number
* an open hazard whose asset was resurveyed in a newer round
  and no longer shows it                                     -> 已整改待验收 ("复查未再发现"), but only when
  the survey states the good value: a blank, 不详 or 未知 in a field of its rule's evidence keeps it open,
  with an event naming the fields (and a line on the survey file's receipt)
* an open hazard on the same survey that the rule set, changed
  since it last confirmed it, no longer finds (rule retired,
  made a weighting rule, or its condition changed)           -> 已撤销 ("规则调整撤销", both versions)
* a withdrawn hazard found again                             -> reopened, 待整改, same number
* an open hazard whose grade is not its rule's (e.g. raised to 重大
  only because its asset was red, as the ledger did before issue 26) -> back to the rule's grade, with an event
  saying why (an earthquake-damage raise, rules/quake/damage.yaml, stands)
* a hazard whose rule carries control_days (an immediate measure) -> control_deadline = found (or reopened)
  date + control_days, control_done_on cleared on a reopen; an open hazard of an existing ledger without one
  gets it from its found date, with an event (_set_control_deadlines)
* 挂牌督办 is never made here: it is a decision of the government, recorded from its notice (feedback.py).
  A ledger kept before issue 26 holds automatic records (督办-<hazard>): they are withdrawn, an event each
* an open hazard raised to 重大 by a recorded decision of its supervising department (认定为重大) keeps it
Re-running with the same findings changes nothing. Every event records the unit whose file carried the
survey (its folder: the acting unit) and that file.

Rounds are compared as text: reference/survey_rounds.csv guarantees that its codes sort in the order of
the rounds, and intake refuses a folder that is not one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from pipeline.intake.receipts import RESURVEY_KEPT_OPEN
from pipeline.ledger import describe, supervision
from pipeline.ledger.model import (
    DECISION_RAISE_NOTE,
    HARM_ZH,
    OPEN_STATUSES,
    QUAKE_RAISE_NOTE,
    WITHDRAWN,
    ensure_ledger_schema,
    hazard_no_sql,
    record_events,
)
from pipeline.platform import faults
from pipeline.platform.clock import district_today
from pipeline.platform.failures import rollback
from pipeline.platform.store import quote
from pipeline.scoring.engine import ensure_scoring_schema
from pipeline.scoring.ruleset import load_ruleset

# what a survey may say instead of a value: no evidence either way (a resurvey with it clears nothing)
BLANK_VALUES = "('', '不详', '未知')"
OPEN_SQL = "(" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"

CURRENT_SQL = """
CREATE OR REPLACE TEMP VIEW ledger_current_raw AS
SELECT {hazard_no} AS hazard_no, f.kind, f.asset_id, s.asset_name, f.rule_id, s.town_code, s.lon, s.lat,
       coalesce(s.asset_name, f.asset_id) || '：' || r.title_zh || '。'
           || coalesce('依据：' || evidence_zh(f.kind, f.evidence) || '。', '') || harm.harm_zh AS description,
       CASE WHEN r.hazard_grade = '重大' THEN '重大' ELSE '一般' END AS hazard_grade,  -- the rule's, never the colour
       s.level AS risk_level, s.level_zh AS risk_level_zh, f.survey_date, f.survey_round,
       CASE WHEN r.responsible = 'asset' THEN s.responsible_unit ELSE r.responsible END AS responsible_unit,
       r.deadline_days, r.review_days, s.source_file, s.department, f.ruleset_version, s.sector, r.control_days
FROM {findings} f
JOIN {scores} s ON s.kind = f.kind AND s.asset_id = f.asset_id
JOIN rules r ON r.rule_id = f.rule_id AND r.ruleset_version = f.ruleset_version
JOIN harm ON harm.kind = f.kind
WHERE f.hazard {scope}
"""

# A rule's texts as a hazard records them, joined where a hazard takes them (not carried on every row of
# ledger_current: repeated per hazard they were half its size, and past DuckDB's memory limit at 3 M buildings)
RULE_TEXTS_SQL = """SELECT rule_id, ruleset_version, title_zh AS rule_title,
    coalesce(source_zh, source_ref) AS source_ref, rectification, measure_zh AS measures FROM rules"""

SCOPE = "__ledger_scope"  # temp table (kind, asset_id): the assets an update looks at, when not all


@dataclass
class LedgerUpdate:
    new: int
    reopened: int
    refreshed: int
    resurvey_cleared: int
    withdrawn: int = 0
    supervision_withdrawn: int = 0  # automatic 督办-<hazard> records of an older ledger, withdrawn
    regraded: int = 0
    rerouted: int = 0  # hazards whose supervising department changed (the supervision table, an old ledger)
    control_set: int = 0  # open hazards of an existing ledger given the control deadline their rule now carries
    kept_open: int = 0  # resurveyed hazards kept open: the field that caused them is blank or 不详
    kept_open_files: dict[str, set[str]] = field(default_factory=dict)  # their survey files, by kind


def update_from_findings(con: duckdb.DuckDBPyConnection, only_rescored: bool = False) -> LedgerUpdate:
    """Bring the ledger up to date with the findings: of every asset, or (`only_rescored`) of the assets the
    scorings since the last update wrote (`rescored_assets`; all of them when one scored a whole kind). Both
    give the same ledger: an asset not scored again has the findings the ledger already holds."""
    ensure_ledger_schema(con)
    ensure_scoring_schema(con)
    harm = ", ".join(f"('{k}', '{v}')" for k, v in HARM_ZH.items())
    scoped = only_rescored and not con.execute(
        "SELECT count(*) FROM rescored_assets WHERE asset_id IS NULL").fetchall()[0][0]  # fmt: skip
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE harm AS SELECT * FROM (VALUES {harm}) t(kind, harm_zh)")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {SCOPE} AS SELECT DISTINCT kind, asset_id FROM rescored_assets")
        _scope_views(con, scoped)
        describe.install(con)  # evidence_zh(): the evidence in Chinese (隐患描述)
        con.execute(CURRENT_SQL.format(hazard_no=hazard_no_sql("f.kind", "f.asset_id", "f.rule_id"),
                                       scope=_in_scope("f") if scoped else "", **SCOPED))  # fmt: skip
        supervision.install(con)  # who supervises each hazard: by sector (reference/supervision.csv)
        con.execute(f"CREATE OR REPLACE TEMP TABLE ledger_current AS {supervision.routed_sql('ledger_current_raw')}")
        scope = _in_scope("h") if scoped else ""
        counts = LedgerUpdate(_open_new(con), _reopen(con), _refresh(con), _clear_on_resurvey(con, scope))
        counts.kept_open_files = _keep_unproven(con)
        counts.kept_open = con.execute("SELECT count(*) FROM ledger_unproven").fetchall()[0][0]
        counts.withdrawn = _withdraw_on_rule_change(con, scope)
        counts.rerouted = _route(con, scope)
        counts.regraded = _regrade(con)
        _stamp_ruleset_version(con)
        counts.control_set = _set_control_deadlines(con)
        counts.supervision_withdrawn = withdraw_automatic_supervision(con)
        con.execute("DELETE FROM rescored_assets")
        faults.point("ledger_update:commit", con)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # never masks the error (a COMMIT that failed on a full disk leaves no transaction)
        raise
    return counts


# temp views: the scores, findings and hazards of the assets an update looks at (all of them when it looks at all)
SCOPED = {"scores": "__ledger_scores", "findings": "__ledger_findings", "hazards": "__ledger_hazards"}


def _scope_views(con: duckdb.DuckDBPyConnection, scoped: bool) -> None:
    """The scores, findings and hazards an update reads, cut to its assets before they are joined (a filter on
    the join's result read all of them: issue 30). Each statement keeps its own scope condition."""
    for table, view in SCOPED.items():
        cut = f" SEMI JOIN {SCOPE} c ON c.kind = x.kind AND c.asset_id = x.asset_id" if scoped else ""
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT x.* FROM {table} x{cut}")


def _in_scope(alias: str) -> str:
    return f"AND ({alias}.kind, {alias}.asset_id) IN (SELECT (kind, asset_id) FROM {SCOPE})"


def _changes(con: duckdb.DuckDBPyConnection, select_sql: str, params: list | None = None) -> int:
    con.execute(f"CREATE OR REPLACE TEMP TABLE ledger_changes AS {select_sql}", params or [])
    return con.execute("SELECT count(*) FROM ledger_changes").fetchall()[0][0]


def _open_new(con: duckdb.DuckDBPyConnection) -> int:
    n = _changes(
        con,
        """
        SELECT c.hazard_no, c.survey_date AS event_date, NULL AS from_status, '待整改' AS to_status,
               c.department AS unit, c.source_file, '调查发现，登记入账' AS note
        FROM ledger_current c WHERE c.hazard_no NOT IN (SELECT hazard_no FROM hazards)""",
    )
    con.execute(f"""
        INSERT INTO hazards BY NAME
        SELECT c.hazard_no, c.kind, c.asset_id, c.asset_name, c.rule_id, c.town_code, c.lon, c.lat,
               c.description, c.hazard_grade, c.risk_level, c.risk_level_zh, r.rule_title, r.source_ref,
               r.rectification, c.survey_date AS found_date, c.survey_date AS last_survey_date,
               c.survey_round AS last_seen_round, c.responsible_unit, r.measures,
               c.survey_date + c.deadline_days::INTEGER AS deadline, '待整改' AS status,
               c.survey_date AS updated_on, c.ruleset_version, c.review_days, c.sector_supervisor,
               c.survey_date + c.control_days::INTEGER AS control_deadline
        FROM ledger_current c JOIN ledger_changes USING (hazard_no) JOIN ({RULE_TEXTS_SQL}) r USING (rule_id, ruleset_version)""")
    record_events(con, "ledger_changes")
    return n


def _reopen(con: duckdb.DuckDBPyConnection) -> int:
    """A closed hazard found again in a newer round (dated by that survey), or a withdrawn hazard found again
    (dated today: the rule set changed back)."""
    n = _changes(
        con,
        f"""
        SELECT c.hazard_no,
               CASE WHEN h.status = '已销号' THEN c.survey_date ELSE greatest(?::DATE, h.updated_on) END
                   AS event_date,
               h.status AS from_status, '待整改' AS to_status, c.department AS unit, c.source_file,
               CASE WHEN h.status = '已销号' THEN '复查再次发现，重新打开（编号不变）'
                    ELSE '规则调整后再次构成隐患，重新打开（编号不变）' END AS note
        FROM ledger_current c JOIN hazards h USING (hazard_no)
        WHERE (h.status = '已销号' AND c.survey_round > h.last_seen_round) OR h.status = '{WITHDRAWN}'""",
        [district_today()],
    )
    con.execute("""
        UPDATE hazards h SET status = '待整改', last_survey_date = c.survey_date, last_seen_round = c.survey_round,
               deadline = ch.event_date + c.deadline_days::INTEGER, extend_to = NULL, extend_reason = NULL,
               extend_requested_to = NULL, extend_status = NULL,
               acceptor = NULL, accept_date = NULL, accept_result = NULL, accept_opinion = NULL, hazard_grade = c.hazard_grade,
               risk_level = c.risk_level, risk_level_zh = c.risk_level_zh, description = c.description,
               updated_on = ch.event_date, ruleset_version = c.ruleset_version, review_days = c.review_days,
               control_deadline = ch.event_date + c.control_days::INTEGER, control_done_on = NULL
        FROM ledger_current c JOIN ledger_changes ch USING (hazard_no)
        WHERE c.hazard_no = h.hazard_no""")
    record_events(con, "ledger_changes")
    return n


def _refresh(con: duckdb.DuckDBPyConnection) -> int:
    """Open hazards seen again in a newer survey: record the new survey (status unchanged)."""
    n = _changes(
        con,
        f"""
        SELECT c.hazard_no, c.survey_date AS event_date, h.status AS from_status, h.status AS to_status,
               c.department AS unit, c.source_file, '复查仍存在（' || c.survey_round || '）' AS note
        FROM ledger_current c JOIN hazards h USING (hazard_no)
        WHERE h.status IN {OPEN_SQL} AND c.survey_round > h.last_seen_round""",
    )
    con.execute("""
        UPDATE hazards h SET last_survey_date = c.survey_date, last_seen_round = c.survey_round,
               risk_level = c.risk_level, risk_level_zh = c.risk_level_zh, description = c.description,
               updated_on = c.survey_date, review_days = c.review_days
        FROM (SELECT c.* FROM ledger_current c SEMI JOIN ledger_changes USING (hazard_no)) c
        WHERE c.hazard_no = h.hazard_no""")
    record_events(con, "ledger_changes")
    return n


def _clear_on_resurvey(con: duckdb.DuckDBPyConnection, scope: str = "") -> int:
    """Open hazards a newer survey of their asset no longer shows: 已整改待验收, but only when the survey states
    the good value. A hazard whose rule's evidence fields are blank or 不详 in it stays open (_keep_unproven)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ledger_resurveyed AS
        SELECT h.hazard_no, h.kind, h.asset_id, h.rule_id, s.survey_date AS event_date, h.status AS from_status,
               s.department AS unit, s.source_file
        FROM {SCOPED["hazards"]} h JOIN {SCOPED["scores"]} s ON s.kind = h.kind AND s.asset_id = h.asset_id
        WHERE h.status IN ('待整改', '整改中', '管控中') AND s.survey_round > h.last_seen_round
          AND (h.last_survey_date IS NULL OR s.survey_date > h.last_survey_date)  -- a survey clears once: a
              -- supervisor's 退回 after it stands until a newer survey
          AND h.origin_event IS NULL AND h.hazard_no NOT IN (SELECT hazard_no FROM ledger_current) {scope}""")
    _unproven(con)
    n = _changes(
        con,
        """
        SELECT hazard_no, event_date, from_status, '已整改待验收' AS to_status, unit, source_file,
               '复查未再发现（resurvey no longer shows it），待监管单位验收' AS note
        FROM ledger_resurveyed WHERE hazard_no NOT IN (SELECT hazard_no FROM ledger_unproven)""",
    )
    con.execute("""
        UPDATE hazards h SET status = '已整改待验收', last_survey_date = c.event_date, updated_on = c.event_date
        FROM ledger_changes c WHERE c.hazard_no = h.hazard_no""")
    record_events(con, "ledger_changes")
    return n


def _blank_sql(column: str) -> str:
    return f"(v.{quote(column)} IS NULL OR trim(v.{quote(column)}::VARCHAR) IN {BLANK_VALUES})"


def _unproven(con: duckdb.DuckDBPyConnection) -> None:
    """`ledger_unproven` (hazard_no, missing): the resurveyed hazards whose rule has an evidence field that
    is blank, 不详 or 未知 in the new survey (missing: their headers, “…”、“…”), read from the kind's rule view
    (the latest survey of every asset) with the rules on disk (the ledger updates right after the scoring)."""
    con.execute("CREATE OR REPLACE TEMP TABLE ledger_unproven (hazard_no VARCHAR, missing VARCHAR)")
    kinds = [k for (k,) in con.execute("SELECT DISTINCT kind FROM ledger_resurveyed ORDER BY 1").fetchall()]
    if not kinds:
        return
    ruleset = load_ruleset(con=con)
    labels = describe.evidence_labels()
    for kind in kinds:
        if kind not in ruleset.kinds:
            continue
        spec = ruleset.kinds[kind]
        in_view = {d[0] for d in con.execute(f"SELECT * FROM {spec.view} LIMIT 0").description}
        cases = []
        for r in ruleset.for_kind(kind):
            fields = [f"CASE WHEN {_blank_sql(c)} THEN '“{labels.get((kind, c), (c,))[0]}”' END"
                      for c in r.evidence if c in in_view]  # fmt: skip
            if r.hazard and fields:
                cases.append(f"WHEN '{r.id}' THEN list_filter([{', '.join(fields)}], lambda x: x IS NOT NULL)")
        if not cases:
            continue
        con.execute(
            f"""
            INSERT INTO ledger_unproven
            SELECT hazard_no, missing FROM (
                SELECT r.hazard_no, array_to_string(CASE r.rule_id {" ".join(cases)} END, '、') AS missing
                FROM ledger_resurveyed r JOIN {spec.view} v ON v.{quote(spec.id)}::VARCHAR = r.asset_id
                WHERE r.kind = ?)
            WHERE missing <> ''""",
            [kind],
        )


def _keep_unproven(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """A resurvey that no longer shows a hazard only because the field that caused it is blank or 不详 is no
    evidence of rectification: the hazard stays as it was, with an event naming the fields (the file's
    receipt lists it, pipeline/intake/receipts.py); the survey is taken once (its date is recorded).
    Returns the survey files (rel_path) that kept a hazard open, by kind."""
    _changes(
        con,
        f"""
        SELECT r.hazard_no, r.event_date, r.from_status, r.from_status AS to_status, r.unit, r.source_file,
               '{RESURVEY_KEPT_OPEN}' || u.missing || '为空或不详，不能作为已整改的依据，隐患保持' || r.from_status
                   || '，请补充调查' AS note
        FROM ledger_resurveyed r JOIN ledger_unproven u USING (hazard_no)""",
    )
    con.execute("""
        UPDATE hazards h SET last_survey_date = c.event_date, updated_on = greatest(h.updated_on, c.event_date)
        FROM ledger_changes c WHERE c.hazard_no = h.hazard_no""")
    record_events(con, "ledger_changes")
    files: dict[str, set[str]] = {}
    for kind, source_file in con.execute(
        "SELECT DISTINCT h.kind, c.source_file FROM ledger_changes c JOIN hazards h USING (hazard_no) "
        "WHERE c.source_file IS NOT NULL"
    ).fetchall():
        files.setdefault(kind, set()).add(source_file)
    return files


def _regrade(con: duckdb.DuckDBPyConnection) -> int:
    """An open hazard's grade is its rule's (16号令 第三条 and the rule's 判定标准): the asset's risk colour is
    another axis and never raises it. A hazard whose grade differs from its rule's takes the rule's, with an
    event naming both, unless an earthquake-damage report (QUAKE_RAISE_NOTE in its history) or a decision of its
    supervising department (DECISION_RAISE_NOTE, 认定为重大) raised it."""
    n = _changes(
        con,
        f"""
        SELECT h.hazard_no, greatest(?::DATE, h.updated_on) AS event_date, h.status AS from_status,
               h.status AS to_status, NULL AS unit, NULL AS source_file,
               '隐患等级按规则' || h.rule_id || '调整：' || h.hazard_grade || ' → ' || c.hazard_grade ||
               CASE WHEN c.hazard_grade = '一般' AND h.risk_level = 'red'
                    THEN '（原因资产风险等级为红色而升为重大；隐患等级由规则及判定标准确定，'
                         || '资产风险等级不改变隐患等级，16号令第三条）'
                    ELSE '（隐患等级由规则及判定标准确定，16号令第三条）' END AS note
        FROM hazards h JOIN ledger_current c USING (hazard_no)
        WHERE h.status IN {OPEN_SQL} AND h.hazard_grade IS DISTINCT FROM c.hazard_grade
          AND NOT (h.hazard_grade = '重大' AND EXISTS (
              SELECT 1 FROM hazard_events e WHERE e.hazard_no = h.hazard_no
                AND (e.note LIKE '%{QUAKE_RAISE_NOTE}%' OR e.note LIKE '{DECISION_RAISE_NOTE}%')))""",
        [district_today()],
    )
    con.execute("""
        UPDATE hazards h SET hazard_grade = c.hazard_grade, updated_on = ch.event_date
        FROM ledger_current c JOIN ledger_changes ch USING (hazard_no)
        WHERE c.hazard_no = h.hazard_no""")
    record_events(con, "ledger_changes")
    return n


def _withdraw_on_rule_change(con: duckdb.DuckDBPyConnection, scope: str = "") -> int:
    """Open hazards on an unchanged survey that a changed rule set no longer finds: withdrawn with an event
    naming the rule and both rule-set versions, never dropped silently. (A newer survey that no longer shows
    a hazard is a resurvey, handled above; the same rule set on a corrected file of the same round changes
    nothing here.)"""
    n = _changes(
        con,
        f"""
        SELECT h.hazard_no, greatest(?::DATE, h.updated_on) AS event_date, h.status AS from_status,
               '{WITHDRAWN}' AS to_status, NULL AS unit, NULL AS source_file,
               '规则调整撤销：规则' || h.rule_id ||
               CASE WHEN r.rule_id IS NULL THEN '已从规则集中删除'
                    WHEN NOT r.hazard THEN '不再作为隐患规则（仅计分）'
                    ELSE '调整后不再对该资产触发' END ||
               '（规则集版本 ' || coalesce(h.ruleset_version, '旧版') || ' → ' || s.ruleset_version || '）' AS note
        FROM {SCOPED["hazards"]} h
        JOIN {SCOPED["scores"]} s ON s.kind = h.kind AND s.asset_id = h.asset_id
        LEFT JOIN rules r ON r.rule_id = h.rule_id AND r.ruleset_version = s.ruleset_version
        WHERE h.status IN {OPEN_SQL} AND s.survey_round = h.last_seen_round AND h.origin_event IS NULL
          AND h.ruleset_version IS DISTINCT FROM s.ruleset_version
          AND h.hazard_no NOT IN (SELECT hazard_no FROM ledger_current) {scope}""",
        [district_today()],
    )
    con.execute(f"""
        UPDATE hazards h SET status = '{WITHDRAWN}', updated_on = c.event_date
        FROM ledger_changes c WHERE c.hazard_no = h.hazard_no""")
    record_events(con, "ledger_changes")
    return n


def _route(con: duckdb.DuckDBPyConnection, scope: str = "") -> int:
    """Every hazard (but the withdrawn) is supervised by the department the supervision table gives for its
    kind and sector (pipeline/ledger/supervision.py). A hazard whose department changes (the table or the
    registry was edited, the asset's use changed, a ledger made before the table) records an event naming
    the old and the new; updated_on stays (a unit's report dated before the re-routing still applies)."""
    source = f"""(SELECT h.hazard_no, h.kind, s.sector, h.responsible_unit, h.status, h.updated_on,
                         h.sector_supervisor AS recorded
                  FROM {SCOPED["hazards"]} h LEFT JOIN {SCOPED["scores"]} s ON s.kind = h.kind AND s.asset_id = h.asset_id
                  WHERE h.status <> '{WITHDRAWN}' {scope})"""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ledger_routes AS
        SELECT r.*, coalesce(r.recorded, {supervision.legacy_supervisor_sql("r")}) AS before
        FROM ({supervision.routed_sql(source)}) r LEFT JOIN ref_unit_superiors own ON own.unit_code = r.responsible_unit
        WHERE r.recorded IS DISTINCT FROM r.sector_supervisor""")
    n = _changes(
        con,
        """
        SELECT r.hazard_no, greatest(?::DATE, r.updated_on) AS event_date, r.status AS from_status,
               r.status AS to_status, NULL AS unit, NULL AS source_file,
               '监管部门按行业监管分工调整：' || coalesce(o.unit_name, r.before) || ' → '
                   || coalesce(n.unit_name, r.sector_supervisor)
                   || CASE WHEN r.own_hazard THEN '（' || coalesce(rn.unit_name, r.responsible_unit) || '自身的隐患，由'
                                              || coalesce(n.unit_name, r.sector_supervisor) || '监管）'
                           ELSE coalesce('（' || r.supervision_object || '由' || coalesce(n.unit_name, r.sector_supervisor)
                                         || '监管，验收销号和延期审批由其办理）', '') END AS note
        FROM ledger_routes r
        LEFT JOIN ref_unit_superiors o ON o.unit_code = r.before
        LEFT JOIN ref_unit_superiors n ON n.unit_code = r.sector_supervisor
        LEFT JOIN ref_unit_superiors rn ON rn.unit_code = r.responsible_unit
        WHERE r.before IS DISTINCT FROM r.sector_supervisor""",
        [district_today()],
    )
    _set_column(con, "sector_supervisor", "ledger_routes")  # every routed hazard; the events: those that moved
    return n


def _set_control_deadlines(con: duckdb.DuckDBPyConnection) -> int:
    """Open hazards (待整改, 整改中) whose rule (in the rule set that last confirmed them) carries control_days and
    that have no control deadline yet (a ledger from before control deadlines, or a rule that gained one): the
    deadline counts from the found date, as it would have had the rule said so then, so a hazard found in 2023
    gets a 2023 control deadline and is overdue (管控逾期) until its unit reports 管控措施已落实. An event says so,
    dated the hazard's last change (its 最近变更日期 stays: a unit's report dated before today still applies)."""
    n = _changes(
        con,
        """
        SELECT h.hazard_no, h.updated_on AS event_date, h.status AS from_status, h.status AS to_status,
               NULL AS unit, NULL AS source_file,
               '规则' || h.rule_id || '要求立即管控，补设管控时限' || strftime(h.found_date + r.control_days, '%Y-%m-%d')
                   || '（发现日期起' || r.control_days || '天）；管控措施落实后请填报“管控措施已落实”' AS note,
               h.found_date + r.control_days AS control_deadline
        FROM hazards h JOIN rules r ON r.rule_id = h.rule_id AND r.ruleset_version = h.ruleset_version
        WHERE h.status IN ('待整改', '整改中') AND r.control_days IS NOT NULL
          AND h.control_deadline IS NULL AND h.control_done_on IS NULL AND h.origin_event IS NULL""",
    )
    _set_column(con, "control_deadline", "ledger_changes")
    return n


def _set_column(con: duckdb.DuckDBPyConnection, column: str, source: str) -> None:
    """hazards.`column` from the table `source` (hazard_no, `column`), then the events of `ledger_changes`."""
    con.execute(f"UPDATE hazards h SET {column} = c.{column} FROM {source} c WHERE c.hazard_no = h.hazard_no")
    record_events(con, "ledger_changes")


def _stamp_ruleset_version(con: duckdb.DuckDBPyConnection) -> None:
    """Hazards the current rule set still finds are confirmed by it, with its rule title, citation and the
    description in its words (no event: the hazard itself did not change; a ledger made before the
    descriptions were sentences reads them as sentences after the next rule-set change)."""
    con.execute(f"""
        UPDATE hazards h SET ruleset_version = c.ruleset_version, review_days = c.review_days,
               rule_title = r.rule_title, source_ref = r.source_ref, description = c.description
        FROM ledger_current c JOIN ({RULE_TEXTS_SQL}) r USING (rule_id, ruleset_version)
        WHERE c.hazard_no = h.hazard_no AND h.ruleset_version IS DISTINCT FROM c.ruleset_version""")


AUTOMATIC_SUPERVISION_WITHDRAWN = "撤销自动生成的挂牌督办记录"


def withdraw_automatic_supervision(con: duckdb.DuckDBPyConnection) -> int:
    """Before issue 26 the ledger put every open 重大 hazard under 挂牌督办 by itself, numbered 督办-<hazard>. That
    was no 督办 decision: the record is cleared, with an event per hazard saying so (never silently). A notice the
    government issued (any other number) stays."""
    n = _changes(
        con,
        f"""
        SELECT h.hazard_no, greatest(?::DATE, h.updated_on) AS event_date, h.status AS from_status,
               h.status AS to_status, NULL AS unit, NULL AS source_file,
               '{AUTOMATIC_SUPERVISION_WITHDRAWN}（' || h.supervise_no || '，原记督办单位'
                   || coalesce(h.supervise_unit, '未记') || '）：该记录由系统按重大隐患自动生成，不是区人民政府或其'
                   || '安委会办公室下达的督办决定，予以撤销；挂牌督办以督办通知书为准' AS note
        FROM hazards h WHERE h.supervise_no = '督办-' || h.hazard_no""",
        [district_today()],
    )
    con.execute("""
        UPDATE hazards h SET supervise_no = NULL, supervise_unit = NULL, supervise_date = NULL,
               supervise_deadline = NULL, supervise_requirement = NULL, supervise_status = NULL,
               supervise_closed_on = NULL
        FROM ledger_changes c WHERE c.hazard_no = h.hazard_no""")
    record_events(con, "ledger_changes")
    return n
