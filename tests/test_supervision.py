"""Supervision by sector (issue 26 §2): the department that accepts a hazard, decides its extensions and sees it
as supervisor is the one the district's table (reference/supervision.csv) gives for the asset's kind and use,
never the emergency bureau by default; an old ledger is re-routed with an event per hazard."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.ledger import supervision, survey_update
from pipeline.ledger.exports import export_ledger, summary
from pipeline.platform import store
from pipeline.portal import reads
from pipeline.portal.accounts import Account
from tests.test_ledger import FIVE, building, fb, feedback, statuses, survey

# one D-grade building (B01, 重大) per use and responsible unit
HOUSE, SCHOOL, BUREAU_SCHOOL, HOSPITAL, ELDERLY, SHOP = (
    "JZ-H-B01", "JZ-S-B01", "JZ-J-B01", "JZ-W-B01", "JZ-M-B01", "JZ-C-B01")  # fmt: skip
BUILDINGS = [
    building("JZ-H", appraisal_grade="D", use="住宅"),
    building("JZ-S", appraisal_grade="D", use="学校"),  # a village school the town answers for
    building("JZ-J", appraisal_grade="D", use="学校", responsible_unit="JYJ"),  # the education bureau's own
    building("JZ-W", appraisal_grade="D", use="医院"),
    building("JZ-M", appraisal_grade="D", use="养老机构"),
    building("JZ-C", appraisal_grade="D", use="商业"),
]
EXPECTED = {HOUSE: "ZJJ", SCHOOL: "JYJ", BUREAU_SCHOOL: "QZF", HOSPITAL: "WJJ", ELDERLY: "MZJ", SHOP: "ZJJ"}


def supervisors(deployment) -> dict[str, str]:
    return dict(deployment.query("SELECT hazard_no, sector_supervisor FROM hazards"))


def test_each_hazard_is_supervised_by_its_sector_department(deployment):
    survey(deployment, "2023-1", BUILDINGS)
    assert supervisors(deployment) == EXPECTED
    # a new hazard is routed as it is entered: no re-routing event
    assert deployment.query("SELECT count(*) FROM hazard_events WHERE note LIKE '监管部门%'") == [(0,)]


def _school_done(deployment) -> None:
    feedback(deployment, "开始.csv", [fb(SCHOOL, "整改中", report_date="2023-08-01", **FIVE)], batch="2023-08")
    feedback(deployment, "完成.csv", [fb(SCHOOL, "已整改待验收", report_date="2023-09-01")], batch="2023-09")


ACCEPT = {"acceptor": "李验收", "accept_date": "2023-10-10", "accept_result": "通过", "report_date": "2023-10-10",
          "assessment_no": "PG-2023-001"}  # fmt: skip


def test_the_education_bureau_accepts_a_school_and_the_emergency_bureau_cannot(deployment):
    survey(deployment, "2023-1", BUILDINGS)
    _school_done(deployment)
    (refused,) = feedback(deployment, "应急验收.csv", [fb(SCHOOL, "已销号", unit="YJJ", **ACCEPT)], unit="YJJ",
                          batch="2023-10")  # fmt: skip
    assert refused.refused == 1
    assert "利通区教育局" in refused.rows[0].reason_zh and "行业监管部门" in refused.rows[0].reason_zh
    assert statuses(deployment)[SCHOOL] == "已整改待验收"
    (accepted,) = feedback(deployment, "教育验收.csv", [fb(SCHOOL, "已销号", unit="JYJ", **ACCEPT)], unit="JYJ",
                           batch="2023-10")  # fmt: skip
    assert (accepted.applied, accepted.refused) == (1, 0)
    assert statuses(deployment)[SCHOOL] == "已销号"
    assert deployment.query("SELECT acceptor FROM hazards WHERE hazard_no = ?", [SCHOOL]) == [("李验收",)]


def test_a_bureaus_own_hazard_is_accepted_by_the_government_and_extensions_by_the_sector(deployment):
    survey(deployment, "2023-1", BUILDINGS)
    ask = fb(BUREAU_SCHOOL, "整改中", unit="JYJ", report_date="2023-08-01", extend_to="2025-12-31",
             extend_reason="资金待下达", **FIVE)  # fmt: skip
    feedback(deployment, "申请.csv", [ask], unit="JYJ", batch="2023-08")
    decision = fb(BUREAU_SCHOOL, "整改中", report_date="2023-08-20", extension_decision="批准")
    (by_bureau,) = feedback(deployment, "自批.csv", [decision | {"unit": "JYJ"}], unit="JYJ", batch="2023-09")
    assert by_bureau.refused == 1 and "利通区人民政府" in by_bureau.rows[0].reason_zh
    (by_government,) = feedback(deployment, "批复.csv", [decision | {"unit": "QZF"}], unit="QZF", batch="2023-09")
    assert by_government.applied == 1
    assert deployment.query("SELECT extend_to FROM hazards WHERE hazard_no = ?", [BUREAU_SCHOOL]) == [
        (dt.date(2025, 12, 31),)
    ]


def test_an_old_ledger_is_rerouted_once_with_an_event_naming_both_departments(deployment):
    survey(deployment, "2023-1", BUILDINGS)
    with store.connect(deployment.db) as con:  # as a ledger kept before the table: nothing routed
        con.execute("UPDATE hazards SET sector_supervisor = NULL")
        counts = survey_update.update_from_findings(con)
        again = survey_update.update_from_findings(con)
    # the bureau supervised every town's and department's hazard before: each goes to its sector, and JYJ's
    # own school from the bureau to the government
    assert supervisors(deployment) == EXPECTED
    assert counts.rerouted == 6 and again.rerouted == 0
    notes = dict(deployment.query("SELECT hazard_no, note FROM hazard_events WHERE note LIKE '监管部门%'"))
    assert set(notes) == set(EXPECTED)
    assert "利通区应急管理局（地震局） → 利通区住房城乡建设和交通局" in notes[HOUSE]
    assert notes[SCHOOL].startswith("监管部门按行业监管分工调整：利通区应急管理局（地震局） → 利通区教育局")
    assert "中小学校舍由利通区教育局监管" in notes[SCHOOL]
    assert "利通区民政局" in notes[ELDERLY]
    assert "利通区教育局自身的隐患，由利通区人民政府监管" in notes[BUREAU_SCHOOL]


def test_an_edited_table_reroutes_with_an_event(deployment, monkeypatch):
    survey(deployment, "2023-1", BUILDINGS)
    edited = tuple(
        supervision.Route(r.kind, r.sector, "ZJJ" if r.sector == "养老机构" else r.supervisor_code, r.object_zh,
                          r.basis_zh)
        for r in supervision.routes()
    )  # fmt: skip
    monkeypatch.setattr(supervision, "routes", lambda: edited)
    with store.connect(deployment.db) as con:
        counts = survey_update.update_from_findings(con)
    assert counts.rerouted == 1
    assert supervisors(deployment)[ELDERLY] == "ZJJ"
    (note,) = deployment.query("SELECT note FROM hazard_events WHERE note LIKE '监管部门%'")
    assert "利通区民政局 → 利通区住房城乡建设和交通局" in note[0]


def test_a_table_naming_an_unknown_department_is_refused(monkeypatch, tmp_path):
    bad = tmp_path / "supervision.csv"
    bad.write_text("kind,sector,supervisor_code,object_zh,basis_zh\nbuildings,*,XXX,房屋,无\n", encoding="utf-8")
    monkeypatch.setattr(supervision, "REFERENCE_DIR", tmp_path)
    supervision.routes.cache_clear()
    try:
        with pytest.raises(ValueError, match="XXX"):
            supervision.routes()
    finally:
        supervision.routes.cache_clear()


def _account(unit: str, role: str = "supervisor") -> Account:
    return Account(username=f"u-{unit}", display_name="张三", unit_code=unit, role=role)


def test_the_portal_shows_a_supervisor_the_hazards_of_its_sector(deployment):
    survey(deployment, "2023-1", BUILDINGS)
    with store.connect(deployment.db) as con:
        reads.register_reference(con)
        con.execute(f"CREATE TEMP TABLE l AS WITH l AS ({reads.ledger_sql()}) SELECT * FROM l",
                    {"as_of": dt.date(2023, 6, 1)})  # fmt: skip
        seen = {u: {r["hazard_no"] for r in reads.hazards(con, "l", _account(u), reads.HazardFilter())[0]}
                for u in ("JYJ", "YJJ", "MZJ", "QZF")}  # fmt: skip
        school = dict(zip(*[[d[0] for d in con.execute("SELECT * FROM l WHERE hazard_no = ?", [SCHOOL]).description],
                            con.execute("SELECT * FROM l WHERE hazard_no = ?", [SCHOOL]).fetchall()[0]], strict=True))  # fmt: skip
        jyj_units = reads.visible_units(_account("JYJ"), con, "l")
    assert seen["JYJ"] == {SCHOOL, BUREAU_SCHOOL}  # the town's school it supervises, its own school
    assert seen["YJJ"] == set()  # no hazardous-chemical site here: the bureau supervises none of these
    assert seen["MZJ"] == {ELDERLY}
    assert seen["QZF"] == set(EXPECTED)  # the government, which issues 挂牌督办, reads every hazard
    assert jyj_units == ["JYJ", "T100"]
    assert reads.may_decide(_account("JYJ"), school) and not reads.may_decide(_account("YJJ"), school)
    assert reads.may_see(_account("JYJ"), school) and not reads.may_see(_account("WJJ"), school)
    assert not reads.may_decide(_account("JYJ", role="clerk"), school)


def test_exports_name_the_supervising_department_and_count_per_department(deployment, tmp_path):
    survey(deployment, "2023-1", BUILDINGS)
    with store.connect(deployment.db) as con:
        by = summary(con, "supervisor", dt.date(2023, 6, 1), dt.date(2023, 5, 1)).set_index("监管部门代码")
        result = export_ledger(con, dt.date(2023, 6, 1), tmp_path / "ledger")
    assert by["发现隐患"].to_dict() == {"JYJ": 1, "MZJ": 1, "QZF": 1, "WJJ": 1, "ZJJ": 2}
    assert by.loc["MZJ", "名称"] == "利通区民政局"
    text = (tmp_path / "ledger" / "监管部门汇总.csv").read_text(encoding="utf-8-sig")
    assert "利通区卫生健康局" in text
    ledger_csv = result.files[1].read_text(encoding="utf-8-sig")
    assert "监管部门" in ledger_csv.splitlines()[0] and "利通区民政局" in ledger_csv
