"""The ledger's own judgements (issue 26): a hazard's grade is its rule's, not its asset's colour; the two axes
are worded apart; acceptance keeps the unit's 五落实; a resurvey clears a hazard only on the good value."""

from __future__ import annotations

import datetime as dt

from pipeline.ledger import survey_update
from pipeline.ledger.exports import ledger_rows, summary
from pipeline.platform import store
from tests.test_ledger import building, survey

# A 1985 brick house, appraised C, with visible damage: two 一般 rules (B02, B09) that make it red (≥ 60 points)
RED_HOUSE = {"structure_type": "砖混", "year_built": "1985", "seismic_design": "否", "appraisal_grade": "C",
             "visible_damage": "是"}  # fmt: skip
C_GRADE, DAMAGE = "JZ-R-B02", "JZ-R-B09"


def test_a_red_asset_does_not_make_its_hazards_major(deployment):
    survey(deployment, "2023-1", [building("JZ-R", **RED_HOUSE)])
    rows = dict(deployment.query("SELECT hazard_no, (hazard_grade, risk_level) FROM hazards"))
    assert rows[C_GRADE] == ("一般", "red") and rows[DAMAGE] == ("一般", "red")
    assert deployment.query("SELECT count(*) FROM hazards WHERE supervise_no IS NOT NULL") == [(0,)]


def test_a_hazard_raised_by_colour_comes_back_to_its_rules_grade_with_an_event(deployment):
    """A ledger kept before issue 26 raised 一般 hazards of a red asset to 重大: the next update lowers them to
    their rule's grade and says why; one raised by an earthquake-damage report stays 重大."""
    survey(deployment, "2023-1", [building("JZ-R", **RED_HOUSE)])
    with store.connect(deployment.db) as con:  # as the old ledger left them
        con.execute("UPDATE hazards SET hazard_grade = '重大'")
        con.execute(
            "INSERT INTO hazard_events (seq, hazard_no, event_date, note) "
            "VALUES (nextval('hazard_event_seq'), ?, DATE '2023-06-01', '地震事件E1后现场排查为中等破坏，隐患由一般升为重大')",
            [DAMAGE],
        )
        counts = survey_update.update_from_findings(con)
    assert counts.regraded == 1
    grades = dict(deployment.query("SELECT hazard_no, hazard_grade FROM hazards"))
    assert grades == {C_GRADE: "一般", DAMAGE: "重大"}
    (note,) = deployment.query(
        "SELECT note FROM hazard_events WHERE hazard_no = ? ORDER BY seq DESC LIMIT 1", [C_GRADE]
    )[0]
    assert note.startswith("隐患等级按规则B02调整：重大 → 一般") and "资产风险等级为红色" in note
    with store.connect(deployment.db) as con:  # once is enough
        assert survey_update.update_from_findings(con).regraded == 0


def test_grade_and_colour_are_worded_apart_in_the_ledger_and_its_summary(deployment):
    survey(deployment, "2023-1", [building("JZ-R", **RED_HOUSE), building("JZ-D", appraisal_grade="D")])
    with store.connect(deployment.db) as con:
        df = ledger_rows(con, dt.date(2023, 9, 1))
        town = summary(con, "town", dt.date(2023, 9, 1), dt.date(2023, 5, 1)).iloc[0]
    shown = dict(zip(df["hazard_no"], zip(df["hazard_grade"], df["risk_level_zh"], strict=True), strict=True))
    assert shown[C_GRADE] == ("一般", "红色（重大风险）")
    assert shown["JZ-D-B01"] == ("重大", "红色（重大风险）")
    assert (town["未销号重大隐患"], town["未销号一般隐患"], town["红色风险对象隐患"]) == (1, 2, 3)


def test_the_briefing_headline_names_major_hazards_and_red_objects_apart():
    from pipeline.publish.briefing import Headline

    head = Headline(found=10, closed=2, overdue=1, under_control=0, red_assets=4, open_major=3)
    labels = {label: value for label, value, _ in head.tiles()}
    assert labels["未销号重大隐患"] == "3" and labels["红色风险对象"] == "4"
    assert not any(label.startswith("重大风险") for label in labels)


def test_acceptance_writes_its_own_record_and_keeps_the_units_five_in_place(deployment):
    from tests.test_ledger import B_D, FIVE, fb, feedback

    survey(deployment, "2023-1", [building("JZ-B", appraisal_grade="D")])  # B01: a 重大 hazard
    feedback(deployment, "f.csv", [fb(B_D, "整改中", measures="委托加固设计并施工", person="马建国", **FIVE),
                                   fb(B_D, "已整改待验收", report_date="2023-09-01", measures="加固完成")])  # fmt: skip
    accept = fb(B_D, "已销号", unit="ZJJ", report_date="2023-09-20", measures="现场验收合格，同意销号",
                person="李验收", acceptor="李验收", accept_date="2023-09-20", accept_result="通过",
                assessment_no="PG-2023-09", expert="王工")  # fmt: skip
    feedback(deployment, "accept.csv", [accept], unit="ZJJ", batch="2023-09")
    five = deployment.query("SELECT status, measures, person FROM hazards WHERE hazard_no = ?", [B_D])
    assert five == [("已销号", "加固完成", "马建国")]  # not the acceptor's words and name
    row = deployment.query(
        "SELECT status, measures, person, funds_wan, plan_no, plan_finish, acceptor, accept_date, accept_result, "
        "accept_opinion, assessment_no, expert FROM hazards WHERE hazard_no = ?",
        [B_D],
    )[0]
    assert row == ("已销号", "加固完成", "马建国", 12.0, "YJYA-2023-017", dt.date(2024, 6, 30), "李验收",
                   dt.date(2023, 9, 20), "通过", "现场验收合格，同意销号", "PG-2023-09", "王工")  # fmt: skip
    with store.connect(deployment.db) as con:
        shown = ledger_rows(con, dt.date(2023, 9, 30)).set_index("hazard_no").loc[B_D]
    assert (shown["measures"], shown["accept_opinion"]) == ("加固完成", "现场验收合格，同意销号")


def test_a_resurvey_that_leaves_the_cause_blank_or_unknown_keeps_the_hazard_open(deployment, tmp_path):
    """B11 (falling objects) fires on 易坠落物 = 是. A resurvey that says 否 clears it (to acceptance); one that
    leaves it blank or writes 不详 is no evidence of rectification: the hazard stays 待整改, with an event and
    a line on that survey file's receipt naming the column."""
    import openpyxl

    from pipeline.intake.receipts import write_receipts

    first = [building(b, falling_hazard="是") for b in ("JZ-A", "JZ-B", "JZ-C")]
    survey(deployment, "2023-1", first)
    again = [building("JZ-A", falling_hazard="不详", survey_date="2024-05-01"),
             building("JZ-B", falling_hazard="", survey_date="2024-05-01"),
             building("JZ-C", falling_hazard="否", survey_date="2024-05-01")]  # fmt: skip
    counts = survey(deployment, "2024-1", again)
    assert dict(deployment.query("SELECT hazard_no, status FROM hazards")) == {
        "JZ-A-B11": "待整改", "JZ-B-B11": "待整改", "JZ-C-B11": "已整改待验收"}  # fmt: skip
    assert (counts.resurvey_cleared, counts.kept_open) == (1, 2)
    (note,) = deployment.query("SELECT note FROM hazard_events WHERE hazard_no = 'JZ-A-B11' ORDER BY seq DESC")[0]
    assert "“女儿墙、出屋面烟囱等易坠落物”为空或不详" in note and "隐患保持待整改" in note
    with store.connect(deployment.db) as con:  # the same survey taken again changes nothing
        again_counts = survey_update.update_from_findings(con)
        assert (again_counts.resurvey_cleared, again_counts.kept_open) == (0, 0)
        assert counts.kept_open_files == {"buildings": {"buildings/ZJJ/2024-1/2024-1.csv"}}
        (written,) = write_receipts(con, tmp_path, "buildings", only_files=counts.kept_open_files["buildings"])
    sheet = openpyxl.load_workbook(written["path"])["回执"]
    kept = [v for k, v in sheet.iter_rows(values_only=True) if k == "复查保留的隐患"]
    assert [v.split("：")[0] for v in kept] == ["JZ-A-B11", "JZ-B-B11"]
