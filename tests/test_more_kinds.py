"""Issue 29 §1, §3: the survey kinds added as data (geological hazard points, shelters, reservoirs and dykes, water
supply) go from upload to ledger, charts and briefing; a town short of shelter capacity is a hazard of the town."""

from __future__ import annotations

import csv

import pytest

from tests.conftest import Deployment, csv_bytes, example_row, run_all

# kind → (folder unit, rows that open a hazard, the hazard number expected, the chart's 资产类别)
CASES = {
    "geohazards": (
        "ZRJ",
        [example_row("geohazards", stability="不稳定", threatened_people="150", monitor="无", monitoring_method="无")],
        {"DZ-640302103-001-G01", "DZ-640302103-001-G04"},
        "地质灾害隐患点",
    ),
}


def _ledger_csv(deployment: Deployment) -> list[dict[str, str]]:
    with open(deployment.output / "ledger" / "隐患台账.csv", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_new_kind_goes_from_upload_to_ledger_charts_and_briefing(tmp_path, kind):
    unit, rows, expected, kind_zh = CASES[kind]
    deployment = Deployment(tmp_path)
    deployment.drop(kind, "调查.csv", csv_bytes(kind, rows), unit=unit, rnd="2023-1")
    result = run_all(deployment)
    assert result.success
    hazards = {no for (no,) in deployment.query("SELECT hazard_no FROM hazards WHERE kind = ?", [kind])}
    assert expected <= hazards
    receipts = list((deployment.output / "receipts" / unit / kind).rglob("*回执*"))
    assert receipts, "every uploaded file has its receipt"
    ledger = _ledger_csv(deployment)
    assert {r["隐患编号"] for r in ledger if r["资产类别"] == kind_zh} >= expected
    with open(deployment.output / "charts" / "levels_by_town.csv", encoding="utf-8-sig") as f:
        assert kind_zh in {r["资产类别"] for r in csv.DictReader(f)}
    assert (deployment.output / "briefing" / "简报.pdf").stat().st_size > 0
