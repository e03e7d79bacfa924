"""A change of the rule set never drops a hazard silently: each hazard a changed rule set no longer finds on
the same survey is withdrawn (已撤销) through a recorded event naming the rule and both rule-set versions,
is left out of the ledger's figures, and comes back under its own number if the rule does."""

from __future__ import annotations

import datetime as dt
import shutil

import yaml

from pipeline.ledger import survey_update
from pipeline.ledger.exports import ledger_rows, summary
from pipeline.platform import store
from pipeline.platform.clock import district_today
from pipeline.platform.paths import RULES_DIR
from pipeline.scoring.engine import score_kind
from pipeline.scoring.ruleset import load_ruleset
from tests.test_ledger import A_DAMAGE, A_FALL, B_D, RULESET, round_one, statuses


def changed_rules(tmp_path, change) -> object:
    """A copy of rules/ with buildings.yaml changed by `change(list of rules)`."""
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    path = rules_dir / "buildings.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc["rules"])
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_ruleset(rules_dir)


def rescore(deployment, ruleset) -> survey_update.LedgerUpdate:
    with store.connect(deployment.db) as con:
        score_kind(con, ruleset, "buildings")
        return survey_update.update_from_findings(con)


def test_a_retired_rule_withdraws_its_hazards_with_a_recorded_event_and_the_rule_coming_back_reopens_them(
    deployment, tmp_path
):
    round_one(deployment)
    retired = changed_rules(tmp_path, lambda rules: rules.remove(next(r for r in rules if r["id"] == "B11")))
    counts = rescore(deployment, retired)
    assert counts.withdrawn == 1 and (counts.new, counts.reopened, counts.resurvey_cleared) == (0, 0, 0)
    assert statuses(deployment) == {A_FALL: "已撤销", A_DAMAGE: "待整改", B_D: "待整改"}
    (event,) = deployment.query(
        "SELECT from_status, to_status, event_date, note FROM hazard_events WHERE to_status = '已撤销'"
    )
    assert event[:3] == ("待整改", "已撤销", district_today())
    assert event[3] == f"规则调整撤销：规则B11已从规则集中删除（规则集版本 {RULESET.version} → {retired.version}）"
    with store.connect(deployment.db) as con:  # not in the ledger's rows or figures
        assert A_FALL not in set(ledger_rows(con, district_today())["hazard_no"])
        assert int(summary(con, "town", district_today(), dt.date(2023, 1, 1))["发现隐患"].sum()) == 2
    assert rescore(deployment, retired).withdrawn == 0  # a re-run changes nothing

    back = rescore(deployment, RULESET)
    assert back.reopened == 1 and statuses(deployment)[A_FALL] == "待整改"
    notes = deployment.query("SELECT note FROM hazard_events WHERE hazard_no = ? ORDER BY seq", [A_FALL])
    assert notes[-1] == ("规则调整后再次构成隐患，重新打开（编号不变）",)


def test_a_rule_that_stops_opening_hazards_withdraws_them_and_says_why(deployment, tmp_path):
    round_one(deployment)

    def weigh_only(rules):
        next(r for r in rules if r["id"] == "B09")["hazard"] = False

    ruleset = changed_rules(tmp_path, weigh_only)
    assert rescore(deployment, ruleset).withdrawn == 1
    (note,) = deployment.query("SELECT note FROM hazard_events WHERE hazard_no = ? AND to_status = '已撤销'",
                               [A_DAMAGE])[0]  # fmt: skip
    assert "规则B09不再作为隐患规则（仅计分）" in note


def test_the_same_rule_set_never_withdraws(deployment):
    round_one(deployment)
    assert rescore(deployment, RULESET).withdrawn == 0
    assert deployment.query("SELECT count(DISTINCT ruleset_version) FROM hazards") == [(1,)]
