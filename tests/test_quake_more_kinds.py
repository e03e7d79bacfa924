"""Issue 29 §2: the new survey kinds in the earthquake response. Geological hazard points at Ⅶ+ lead their unit's
排查清单 as 次生地质灾害; reservoirs and dykes at Ⅵ+ are key objects of the 首报 with their dam safety class; water
plants and mains at Ⅶ+ are listed with the towns that may lose supply; the shelters of the shaken towns, whether
each is usable at its degree, and per town their usable capacity against the people in buildings estimated
中等破坏 or worse. All of it rule data (rules/quake/response.yaml, rules/kinds.yaml `register`)."""

from __future__ import annotations

import re

import duckdb
import openpyxl
import pytest

from pipeline.quake.event import declare, event_from
from pipeline.quake.exposure import quake_db_path
from pipeline.quake.reports import first_report_annex_text, first_report_text, write_checklists
from pipeline.quake.respond import event_dir, first_report
from tests.conftest import Deployment, csv_bytes, example_row, run_all
from tests.test_ledger import building
from tests.test_quake_damage import independent_probabilities

EVENT = {"time": "2025-06-30 14:23:05", "lon": 106.19, "lat": 37.93, "depth_km": 10, "magnitude": 6.5, "strike": 30}
JINJI, JINYINTAN, SHENGLI = "640302100", "640302101", "640302107"
# (id, structure, occupants, use, lon, lat): 金积镇, near the epicentre; the school is the 金积镇政府 (T100)'s
HOUSES = [
    ("Q-1", "土木(生土)", "8", "住宅", "106.190", "37.931"),
    ("Q-2", "砖混", "200", "学校", "106.191", "37.930"),
    ("Q-3", "框架", "60", "住宅", "106.170", "37.940"),
]


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    d = Deployment(tmp_path_factory.mktemp("quake_more_kinds"))
    houses = [building(bid, town_code=JINJI, town_name="", structure_type=s, occupants=n, use=u, lon=x, lat=y,
                       appraisal_grade="B", responsible_unit="T100", name=f"{bid}号楼")
              for bid, s, n, u, x, y in HOUSES]  # fmt: skip
    d.drop("buildings", "b.csv", csv_bytes("buildings", houses), unit="ZJJ")
    # a landslide under 金积镇 (T100 answers for it), farther from the epicentre than the school: shaken less
    geo = example_row("geohazards", point_id="640302100-HP-001", name="金积村滑坡", town_code=JINJI, town_name="金积镇",
                      lon="106.200", lat="37.965", responsible_unit="T100")  # fmt: skip
    d.drop("geohazards", "g.csv", csv_bytes("geohazards", [geo]), unit="ZRJ")
    dam = example_row("reservoirs", object_id="SK-640302100-01", name="金积水库", town_code=JINJI, town_name="金积镇",
                      lon="106.180", lat="37.950", safety_class="三类坝", reinforced="否")  # fmt: skip
    d.drop("reservoirs", "r.csv", csv_bytes("reservoirs", [dam]), unit="SWJ")
    main = example_row("water_supply", facility_id="GS-640302100-02", name="金积供水干管", facility_type="供水干管",
                       town_code=JINJI, town_name="金积镇", towns_served="金积镇;金银滩镇", lon="106.195", lat="37.935",
                       pipe_material="灰口铸铁", diameter_mm="400", length_km="6.5")  # fmt: skip
    far_plant = example_row("water_supply", facility_id="GS-640302103-01", name="远处水厂", town_code="640302103",
                            town_name="", towns_served="胜利镇", lon="106.50", lat="37.65")  # fmt: skip
    d.drop("water_supply", "w.csv", csv_bytes("water_supply", [main, far_plant]), unit="SWJ")
    shelters = [  # 金积镇's three: designed for Ⅸ, for Ⅵ (below its degree), and without a design intensity
        example_row("shelters", shelter_id="BN-640302100-01", name="金积广场", design_intensity="9",
                    capacity_people="10", effective_area_m2="100", lon="106.185", lat="37.932"),
        example_row("shelters", shelter_id="BN-640302100-02", name="金积体育馆", design_intensity="6",
                    site_type="室内场馆", capacity_people="500", effective_area_m2="2000", lon="106.186", lat="37.933"),
        example_row("shelters", shelter_id="BN-640302100-03", name="金积中学操场", design_intensity="不详",
                    capacity_people="400", effective_area_m2="2000", lon="106.187", lat="37.934"),
    ]  # fmt: skip
    d.drop("shelters", "s.csv", csv_bytes("shelters", shelters), unit="T100")
    assert run_all(d, publish=False).success
    event = event_from(EVENT)
    declare(event, d.data_raw)
    response = first_report(event, d.db, d.db, d.output)
    return d, event, response


def exposure(d: Deployment, eid: str, sql: str) -> list[tuple]:
    con = duckdb.connect(str(quake_db_path(d.output)), read_only=True)
    try:
        return con.execute(sql, [eid]).fetchall()
    finally:
        con.close()


def test_a_geological_hazard_point_at_vii_leads_its_units_checklist_as_secondary_geohazard(district):
    d, event, _ = district
    rows = exposure(d, event.event_id, "SELECT asset_id, kind, intensity, why, check_at_once FROM quake_exposure "
                    "WHERE event_id = ? AND responsible_unit = 'T100' ORDER BY priority")  # fmt: skip
    geo = next(r for r in rows if r[1] == "geohazards")
    school = next(r for r in rows if r[0] == "Q-2")
    assert 7 <= geo[2] < school[2]  # shaken less than the school, which also must be checked at once …
    assert school[4] and rows[0][0] == "640302100-HP-001"  # … yet the landslide heads the list
    assert geo[4] and geo[3].startswith("次生地质灾害")
    # the unit's workbook: its first row
    con = duckdb.connect(str(quake_db_path(d.output)), read_only=True)
    try:
        books = write_checklists(con, event, event_dir(d.output, event))
    finally:
        con.close()
    book = next(p for p in books if p.name.endswith("_T100.xlsx"))
    sheet = openpyxl.load_workbook(book, read_only=True).worksheets[0]
    header, first = [list(r) for r in sheet.iter_rows(min_row=1, max_row=2, values_only=True)]
    assert first[header.index("编码")] == "640302100-HP-001" and first[header.index("类别")] == "地质灾害隐患点"
    assert "次生地质灾害" in first[header.index("立即排查原因")]


def test_the_reservoir_is_a_key_object_of_the_first_report_with_its_safety_class(district):
    _, _, response = district
    r = response.report
    assert r.key_counts["水库和堤防"] == 1
    (dam,) = r.key_objects["水库和堤防"]
    assert dam.name == "金积水库" and "三类坝" in dam.label and dam.degree >= 6
    page = first_report_text(r)
    assert "水库和堤防1处" in page and "金积水库（小(1)型，三类坝，金积镇" in page.replace(" ", "")


def test_a_water_main_at_vii_is_listed_with_the_towns_that_may_lose_supply(district):
    _, _, response = district
    r = response.report
    assert [(s.name, s.label, s.towns_served) for s in r.supply] == [
        ("金积供水干管", "供水干管", ["金积镇", "金银滩镇"])
    ]
    assert r.supply[0].degree >= 7  # the far plant (below Ⅶ) is not listed
    page = first_report_text(r)
    assert "供水：Ⅶ度及以上的供水厂站和干管1处（金积供水干管），可能停水的乡镇：金积镇、金银滩镇。" in page
    annex = first_report_annex_text(r)
    assert re.search(r"金积供水干管（供水干管，金积镇，Ⅷ|Ⅸ度", annex) and "可能停水的乡镇：金积镇、金银滩镇" in annex


def test_the_shelters_of_the_shaken_towns_their_usability_and_capacity_against_the_people(district):
    d, event, response = district
    r = response.report
    by = {s.name: s for s in r.shelters}
    assert set(by) == {"金积广场", "金积体育馆", "金积中学操场"}
    degree = by["金积广场"].degree
    assert 7 <= degree <= 9  # designed for Ⅸ: usable; for Ⅵ: not; no design intensity: to verify
    assert (by["金积广场"].state, by["金积体育馆"].state, by["金积中学操场"].state) == ("可用", "不宜使用", "待核实")
    assert by["金积体育馆"].why == "估计烈度高于其抗震设防烈度"
    town = next(t for t in r.shelter_towns if t.name == "金积镇")
    assert (town.shelters, town.usable, town.usable_capacity, town.capacity) == (3, 1, 10, 910)
    # the people in buildings estimated 中等破坏 or worse, recomputed from the rule files (scipy's beta), per V variant
    houses = exposure(d, event.event_id, "SELECT structure_type, damage_class_weaker, degree, occupants "
                      "FROM quake_exposure WHERE event_id = ? AND kind = 'buildings' AND town_code = '640302100'")  # fmt: skip
    expected = [sum(n * independent_probabilities(s, w, g, v)[2:].sum() for s, w, g, n in houses)
                for v in ("v_min", "v_likely", "v_max")]  # fmt: skip
    assert town.need == pytest.approx((expected[0], expected[1], expected[2]), rel=1e-6)
    assert expected[0] < expected[1] <= expected[2] and expected[1] > 10, expected  # short of capacity
    assert town.short == pytest.approx(expected[1] - 10, rel=1e-6)
    page = first_report_text(r)
    assert "应急避难场所：Ⅵ度及以上乡镇共3处（" in page and "可用容量10人" in page
    assert f"避难容量不足的乡镇：金积镇可用10人、需约{expected[1]:,.0f}人" in page
    annex = first_report_annex_text(r)
    assert f"金积体育馆（固定避难场所，{'ⅠⅡⅢⅣⅤⅥⅦⅧⅨ'[degree - 1]}度，设防Ⅵ度，容量500人）：不宜使用" in annex
    assert "金积中学操场" in annex and "设防烈度未记录" in annex


def test_the_first_report_stays_one_page(district):
    d, event, response = district
    import pypdf

    pdf = next(p for p in response.files if p.name == "首报.pdf")
    assert len(pypdf.PdfReader(pdf).pages) == 1
