"""Buildings rules after issue 10 part 1: what opens a hazard, the P-154 table against its source, the
structure-type mapping, half-degree intensities with the GB 50011 masonry limits, and the 待鉴定清单."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import shutil
from pathlib import Path

import duckdb
import openpyxl
import pytest

from pipeline.platform.paths import RULES_DIR
from pipeline.platform.store import ensure_schema
from pipeline.registries.templates import load_template
from pipeline.scoring.engine import score_kind
from pipeline.scoring.ruleset import _insert, _verify_kind, fires_on, install, parse_rules
from pipeline.scoring.worklist import WORKLIST_NAME, WORKLIST_TABLE, write_worklist

RULESET = parse_rules()
BUILDINGS = RULESET.kinds["buildings"]
RULES = {r.id: r for r in RULESET.for_kind("buildings")}
TOWN = "640302100"  # 金积镇


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference tables and the buildings view only: these tests do not depend on other kinds' views."""
    out = tmp_path_factory.mktemp("rules")
    shutil.copytree(RULES_DIR / "reference", out / "reference")
    (out / "views").mkdir()
    shutil.copy(RULES_DIR / "views" / "buildings.sql", out / "views")
    return out


@pytest.fixture
def con(rules_dir: Path):
    c = duckdb.connect()
    ensure_schema(c)
    install(c, rules_dir)
    yield c
    c.close()


def _fires(con, rule_id: str, record: dict) -> bool:
    return fires_on(con, BUILDINGS, RULES[rule_id], record)


def _view(con, records: list[dict], columns: str) -> list[tuple]:
    con.execute("DELETE FROM stg_buildings")
    for i, r in enumerate(records):
        _insert(con, "stg_buildings", {"building_id": f"B{i}", "survey_round": "2023-1",
                                       "survey_date": "2023-06-01", "town_code": TOWN, **r})  # fmt: skip
    return con.execute(f"SELECT {columns} FROM v_buildings ORDER BY building_id").fetchall()


# --- every rule's own examples ------------------------------------------------------------------------
def test_every_buildings_rule_example_passes(con):
    assert RULESET.problems == [] or all("buildings" not in p for p in RULESET.problems)
    assert _verify_kind(con, BUILDINGS, RULESET.for_kind("buildings")) == []


# --- what opens a hazard ------------------------------------------------------------------------------
def test_b03_ranks_but_opens_no_hazard(con, rules_dir: Path):
    b03 = RULES["B03"]
    assert b03.hazard is False and b03.hard is False
    house = {"structure_type": "砖木", "floors_above": 1, "year_built": 1985, "seismic_design": "否"}
    assert _fires(con, "B03", house)
    _view(con, [house], "building_id")
    score_kind(con, dataclasses.replace(RULESET, rules_dir=rules_dir), "buildings")
    hazards = con.execute("SELECT count(*) FROM findings WHERE kind = 'buildings' AND hazard").fetchone()[0]
    b03_found = con.execute("SELECT count(*) FROM findings WHERE rule_id = 'B03' AND NOT hazard").fetchone()[0]
    reasons = con.execute("SELECT top_reasons, n_hazards FROM scores WHERE kind = 'buildings'").fetchone()
    assert hazards == 0 and b03_found == 1
    assert "B03" in reasons[0] and reasons[1] == 0  # S shows with the asset, without a hazard


def test_a_school_without_seismic_design_opens_the_key_fortification_hazard(con):
    school = {"use": "学校", "structure_type": "砖混", "year_built": 1995, "seismic_design": "否"}
    assert RULES["B08"].hazard and RULES["B08"].hazard_grade == "重大"
    assert _fires(con, "B08", school)
    # design unknown (issue 26 §6): on the 待鉴定清单 (B21, weighing), not a 重大 hazard
    for design in ("不详", None):
        assert not _fires(con, "B08", {**school, "seismic_design": design})
        assert _fires(con, "B21", {**school, "seismic_design": design}) and not RULES["B21"].hazard
    assert not _fires(con, "B08", {**school, "seismic_design": "是"})
    assert not _fires(con, "B08", {**school, "retrofitted": True})
    assert not _fires(con, "B08", {**school, "use": "住宅"})


def test_c_and_d_grades_open_hazards(con):
    assert RULES["B02"].hazard and _fires(con, "B02", {"appraisal_grade": "C"})
    assert RULES["B01"].hazard and RULES["B01"].hard and _fires(con, "B01", {"appraisal_grade": "D"})
    assert "GB/T 50952" in RULES["B02"].source_ref and "JGJ 125" in RULES["B02"].source_ref


def test_a_serious_self_built_finding_opens_a_hazard(con):
    b19 = RULES["B19"]
    assert b19.hazard and b19.hazard_grade == "重大" and "国办发明电〔2022〕10号" in b19.source_ref
    assert _fires(con, "B19", {"self_built_finding": "存在严重安全隐患"})
    assert not _fires(con, "B19", {"self_built_finding": "存在一般安全隐患"})
    assert not RULES["B20"].hazard and _fires(con, "B20", {"self_built_finding": "存在一般安全隐患"})
    field = load_template("buildings").field("self_built_finding")
    assert field.header == "自建房安全排查结论"
    assert list(field.values) == ["未发现安全隐患", "存在一般安全隐患", "存在严重安全隐患"]
    assert (
        field.value_aliases["严重隐患"] == "存在严重安全隐患" and field.value_aliases["无明显隐患"] == "未发现安全隐患"
    )


# --- FEMA P-154 (2015), Level 1, high seismicity ----------------------------------------------------------
# The Level 1 data collection form, High seismicity (FEMA P-154 3rd ed., Appendix B), column by column:
# basic, S_min, severe vertical, moderate vertical, plan, pre-code, post-benchmark, soil A/B,
# soil E (1-3 storeys), soil E (> 3 storeys); None where the form says NA.
NA = None
P154_HIGH_2015 = {
    "W1": (3.6, 1.1, -1.2, -0.7, -1.1, -1.1, 1.6, 0.1, 0.2, -0.3),
    "W1A": (3.2, 0.9, -1.2, -0.7, -1.0, -1.0, 1.9, 0.3, 0.2, -0.6),
    "W2": (2.9, 0.7, -1.2, -0.7, -1.0, -0.9, 2.2, 0.5, 0.1, -0.9),
    "S1": (2.1, 0.5, -1.0, -0.6, -0.8, -0.6, 1.4, 0.4, -0.2, -0.6),
    "S2": (2.0, 0.5, -1.0, -0.6, -0.7, -0.6, 1.4, 0.6, -0.4, -0.6),
    "S3": (2.6, 0.6, -1.1, -0.7, -0.9, -0.8, 1.1, 0.1, 0.2, NA),
    "S4": (2.0, 0.5, -1.0, -0.6, -0.7, -0.6, 1.9, 0.6, -0.1, -0.6),
    "S5": (1.7, 0.5, -0.8, -0.5, -0.6, -0.2, NA, 0.5, -0.4, -0.4),
    "C1": (1.5, 0.3, -0.9, -0.5, -0.6, -0.4, 1.9, 0.4, 0.0, -0.5),
    "C2": (2.0, 0.3, -1.0, -0.6, -0.8, -0.7, 2.1, 0.5, 0.0, -0.7),
    "C3": (1.2, 0.3, -0.7, NA, -0.5, -0.1, NA, 0.3, -0.2, -0.3),
    "PC1": (1.6, 0.2, -1.0, -0.6, -0.7, -0.5, 2.0, 0.6, -0.3, NA),
    "PC2": (1.4, 0.2, -0.9, -0.5, -0.6, -0.3, 2.4, 0.4, -0.1, -0.4),
    "RM1": (1.7, 0.3, -0.9, -0.5, -0.7, -0.5, 2.1, 0.5, -0.1, -0.5),
    "RM2": (1.7, 0.3, -0.9, -0.5, -0.7, -0.5, 2.1, 0.5, -0.1, -0.6),
    "URM": (1.0, 0.2, -0.7, -0.4, -0.4, 0.0, NA, 0.3, -0.2, -0.2),
    "MH": (1.5, 1.0, NA, NA, NA, -0.1, 1.2, 0.3, -0.4, NA),
}
P154_COLUMNS = ("basic", "minimum", "vert_severe", "vert_moderate", "plan_irregular", "pre_code", "post_benchmark",
                "soil_ab", "soil_e_low", "soil_e_high")  # fmt: skip


def test_the_p154_table_equals_the_source():
    with open(RULES_DIR / "reference" / "p154_scores.csv", encoding="utf-8") as f:
        table = {r["fema_type"]: r for r in csv.DictReader(f)}
    assert set(table) == set(P154_HIGH_2015)
    for fema, values in P154_HIGH_2015.items():
        got = tuple(float(table[fema][c]) if table[fema][c] != "" else NA for c in P154_COLUMNS)
        assert got == values, fema
        assert table[fema]["confidence"] in {"V", "S"} and "FEMA P-154" in table[fema]["source"]
    # the figures issue 10 names
    assert table["C3"]["minimum"] == "0.3" and table["S3"]["minimum"] == "0.6"
    assert (table["C1"]["post_benchmark"], table["RM1"]["post_benchmark"], table["S3"]["post_benchmark"]) == (
        "1.9", "2.1", "1.1")  # fmt: skip


def test_brick_concrete_with_ring_beams_is_rm2(con):
    rows = _view(con, [
        {"structure_type": "砖混", "ring_beam_tie_column": True, "year_built": 2005, "seismic_design": "是"},
        {"structure_type": "砖混", "ring_beam_tie_column": False, "year_built": 2005, "seismic_design": "是"},
        {"structure_type": "砖混", "year_built": 1998},
    ], "fema_type, screening_score")  # fmt: skip
    assert rows[0] == ("RM2", pytest.approx(1.7 + 2.1))  # RM2 basic + post-benchmark
    assert rows[1] == ("URM", pytest.approx(1.0))  # URM has no post-benchmark modifier (NA)
    assert rows[2] == ("URM", pytest.approx(1.0))


def test_bottom_frame_masonry_is_masonry_with_the_severe_vertical_irregularity(con):
    rows = _view(con, [
        {"structure_type": "底部框架-抗震墙", "year_built": 1995, "floors_above": 5, "vertical_irregularity": "无"},
        {"structure_type": "底部框架-抗震墙", "ring_beam_tie_column": True, "year_built": 2005, "floors_above": 4,
         "seismic_design": "是"},
    ], "fema_type, p154_vertical_irregularity, p154_modifiers, screening_score, is_masonry")  # fmt: skip
    assert rows[0] == ("URM", "严重", pytest.approx(-0.7), pytest.approx(0.3), True)  # 1.0 - 0.7
    assert rows[1] == ("RM2", "严重", pytest.approx(-0.9 + 2.1), pytest.approx(2.9), True)


@pytest.mark.parametrize(
    ("record", "fema", "score"),
    [
        # C1 1.5, severe -0.9, plan -0.6, soil A/B +0.4 -> 0.4
        ({"structure_type": "框架", "year_built": 1995, "floors_above": 5, "vertical_irregularity": "严重",
          "plan_irregularity": True, "site_class": "I1"}, "C1", 0.4),
        # earth: URM 1.0 - 0.3, severe -0.7, soil E (1-3) -0.2 -> -0.2, minimum 0.2
        ({"structure_type": "土木(生土)", "year_built": 1975, "floors_above": 1, "vertical_irregularity": "严重",
          "site_class": "IV"}, "URM", 0.2),
        # C2 2.0 + post-benchmark 2.1 -> 4.1
        ({"structure_type": "剪力墙", "year_built": 2012, "seismic_design": "是"}, "C2", 4.1),
        # S3 2.6, soil E over 3 storeys is NA for S3 -> 2.6
        ({"structure_type": "轻钢", "year_built": 2015, "floors_above": 4, "site_class": "IV"}, "S3", 2.6),
        # C1 pre-code -0.4, soil E (> 3) -0.5 -> 0.6
        ({"structure_type": "框架", "year_built": 1985, "floors_above": 6, "site_class": "IV"}, "C1", 0.6),
    ],
)  # fmt: skip
def test_screening_score_by_hand(con, record, fema, score):
    assert _view(con, [record], "fema_type, screening_score")[0] == (fema, pytest.approx(score))


# --- 8度半 (0.30 g) and the GB 50011 masonry limits -----------------------------------------------------------
def test_half_degree_intensities_are_expressible(con):
    tpl = load_template("buildings").field("design_intensity")
    assert "8.5" in tpl.values and "7.5" in tpl.values and tpl.value_aliases["0.30g"] == "8.5"
    rows = _view(con, [{"seismic_design": "是", "design_intensity": "8.5"}], "design_intensity_num")
    assert rows == [(8.5,)]
    towns = con.execute("SELECT DISTINCT typeof(design_intensity), bool_or(verified) FROM ref_town_seismic GROUP BY 1")
    assert towns.fetchall() == [("DOUBLE", False)]  # half degrees fit; still unverified (GB 18306 Appendix C)


def test_masonry_limits_follow_gb50011_at_0_30g(con):
    six_storeys = {"structure_type": "砖混", "floors_above": 6, "height_m": 17.5, "year_built": 2005}
    five_storeys = {**six_storeys, "floors_above": 5, "height_m": 14.8}
    bottom_frame = {"structure_type": "底部框架-抗震墙", "floors_above": 3, "height_m": 10}
    # at 0.20 g (the default): brick masonry 6 storeys / 18 m, bottom-frame 5 / 16 m
    assert not _fires(con, "B05", {**six_storeys, "town_code": TOWN})
    assert not _fires(con, "B05", {**bottom_frame, "town_code": TOWN})
    assert _fires(con, "B05", {**six_storeys, "use": "学校", "town_code": TOWN})  # 乙类: one storey and 3 m less
    con.execute("UPDATE ref_town_seismic SET design_pga_g = 0.30, design_intensity = 8.5 WHERE town_code = ?", [TOWN])
    rows = _view(con, [six_storeys, five_storeys, bottom_frame],
                 "site_design_intensity, masonry_max_storeys, masonry_max_height_m, masonry_type_allowed, "
                 "exceeds_masonry_limit")  # fmt: skip
    assert rows[0] == (8.5, 5, 15, True, True)
    assert rows[1] == (8.5, 5, 15, True, False)
    assert rows[2] == (8.5, None, None, False, True)  # bottom-frame masonry is not allowed at 0.30 g
    assert _fires(con, "B05", {**six_storeys, "town_code": TOWN})
    assert not _fires(con, "B05", {**five_storeys, "town_code": TOWN})
    assert _fires(con, "B05", {**bottom_frame, "town_code": TOWN})
    assert _fires(con, "B04", {"structure_type": "砖混", "ring_beam_tie_column": False, "town_code": TOWN})
    with open(RULES_DIR / "reference" / "masonry_limits.csv", encoding="utf-8") as f:
        limits = {(r["masonry_category"], r["design_pga_g"]): r for r in csv.DictReader(f)}
    assert (limits[("多层砌体房屋", "0.30")]["max_height_m"], limits[("多层砌体房屋", "0.30")]["max_storeys"]) == (
        "15",
        "5",
    )
    assert all("表7.1.2" in r["source"] for r in limits.values())


# --- 待鉴定清单 ----------------------------------------------------------------------------------------------
WORKLIST_RECORDS = [
    # a house of 砖木 (URM, S 1.0 - 0 = 1.0) and one of earth (URM - 0.3 -> 0.7): low S, no appraisal
    {"building_id": "H-BRICK", "name": "马伟住宅", "use": "住宅", "structure_type": "砖木", "floors_above": 1,
     "year_built": 1995, "seismic_design": "否", "appraisal_grade": "未鉴定", "responsible_unit": "T100"},
    {"building_id": "H-EARTH", "name": "=HYPERLINK(\"x\")", "use": "住宅", "structure_type": "土木(生土)",
     "floors_above": 1, "year_built": 1998, "seismic_design": "否", "responsible_unit": "T100"},
    # a school framed in 1995 without seismic design: S (C1 1.5) is above the cut-off, but the law lists it
    {"building_id": "S-SCHOOL", "name": "金积镇中心小学教学楼", "use": "学校", "structure_type": "框架",
     "floors_above": 3, "year_built": 1995, "seismic_design": "否", "appraisal_grade": "未鉴定",
     "occupants": 600, "responsible_unit": "JYJ"},
    # a shop used by 80 people, no seismic design: a crowded place, after the school; a kiosk only by its S
    {"building_id": "C-SHOP", "use": "商业", "structure_type": "砖混", "floors_above": 2, "year_built": 1995,
     "seismic_design": "否", "occupants": 80, "responsible_unit": "GXJ"},
    {"building_id": "C-KIOSK", "use": "商业", "structure_type": "砖木", "floors_above": 1, "year_built": 2000,
     "seismic_design": "否", "occupants": 5, "responsible_unit": "T100"},
    # appraised already, or good: not on the list
    {"building_id": "H-APPRAISED", "use": "住宅", "structure_type": "砖木", "year_built": 1990,
     "appraisal_grade": "B", "responsible_unit": "T100"},
    {"building_id": "R-NEW", "use": "住宅", "structure_type": "剪力墙", "year_built": 2012, "seismic_design": "是",
     "design_intensity": "8", "responsible_unit": "ZJJ"},
    {"building_id": "S-NEW", "use": "学校", "structure_type": "框架", "year_built": 2015, "seismic_design": "是",
     "design_intensity": "8", "responsible_unit": "JYJ"},
]  # fmt: skip


def test_the_worklist_lists_an_unappraised_school_first_then_low_s_by_score(con, tmp_path: Path):
    con.execute("DELETE FROM stg_buildings")
    for r in WORKLIST_RECORDS:
        _insert(con, "stg_buildings", {"survey_round": "2023-1", "survey_date": "2023-06-01", "town_code": TOWN,
                                       "address": "金积镇金积村", "owner": "业主", **r})  # fmt: skip
    result = write_worklist(con, tmp_path)
    assert (result.rows, result.legal, result.low_score) == (5, 2, 3)
    table = con.execute(
        f"SELECT building_id, worklist_class, screening_score, reason_zh, legal_basis_zh, responsible_unit "
        f"FROM {WORKLIST_TABLE} ORDER BY priority"
    ).fetchall()
    order = ["S-SCHOOL", "C-SHOP", "H-EARTH", "C-KIOSK", "H-BRICK"]
    assert [r[0] for r in table] == order
    assert [r[1] for r in table] == [1, 1, 2, 2, 2]
    assert table[0][2] > table[1][2]  # the school comes first although the shop scores lower
    assert [r[2] for r in table[2:]] == [pytest.approx(0.7), pytest.approx(1.0), pytest.approx(1.0)]
    assert "未进行抗震设防" in table[0][3] and "第三十九条" in table[0][4] and "国务院令第744号" in table[0][4]
    assert "人员密集场所" in table[1][3] and "S=0.7" in table[2][3] and "FEMA P-154" in table[2][4]
    # the exports people open: same order, town and unit names, formulas neutralised, written whole
    xlsx, csv_path = result.files
    assert xlsx == tmp_path / f"{WORKLIST_NAME}.xlsx" and csv_path == tmp_path / f"{WORKLIST_NAME}.csv"
    data = csv_path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [r["房屋编码"] for r in rows] == order
    assert rows[0]["乡镇"] == "金积镇" and rows[0]["责任单位"] and rows[0]["序号"] == "1"
    assert rows[2]["建筑名称"].startswith("'=")
    sheet = openpyxl.load_workbook(xlsx, read_only=True)[WORKLIST_NAME]
    cells = list(sheet.iter_rows(values_only=True))
    assert cells[0][0] == "序号" and [c[2] for c in cells[1:]] == order
    assert str(cells[3][3]).startswith("'=")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_the_sample_generator_fills_the_self_built_finding(tmp_path: Path):
    from sample.generate import generate

    summary = generate(
        tmp_path, buildings=3000, bridges=0, sites=0, pipelines=0, formats="csv", defect_rate=0, more_kinds=False
    )
    values: dict[str, int] = {}
    for f in summary["files"]:
        with open(tmp_path / f, encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                v = row.get("自建房安全排查结论")
                assert v is not None
                values[v] = values.get(v, 0) + 1
    total = sum(values.values())
    assert {"未发现安全隐患", "存在一般安全隐患", "存在严重安全隐患"} <= set(values)
    serious = values["存在严重安全隐患"] / total
    assert 0.005 < serious < 0.08 and not math.isclose(values.get("", 0), 0)  # schools, hospitals: blank
