"""挂牌督办 as a decision (issue 26 §3): who may issue it, and the 督办建议清单 the ledger proposes.

The ledger never puts a hazard under 督办 by itself. The district government (or its 安委会办公室) issues a
督办通知书 through its own folder or account as a feedback row (监管决定 挂牌督办, pipeline/ledger/feedback.py),
and confirms its 核销 the same way once the hazard is 已销号. What the ledger does is propose candidates, by
the rules of reference/duban.yaml (data, not code): each a predicate over the ledger row as
`exports.ledger_sql` gives it, as of a date.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from pipeline.formats.yaml_file import load_yaml
from pipeline.ledger.model import SUPERVISE_AWAITING_CLOSE, SUPERVISING
from pipeline.platform.paths import REFERENCE_DIR

DUBAN_FILE = "duban.yaml"
PROPOSALS_NAME = "督办建议清单"
# the list's columns: ledger column -> header (the rules that propose a hazard come last)
PROPOSAL_COLUMNS = {
    "hazard_no": "隐患编号", "kind_zh": "资产类别", "asset_name": "资产名称", "town_name": "乡镇",
    "unit_name": "责任单位", "hazard_grade": "隐患等级", "risk_level_zh": "风险等级", "status": "整改状态",
    "found_date": "发现日期", "deadline": "整改时限", "extend_to": "批准延期至", "overdue_days": "逾期天数",
    "proposed_by": "建议督办规则", "basis": "建议理由",
}  # fmt: skip


@dataclass(frozen=True)
class ProposalRule:
    id: str
    title_zh: str
    basis_zh: str
    when: str  # a DuckDB predicate over a ledger row; $as_of is the list's date


@cache
def _config() -> dict:
    with open(REFERENCE_DIR / DUBAN_FILE, encoding="utf-8") as f:
        return load_yaml(f)


def issuers() -> tuple[str, ...]:
    """The units that may issue a 挂牌督办 notice (the district government, its 安委会办公室 when registered)."""
    return tuple(_config()["issuers"])


def proposal_rules() -> list[ProposalRule]:
    return [ProposalRule(r["id"], r["title_zh"], r["basis_zh"], r["when"]) for r in _config()["proposals"]]


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def proposals_sql(ledger: str) -> str:
    """Of `ledger` (the ledger's SELECT with display names and overdue days, exports.ledger_sql), the open hazards
    not under 督办 that at least one rule proposes, with the rules (`proposed_by`: 'D01 重大隐患逾期未整改；…') and
    their grounds (`basis`), most overdue first. Parameter: $as_of. The rows are first narrowed to those some
    rule proposes (a plain filter), and only those get the lists: building two lists for every hazard took
    3 s at 1 M buildings for 30,000 proposals."""
    rules = proposal_rules()
    any_rule = " OR ".join(f"({r.when})" for r in rules) or "false"
    named = ", ".join(f"CASE WHEN ({r.when}) THEN {_quoted(f'{r.id} {r.title_zh}')} END" for r in rules)
    basis = ", ".join(f"CASE WHEN ({r.when}) THEN {_quoted(r.basis_zh)} END" for r in rules)
    return f"""
        WITH l AS ({ledger}),
        p AS (
            SELECT l.*, list_filter([{named}], lambda x: x IS NOT NULL) AS rule_list,
                   list_filter([{basis}], lambda x: x IS NOT NULL) AS basis_list
            FROM l
            WHERE status <> '已销号'
              AND coalesce(supervise_status, '') NOT IN ('{SUPERVISING}', '{SUPERVISE_AWAITING_CLOSE}')
              AND ({any_rule}))
        SELECT *, array_to_string(rule_list, '；') AS proposed_by, array_to_string(basis_list, '；') AS basis
        FROM p WHERE len(rule_list) > 0
        ORDER BY overdue_days DESC NULLS LAST, found_date, hazard_no"""
