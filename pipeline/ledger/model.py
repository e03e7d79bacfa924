"""The hazard ledger's tables, statuses and legal transitions (from reference/ledger_transitions.csv)."""

from __future__ import annotations

import csv
from functools import cache

import duckdb

from pipeline.platform.clock import BEIJING_NOW_SQL
from pipeline.platform.paths import REFERENCE_DIR
from pipeline.registries.risk_levels import colour_zh
from pipeline.scoring.ruleset import load_kinds

# Statuses whose deadline can be overdue (work is expected of the unit; see README "overdue").
OVERDUE_STATUSES = ("待整改", "整改中")
OPEN_STATUSES = ("待整改", "整改中", "管控中", "已整改待验收")
# A hazard under control measures is reviewed this often when its rule sets no cycle (J: quarterly, as a
# 一般 control-only rule); a review not reported in time makes it overdue.
DEFAULT_REVIEW_DAYS = 90
# The rectification kind as the ledger names it (rules say immediate / project / control).
RECTIFICATION_ZH = {"immediate": "立即消除", "project": "限期整改", "control": "管控"}
# The feedback step 管控措施已落实 (not a status: the hazard keeps its status), and the overdue kinds the ledger
# tells apart (pipeline/ledger/exports.py, 逾期类型).
CONTROL_DONE = "管控措施已落实"
OVERDUE_KINDS = {"control": "管控逾期", "rectification": "整改逾期", "review": "复核逾期"}
# Withdrawn: a change of the rule set means it is no longer a hazard. Kept with its number and history,
# left out of the ledger's figures (it was never closed, and is no hazard under today's rules).
WITHDRAWN = "已撤销"
# The note of the event by which an earthquake-damage report raised an open 一般 hazard to 重大 (quake_damage.py):
# the one raise of a grade besides its rule; a survey update keeps it (survey_update._regrade).
QUAKE_RAISE_NOTE = "隐患由一般升为重大"
# The note of the event by which the hazard's supervising department (or the district government) decided that an
# open 一般 hazard is 重大 (feedback.py, 监管决定 认定为重大): the other recorded raise a survey update keeps.
DECISION_RAISE_NOTE = "监管部门认定为重大隐患"
# 挂牌督办 (issue 26 §3): recorded only from a notice of the government or its 安委会办公室; its state on the hazard
SUPERVISING, SUPERVISE_CLOSED, SUPERVISE_AWAITING_CLOSE = "督办中", "已核销", "待核销"
# 风险等级 (the asset's colour, 风险分级) is another axis than 隐患等级 (一般/重大, the hazard's own): it is shown
# colour first, 红色（重大风险）, so that it is not read as 重大隐患.
RISK_COLOUR_ZH = colour_zh()  # rules/reference/level_thresholds.csv
# Per kind, from rules/kinds.yaml: the numbering prefix and what an earthquake may do.
KIND_PREFIX = {k: spec.prefix for k, spec in load_kinds().items()}
HARM_ZH = {k: spec.harm for k, spec in load_kinds().items()}

HAZARD_COLUMNS = """
    hazard_no VARCHAR PRIMARY KEY, kind VARCHAR, asset_id VARCHAR, asset_name VARCHAR, rule_id VARCHAR,
    town_code VARCHAR, lon DOUBLE, lat DOUBLE, description VARCHAR, hazard_grade VARCHAR, risk_level VARCHAR,
    risk_level_zh VARCHAR, rule_title VARCHAR, source_ref VARCHAR, rectification VARCHAR,
    found_date DATE, last_survey_date DATE, last_seen_round VARCHAR, responsible_unit VARCHAR,
    person VARCHAR, measures VARCHAR, funds_wan DOUBLE, deadline DATE, extend_to DATE,
    extend_reason VARCHAR, monitoring VARCHAR, plan_no VARCHAR, status VARCHAR,
    acceptor VARCHAR, accept_date DATE, accept_result VARCHAR, updated_on DATE, ruleset_version VARCHAR,
    review_days INTEGER, plan_finish DATE, assessment_no VARCHAR, expert VARCHAR,
    supervise_unit VARCHAR, supervise_date DATE, supervise_no VARCHAR, extend_requested_to DATE,
    extend_status VARCHAR
"""

LEDGER_DDL = [
    f"CREATE TABLE IF NOT EXISTS hazards ({HAZARD_COLUMNS})",
    # the rule set that last confirmed the hazard (a rule change is told from a resurvey by it)
    "ALTER TABLE hazards ADD COLUMN IF NOT EXISTS ruleset_version VARCHAR",
    # under control (管控中): the review cycle of its rule (DEFAULT_REVIEW_DAYS when the rule has none)
    "ALTER TABLE hazards ADD COLUMN IF NOT EXISTS review_days INTEGER",
    # 重大隐患: 五落实 (the plan's finish date), the acceptance's assessment, and 挂牌督办 (who, when, number)
    *(
        f"ALTER TABLE hazards ADD COLUMN IF NOT EXISTS {c}"
        for c in (
            "plan_finish DATE",
            "assessment_no VARCHAR",
            "expert VARCHAR",
            "supervise_unit VARCHAR",
            "supervise_date DATE",
            "supervise_no VARCHAR",
        )
    ),
    # 震损 hazards (rules/quake/damage.yaml): the earthquake whose damage report opened them last; the survey
    # never clears or withdraws them (they have no survey round), only their rectification loop closes them
    "ALTER TABLE hazards ADD COLUMN IF NOT EXISTS origin_event VARCHAR",
    # the acceptance's own record (验收意见) beside 验收人/日期/结论: an acceptance never overwrites the unit's
    # 五落实 (措施, 责任人, 资金, 时限, 预案)
    "ALTER TABLE hazards ADD COLUMN IF NOT EXISTS accept_opinion VARCHAR",
    # the department that accepts, decides extensions and sees the hazard as supervisor: by sector
    # (pipeline/ledger/supervision.py, reference/supervision.csv), not by the responsible unit
    "ALTER TABLE hazards ADD COLUMN IF NOT EXISTS sector_supervisor VARCHAR",
    # an immediate measure (its rule's control_days): the day the control must be in place (found or reopened
    # + control_days) and the day the unit reported it in place (管控措施已落实); past the first without the
    # second the hazard is overdue on its own (管控逾期)
    "ALTER TABLE hazards ADD COLUMN IF NOT EXISTS control_deadline DATE",
    "ALTER TABLE hazards ADD COLUMN IF NOT EXISTS control_done_on DATE",
    # 挂牌督办 as a decision (issue 26 §3): the notice's deadline and requirements, its state (督办中/已核销) and
    # the day the issuer confirmed its 核销 (supervise_no/unit/date above: 通知书编号, 督办单位, 下达日期)
    *(
        f"ALTER TABLE hazards ADD COLUMN IF NOT EXISTS {c}"
        for c in (
            "supervise_deadline DATE",
            "supervise_requirement VARCHAR",
            "supervise_status VARCHAR",
            "supervise_closed_on DATE",
        )
    ),
    """CREATE TABLE IF NOT EXISTS hazard_events (
        seq BIGINT, hazard_no VARCHAR, event_date DATE, recorded_at TIMESTAMP, from_status VARCHAR,
        to_status VARCHAR, unit VARCHAR, source_file VARCHAR, note VARCHAR, state JSON)""",
    "CREATE SEQUENCE IF NOT EXISTS hazard_event_seq",
    """CREATE TABLE IF NOT EXISTS feedback_applied (
        file_id VARCHAR PRIMARY KEY, rel_path VARCHAR, applied_at TIMESTAMP, applied INTEGER, refused INTEGER)""",
    """CREATE TABLE IF NOT EXISTS feedback_results (
        file_id VARCHAR, rel_path VARCHAR, row_no INTEGER, hazard_no VARCHAR, unit VARCHAR, outcome VARCHAR,
        reason_zh VARCHAR, from_status VARCHAR, to_status VARCHAR)""",
    # what the row reported (feedback.row_digest): a row sent again, identical, is not applied twice
    "ALTER TABLE feedback_results ADD COLUMN IF NOT EXISTS row_digest VARCHAR",
]


def ensure_ledger_schema(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in LEDGER_DDL:
        con.execute(ddl)


def ledger_version(con: duckdb.DuckDBPyConnection) -> tuple[int | None, int]:
    """The ledger as it stands, for the steps that do no work when it has not changed: its last event and its
    size (every change of a hazard records an event; the rule-set stamp changes only with the rules)."""
    ensure_ledger_schema(con)
    return con.execute("SELECT (SELECT max(seq) FROM hazard_events), (SELECT count(*) FROM hazards)").fetchone()


@cache
def transitions() -> dict[tuple[str, str], frozenset[str]]:
    """(from, to) -> who may make it: survey, responsible and/or supervisor."""
    out: dict[tuple[str, str], set[str]] = {}
    with open(REFERENCE_DIR / "ledger_transitions.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            out.setdefault((r["from_status"], r["to_status"]), set()).add(r["actor"])
    return {k: frozenset(v) for k, v in out.items()}


def unit_actor(from_status: str, to_status: str) -> str | None:
    """Which unit may report this change: 'responsible', 'supervisor', or None (not by a unit)."""
    actors = transitions().get((from_status, to_status), frozenset())
    return "supervisor" if "supervisor" in actors else "responsible" if "responsible" in actors else None


def risk_label_sql(alias: str) -> str:
    """The hazard's 风险等级 as shown: 红色（重大风险）, from its asset's level and its name."""
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in RISK_COLOUR_ZH.items())
    return f"CASE {alias}.risk_level {cases} END || coalesce('（' || {alias}.risk_level_zh || '）', '')"


def hazard_no_sql(kind_col: str = "kind", asset_col: str = "asset_id", rule_col: str = "rule_id") -> str:
    """The hazard number: kind prefix, asset id, rule id (e.g. JZ-640302100-000123-B07).

    Derived, so it is the same in every re-run and every survey round."""
    cases = " ".join(f"WHEN '{k}' THEN '{p}'" for k, p in KIND_PREFIX.items())
    prefix = f"CASE {kind_col} {cases} END"
    return (
        f"CASE WHEN starts_with({asset_col}, {prefix} || '-') THEN {asset_col} "
        f"ELSE {prefix} || '-' || {asset_col} END || '-' || {rule_col}"
    )


def record_events(con: duckdb.DuckDBPyConnection, changes: str, params: list | None = None) -> None:
    """Append one event per row of `changes` (a table, or a parenthesised SELECT with `params`, giving
    hazard_no, event_date, from_status, to_status, unit, source_file, note), with the hazard's full state
    after the change, numbered in hazard-number order.

    One statement that streams: the numbers are taken from the sequence first (as many as there are changes)
    and each event's is the first plus its place in hazard-number order, so nothing is sorted but the changes'
    narrow rows. Sorting the events themselves (each carries the hazard's whole state as JSON) ran a 5 M
    district's first survey (~2.9 M hazards) out of DuckDB's memory limit, and recording them in slices
    scanned every hazard once per slice (issue 30: quadratic)."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __event_changes AS SELECT row_number() OVER (ORDER BY hazard_no) AS rn, * "
        f"FROM {changes}",
        params or [],
    )
    ((total,),) = con.execute("SELECT count(*) FROM __event_changes").fetchall()
    if total:
        ((first,),) = con.execute("SELECT min(nextval('hazard_event_seq')) FROM range(?)", [total]).fetchall()
        con.execute(
            f"""
            INSERT INTO hazard_events
            SELECT ? + c.rn - 1, c.hazard_no, c.event_date, {BEIJING_NOW_SQL}, c.from_status, c.to_status, c.unit,
                   c.source_file, c.note, to_json(h)
            FROM __event_changes c JOIN hazards h USING (hazard_no)
            """,
            [first],
        )
    con.execute("DROP TABLE __event_changes")


ONE_CHANGE = """(SELECT ?::VARCHAR AS hazard_no, ?::DATE AS event_date, ?::VARCHAR AS from_status,
    ?::VARCHAR AS to_status, ?::VARCHAR AS unit, ?::VARCHAR AS source_file, ?::VARCHAR AS note)"""
