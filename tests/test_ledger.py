"""The hazard ledger: survey rounds, the closed loop, feedback files, history, safety."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pipeline.intake.ingest import ingest_kind
from pipeline.intake.validate import normalize, validate
from pipeline.ledger import survey_update
from pipeline.ledger.feedback import apply_pending, pending_files, preview, validate_feedback
from pipeline.ledger.history import current_ledger, ledger_as_of
from pipeline.platform import store
from pipeline.registries.templates import load_template
from pipeline.scoring.engine import score_kind
from pipeline.scoring.ruleset import load_ruleset
from tests.conftest import csv_bytes, example_row

RULESET = load_ruleset()
BASE = {"structure_type": "剪力墙", "year_built": "2012", "seismic_design": "是", "use": "住宅", "occupants": "10",
        "responsible_unit": "T100", "appraisal_grade": "A"}  # fmt: skip


def building(bid: str, **overrides) -> dict:
    return example_row("buildings", building_id=bid, **{**BASE, **overrides})


def survey(deployment, rnd: str, rows: list[dict]) -> survey_update.LedgerUpdate:
    deployment.drop("buildings", f"{rnd}.csv", csv_bytes("buildings", rows), unit="ZJJ", rnd=rnd)
    return update_buildings(deployment)


def update_buildings(deployment) -> survey_update.LedgerUpdate:
    """Intake, scoring and the ledger update of every buildings file dropped so far."""
    with store.connect(deployment.db) as con:
        ingest_kind(con, deployment.data_raw, "buildings")
        normalize(con, load_template("buildings"))
        validate(con, load_template("buildings"))
        score_kind(con, RULESET, "buildings")
        return survey_update.update_from_findings(con)


def feedback(deployment, name: str, rows: list[dict], unit: str = "T100", batch: str = "2023-08"):
    deployment.drop("feedback", name, csv_bytes("feedback", rows), unit=unit, rnd=batch)
    with store.connect(deployment.db) as con:
        validate_feedback(con, deployment.data_raw)
        return apply_pending(con)


def fb(hazard_no: str, status: str, unit: str = "T100", report_date: str = "2023-08-15", **kw) -> dict:
    row = {"hazard_no": hazard_no, "unit": unit, "status": status, "measures": "已落实", "person": "马建国",
           "report_date": report_date}  # fmt: skip
    row.update(kw)
    return row


def statuses(deployment) -> dict[str, str]:
    return dict(deployment.query("SELECT hazard_no, status FROM hazards"))


A_FALL, A_DAMAGE, B_D = "JZ-A-B11", "JZ-A-B09", "JZ-B-B01"
# The ledger workbooks' sheets of the kinds, in the order a clerk finds them (buildings first; then 说明 closes a book)
KIND_SHEETS = ["房屋建筑", "桥梁", "危险化学品单位", "油气长输管道", "地质灾害隐患点", "应急避难场所", "乡镇避难场所容量",
               "水库和堤防", "供水设施"]  # fmt: skip
FIVE = {"funds_wan": "12", "plan_finish": "2024-06-30", "plan_no": "YJYA-2023-017"}  # 五落实 of a 重大 hazard


def round_one(deployment):
    rows = [building("JZ-A", falling_hazard="是", visible_damage="是"), building("JZ-B", appraisal_grade="D")]
    return survey(deployment, "2023-1", rows)


def test_hazards_appear_with_stable_numbers_units_and_deadlines(deployment):
    counts = round_one(deployment)
    assert counts.new == 3
    rows = deployment.query(
        "SELECT hazard_no, status, hazard_grade, risk_level, responsible_unit, found_date, deadline "
        "FROM hazards ORDER BY hazard_no"
    )
    assert rows == [
        (A_DAMAGE, "待整改", "一般", "yellow", "T100", dt.date(2023, 5, 12), dt.date(2023, 8, 10)),
        (A_FALL, "待整改", "一般", "yellow", "T100", dt.date(2023, 5, 12), dt.date(2023, 6, 11)),
        (B_D, "待整改", "重大", "red", "T100", dt.date(2023, 5, 12), dt.date(2024, 5, 11)),
    ]
    again = round_one(deployment)  # re-running changes nothing
    assert (again.new, again.reopened, again.refreshed, again.resurvey_cleared) == (0, 0, 0, 0)
    assert deployment.query("SELECT count(*) FROM hazard_events") == [(3,)]  # 3 found; 重大 is not 督办 by itself
    assert deployment.query("SELECT supervise_unit, supervise_date, supervise_no FROM hazards WHERE hazard_no = ?",
                            [B_D]) == [(None, None, None)]  # fmt: skip


def test_lifecycle_over_rounds_persist_vanish_reappear(deployment):
    round_one(deployment)
    r2 = [building("JZ-A", visible_damage="是", survey_date="2024-05-01"),
          building("JZ-B", appraisal_grade="D", survey_date="2024-05-01")]  # fmt: skip
    counts = survey(deployment, "2024-1", r2)
    assert (counts.new, counts.refreshed, counts.resurvey_cleared) == (0, 2, 1)
    assert statuses(deployment)[A_FALL] == "已整改待验收"
    note = deployment.query("SELECT note FROM hazard_events WHERE hazard_no = ? ORDER BY seq DESC LIMIT 1", [A_FALL])
    assert "复查未再发现" in note[0][0]
    # the supervisor accepts it, then it fires again in round 3: reopened with the same number
    feedback(deployment, "accept.csv", [fb(A_FALL, "已销号", unit="ZJJ", report_date="2024-06-01",
                                           acceptor="李验收", accept_date="2024-06-01", accept_result="通过")],
             unit="ZJJ", batch="2024-06")  # fmt: skip
    assert statuses(deployment)[A_FALL] == "已销号"
    r3 = [building("JZ-A", falling_hazard="是", survey_date="2025-04-01")]
    counts = survey(deployment, "2025-1", r3)
    assert counts.reopened == 1
    assert statuses(deployment)[A_FALL] == "待整改"
    history = deployment.query("SELECT from_status, to_status FROM hazard_events WHERE hazard_no = ? ORDER BY seq",
                               [A_FALL])  # fmt: skip
    assert history == [(None, "待整改"), ("待整改", "已整改待验收"), ("已整改待验收", "已销号"), ("已销号", "待整改")]


def test_feedback_files_of_one_run_apply_in_report_date_order(deployment):
    """The supervisor's folder (QZF: ZJJ's own house) sorts before ZJJ's, but its acceptance was reported later."""
    deployment.drop("buildings", "z.csv", csv_bytes("buildings", [building("JZ-Z", appraisal_grade="D", responsible_unit="ZJJ")]),
                    unit="ZJJ")  # fmt: skip
    update_buildings(deployment)
    hazard = "JZ-Z-B01"
    assert deployment.query("SELECT responsible_unit FROM hazards WHERE hazard_no = ?", [hazard]) == [("ZJJ",)]
    accept = dict(
        acceptor="张",
        accept_date="2024-01-10",
        accept_result="通过",
        report_date="2024-01-10",
        assessment_no="PG-2024-003",
    )  # a 重大 hazard is accepted on an assessment
    deployment.drop("feedback", "验收.csv", csv_bytes("feedback", [fb(hazard, "已销号", unit="QZF", **accept)]),
                    unit="QZF", rnd="2024-01")  # fmt: skip
    done = [fb(hazard, "整改中", unit="ZJJ", report_date="2023-10-01", **FIVE),
            fb(hazard, "已整改待验收", unit="ZJJ", report_date="2023-12-01")]  # fmt: skip
    deployment.drop("feedback", "进展.csv", csv_bytes("feedback", done), unit="ZJJ", rnd="2023-12")
    with store.connect(deployment.db) as con:
        validate_feedback(con, deployment.data_raw)
        results = apply_pending(con)
    assert [r.rel_path.split("/")[1] for r in results] == ["ZJJ", "QZF"]
    assert [(r.applied, r.refused) for r in results] == [(2, 0), (1, 0)]
    assert statuses(deployment)[hazard] == "已销号"


def test_feedback_closed_loop_and_refusals(deployment):
    round_one(deployment)
    rows = [
        fb(A_DAMAGE, "整改中"),                                   # 2 legal
        fb("JZ-X-B01", "整改中"),                                 # 3 unknown number
        fb(B_D, "已整改待验收"),                                   # 4 illegal: 待整改 -> 已整改待验收
        fb(A_FALL, "整改中", unit="T101"),                        # 5 another unit typed in: forged
        fb(B_D, "管控中", monitoring="每周巡查"),                   # 6 重大 under control without a plan number
        fb(A_FALL, "管控中"),                                     # 7 no monitoring: refused by validation
        fb(A_DAMAGE, "已整改待验收", report_date="2023-08-20"),      # 8 legal, after row 2
        fb(A_FALL, "整改中", report_date="2099-01-01"),             # 9 future date: refused by validation
    ]  # fmt: skip
    (result,) = feedback(deployment, "进展.csv", rows)
    outcome = {r.row_no: (r.outcome, r.reason_zh) for r in result.rows}
    assert outcome[2] == ("已执行", "") and outcome[8] == ("已执行", "")
    assert "在台账中不存在" in outcome[3][1]
    assert "不允许的状态变更：当前为“待整改”，不能改为“已整改待验收”" == outcome[4][1]
    assert outcome[5][1].startswith("填报单位T101（金银滩镇人民政府）与报送单位T100（金积镇人民政府）不一致")
    assert "应急预案编号" in outcome[6][1]
    assert "监测方式及频次" in outcome[7][1]
    assert "不晚于今天" in outcome[9][1]
    assert (result.applied, result.refused) == (2, 6)
    assert statuses(deployment) == {A_DAMAGE: "已整改待验收", A_FALL: "待整改", B_D: "待整改"}
    # the responsible unit may not accept its own work; the supervisor may
    accept = dict(acceptor="张", accept_date="2023-09-01", accept_result="通过", report_date="2023-09-01")
    (own,) = feedback(deployment, "自验.csv", [fb(A_DAMAGE, "已销号", **accept)], batch="2023-09")
    assert own.rows[0].reason_zh.startswith("责任单位不能验收自己的整改")
    (sup,) = feedback(
        deployment, "验收.csv", [fb(A_DAMAGE, "已销号", unit="ZJJ", **accept)], unit="ZJJ", batch="2023-09"
    )
    assert sup.applied == 1 and statuses(deployment)[A_DAMAGE] == "已销号"
    assert deployment.query("SELECT acceptor, accept_result FROM hazards WHERE hazard_no = ?", [A_DAMAGE]) == [
        ("张", "通过")
    ]


def test_a_feedback_file_is_applied_once_and_preview_changes_nothing(deployment):
    round_one(deployment)
    deployment.drop("feedback", "p.csv", csv_bytes("feedback", [fb(A_DAMAGE, "整改中")]), unit="T100", rnd="2023-08")
    with store.connect(deployment.db) as con:
        validate_feedback(con, deployment.data_raw)
        (file_id, _, _) = pending_files(con)[0]
        seen = preview(con, file_id)
        assert seen.applied == 1
        assert con.execute("SELECT status FROM hazards WHERE hazard_no = ?", [A_DAMAGE]).fetchall() == [("待整改",)]
        assert len(apply_pending(con)) == 1
        assert apply_pending(con) == []  # nothing left to apply on a re-run
    assert deployment.query("SELECT count(*) FROM hazard_events WHERE unit = 'T100'") == [(1,)]


def test_control_measures_for_a_major_hazard(deployment):
    round_one(deployment)
    bare = fb(B_D, "管控中", monitoring="每周巡查一次", plan_no="YJYA-2023-017")
    (refused,) = feedback(deployment, "管控.csv", [bare])
    assert refused.rows[0].reason_zh == (
        "重大隐患转为管控中须“五落实”（责任、措施、资金、时限、预案），缺少：整改资金(万元)、计划完成时限"
    )
    row = fb(B_D, "管控中", monitoring="每周巡查一次", **FIVE)
    (result,) = feedback(deployment, "管控2.csv", [row], batch="2023-09")
    assert result.applied == 1
    assert deployment.query("SELECT status, monitoring, plan_no FROM hazards WHERE hazard_no = ?", [B_D]) == [
        ("管控中", "每周巡查一次", "YJYA-2023-017")
    ]


def test_the_ledger_as_of_a_past_date_is_rebuilt_from_events(deployment):
    round_one(deployment)
    feedback(deployment, "a.csv", [fb(A_DAMAGE, "整改中")])
    with store.connect(deployment.db) as con:
        saved = current_ledger(con)
    r2 = [building("JZ-A", visible_damage="是", survey_date="2024-05-01"),
          building("JZ-C", falling_hazard="是", survey_date="2024-05-01")]  # fmt: skip
    survey(deployment, "2024-1", r2)
    feedback(deployment, "b.csv", [fb(A_DAMAGE, "已整改待验收", report_date="2024-06-01")], batch="2024-06")
    with store.connect(deployment.db) as con:
        assert ledger_as_of(con, dt.date(2023, 12, 31)) == saved
        assert current_ledger(con) != saved
        assert ledger_as_of(con, dt.date(2023, 5, 11)) == []
        assert ledger_as_of(con, dt.date.today()) == current_ledger(con)


def test_a_crash_in_the_middle_of_an_update_leaves_the_ledger_as_before(deployment, monkeypatch):
    round_one(deployment)
    before = deployment.query("SELECT * FROM hazards ORDER BY hazard_no")
    events = deployment.query("SELECT count(*) FROM hazard_events")

    def crash(con, scope=""):
        raise RuntimeError("simulated crash after new hazards were written")

    monkeypatch.setattr(survey_update, "_clear_on_resurvey", crash)
    r2 = [building("JZ-A", survey_date="2024-05-01"), building("JZ-D", falling_hazard="是", survey_date="2024-05-01")]
    with pytest.raises(RuntimeError, match="simulated crash"):
        survey(deployment, "2024-1", r2)
    assert deployment.query("SELECT * FROM hazards ORDER BY hazard_no") == before
    assert deployment.query("SELECT count(*) FROM hazard_events") == events


def test_no_uploaded_value_reaches_sql_text(deployment):
    round_one(deployment)
    evil = "JZ-A-B09'; DROP TABLE hazards; --"
    (result,) = feedback(deployment, "evil.csv", [fb(evil, "整改中")])
    assert (result.rows[0].outcome, result.rows[0].hazard_no) == ("退回", evil)
    assert result.rows[0].reason_zh == f"隐患编号“{evil}”在台账中不存在"  # looked up as a value, verbatim
    assert deployment.query("SELECT count(*) FROM hazards") == [(3,)]
    assert deployment.query("SELECT count(*) FROM hazard_events WHERE source_file LIKE 'feedback/%'") == [(0,)]


def test_a_major_hazard_needs_five_in_place_before_work_and_an_assessment_before_acceptance(deployment):
    round_one(deployment)
    (bare,) = feedback(deployment, "开工.csv", [fb(B_D, "整改中")])
    assert "缺少：整改资金(万元)、计划完成时限、应急预案编号" in bare.rows[0].reason_zh
    assert statuses(deployment)[B_D] == "待整改"
    (ok,) = feedback(deployment, "开工2.csv", [fb(B_D, "整改中", **FIVE)], batch="2023-09")
    (done,) = feedback(deployment, "完成.csv", [fb(B_D, "已整改待验收", report_date="2023-09-20")], batch="2023-09")
    assert ok.applied == done.applied == 1
    accept = dict(acceptor="张", accept_date="2023-10-01", accept_result="通过", report_date="2023-10-01", unit="")
    (no_report,) = feedback(deployment, "验收.csv", [fb(B_D, "已销号", **accept)], unit="ZJJ", batch="2023-10")
    assert no_report.rows[0].reason_zh == "重大隐患验收销号须填写评估报告编号或评估专家"
    (accepted,) = feedback(deployment, "验收2.csv", [fb(B_D, "已销号", expert="王振华", **accept)], unit="ZJJ",
                           batch="2023-11")  # fmt: skip
    assert accepted.applied == 1
    assert deployment.query("SELECT status, expert, plan_finish FROM hazards WHERE hazard_no = ?", [B_D]) == [
        ("已销号", "王振华", dt.date(2024, 6, 30))
    ]


def test_an_extension_moves_the_deadline_only_once_the_supervisor_approves_it(deployment):
    from pipeline.ledger.exports import ledger_rows

    round_one(deployment)
    ask = fb(A_DAMAGE, "整改中", extend_to="2023-12-31", extend_reason="资金未到位")
    feedback(deployment, "申请.csv", [ask])
    pending = deployment.query("SELECT extend_to, extend_requested_to, extend_status FROM hazards WHERE hazard_no = ?",
                               [A_DAMAGE])  # fmt: skip
    assert pending == [(None, dt.date(2023, 12, 31), "待审批")]
    with store.connect(deployment.db) as con:  # deadline 2023-08-10 still counts while pending
        assert ledger_rows(con, dt.date(2023, 9, 1)).set_index("hazard_no").loc[A_DAMAGE, "overdue_days"] == 22
    decide = dict(unit="", report_date="2023-08-20", measures="同意延期")
    (own,) = feedback(deployment, "自批.csv", [fb(A_DAMAGE, "整改中", extension_decision="批准", **decide)],
                      batch="2023-08")  # fmt: skip
    assert (
        own.rows[0].reason_zh
        == "延期审批须由该隐患的行业监管部门ZJJ（利通区住房城乡建设和交通局）报送（按区行业监管分工）"
    )
    (refused,) = feedback(deployment, "驳回.csv", [fb(A_DAMAGE, "整改中", extension_decision="不批准", **decide)],
                          unit="ZJJ", batch="2023-08")  # fmt: skip
    assert refused.applied == 1
    assert deployment.query("SELECT extend_to, extend_status FROM hazards WHERE hazard_no = ?", [A_DAMAGE]) == [
        (None, "不予批准")
    ]
    feedback(deployment, "再申请.csv", [fb(A_DAMAGE, "整改中", extend_to="2023-11-30", extend_reason="施工期",
                                          report_date="2023-08-25")], batch="2023-08b")  # fmt: skip
    (ok,) = feedback(deployment, "批准.csv", [fb(A_DAMAGE, "整改中", extension_decision="批准", **{**decide,
                     "report_date": "2023-08-26"})], unit="ZJJ", batch="2023-08b")  # fmt: skip
    assert ok.applied == 1
    assert deployment.query("SELECT extend_to, extend_status FROM hazards WHERE hazard_no = ?", [A_DAMAGE]) == [
        (dt.date(2023, 11, 30), "已批准")
    ]
    with store.connect(deployment.db) as con:
        assert pd.isna(ledger_rows(con, dt.date(2023, 9, 1)).set_index("hazard_no").loc[A_DAMAGE, "overdue_days"])
    notes = deployment.query("SELECT note FROM hazard_events WHERE hazard_no = ? AND unit = 'ZJJ' "
                             "AND source_file LIKE 'feedback/%' ORDER BY seq", [A_DAMAGE])  # fmt: skip
    assert notes == [
        ("延期申请（至2023-12-31）不予批准，整改时限不变：同意延期",),
        ("延期申请（至2023-11-30）批准：同意延期",),
    ]


def test_rows_of_one_file_on_the_same_hazard_apply_in_file_order(deployment):
    """Rows are written in waves, at most one per hazard each: a hazard's second row in a file is checked
    against the state its first row left, and a refused row in between changes nothing."""
    round_one(deployment)
    rows = [fb(A_FALL, "整改中", report_date="2023-08-01"), fb(A_DAMAGE, "整改中", report_date="2023-08-01"),
            fb(A_FALL, "已销号", report_date="2023-08-02"),  # not the unit's to accept: refused
            fb(A_FALL, "已整改待验收", report_date="2023-08-03"),
            fb(A_FALL, "整改中", report_date="2023-08-04")]  # 已整改待验收 → 整改中 is the supervisor's  # fmt: skip
    (result,) = feedback(deployment, "waves.csv", rows)
    assert [(r.row_no, r.outcome, r.from_status, r.to_status) for r in result.rows] == [
        (2, "已执行", "待整改", "整改中"), (3, "已执行", "待整改", "整改中"), (4, "退回", None, None),
        (5, "已执行", "整改中", "已整改待验收"), (6, "退回", None, None)]  # fmt: skip
    assert statuses(deployment)[A_FALL] == "已整改待验收"
    events = deployment.query(
        "SELECT event_date, from_status, to_status, json_extract_string(state, '$.status') FROM hazard_events "
        "WHERE hazard_no = ? ORDER BY seq", [A_FALL])  # fmt: skip
    assert events[1:] == [(dt.date(2023, 8, 1), "待整改", "整改中", "整改中"),
                          (dt.date(2023, 8, 3), "整改中", "已整改待验收", "已整改待验收")]  # fmt: skip


def test_a_description_from_an_older_ledger_is_rewritten_when_the_rule_set_confirms_the_hazard(deployment):
    """Ledgers made before descriptions were Chinese sentences (JSON evidence) read them as sentences once a
    changed rule set confirms their hazards; no event, the hazard itself did not change."""
    round_one(deployment)
    with store.connect(deployment.db) as con:
        sentence = con.execute("SELECT description FROM hazards WHERE hazard_no = ?", [B_D]).fetchone()[0]
        con.execute("UPDATE hazards SET description = '{\"appraisal_grade\": \"D\"}', ruleset_version = 'older'")
        events = con.execute("SELECT count(*) FROM hazard_events").fetchone()[0]
        survey_update.update_from_findings(con)
        assert con.execute("SELECT description FROM hazards WHERE hazard_no = ?", [B_D]).fetchone()[0] == sentence
        assert con.execute("SELECT count(*) FROM hazard_events").fetchone()[0] == events
    assert (
        sentence
        == "金积镇中心小学教学楼：房屋安全鉴定为D级（整幢危房）。依据：房屋安全鉴定等级为“D”。地震时可能倒塌或局部破坏，造成人员伤亡"
    )


def test_a_supervisor_returning_a_hazard_the_resurvey_cleared_is_not_undone_by_the_next_update(deployment):
    """已整改待验收 by a resurvey, then 退回 by the supervisor (验收不通过): the next update of the whole ledger (a
    rule-set change does one) does not clear it again from the same survey; a newer survey still can."""
    round_one(deployment)
    survey(deployment, "2024-1", [building("JZ-A", visible_damage="是", survey_date="2024-05-01"),
                                  building("JZ-B", appraisal_grade="D", survey_date="2024-05-01")])  # fmt: skip
    assert statuses(deployment)[A_FALL] == "已整改待验收"
    feedback(deployment, "退回.csv", [fb(A_FALL, "整改中", unit="ZJJ", report_date="2024-06-01", acceptor="李验收",
                                         accept_date="2024-06-01", accept_result="不通过")], unit="ZJJ", batch="2024-06")  # fmt: skip
    assert statuses(deployment)[A_FALL] == "整改中"
    with store.connect(deployment.db) as con:
        assert survey_update.update_from_findings(con).resurvey_cleared == 0
    assert statuses(deployment)[A_FALL] == "整改中"
    survey(deployment, "2025-1", [building("JZ-A", visible_damage="是", survey_date="2025-04-01")])
    assert statuses(deployment)[A_FALL] == "已整改待验收"
