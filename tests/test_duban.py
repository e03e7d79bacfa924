"""挂牌督办 and 认定为重大 are recorded decisions (issue 26 §3 and §1): no 督办 without the government's notice; an
older ledger's automatic records are withdrawn with an event; the issuer confirms the 核销 after acceptance; the
supervising department may decide a hazard is 重大, and a survey update keeps it; the ledger proposes candidates
(督办建议清单, rules in reference/duban.yaml) in its exports and on the portal."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from contextlib import closing

import openpyxl
import pytest

from pipeline.ledger import survey_update
from pipeline.ledger.exports import export_ledger, ledger_rows, proposals
from pipeline.ledger.model import DECISION_RAISE_NOTE
from pipeline.platform import store
from tests.test_ledger import A_DAMAGE, B_D, FIVE, building, fb, feedback, round_one, survey, update_buildings

NOTICE = {"decision": "挂牌督办", "notice_no": "吴利政安督〔2023〕3号", "notice_deadline": "2023-12-31",
          "measures": "11月底前完成加固，期间停止使用并设置警示", "person": "张督办"}  # fmt: skip


def issue(deployment, name: str = "督办.csv", unit: str = "QZF", hazard_no: str = B_D, status: str = "待整改",
          report_date: str = "2023-08-15", **kw):  # fmt: skip
    """One 挂牌督办 row from `unit`'s folder; returns the row's result."""
    row = fb(hazard_no, status, unit="", report_date=report_date, **{**NOTICE, **kw})
    (result,) = feedback(deployment, name, [row], unit=unit, batch=report_date)
    return result.rows[0]


def hazard(deployment, no: str = B_D) -> dict:
    cols = ("status", "hazard_grade", "supervise_no", "supervise_unit", "supervise_date", "supervise_deadline",
            "supervise_requirement", "supervise_status", "supervise_closed_on")  # fmt: skip
    (row,) = deployment.query(f"SELECT {', '.join(cols)} FROM hazards WHERE hazard_no = ?", [no])
    return dict(zip(cols, row, strict=True))


def last_note(deployment, no: str) -> str:
    return deployment.query("SELECT note FROM hazard_events WHERE hazard_no = ? ORDER BY seq DESC LIMIT 1", [no])[0][0]


def test_a_survey_update_puts_no_major_hazard_under_supervision(deployment):
    round_one(deployment)
    h = hazard(deployment)
    assert h["hazard_grade"] == "重大" and h["status"] == "待整改"
    assert (h["supervise_no"], h["supervise_unit"], h["supervise_status"]) == (None, None, None)
    assert deployment.query("SELECT count(*) FROM hazard_events WHERE note LIKE '%督办%'") == [(0,)]


def test_an_automatic_record_of_an_older_ledger_is_withdrawn_with_an_event(deployment):
    round_one(deployment)
    with store.connect(deployment.db) as con:  # as the ledger before issue 26 left it
        con.execute("UPDATE hazards SET supervise_no = '督办-' || hazard_no, supervise_unit = 'YJJ', "
                    "supervise_date = DATE '2023-05-12' WHERE hazard_grade = '重大'")  # fmt: skip
    counts = update_buildings(deployment)
    assert counts.supervision_withdrawn == 1
    h = hazard(deployment)
    assert (h["supervise_no"], h["supervise_unit"], h["supervise_date"], h["status"]) == (None, None, None, "待整改")
    note = last_note(deployment, B_D)
    assert note.startswith(f"{survey_update.AUTOMATIC_SUPERVISION_WITHDRAWN}（督办-{B_D}，原记督办单位YJJ）")
    assert "不是区人民政府或其安委会办公室下达的督办决定" in note
    assert update_buildings(deployment).supervision_withdrawn == 0  # once


def test_the_governments_notice_is_recorded_and_the_status_stays(deployment):
    round_one(deployment)
    row = issue(deployment)
    assert (row.outcome, row.from_status, row.to_status) == ("已执行", "待整改", "待整改")
    assert hazard(deployment) == {
        "status": "待整改", "hazard_grade": "重大", "supervise_no": NOTICE["notice_no"], "supervise_unit": "QZF",
        "supervise_date": dt.date(2023, 8, 15), "supervise_deadline": dt.date(2023, 12, 31),
        "supervise_requirement": NOTICE["measures"], "supervise_status": "督办中", "supervise_closed_on": None,
    }  # fmt: skip
    assert last_note(deployment, B_D) == (f"挂牌督办：QZF（利通区人民政府）下达督办通知书{NOTICE['notice_no']}，"
                                          f"督办期限2023-12-31，督办要求：{NOTICE['measures']}")  # fmt: skip
    with store.connect(deployment.db) as con:
        shown = ledger_rows(con, dt.date(2023, 9, 1)).set_index("hazard_no").loc[B_D]
    assert (shown["supervise_no"], shown["supervise_status"], shown["supervise_requirement"]) == (
        NOTICE["notice_no"], "督办中", NOTICE["measures"])  # fmt: skip
    again = issue(deployment, "再督办.csv", report_date="2023-08-20", notice_no="另一号")
    assert again.outcome == "退回" and again.reason_zh.startswith(f"该隐患已挂牌督办（督办通知书{NOTICE['notice_no']}")


def test_a_towns_or_a_departments_notice_is_refused(deployment):
    round_one(deployment)
    town = issue(deployment, "镇督办.csv", unit="T100")
    assert town.outcome == "退回"
    assert town.reason_zh == ("挂牌督办只能由区人民政府或其安委会办公室（QZF（利通区人民政府））下达，"
                              "T100（金积镇人民政府）无权挂牌督办")  # fmt: skip
    bureau = issue(deployment, "局督办.csv", unit="YJJ")
    assert bureau.outcome == "退回" and "YJJ（利通区应急管理局（地震局））无权挂牌督办" in bureau.reason_zh
    minor = issue(deployment, "一般.csv", hazard_no=A_DAMAGE)
    assert minor.outcome == "退回" and minor.reason_zh == "挂牌督办只适用于重大隐患，该隐患为一般隐患"
    no_number = issue(deployment, "无编号.csv", notice_no="")
    assert no_number.outcome == "退回" and "挂牌督办须填写督办通知书编号和督办期限" in no_number.reason_zh
    assert hazard(deployment)["supervise_no"] is None


def test_the_issuer_closes_its_notice_only_after_the_hazard_is_accepted(deployment):
    round_one(deployment)
    issue(deployment)
    close = {"decision": "督办核销", "measures": "经复查隐患已消除，同意核销", "person": "张督办"}
    early = issue(deployment, "早核销.csv", report_date="2023-08-20", notice_no="", notice_deadline="", **close)
    assert early.outcome == "退回"
    assert (
        early.reason_zh == "该隐患尚未验收销号（当前为“待整改”），督办核销须在监管单位验收销号之后；在此之前仍为督办中"
    )
    feedback(deployment, "f.csv", [fb(B_D, "整改中", report_date="2023-09-01", **FIVE),
                                   fb(B_D, "已整改待验收", report_date="2023-10-01", measures="加固完成")],
             batch="2023-10")  # fmt: skip
    feedback(deployment, "验收.csv", [fb(B_D, "已销号", unit="ZJJ", report_date="2023-10-10", acceptor="李验收",
                                         accept_date="2023-10-10", accept_result="通过", assessment_no="PG-1")],
             unit="ZJJ", batch="2023-10b")  # fmt: skip
    with store.connect(deployment.db) as con:  # accepted, not yet closed by its issuer
        assert ledger_rows(con, dt.date(2023, 10, 11)).set_index("hazard_no").loc[B_D, "supervise_status"] == "待核销"
    other = issue(deployment, "他核销.csv", unit="YJJ", status="已销号", report_date="2023-10-12", notice_no="",
                  notice_deadline="", **close)  # fmt: skip
    assert other.outcome == "退回"
    assert other.reason_zh == f"督办核销须由下达督办通知书{NOTICE['notice_no']}的QZF（利通区人民政府）报送"
    done = issue(deployment, "核销.csv", status="已销号", report_date="2023-10-15", notice_deadline="", **close)
    assert done.outcome == "已执行"
    h = hazard(deployment)
    assert (h["status"], h["supervise_status"], h["supervise_closed_on"]) == ("已销号", "已核销", dt.date(2023, 10, 15))
    assert h["supervise_no"] == NOTICE["notice_no"]  # the notice stays on the record
    assert last_note(deployment, B_D).startswith(f"督办核销：QZF（利通区人民政府）确认督办通知书{NOTICE['notice_no']}")


def test_the_supervising_department_decides_a_hazard_is_major_and_a_survey_update_keeps_it(deployment):
    round_one(deployment)
    reason = "该房屋为村幼儿园临时教室，人员密集"
    (result,) = feedback(deployment, "认定.csv", [fb(A_DAMAGE, "待整改", unit="", decision="认定为重大",
                                                     measures=reason, person="王科长")], unit="ZJJ")  # fmt: skip
    assert result.rows[0].outcome == "已执行"
    assert hazard(deployment, A_DAMAGE)["hazard_grade"] == "重大"
    note = last_note(deployment, A_DAMAGE)
    assert note.startswith(DECISION_RAISE_NOTE) and "ZJJ（利通区住房城乡建设和交通局）认定" in note and reason in note
    assert update_buildings(deployment).regraded == 0  # the rule says 一般; the recorded decision stands
    assert hazard(deployment, A_DAMAGE)["hazard_grade"] == "重大"
    (work,) = feedback(deployment, "整改.csv", [fb(A_DAMAGE, "整改中", report_date="2023-08-20")], batch="2023-08b")
    assert work.rows[0].outcome == "退回" and "五落实" in work.rows[0].reason_zh  # now a 重大 hazard like any


@pytest.mark.parametrize("unit", ["T100", "YJJ"])
def test_another_unit_cannot_decide_a_hazard_is_major(deployment, unit):
    round_one(deployment)
    (result,) = feedback(deployment, "认定.csv", [fb(A_DAMAGE, "待整改", unit="", decision="认定为重大",
                                                     measures="人员密集")], unit=unit)  # fmt: skip
    row = result.rows[0]
    assert row.outcome == "退回"
    assert row.reason_zh.startswith(
        "认定为重大须由该隐患的监管部门ZJJ（利通区住房城乡建设和交通局）或QZF（利通区人民政府）报送"
    )
    assert hazard(deployment, A_DAMAGE)["hazard_grade"] == "一般"


def test_the_proposal_list_names_overdue_major_hazards_and_its_rules(deployment, tmp_path):
    # B_D: 重大, found 2023-05-12, its control (停止使用、疏散) due 05-15, its deadline 2024-05-11; the 一般 ones
    # are overdue sooner
    round_one(deployment)
    with store.connect(deployment.db) as con:
        assert proposals(con, dt.date(2023, 5, 14)).empty  # two days after it was found
        june = proposals(con, dt.date(2023, 6, 1))
        feedback(deployment, "管控.csv", [fb(B_D, "管控措施已落实", report_date="2023-05-14",
                                             measures="已停止使用，人员已疏散")], batch="2023-05")  # fmt: skip
    with store.connect(deployment.db) as con:
        controlled = proposals(con, dt.date(2023, 6, 1))  # its control in place: not overdue, under 30 days
        july = proposals(con, dt.date(2023, 7, 1))
        late = proposals(con, dt.date(2024, 6, 1))
    assert list(june["hazard_no"]) == [B_D] and june["proposed_by"][0] == "D01 重大隐患逾期未整改或逾期未落实管控措施"
    assert controlled.empty
    assert list(july["hazard_no"]) == [B_D] and july["proposed_by"][0] == "D02 重大隐患发现30日后仍未落实“五落实”"
    assert list(late["hazard_no"]) == [B_D]
    assert (
        late["proposed_by"][0] == "D01 重大隐患逾期未整改或逾期未落实管控措施；D02 重大隐患发现30日后仍未落实“五落实”"
    )
    with store.connect(deployment.db) as con:
        export = export_ledger(con, dt.date(2024, 6, 1), tmp_path / "ledger")
    assert export.proposed == 1 and [p.name for p in export.proposals] == ["督办建议清单.csv", "督办建议清单.xlsx"]
    with open(tmp_path / "ledger" / "督办建议清单.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["隐患编号"], r["隐患等级"], r["逾期天数"]) for r in rows] == [(B_D, "重大", "21")]
    assert rows[0]["建议督办规则"].startswith("D01 重大隐患逾期未整改") and A_DAMAGE not in str(rows)
    sheet = openpyxl.load_workbook(export.proposals[1])["督办建议清单"]
    assert [c.value for c in next(sheet.iter_rows(min_row=2, max_row=2))][0] == B_D
    issue(deployment, report_date="2024-06-01", notice_deadline="2024-09-30")  # under 督办: no longer proposed
    with store.connect(deployment.db) as con:
        assert proposals(con, dt.date(2024, 6, 2)).empty
        header = ledger_rows(con, dt.date(2024, 6, 2))
    assert {"supervise_deadline", "supervise_requirement", "supervise_status"} <= set(header.columns)


def test_the_government_sees_the_proposals_page_and_a_town_does_not(deployment, tmp_path):
    from pipeline.portal import accounts
    from pipeline.registries import uploads as upload_audit
    from tests.portal_support import csrf_of, login, make_site, serving, text_of

    survey(deployment, "2023-1", [building("JZ-A", falling_hazard="是"), building("JZ-B", appraisal_grade="D"),
                                  building("JZ-C", appraisal_grade="D")])  # fmt: skip
    issue(deployment, hazard_no=B_D)  # JZ-C-B01, as 重大 and long overdue, is proposed
    published = deployment.output / "published" / "litong.duckdb"
    published.parent.mkdir(parents=True)
    shutil.copyfile(deployment.db, published)
    site = make_site(deployment.root)
    with closing(upload_audit.connect(site.settings.portal_db)) as con:
        accounts.create_account(con, "gov", "区政府督办", "QZF", "supervisor", "Gov-pass-2025x", "test")
    with serving(site):
        gov = login(site, "gov", "Gov-pass-2025x")
        page = gov.get(site.url + "/duban")
        assert page.status_code == 200 and "督办建议清单" in page.text
        shown = text_of(page.text)
        assert "JZ-C-B01" in shown and "D01 重大隐患逾期未整改" in shown
        assert NOTICE["notice_no"] in shown  # the notice issued is listed, not proposed again
        hazard_page = text_of(gov.get(site.url + f"/hazards/{B_D}").text)
        assert f"督办通知书{NOTICE['notice_no']}" in hazard_page and NOTICE["measures"] in hazard_page
        page = gov.get(site.url + "/hazards/JZ-C-B01").text
        assert 'id="duban-form"' in page  # an open 重大 hazard not under 督办: the government may issue a notice
        notice = {"csrf": csrf_of(page), "action": "挂牌督办", "notice_no": "利政安督〔2023〕9号",
                  "notice_deadline": f"{dt.date.today() + dt.timedelta(days=90)}", "requirement": "限期加固"}  # fmt: skip
        preview = gov.post(site.url + "/hazards/JZ-C-B01/duban", data=notice)
        assert preview.status_code == 200 and "1 条将更新，0 条将退回" in text_of(preview.text)
        sup = login(site, "sup")  # YJJ supervises T100: it may decide that T100's 一般 hazard is 重大, with a reason
        form = {"csrf": csrf_of(sup.get(site.url + "/hazards/JZ-A-B11").text), "decision": "major"}
        assert sup.post(site.url + "/hazards/JZ-A-B11/decision", data=form).status_code == 403  # no reason given
        major = sup.post(site.url + "/hazards/JZ-A-B11/decision", data={**form, "note": "人员密集场所"})
        assert major.status_code == 200 and "1 条将更新，0 条将退回" in text_of(major.text)
        assert login(site, "analyst").get(site.url + "/duban").status_code == 200
        town = login(site, "clerk100")
        assert town.get(site.url + "/duban").status_code == 403
        assert 'href="/duban"' not in town.get(site.url + "/").text
        town_page = town.get(site.url + "/hazards/JZ-C-B01").text
        assert 'id="duban-form"' not in town_page
        refused = town.post(site.url + "/hazards/JZ-C-B01/duban", data={**notice, "csrf": csrf_of(town_page)})
        assert refused.status_code == 403
