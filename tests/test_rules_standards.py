"""Issue 26 §6: the rules read against their standards. Each test runs the real rule set (and the real views and
reference tables) on an in-memory DuckDB through the test helpers."""

from __future__ import annotations

import pytest

from pipeline.scoring.ruleset import _insert, fires_on, parse_rules
from tests.conftest import rules_scratch

RULESET = parse_rules()


@pytest.fixture(scope="module")
def con():
    with rules_scratch() as c:
        yield c


def _rule(rule_id: str):
    return next(r for r in RULESET.rules if r.id == rule_id)


def _fires(con, rule_id: str, record: dict) -> bool:
    r = _rule(rule_id)
    return fires_on(con, RULESET.kinds[r.kind], r, record)


def _inventory_row(con, chemical: str, **fields) -> dict:
    """One inventory row (10 t unless given) as v_hazchem_inventory resolves it."""
    con.execute("DELETE FROM stg_hazchem_sites")
    con.execute("DELETE FROM stg_hazchem_inventory")
    _insert(con, "stg_hazchem_sites", {"site_id": "S1", "survey_round": "2023-1", "survey_date": "2023-06-01",
                                       "population_500m": 150})  # fmt: skip
    _insert(con, "stg_hazchem_inventory", {"site_id": "S1", "survey_round": "2023-1", "unit_name": "罐区",
                                           "unit_kind": "储存单元", "row_no": 2, "chemical": chemical,
                                           "max_quantity_t": 10, **fields})  # fmt: skip
    try:
        cur = con.execute("SELECT * FROM v_hazchem_inventory")
        return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    finally:
        con.execute("DELETE FROM stg_hazchem_sites")
        con.execute("DELETE FROM stg_hazchem_inventory")


# --- GB 18218-2018 table fixes --------------------------------------------------------------------


def test_acrolein_takes_beta_1_as_a_category_2_flammable_liquid(con):
    row = _inventory_row(con, "丙烯醛", cas="107-02-8")
    assert (row["gb18218_name"], row["critical_t"], row["beta"]) == ("丙烯醛", 20, 1)


def test_formaldehyde_entry_only_above_90_percent(con):
    strong = _inventory_row(con, "甲醛（含量>90%）", cas="50-00-0")
    assert (strong["gb18218_name"], strong["critical_t"]) == ("甲醛（含量>90%）", 5)
    # formalin and a bare 甲醛 go by the category typed (表2), not by 表1's Q 5, whatever CAS they carry
    for name in ("甲醛", "甲醛(37%)", "福尔马林", "甲醛溶液"):
        row = _inventory_row(con, name, cas="50-00-0", category="W5.4")
        assert row["gb18218_name"] is None, name
        assert (row["critical_t"], row["critical_source"]) == (5000, "表2(填报类别)"), name
    assert _inventory_row(con, "甲醛", cas="50-00-0")["critical_t"] is None  # no category: no Q (H16)


@pytest.mark.parametrize("fields", [{}, {"cas": "10544-72-6"}, {"cas": "10102-44-0"}])
def test_dinitrogen_tetroxide_is_nitrogen_dioxide(con, fields):
    row = _inventory_row(con, "四氧化二氮", **fields)
    assert (row["gb18218_name"], row["critical_t"], row["beta"]) == ("二氧化氮", 1, 10)


# --- B08: design unknown goes to the 待鉴定清单; 乙类 per GB 50223-2008 ---------------------------------


@pytest.mark.parametrize("design", ["不详", None])
def test_a_school_of_unknown_design_is_on_the_worklist_not_a_major_hazard(con, design):
    school = {"use": "学校", "structure_type": "框架", "year_built": 1995, "seismic_design": design}
    assert not _fires(con, "B08", school)
    assert _fires(con, "B21", school) and not _rule("B21").hazard


def test_an_elderly_home_is_not_class_b(con):
    home = {"use": "养老机构", "structure_type": "砖混", "seismic_design": "否", "town_code": "640302100"}
    assert not _fires(con, "B08", home)  # not 乙类: no 重大 hazard on that alone
    assert _fires(con, "B21", home)  # still a key object: weighs and goes to the worklist
    # GB 50011 Table 7.1.2 note 3 (one storey and 3 m less) is for 乙类 only: 6 storeys, 18 m at 0.20 g is within
    assert not _fires(con, "B05", {**home, "floors_above": 6, "height_m": 18})
    assert _fires(con, "B05", {**home, "use": "医院", "floors_above": 6, "height_m": 18})


# --- R14: a missing 防落梁/挡块 alone is no 重大 hazard on a class 1–3 lifeline bridge ---------------------


def test_a_lifeline_bridge_missing_anti_fall_devices_alone_is_not_major(con):
    bridge = {"lifeline_route": True, "condition_class": "2", "anti_fall_measures": False, "year_built": 2010,
              "continuity": "简支", "span_count": 3}  # fmt: skip
    assert not _fires(con, "R14", bridge)
    assert _fires(con, "R05", bridge) and _rule("R05").hazard_grade == "一般"  # the span can unseat: 一般
    continuous = {**bridge, "continuity": "连续"}
    assert not _fires(con, "R14", continuous) and not _fires(con, "R05", continuous)  # cannot unseat: weighs (R15)
    assert _fires(con, "R15", continuous) and not _rule("R15").hazard
    assert _fires(con, "R14", {**bridge, "condition_class": "4"})  # class 4 stays 重大 on a lifeline route


# --- P01: an active-fault crossing is a risk point under control; the hazard is P03/P04 -----------------


def test_a_designed_fault_crossing_is_a_risk_point_not_a_hazard(con):
    designed = {"fault_crossing": True, "fault_seismic_design": "是", "medium": "天然气", "hca_grade": "II"}
    fired = [r for r in RULESET.for_kind("pipelines") if _fires(con, r.id, designed)]
    assert [r.id for r in fired if r.hazard] == []
    assert "P01" in [r.id for r in fired] and not _rule("P01").hazard  # it still weighs
    for design, rule in (("否", "P03"), ("不详", "P04"), (None, "P04")):
        assert _fires(con, rule, {**designed, "fault_seismic_design": design}) and _rule(rule).hazard


# --- B05 / B04 / B10 ------------------------------------------------------------------------------------
TOWN = "640302100"  # 0.20 g: brick masonry 6 storeys, 18 m


def test_b05_allows_the_table_note_metre_on_the_height(con):
    house = {"structure_type": "砖混", "floors_above": 6, "town_code": TOWN}
    assert not _fires(con, "B05", {**house, "height_m": 18.5})  # under 1 m over: the note's allowance
    assert _fires(con, "B05", {**house, "height_m": 19})


def test_b04_cites_the_rural_single_storey_standards():
    ref = _rule("B04").source_ref
    assert "GB 50023-2009" in ref and "JGJ 161-2008" in ref and "农村住房安全性鉴定技术导则" in ref


def test_b10_judges_the_whole_building_tilt_against_about_one_percent(con):
    assert not _fires(con, "B10", {"structure_type": "砖混", "tilt_permille": 8.5})  # 7‰ is a member's limit
    assert _fires(con, "B10", {"structure_type": "砖混", "tilt_permille": 12})
    assert _fires(con, "B10", {"structure_type": "框架", "tilt_permille": 12})  # a whole building of any structure


# --- P08 / P11 ------------------------------------------------------------------------------------------


def test_metal_loss_of_80_percent_is_the_immediate_repair_tier(con):
    assert _fires(con, "P14", {"max_metal_loss_pct": 85})
    assert not _fires(con, "P08", {"max_metal_loss_pct": 85})  # one finding per defect
    p14 = _rule("P14")
    assert (p14.hazard, p14.hazard_grade, p14.rectification) == (True, "重大", "immediate")
    assert _fires(con, "P08", {"max_metal_loss_pct": 60}) and not _fires(con, "P14", {"max_metal_loss_pct": 60})


def test_a_line_uninspected_3_years_after_commissioning_is_due(con):
    assert _fires(con, "P11", {"year_built": 2019, "survey_date": "2023-06-01"})  # 4 years, never inspected
    assert not _fires(con, "P11", {"year_built": 2020, "survey_date": "2023-06-01"})
    assert not _fires(con, "P11", {"year_built": 2015, "last_ili": "2018-05-01", "survey_date": "2023-06-01"})


# --- H13 by sector; H10/H11 one hazard per missing shut-off ------------------------------------------------
AMMONIA = [{"unit_name": "冷库机房", "unit_kind": "生产单元", "chemical": "液氨", "max_quantity_t": 5}]
LPG = [{"unit_name": "储配站", "unit_kind": "储存单元", "chemical": "液化石油气", "max_quantity_t": 20}]


@pytest.mark.parametrize(
    ("site", "rule", "citation"),
    [
        ({"site_kind": "生产", "_inventory": AMMONIA}, "H13", "安监总管三〔2017〕121号"),
        ({"site_kind": "使用", "_inventory": AMMONIA}, "H18", "应急管理部令第10号"),
        ({"site_kind": "经营(带储存)", "_inventory": LPG}, "H19", "城镇燃气经营安全重大隐患判定标准"),
    ],
)
def test_gas_detection_is_judged_by_the_sector_s_criteria(con, site, rule, citation):
    record = {"gas_detection": False, **site}
    fired = [r for r in ("H13", "H18", "H19") if _fires(con, r, record)]
    assert fired == [rule]
    assert citation in _rule(rule).source_ref and _rule(rule).hazard_grade == "重大"


def test_one_missing_shut_off_is_one_hazard(con):
    tank = [{"unit_name": "液氨罐区", "unit_kind": "储存单元", "chemical": "液氨", "max_quantity_t": 150}]  # 二级
    site = {"emergency_shutoff": False, "population_500m": 150, "_inventory": tank}
    assert [r for r in ("H10", "H11") if _fires(con, r, site)] == ["H11"]
    small = {**site, "_inventory": [{**tank[0], "max_quantity_t": 50}]}  # 三级: the general rule
    assert [r for r in ("H10", "H11") if _fires(con, r, small)] == ["H10"]


# --- a chemical with no Q: an 一般 hazard, not a silent 0 --------------------------------------------------


def test_a_site_holding_a_chemical_without_a_critical_quantity_opens_a_data_hazard(con):
    site = {"population_500m": 150, "_inventory": [
        {"unit_name": "库房", "unit_kind": "储存单元", "chemical": "福尔马林", "max_quantity_t": 30},
        {"unit_name": "库房", "unit_kind": "储存单元", "chemical": "某混合溶剂", "max_quantity_t": 5}]}  # fmt: skip
    h20 = _rule("H20")
    assert _fires(con, "H20", site) and h20.hazard and h20.hazard_grade == "一般" and h20.points > 0
    assert h20.title_zh.startswith("危险化学品临界量无法确定")
    assert not _fires(con, "H20", {**site, "_inventory": [{**site["_inventory"][0], "category": "W5.4"}]})


def test_explain_names_the_chemicals_without_a_critical_quantity(con):
    from pipeline.scoring.engine import score_kind
    from pipeline.scoring.explain import explain
    from pipeline.scoring.ruleset import clear_examples, load_example

    spec = RULESET.kinds["hazchem_sites"]
    site = {"site_id": "91640302MA76XXXX0B", "name": "某化工", "population_500m": 150, "_inventory": [
        {"unit_name": "库房", "unit_kind": "储存单元", "chemical": "福尔马林", "max_quantity_t": 30}]}  # fmt: skip
    load_example(con, spec, site)
    try:
        score_kind(con, RULESET, "hazchem_sites")
        text = explain(con, "91640302MA76XXXX0B")
    finally:
        clear_examples(con, spec)
    assert "H20 危险化学品临界量无法确定（数据不完整）" in text
    assert "提示：福尔马林 无法确定临界量" in text


def test_item_5_flags_a_grade_2_toxic_or_liquefied_gas_tank_area_for_an_independent_sis(con):
    tank = {"unit_name": "液氨罐区", "unit_kind": "储存单元", "chemical": "液氨", "max_quantity_t": 150}  # 二级
    assert _fires(con, "H21", {"population_500m": 150, "_inventory": [tank]})
    assert not _fires(con, "H21", {"population_500m": 150, "_inventory": [{**tank, "max_quantity_t": 50}]})
    assert "121号" in _rule("H21").source_ref and "独立的安全仪表系统" in _rule("H21").source_ref


def test_the_inventory_receipt_names_a_chemical_without_a_critical_quantity_as_a_hint(deployment):
    """Issue 26 §6: a chemical named by neither GB 18218 表1 nor a category, with no Q typed, is accepted but named
    on its file's receipt as 提示 (the site's H20 hazard says the same in the ledger)."""
    from openpyxl import load_workbook

    from tests.conftest import csv_bytes, example_row, run_all

    site = example_row("hazchem_sites", site_id="91640302MA76XXXX0B", name="宁夏某化工有限公司")
    rows = [example_row("hazchem_inventory", site_id="91640302MA76XXXX0B", unit_name="库房", unit_kind="储存单元",
                        chemical=chemical, cas="", category="", critical_quantity_t="", max_quantity_t="5")
            for chemical in ("某混合溶剂", "液氨")]  # fmt: skip
    deployment.drop("hazchem_sites", "sites.csv", csv_bytes("hazchem_sites", [site]), unit="YJJ")
    deployment.drop("hazchem_inventory", "inventory.csv", csv_bytes("hazchem_inventory", rows), unit="YJJ")
    result = run_all(deployment, publish=False)
    assert result.success
    (receipt,) = (deployment.output / "receipts").rglob("inventory.csv_回执.xlsx")
    book = load_workbook(receipt)
    hints = [r for r in book["提示"].iter_rows(min_row=2, values_only=True)]
    assert [(r[0], r[3]) for r in hints] == [(2, "某混合溶剂")] and "无法确定临界量" in hints[0][4]
    summary = dict(book["回执"].iter_rows(min_row=2, values_only=True))
    assert summary["提示"].startswith("1种化学品无法确定临界量")
    assert deployment.query("SELECT rule_id FROM hazards WHERE asset_id = '91640302MA76XXXX0B' AND rule_id = 'H20'")
