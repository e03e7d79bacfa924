"""Deadlines that match the measure (issue 26 §4): a rule whose measure is immediate (停止使用, 封闭, 疏散, 限载,
关闭交通) carries a control deadline (control_days) beside its rectification deadline; the responsible unit
reports 管控措施已落实; a control not in place by its deadline is overdue on its own (管控逾期) in every figure that
counts overdue."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import yaml

from pipeline.ledger.exports import LEDGER_COLUMNS, ledger_rows, summary
from pipeline.platform import store
from pipeline.platform.paths import RULES_DIR
from pipeline.scoring.ruleset import RuleSetError, load_ruleset
from tests.test_ledger import B_D, building, fb, feedback, survey

FOUND = "2023-09-01"
RECT_DEADLINE = dt.date(2024, 8, 31)  # B01: 365 days


def d_house(deployment, **kw):
    return survey(deployment, "2023-1", [building("JZ-B", appraisal_grade="D", survey_date=FOUND, **kw)])


def as_of(deployment, day: dt.date):
    with store.connect(deployment.db) as con:
        row = ledger_rows(con, day).set_index("hazard_no").loc[B_D]
        by_town = summary(con, "town", day, dt.date(2023, 1, 1))
        by_unit = summary(con, "unit", day, dt.date(2023, 1, 1))
    return row, by_town, by_unit


def test_a_d_grade_house_without_a_control_report_is_overdue_within_days_not_a_year(deployment):
    d_house(deployment)
    assert deployment.query("SELECT deadline, control_deadline, control_done_on FROM hazards WHERE hazard_no = ?",
                            [B_D]) == [(RECT_DEADLINE, dt.date(2023, 9, 4), None)]  # fmt: skip
    row, by_town, by_unit = as_of(deployment, dt.date(2023, 9, 3))
    assert row.isna()["overdue_days"] and row.isna()["overdue_kind"]
    row, by_town, by_unit = as_of(deployment, dt.date(2023, 9, 10))
    assert (row["overdue_kind"], row["overdue_days"]) == ("管控逾期", 6)  # from the control deadline, 09-04
    assert int(by_town["逾期数"].sum()) == 1 and int(by_town["逾期总天数"].sum()) == 6
    assert int(by_unit["逾期数"].sum()) == 1


def test_after_a_control_report_it_is_overdue_only_past_its_rectification_deadline(deployment):
    d_house(deployment)
    (result,) = feedback(deployment, "管控.csv", [fb(B_D, "管控措施已落实", measures="已停止使用，住户全部疏散，设置警戒线",
                                                   report_date="2023-09-03")], batch="2023-09")  # fmt: skip
    assert (result.applied, result.rows[0].from_status, result.rows[0].to_status) == (1, "待整改", "待整改")
    h = deployment.query("SELECT status, control_done_on, monitoring, measures FROM hazards WHERE hazard_no = ?", [B_D])
    assert h == [
        (
            "待整改",
            dt.date(2023, 9, 3),
            "已停止使用，住户全部疏散，设置警戒线",
            "立即停止使用、疏散人员，设置警示；列入危房改造或拆除计划，拆除前落实管控措施",
        )
    ]  # the 整改措施 kept
    note = deployment.query("SELECT note FROM hazard_events WHERE hazard_no = ? ORDER BY seq DESC LIMIT 1", [B_D])
    assert note[0][0].startswith("管控措施已落实（管控时限2023-09-04）")
    for day in (dt.date(2023, 9, 10), RECT_DEADLINE):
        row, by_town, _ = as_of(deployment, day)
        assert row.isna()["overdue_days"] and int(by_town["逾期数"].sum()) == 0
    row, by_town, _ = as_of(deployment, RECT_DEADLINE + dt.timedelta(days=5))
    assert (row["overdue_kind"], row["overdue_days"], int(by_town["逾期数"].sum())) == ("整改逾期", 5, 1)


def test_a_late_control_report_ends_the_control_overdue_from_its_date(deployment):
    d_house(deployment)
    feedback(deployment, "管控.csv", [fb(B_D, "管控措施已落实", report_date="2023-09-20")], batch="2023-09")
    assert as_of(deployment, dt.date(2023, 9, 19))[0]["overdue_days"] == 15  # still overdue before the report
    assert as_of(deployment, dt.date(2023, 9, 21))[0].isna()["overdue_days"]


def test_control_reports_that_are_refused_say_why_in_chinese(deployment):
    survey(deployment, "2023-1", [building("JZ-B", appraisal_grade="D", survey_date=FOUND),
                                  building("JZ-A", falling_hazard="是", survey_date=FOUND)])  # fmt: skip
    rows = [
        fb("JZ-A-B11", "管控措施已落实", report_date="2023-09-02"),  # B11 has no control deadline
        fb(B_D, "管控措施已落实", report_date="2023-08-30"),  # before the hazard was found
        fb(B_D, "管控措施已落实", unit="T101", report_date="2023-09-02"),
    ]  # not the unit's hazard
    (result,) = feedback(deployment, "管控.csv", rows, batch="2023-09")
    reasons = [r.reason_zh for r in result.rows]
    assert result.applied == 0
    assert "没有管控时限" in reasons[0]
    assert "早于该隐患的发现日期（2023-09-01）" in reasons[1]
    assert "填报单位" in reasons[2]  # another unit's row in T100's file
    (other,) = feedback(deployment, "他单位.csv", [fb(B_D, "管控措施已落实", unit="T101", report_date="2023-09-02")],
                        unit="T101", batch="2023-09")  # fmt: skip
    assert other.applied == 0 and "不是本单位负责的隐患" in other.rows[0].reason_zh
    (twice,) = feedback(deployment, "两次.csv", [fb(B_D, "管控措施已落实", report_date="2023-09-02"),
                                                fb(B_D, "管控措施已落实", report_date="2023-09-03")], batch="2023-09b")  # fmt: skip
    assert [r.outcome for r in twice.rows] == ["已执行", "退回"] and "已于2023-09-02报告" in twice.rows[1].reason_zh
    assert deployment.query("SELECT control_done_on FROM hazards WHERE hazard_no = ?", [B_D]) == [
        (dt.date(2023, 9, 2),)
    ]


def test_a_reopened_hazard_gets_a_new_control_deadline_and_must_report_again(deployment):
    d_house(deployment)
    feedback(deployment, "管控.csv", [fb(B_D, "管控措施已落实", report_date="2023-09-02")], batch="2023-09")
    five = {"funds_wan": "12", "plan_finish": "2024-06-30", "plan_no": "YJYA-2023-017"}
    feedback(deployment, "整改.csv", [fb(B_D, "整改中", report_date="2023-10-01", **five)], batch="2023-10")
    feedback(deployment, "完成.csv", [fb(B_D, "已整改待验收", report_date="2023-12-01")], batch="2023-12")
    feedback(deployment, "验收.csv", [fb(B_D, "已销号", unit="ZJJ", report_date="2023-12-10", acceptor="李验收",
                                        accept_date="2023-12-10", accept_result="通过", expert="王专家")],
             unit="ZJJ", batch="2023-12b")  # fmt: skip
    assert deployment.query("SELECT status FROM hazards WHERE hazard_no = ?", [B_D]) == [("已销号",)]
    counts = survey(deployment, "2024-1", [building("JZ-B", appraisal_grade="D", survey_date="2024-05-01")])
    assert counts.reopened == 1
    assert deployment.query("SELECT status, control_deadline, control_done_on FROM hazards WHERE hazard_no = ?",
                            [B_D]) == [("待整改", dt.date(2024, 5, 4), None)]  # fmt: skip
    row, _, _ = as_of(deployment, dt.date(2024, 5, 10))
    assert (row["overdue_kind"], row["overdue_days"]) == ("管控逾期", 6)


def test_an_existing_ledger_gets_control_deadlines_from_the_found_date_with_an_event(deployment):
    d_house(deployment)
    with store.connect(deployment.db) as con:  # a ledger from before control deadlines: none on its hazards
        con.execute("UPDATE hazards SET control_deadline = NULL")
    counts = survey(deployment, "2023-1", [building("JZ-B", appraisal_grade="D", survey_date=FOUND)])
    assert counts.control_set == 1
    assert deployment.query("SELECT control_deadline FROM hazards WHERE hazard_no = ?", [B_D]) == [
        (dt.date(2023, 9, 4),)
    ]
    (note,) = deployment.query("SELECT note FROM hazard_events WHERE hazard_no = ? ORDER BY seq DESC LIMIT 1", [B_D])
    assert "补设管控时限2023-09-04" in note[0]
    assert as_of(deployment, dt.date(2023, 9, 10))[0]["overdue_kind"] == "管控逾期"
    again = survey(deployment, "2023-1", [building("JZ-B", appraisal_grade="D", survey_date=FOUND)])
    assert again.control_set == 0


def test_the_exports_name_the_control_columns():
    headers = list(LEDGER_COLUMNS.values())
    assert {"管控时限", "管控措施落实日期", "逾期类型"} <= set(headers)
    assert headers.index("管控措施落实日期") == headers.index("管控时限") + 1


def test_immediate_measures_carry_a_control_deadline_shorter_than_the_rectification():
    rules = {r.id: r for r in load_ruleset().rules}
    assert (rules["B01"].control_days, rules["R01"].control_days, rules["R02"].control_days) == (3, 1, 7)
    for r in rules.values():
        if r.control_days:
            assert r.hazard and r.control_days < r.deadline_days
    assert rules["B11"].control_days is None  # 立即拆除 is the rectification itself, not a control


@pytest.mark.parametrize(
    ("value", "message"),
    [(0, "whole number of days > 0"), ("3天", "whole number of days > 0"), (400, "smaller than deadline_days")],
)
def test_a_bad_control_days_refuses_the_rule_set(tmp_path, value, message):
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    path = rules_dir / "buildings.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["rules"][0]["control_days"] = value
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RuleSetError, match=f"rule B01: control_days .*{message}"):
        load_ruleset(rules_dir)


def test_control_days_only_on_a_hazard_rule(tmp_path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    path = rules_dir / "buildings.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    weighing = next(r for r in doc["rules"] if not r.get("hazard"))
    weighing["control_days"] = 3
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RuleSetError, match="control_days is only for a hazard rule"):
        load_ruleset(rules_dir)


def test_the_feedback_template_explains_the_control_step(tmp_path):
    from openpyxl import load_workbook

    from pipeline.intake.blank_templates import GUIDE_SHEET, write_xlsx
    from pipeline.registries.templates import load_template

    path = write_xlsx(load_template("feedback"), tmp_path / "feedback.xlsx")
    guide = [" ".join(str(c) for c in row if c) for row in load_workbook(path)[GUIDE_SHEET].iter_rows(values_only=True)]
    (status_row,) = [r for r in guide if r.startswith("整改状态")]
    assert "管控措施已落实" in status_row and "管控逾期" in status_row


def test_putting_the_hazard_under_control_counts_as_its_controls_in_place(deployment):
    d_house(deployment)
    five = {"funds_wan": "12", "plan_finish": "2024-06-30", "plan_no": "YJYA-2023-017"}
    (result,) = feedback(deployment, "管控中.csv", [fb(B_D, "管控中", monitoring="每周巡查", report_date="2023-09-06", **five)],
                         batch="2023-09")  # fmt: skip
    assert result.applied == 1
    assert deployment.query("SELECT control_done_on FROM hazards WHERE hazard_no = ?", [B_D]) == [
        (dt.date(2023, 9, 6),)
    ]
    row, _, _ = as_of(deployment, dt.date(2023, 9, 10))
    assert row.isna()["overdue_days"]
