"""The intake stage through Dagster: materialize, asset checks, receipts, idempotency, versions."""

from __future__ import annotations

import dagster as dg
import openpyxl
import pytest

from pipeline.intake.assets import intake_assets
from pipeline.intake.blank_templates import write_blank_templates
from pipeline.registries.templates import KINDS, load_template
from tests.conftest import csv_bytes, example_row


def materialize(deployment) -> dg.ExecuteInProcessResult:
    return dg.materialize(intake_assets, resources={"store": deployment.resource()}, raise_on_error=False)


def checks(result) -> dict[str, bool]:
    return {f"{e.asset_key.to_user_string()}.{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}


def _two_building_files(deployment) -> None:
    good = [example_row("buildings", building_id=f"B{i}") for i in range(3)]
    bad = [example_row("buildings", building_id="C1"), example_row("buildings", building_id="C2", use="住房")]
    deployment.drop("buildings", "镇甲.csv", csv_bytes("buildings", good, "gbk", "\r\n"))
    deployment.drop("buildings", "镇乙.csv", csv_bytes("buildings", bad, "utf-8-sig", "\r\n"))


def test_materialize_writes_staging_quarantine_checks_and_receipts(deployment):
    _two_building_files(deployment)
    result = materialize(deployment)
    assert result.success
    c = checks(result)
    assert c["stg_buildings.files_readable"] and c["stg_buildings.rows_accounted_for"]
    assert c["stg_buildings.quarantine_share"] is False  # 1 of 5 refused: over the 10 % warning
    assert deployment.query("SELECT count(*) FROM stg_buildings") == [(4,)]
    assert deployment.query("SELECT source_file, row_no, record_id FROM quarantine") == [
        ("buildings/ZJJ/2023-1/镇乙.csv", 3, "C2")
    ]
    receipt = deployment.output / "receipts" / "ZJJ" / "buildings" / "2023-1" / "镇乙.csv_回执.xlsx"
    wb = openpyxl.load_workbook(receipt)
    summary = {r[0]: r[1] for r in wb["回执"].iter_rows(min_row=2, values_only=True)}
    assert (summary["数据行数"], summary["接收行数"], summary["退回行数"]) == (2, 1, 1)
    assert summary["报送单位"] == "利通区住房城乡建设和交通局"
    refused = list(wb["退回明细"].iter_rows(min_row=2, values_only=True))
    assert refused[0][:3] == (3, "C2", 1) and "“房屋用途”为“住房”" in refused[0][3]
    assert (deployment.output / "receipts" / "ZJJ" / "buildings" / "2023-1" / "镇甲.csv_回执.xlsx").exists()


def test_reingesting_the_same_files_adds_nothing(deployment):
    _two_building_files(deployment)
    materialize(deployment)
    before = deployment.query(
        "SELECT (SELECT count(*) FROM intake_files), (SELECT count(*) FROM raw_buildings), "
        "(SELECT count(*) FROM stg_buildings), (SELECT count(*) FROM quarantine)"
    )
    result = materialize(deployment)
    assert result.success
    md = result.asset_materializations_for_node("raw_buildings")[0].metadata
    assert md["rows_added"].value == 0 and md["unchanged_files"].value == 2
    after = deployment.query(
        "SELECT (SELECT count(*) FROM intake_files), (SELECT count(*) FROM raw_buildings), "
        "(SELECT count(*) FROM stg_buildings), (SELECT count(*) FROM quarantine)"
    )
    assert before == after == [(2, 5, 4, 1)]


def test_a_changed_file_is_a_new_version_and_replaces_the_old(deployment):
    _two_building_files(deployment)
    materialize(deployment)
    fixed = [example_row("buildings", building_id="C1"), example_row("buildings", building_id="C2", use="住宅")]
    deployment.drop("buildings", "镇乙.csv", csv_bytes("buildings", fixed, "utf-8-sig", "\r\n"))
    assert materialize(deployment).success
    versions = deployment.query(
        "SELECT version, is_current FROM intake_files WHERE rel_path LIKE '%镇乙.csv' ORDER BY version"
    )
    assert versions == [(1, False), (2, True)]
    assert deployment.query("SELECT count(*) FROM stg_buildings") == [(5,)]
    assert deployment.query("SELECT count(*) FROM quarantine") == [(0,)]
    assert deployment.query("SELECT count(*) FROM raw_buildings") == [(7,)]  # history is kept


def test_an_unreadable_file_warns_gets_a_receipt_and_stops_nothing(deployment):
    _two_building_files(deployment)
    deployment.drop("buildings", "坏文件.csv", bytes([0x81, 0x20, 0xFF, 0x00]) * 100)
    result = materialize(deployment)
    assert result.success  # a warning, not a blocking failure: the run goes on
    c = checks(result)
    assert c["stg_buildings.files_readable"] is False
    assert c["stg_buildings.rows_accounted_for"] is True
    (warning,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "files_readable" and not e.passed]
    assert warning.severity == dg.AssetCheckSeverity.WARN
    refused = warning.metadata["refused"].value
    assert (
        list(refused) == ["buildings/ZJJ/2023-1/坏文件.csv"]
        and "编码无法识别" in refused["buildings/ZJJ/2023-1/坏文件.csv"]
    )
    assert deployment.query("SELECT count(*) FROM stg_buildings") == [(4,)]  # the others went through
    wb = openpyxl.load_workbook(
        deployment.output / "receipts" / "ZJJ" / "buildings" / "2023-1" / "坏文件.csv_回执.xlsx"
    )
    summary = {r[0]: r[1] for r in wb["回执"].iter_rows(min_row=2, values_only=True)}
    assert summary["处理结果"].startswith("文件无法读取")
    assert "编码无法识别" in summary["文件问题"]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_blank_templates_round_trip_through_the_parser(deployment, tmp_path, suffix):
    written = write_blank_templates(tmp_path / "templates")
    for kind in KINDS:
        (template,) = [p for p in written if f"_{kind}_" in p.name and p.suffix == suffix]
        unit = load_template(kind).departments[0]  # a unit the template lists for this kind
        deployment.drop(kind, template.name, template.read_bytes(), unit=unit)
    result = materialize(deployment)
    assert result.success
    for kind in KINDS:
        assert deployment.query(f"SELECT count(*) FROM stg_{kind}") == [(1,)], kind
    assert deployment.query("SELECT count(*) FROM quarantine") == [(0,)]
