"""GB 18218-2018 major hazard sources: the reference tables against the shared rules reference §3, how an
inventory row finds its critical quantity (CAS, alias, full-width name, classification), that a declared Q never
lowers the grade, and sites computed end to end through the real view."""

from __future__ import annotations

import csv
import re

import pytest

from pipeline.intake.receipts import _warnings
from pipeline.platform.paths import RULES_DIR
from pipeline.registries.templates import load_template
from pipeline.scoring.ruleset import _insert, fires_on, load_ruleset, parse_rules
from tests.conftest import rules_scratch

REF = RULES_DIR / "reference"
RULESET = parse_rules()


def _csv(name: str) -> list[dict[str, str]]:
    with open(REF / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


NAMED = _csv("gb18218_named.csv")
CATEGORIES = {r["category"]: r for r in _csv("gb18218_categories.csv")}


def _entry(name: str) -> dict[str, str]:
    """The Table 1 row whose name or one of whose aliases is `name`."""
    rows = [r for r in NAMED if name == r["name_zh"] or name in r["aliases"].split(";")]
    assert len(rows) == 1, name
    return rows[0]


@pytest.fixture(scope="module")
def con():
    with rules_scratch() as c:
        yield c


def _site(con, inventory: list[dict], population: int = 150, declared: str | None = None, site: str = "S1"):
    """One site with its inventory through v_hazchem_sites; returns (site row, inventory rows) as dicts."""
    con.execute("DELETE FROM stg_hazchem_sites")
    con.execute("DELETE FROM stg_hazchem_inventory")
    _insert(con, "stg_hazchem_sites", {"site_id": site, "survey_round": "2023-1", "survey_date": "2023-06-01",
                                       "population_500m": population, "declared_grade": declared})  # fmt: skip
    for n, inv in enumerate(inventory):
        _insert(con, "stg_hazchem_inventory", {"site_id": site, "survey_round": "2023-1", "unit_name": "罐区",
                                               "unit_kind": "储存单元", "row_no": n + 2, **inv})  # fmt: skip
    cur = con.execute("SELECT * FROM v_hazchem_sites")
    site_row = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    cur = con.execute("SELECT * FROM v_hazchem_inventory ORDER BY chemical")
    cols = [d[0] for d in cur.description]
    return site_row, [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _one(con, chemical: str, **fields) -> dict:
    """The inventory row of one chemical (10 t unless given) as the view resolves it."""
    _, rows = _site(con, [{"chemical": chemical, "max_quantity_t": 10, **fields}])
    return rows[0]


# --- the tables ---------------------------------------------------------------------------------

# rules-reference.md §3 (shared domain reference), every named value listed there (t)
REFERENCE_Q = {
    "氨": 10, "氯": 5, "硫化氢": 5, "光气": 0.3, "二氧化硫": 20, "氟化氢": 1, "环氧乙烷": 10, "甲烷": 50,
    "天然气": 50, "液化石油气": 50, "甲醇": 500, "汽油": 200, "苯": 50, "甲苯": 500, "乙醇": 500, "乙炔": 1,
    "氢": 5, "氧（压缩的或液化的）": 200, "碳化钙": 100, "煤气": 20,
}  # fmt: skip
# §3: β for named toxic gases (GB 18218-2018 表3)
REFERENCE_BETA = {
    "一氧化碳": 2, "二氧化硫": 2, "氨": 2, "环氧乙烷": 2, "氯化氢": 3, "溴甲烷": 3, "氯": 4, "硫化氢": 5,
    "氟化氢": 5, "二氧化氮": 10, "氰化氢": 10, "光气": 20, "磷化氢": 20, "异氰酸甲酯": 20,
}  # fmt: skip
# §3: Q (t) and β by category (GB 18218-2018 表2 and 表4)
REFERENCE_CATEGORY_Q = dict(
    pair.split() for pair in re.findall(r"[JW][\d.]+ [\d.]+", (
        "J1 5, J2 50, J3 50, J4 50, J5 500, W1.1 1, W1.2 10, W1.3 50, W2 10, W3 150, W4 50, W5.1 10, W5.2 50, "
        "W5.3 1000, W5.4 5000, W6.1 10, W6.2 50, W7.1 10, W7.2 50, W8 50, W9.1 50, W9.2 200, W10 200, W11 200"))
)  # fmt: skip
REFERENCE_CATEGORY_BETA = {"J1": 4, "J2": 1, "J3": 2, "J4": 2, "J5": 1, "W1.1": 2, "W1.2": 2, "W1.3": 2, "W2": 1.5,
                           "W5.1": 1.5, "W6.1": 1.5, "W7.1": 1.5}  # others 1  # fmt: skip
# GB 18218-2018 表2: the hazard class of each category (Table 2's wording)
TABLE2_CLASS = {
    "J": "急性毒性", "W1": "爆炸物", "W2": "易燃气体", "W3": "气溶胶", "W4": "氧化性气体", "W5": "易燃液体",
    "W6": "自反应物质和混合物", "W7": "有机过氧化物", "W8": "自燃液体和自燃固体", "W9": "氧化性固体和液体",
    "W10": "易燃固体", "W11": "遇水放出易燃气体的物质和混合物",
}  # fmt: skip


@pytest.mark.parametrize(("name", "q"), REFERENCE_Q.items())
def test_table_1_critical_quantities_as_in_the_rules_reference(name, q):
    assert float(_entry(name)["critical_t"]) == q


@pytest.mark.parametrize(("name", "beta"), REFERENCE_BETA.items())
def test_table_3_beta_of_the_named_toxic_gases(name, beta):
    row = _entry(name)
    assert float(row["beta"]) == beta and "表3" in row["beta_basis"]


def test_table_1_is_whole_and_every_row_has_its_source():
    assert [int(r["no"]) for r in NAMED] == list(range(1, 86))  # GB 18218-2018 表1 has 85 entries
    assert len({r["name_zh"] for r in NAMED}) == 85
    for r in NAMED:
        assert float(r["critical_t"]) > 0 and float(r["beta"]) >= 1, r["name_zh"]
        assert r["confidence"] in set("VSJU") and r["beta_confidence"] in set("VSJU"), r["name_zh"]
        assert f"表1 序号{r['no']}" in r["source"] and r["beta_basis"], r["name_zh"]


def test_every_cas_number_has_a_valid_check_digit():
    """CAS check digit: the sum of each digit times its position from the right, mod 10."""
    numbers = [c for r in NAMED + _csv("gb18218_classified.csv") for c in r["cas"].split(";") if c]
    assert len(numbers) > 80
    for cas in numbers:
        assert re.fullmatch(r"\d{2,7}-\d{2}-\d", cas), cas
        digits = cas.replace("-", "")[:-1][::-1]
        assert sum((i + 1) * int(d) for i, d in enumerate(digits)) % 10 == int(cas[-1]), cas


def test_ethane_is_not_named():
    assert not [r for r in NAMED if "乙烷" in (r["name_zh"], *r["aliases"].split(";"))]


def test_categories_q_beta_and_table_2_wording():
    assert set(CATEGORIES) == set(REFERENCE_CATEGORY_Q)
    for cat, row in CATEGORIES.items():
        assert float(row["critical_t"]) == float(REFERENCE_CATEGORY_Q[cat]), cat
        assert float(row["beta"]) == REFERENCE_CATEGORY_BETA.get(cat, 1), cat
        assert row["hazard_class"] == TABLE2_CLASS["J" if cat.startswith("J") else cat.split(".")[0]], cat
    assert CATEGORIES["J2"]["beta"] == "1"  # 表4: J2 is 1, not 2
    assert CATEGORIES["W10"]["description"] == "类别1易燃固体"
    assert CATEGORIES["W11"]["hazard_class"] == "遇水放出易燃气体的物质和混合物"
    assert CATEGORIES["W9.1"]["hazard_class"] == "氧化性固体和液体"


# --- matching -----------------------------------------------------------------------------------


def test_matched_by_cas_whatever_the_name(con):
    row = _one(con, "某厂自编号溶剂A", cas="71-43-2", category="W5.4")
    assert (row["gb18218_name"], row["critical_t"], row["critical_source"], row["matched_by"]) == (
        "苯",
        50,
        "表1",
        "CAS",
    )


@pytest.mark.parametrize(
    ("typed", "entry", "q"),
    [("液氯", "氯", 5), ("电石", "碳化钙", 100), ("光气", "碳酰氯", 0.3), ("LPG", "液化石油气（含丙烷、丁烷及其混合物）", 50),
     ("丙烷", "液化石油气（含丙烷、丁烷及其混合物）", 50), ("天然气", "甲烷，天然气", 50), ("液化天然气", "甲烷，天然气", 50),
     ("液氧", "氧（压缩的或液化的）", 200), ("TDI", "甲苯二异氰酸酯", 100), ("黄磷", "白磷", 50), ("一氧化碳", "煤气（CO，CO和H2、CH4的混合物等）", 20),
     ("氢气", "氢", 5), ("酒精", "乙醇", 500)],
)  # fmt: skip
def test_matched_by_alias(con, typed, entry, q):
    row = _one(con, typed)
    assert (row["gb18218_name"], row["critical_t"], row["matched_by"]) == (entry, q, "名称")


@pytest.mark.parametrize(
    ("typed", "entry", "q"),
    [("ＬＰＧ", "液化石油气（含丙烷、丁烷及其混合物）", 50), ("甲　醇", "甲醇", 500), (" 苯 ", "苯", 50),
     ("液化石油气(含丙烷、丁烷及其混合物)", "液化石油气（含丙烷、丁烷及其混合物）", 50),
     ("液化石油气（LPG）", "液化石油气（含丙烷、丁烷及其混合物）", 50), ("氧(液化的)", "氧（压缩的或液化的）", 200),
     ("lpg", "液化石油气（含丙烷、丁烷及其混合物）", 50), ("硝酸铵（含可燃物≤0.2%）", "硝酸铵（含可燃物≤0.2%）", 50)],
)  # fmt: skip
def test_matched_by_full_width_spaced_or_qualified_name(con, typed, entry, q):
    row = _one(con, typed)
    assert (row["gb18218_name"], row["critical_t"]) == (entry, q)


def test_full_width_cas_and_ambiguous_names_take_the_lowest_q(con):
    assert _one(con, "某物", cas="７１－４３－２")["gb18218_name"] == "苯"
    assert _one(con, "硝化棉")["critical_t"] == 1  # 硝化纤维素: several entries, the strictest
    assert _one(con, "硝酸铵")["critical_t"] == 5
    assert _one(con, "硝化纤维素", cas="9004-70-0")["critical_t"] == 1


def test_solutions_sharing_a_cas_do_not_take_the_anhydrous_entry(con):
    hcl = _one(con, "盐酸", cas="7647-01-0")
    assert (hcl["gb18218_name"], hcl["critical_t"]) == (None, None)
    assert _one(con, "氢氟酸", cas="7664-39-3")["critical_t"] is None
    assert _one(con, "氯化氢", cas="7647-01-0")["critical_t"] == 20


def test_ethane_falls_to_w2_ten_tonnes(con):
    row = _one(con, "乙烷")
    assert (row["gb18218_name"], row["category_used"], row["critical_t"], row["beta"]) == (None, "W2", 10, 1.5)
    assert row["critical_source"] == "表2(参考分类)"
    row = _one(con, "乙烷", cas="74-84-0", category="W2")
    assert (row["critical_t"], row["critical_source"]) == (10, "表2(填报类别)")
    # a laxer typed category does not help: the lower Q of the typed and the classified category
    assert _one(con, "乙烷", category="W5.4")["critical_t"] == 10


# --- declared Q -----------------------------------------------------------------------------------


def test_a_declared_larger_q_is_evidence_only(con):
    site, rows = _site(con, [{"chemical": "苯", "cas": "71-43-2", "category": "W5.3", "max_quantity_t": 100,
                              "critical_quantity_t": 1000}], declared="非重大危险源")  # fmt: skip
    assert (rows[0]["critical_t"], rows[0]["declared_critical_t"], rows[0]["declared_q_differs"]) == (50, 1000, True)
    # S = 100/50 = 2, R = α 2 × β 1 × 2 = 4: 四级, not the 非重大危险源 a Q of 1000 would give
    assert (site["gb18218_s"], site["gb18218_r"], site["computed_grade"]) == (2, 4, "四级")
    assert site["declared_q_differs"] == "苯 申报Q 1000 t, 表1 Q 50 t"
    spec = RULESET.kinds["hazchem_sites"]
    h05 = next(r for r in RULESET.rules if r.id == "H05")
    example = {"population_500m": 150, "declared_grade": "非重大危险源",
               "_inventory": [{"unit_name": "罐区", "unit_kind": "储存单元", "chemical": "苯", "max_quantity_t": 100,
                               "critical_quantity_t": 1000}]}  # fmt: skip
    assert fires_on(con, spec, h05, example)  # the under-declaration is still found


def test_declared_q_of_a_categorised_substance_does_not_override_the_category(con):
    row = _one(con, "某溶剂", category="W5.4", critical_quantity_t=200)
    assert (row["critical_t"], row["critical_source"], row["declared_critical_t"]) == (5000, "表2(填报类别)", 200)


def test_declared_q_only_when_neither_named_nor_categorised_and_flagged(con):
    site, rows = _site(con, [{"chemical": "某混合溶剂", "max_quantity_t": 30, "critical_quantity_t": 20}])
    assert (rows[0]["critical_t"], rows[0]["critical_source"], rows[0]["critical_confidence"]) == (
        20, "企业申报(未核实)", "U")  # fmt: skip
    assert (site["chemicals_q_unverified"], site["is_major_source"]) == (1, True)
    h16 = next(r for r in RULESET.rules if r.id == "H16")
    example = {"_inventory": [{"unit_name": "库", "unit_kind": "储存单元", "chemical": "某混合溶剂", "max_quantity_t": 30,
                               "critical_quantity_t": 20}]}  # fmt: skip
    assert fires_on(con, RULESET.kinds["hazchem_sites"], h16, example)


# --- end to end through the view: Table 1 substances beyond the old 18 ----------------------------


@pytest.mark.parametrize(
    ("inventory", "population", "s", "r", "grade"),
    [
        # 甲醛(>90%) 4 t: Q 5, β 2 (J3) -> S 0.8; + 丙烯腈 30 t: Q 50, β 1 -> 0.6; S 1.4, R 1.2 × (1.6 + 0.6) = 2.64
        ([{"chemical": "甲醛（含量>90%）", "max_quantity_t": 4}, {"chemical": "丙烯腈", "max_quantity_t": 30}],
         40, 1.4, 2.64, "四级"),
        # 氯乙烯 400 t (Q 50, β 1.5) -> 8; 1,3-丁二烯 10 t (Q 5, β 1.5) -> 2; S 10, R 2 × 1.5 × 10 = 30
        ([{"chemical": "氯乙烯", "cas": "75-01-4", "max_quantity_t": 400},
          {"chemical": "1,3-丁二烯", "max_quantity_t": 10}], 150, 10, 30, "三级"),
        # 二甲醚 150 t (Q 50, β 1.5) -> 3; 乙烯 100 t (Q 50, β 1.5) -> 2; S 5, R 1.5 × 7.5 = 11.25
        ([{"chemical": "二甲醚", "max_quantity_t": 150}, {"chemical": "乙烯", "cas": "74-85-1", "max_quantity_t": 100}],
         60, 5, 11.25, "三级"),
        # 硝酸铵(含可燃物≤0.2%) 500 t (Q 50, β 1) -> 10; 氯酸钠 200 t (Q 100) -> 2; S 12, R 2 × 12 = 24
        ([{"chemical": "硝酸铵（含可燃物≤0.2%）", "max_quantity_t": 500},
          {"chemical": "氯酸钠", "cas": "7775-09-9", "max_quantity_t": 200}], 100, 12, 24, "三级"),
        # 环氧丙烷 60 t (Q 10, β 1.5 W5.1) -> 6; 乙醚 20 t (Q 10, β 1.5) -> 2; 环己烷 1000 t (Q 500, β 1) -> 2
        # S 10, R 2 × (9 + 3 + 2) = 28
        ([{"chemical": "1,2-环氧丙烷", "max_quantity_t": 60}, {"chemical": "乙醚", "max_quantity_t": 20},
          {"chemical": "环己烷", "max_quantity_t": 1000}], 150, 10, 28, "三级"),
        # 氰化氢 3 t (Q 1, β 10) -> 3 -> R 2 × 30 = 60: 二级; 汽油 100 t (Q 200) -> 0.5, β 1 -> R + 1
        ([{"chemical": "氰化氢", "cas": "74-90-8", "max_quantity_t": 3}, {"chemical": "汽油", "max_quantity_t": 100}],
         150, 3.5, 61, "二级"),
        # 液化石油气 200 t (Q 50, β 1.5): S 4, R 2 × 6 = 12 (the old table's Q 10 gave S 20, R 60)
        ([{"chemical": "液化石油气", "cas": "68476-85-7", "max_quantity_t": 200}], 150, 4, 12, "三级"),
        # 苯 60 t: Q 50 (the old table's 1000 left it out): S 1.2, R 1.0 × 1.2
        ([{"chemical": "苯", "category": "W5.3", "max_quantity_t": 60}], 10, 1.2, 1.2, "四级"),
        # 乙烷 8 t (W2, Q 10): not a major hazard source
        ([{"chemical": "乙烷", "max_quantity_t": 8}], 150, 0.8, None, "非重大危险源"),
    ],
)  # fmt: skip
def test_sites_computed_end_to_end(con, inventory, population, s, r, grade):
    site, _ = _site(con, inventory, population)
    assert site["gb18218_s"] == pytest.approx(s)
    assert site["gb18218_r"] == (pytest.approx(r) if r is not None else None)
    assert site["computed_grade"] == grade


def test_quantities_over_1000_times_q_are_flagged(con):
    site, _ = _site(con, [{"chemical": "液氯", "max_quantity_t": 6000}])  # 6000 kg typed as t? 1200×Q
    assert site["implausible_quantities"] == "罐区 液氯 6000 t = 1200×Q"
    h17 = next(r for r in RULESET.rules if r.id == "H17")
    assert fires_on(con, RULESET.kinds["hazchem_sites"], h17, {"_inventory": [
        {"unit_name": "库", "unit_kind": "储存单元", "chemical": "液氯", "max_quantity_t": 6000}]})  # fmt: skip


def test_receipt_hints_quantities_typed_in_kilograms(con):
    template = load_template("hazchem_inventory")
    con.execute("DELETE FROM stg_hazchem_inventory")
    for n, (chem, q, declared) in enumerate([("液氨", 12000, None), ("液氯", 3, None), ("某溶剂", 20, 8000)]):
        _insert(con, "stg_hazchem_inventory", {"site_id": "S1", "unit_name": "罐区", "chemical": chem, "file_id": "F1",
                                               "row_no": n + 2, "max_quantity_t": q, "critical_quantity_t": declared})  # fmt: skip
    hints = _warnings(con, {"file_id": "F1"}, template)
    assert [(h[0], h[2], h[3]) for h in hints] == [(2, "最大存量(吨)", "12000.0"), (4, "临界量(吨)", "8000.0")]
    assert "千克" in hints[0][4]


def test_every_rule_example_still_passes():
    assert load_ruleset().problems == []
