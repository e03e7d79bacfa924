"""Enterprises answer for their hazards (issue 11 §1): a hazchem site's enterprise and a pipeline's operator,
by credit code, are the responsible units; the department whose folder the survey came from supervises them
and alone accepts their rectification."""

from __future__ import annotations

from pipeline.intake.credit_code import check_char
from pipeline.intake.ingest import ingest_kind
from pipeline.intake.validate import normalize, validate
from pipeline.ledger import survey_update
from pipeline.platform import store
from pipeline.registries import units as registry
from pipeline.registries.templates import load_template
from pipeline.scoring.engine import score_kind
from pipeline.scoring.ruleset import parse_rules
from tests.conftest import csv_bytes, example_row
from tests.test_ledger import fb, feedback
from tests.test_rules_buildings import RULESET


def credit_code(serial: int) -> str:
    first17 = f"91640302MA76{serial:04d}0"
    return first17 + check_char(first17)


SITE, OTHER_SITE, OPERATOR = credit_code(1), credit_code(2), credit_code(3)


def survey_kind(deployment, kind: str, rows: list[dict], unit: str) -> None:
    deployment.drop(kind, f"{kind}.csv", csv_bytes(kind, rows), unit=unit, rnd="2023-1")
    with store.connect(deployment.db) as con:
        ingest_kind(con, deployment.data_raw, kind)
        normalize(con, load_template(kind))
        validate(con, load_template(kind))
        score_kind(con, RULESET, kind)
        survey_update.update_from_findings(con)


def hazchem_survey(deployment) -> str:
    sites = [example_row("hazchem_sites", site_id=SITE, name="宁夏甲化工有限公司", emergency_plan_filed="否"),
             example_row("hazchem_sites", site_id=OTHER_SITE, name="宁夏乙化工有限公司", emergency_plan_filed="否")]  # fmt: skip
    survey_kind(deployment, "hazchem_sites", sites, unit="YJJ")
    return f"WH-{SITE}-H15"


def hazard(deployment, hazard_no: str) -> tuple:
    return deployment.query("SELECT status, responsible_unit FROM hazards WHERE hazard_no = ?", [hazard_no])[0]


def test_a_hazchem_hazard_is_the_enterprises_and_closes_on_the_regulators_acceptance(deployment):
    number = hazchem_survey(deployment)
    assert hazard(deployment, number) == ("待整改", SITE)
    with store.connect(deployment.db):  # the registry now holds the enterprise, under YJJ
        assert registry.units()[SITE].name == "宁夏甲化工有限公司"
        assert registry.supervisor_of(SITE) == "YJJ"

    (started,) = feedback(deployment, "start.csv", [fb(number, "整改中", unit="", report_date="2023-08-01")],
                          unit=SITE, batch="2023-08")  # fmt: skip
    assert started.applied == 1, started.rows
    feedback(deployment, "done.csv", [fb(number, "已整改待验收", unit="", report_date="2023-09-01")], unit=SITE,
             batch="2023-09")  # fmt: skip
    accept = fb(number, "已销号", unit="", report_date="2023-10-10", acceptor="张伟", accept_date="2023-10-09",
                accept_result="通过")  # fmt: skip
    (by_self,) = feedback(deployment, "self.csv", [accept], unit=SITE, batch="2023-10a")
    (by_fgj,) = feedback(deployment, "fgj.csv", [accept], unit="FGJ", batch="2023-10b")
    assert by_self.rows[0].reason_zh == "责任单位不能验收自己的整改，验收销号须由监管单位填报"
    assert (
        by_fgj.rows[0].reason_zh
        == "验收销号须由该隐患的行业监管部门YJJ（利通区应急管理局（地震局））报送（按区行业监管分工）"
    )
    assert hazard(deployment, number)[0] == "已整改待验收"
    (by_yjj,) = feedback(deployment, "yjj.csv", [accept], unit="YJJ", batch="2023-10c")
    assert by_yjj.applied == 1
    assert hazard(deployment, number) == ("已销号", SITE)
    events = deployment.query("SELECT to_status, unit FROM hazard_events WHERE hazard_no = ? ORDER BY seq", [number])
    assert events == [("待整改", "YJJ"), ("整改中", SITE), ("已整改待验收", SITE), ("已销号", "YJJ")]


def test_one_enterprise_cannot_report_on_anothers_hazard(deployment):
    number = hazchem_survey(deployment)
    (result,) = feedback(deployment, "x.csv", [fb(number, "整改中", unit="")], unit=OTHER_SITE, batch="2023-08")
    assert result.rows[0].reason_zh == f"不是本单位负责的隐患（责任单位为{SITE}（宁夏甲化工有限公司））"
    assert hazard(deployment, number)[0] == "待整改"


def test_a_pipeline_hazard_is_the_operators_under_the_filing_department(deployment):
    segment = example_row("pipelines", operator="宁夏丙燃气有限公司", operator_code=OPERATOR, cathodic_ok="否")
    survey_kind(deployment, "pipelines", [segment], unit="FGJ")
    assert hazard(deployment, "GD-XE-001-P09") == ("待整改", OPERATOR)
    with store.connect(deployment.db):
        assert registry.units()[OPERATOR].label() == f"{OPERATOR}（宁夏丙燃气有限公司）"
        assert registry.supervisor_of(OPERATOR) == "FGJ"


def test_a_pipeline_survey_needs_a_valid_operator_credit_code(deployment):
    segment = example_row("pipelines", operator_code="91640302MA7600010X")
    deployment.drop("pipelines", "p.csv", csv_bytes("pipelines", [segment]), unit="FGJ")
    result = deployment.intake("pipelines")["pipelines"]
    assert (result.valid, result.quarantined) == (0, 1)
    reasons = deployment.query("SELECT reasons_zh FROM quarantine WHERE kind = 'pipelines'")
    assert "运营单位统一社会信用代码" in reasons[0][0]


def test_every_unit_in_the_registry_reaches_the_district_government(deployment):
    hazchem_survey(deployment)
    with store.connect(deployment.db):
        units = registry.units()
        assert {u.kind for u in units.values()} >= {"government", "department", "town", "enterprise"}
        for code in units:
            seen, at = [code], code
            while at != registry.TOP_UNIT:
                at = registry.supervisor_of(at)
                assert at in units and at not in seen, f"{code}: supervisors {seen} → {at}"
                seen.append(at)


def test_an_enterprises_hazard_rule_must_state_why_it_is_major_or_general(tmp_path):
    import shutil

    from pipeline.platform.paths import RULES_DIR

    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    text = (rules / "pipelines.yaml").read_text(encoding="utf-8")
    cut = "\n".join(
        line for line in text.split("\n") if "grade_basis: 一般：运营单位调整或修复阴极保护系统" not in line
    )
    (rules / "pipelines.yaml").write_text(cut, encoding="utf-8")
    problems = parse_rules(rules).problems
    assert [p for p in problems if "P09" in p] == [
        "rules/pipelines.yaml: rule P09: an enterprise's hazard needs grade_basis (why 一般 or 重大: 一般 the "
        "enterprise can rectify at once; 重大 needs a plan, a stoppage or outside help)"
    ]
