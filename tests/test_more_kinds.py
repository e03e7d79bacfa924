"""Issue 29 §1, §3: the survey kinds added as data (geological hazard points, shelters, reservoirs and dykes, water
supply) go from upload to ledger, charts and briefing; a town short of shelter capacity is a hazard of the town."""

from __future__ import annotations

import csv
import re

import pytest
from pypdf import PdfReader

from tests.conftest import Deployment, csv_bytes, example_row, run_all

# kind → (folder unit, rows that open a hazard, the hazard number expected, the chart's 资产类别)
CASES = {
    "geohazards": (
        "ZRJ",
        [example_row("geohazards", stability="不稳定", threatened_people="150", monitor="无", monitoring_method="无")],
        {"DZ-640302103-001-G01", "DZ-640302103-001-G04"},
        "地质灾害隐患点",
    ),
    "shelters": (
        "T100",  # a town surveys its own shelters
        [example_row("shelters", signs="否")],
        {"BN-640302100-01-E03"},
        "应急避难场所",
    ),
    "reservoirs": (
        "SWJ",
        [example_row("reservoirs", safety_class="三类坝", reinforced="否")],
        {"SK-640302103-01-K01"},
        "水库和堤防",
    ),
    "water_supply": (
        "SWJ",
        [
            example_row("water_supply", emergency_plan="否"),
            example_row(
                "water_supply",
                facility_id="GS-640302107-02",
                name="胜利干管",
                facility_type="供水干管",
                pipe_material="灰口铸铁",
                diameter_mm="400",
                length_km="6.5",
            ),
        ],
        {"GS-640302107-01-W04", "GS-640302107-02-W01"},
        "供水设施",
    ),
}


def _ledger_csv(deployment: Deployment) -> list[dict[str, str]]:
    with open(deployment.output / "ledger" / "隐患台账.csv", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def new_kinds(tmp_path_factory) -> Deployment:
    """Every case's survey uploaded at once and run through every asset once (one run rather than one a kind: a
    whole run with its charts and briefing costs seconds; each kind's rows and hazards are its own)."""
    deployment = Deployment(tmp_path_factory.mktemp("more_kinds"))
    for kind, (unit, rows, _, _) in CASES.items():
        deployment.drop(kind, "调查.csv", csv_bytes(kind, rows), unit=unit, rnd="2023-1")
    assert run_all(deployment).success
    return deployment


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_new_kind_goes_from_upload_to_ledger_charts_and_briefing(new_kinds, kind):
    unit, _, expected, kind_zh = CASES[kind]
    deployment = new_kinds
    ingested = "SELECT count(*) FROM intake_files WHERE kind = ? AND status = 'ingested'"
    assert deployment.query(ingested, [kind]) == [(1,)]  # its own upload, taken in
    hazards = {no for (no,) in deployment.query("SELECT hazard_no FROM hazards WHERE kind = ?", [kind])}
    assert expected <= hazards
    receipts = list((deployment.output / "receipts" / unit / kind).rglob("*回执*"))
    assert receipts, "every uploaded file has its receipt"
    ledger = _ledger_csv(deployment)
    assert {r["隐患编号"] for r in ledger if r["资产类别"] == kind_zh} >= expected
    with open(deployment.output / "charts" / "levels_by_town.csv", encoding="utf-8-sig") as f:
        assert kind_zh in {r["资产类别"] for r in csv.DictReader(f)}
    assert (deployment.output / "briefing" / "简报.pdf").stat().st_size > 0


def test_a_town_short_of_shelter_capacity_is_a_hazard_of_the_town(tmp_path):
    """金积镇: 49,000 people × 30 % to shelter = 14,700; its one shelter holds 6,000 (0.41 of the need: 重大 C02);
    胜利镇: 53,000 × 30 % = 15,900, its shelters 13,000 (0.82: 一般 C01), 金银滩镇 holds more than it needs (none);
    a shelter on a fault is not counted."""
    deployment = Deployment(tmp_path)
    jinji = [example_row("shelters")]
    shengli = [
        example_row(
            "shelters",
            shelter_id=f"BN-640302107-0{i}",
            town_code="640302107",
            town_name="胜利镇",
            effective_area_m2="13000",
            capacity_people=str(cap),
            responsible_unit="T107",
            on_fault="是" if i == 3 else "否",
        )
        for i, cap in ((1, 6500), (2, 6500), (3, 6500))
    ]
    jinyintan = [
        example_row(
            "shelters",
            shelter_id="BN-640302101-01",
            town_code="640302101",
            town_name="金银滩镇",
            effective_area_m2="40000",
            capacity_people="20000",
            responsible_unit="T101",
        )
    ]
    deployment.drop("shelters", "金积.csv", csv_bytes("shelters", jinji), unit="T100")
    deployment.drop("shelters", "胜利.csv", csv_bytes("shelters", shengli), unit="T107")
    deployment.drop("shelters", "金银滩.csv", csv_bytes("shelters", jinyintan), unit="T101")
    assert run_all(deployment).success
    rows = dict(
        (r[0], r[1:])
        for r in deployment.query(
            "SELECT town_code, hazard_no, hazard_grade, responsible_unit FROM hazards WHERE kind = 'shelter_capacity'"
        )
    )
    assert rows["640302100"] == ("BR-640302100-C02", "重大", "T100")
    assert rows["640302107"] == ("BR-640302107-C01", "一般", "T107")
    assert "640302101" not in rows
    capacity = dict(deployment.query("SELECT town_code, usable_capacity FROM v_shelter_capacity"))
    assert capacity["640302107"] == 13000 and capacity["640302101"] == 20000
    # the standing figure: a chart (its numbers beside it) and the briefing's line
    with open(deployment.output / "charts" / "shelter_capacity.csv", encoding="utf-8-sig") as f:
        chart = {r["乡镇"]: r for r in csv.DictReader(f)}
    assert len(chart) == 13 and chart["金积镇"]["需避难人数"] == "14700" and chart["金积镇"]["容量缺口"] == "8700"
    assert chart["金银滩镇"]["容量缺口"] == "0" and chart["扁担沟镇"]["可用避难容量"] == "0"
    text = "".join(p.extract_text() for p in PdfReader(deployment.output / "briefing" / "简报.pdf").pages)
    line = re.sub(r"\s+", "", text)
    assert "应急避难场所：全区可用容量39,000人，需避难123,000人；12个乡镇容量不足：高闸镇缺9,900人" in line
