"""Each defect kind is caught with the right Chinese message; each accepted spelling is normalised."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.intake.credit_code import check_char
from tests.conftest import csv_bytes, example_row


def _messages(deployment, row_no: int) -> list[str]:
    return [m for (m,) in deployment.query("SELECT message_zh FROM validation_failures WHERE row_no = ?", [row_no])]


def test_accepted_spellings_are_normalised(deployment):
    row = example_row(
        "buildings", floors_above="３", floor_area_m2="2,350.5平方米", year_built="1998年", retrofit_year="2010-05",
        retrofitted="Y", altered="无", visible_damage="N", falling_hazard="有", survey_date="2023年5月12日",
        design_intensity="0.20g", appraisal_grade="不详", site_class="Ⅱ类", tilt_permille="/",
        structure_type="土木", town_code="", town_name="金积镇",
    )  # fmt: skip
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [row], "gbk", "\r\n"))
    result = deployment.intake("buildings")["buildings"]
    assert (result.valid, result.quarantined) == (1, 0)
    got = deployment.query(
        "SELECT floors_above, floor_area_m2, year_built, retrofit_year, retrofitted, altered, visible_damage, "
        "falling_hazard, survey_date, design_intensity, appraisal_grade, site_class, tilt_permille, "
        "structure_type, town_code, row_no FROM stg_buildings"
    )
    assert got == [
        (3, 2350.5, 1998, 2010, True, False, False, True, dt.date(2023, 5, 12), "8", None, "II", None,
         "土木(生土)", "640302100", 2)
    ]  # fmt: skip


DEFECTS = [
    ({"floors_above": "三层"}, "“地上层数”为“三层”，格式不正确，应为整数"),
    ({"floors_above": "150"}, "“地上层数”为“150”，超出允许范围，应为整数，范围1–120"),
    ({"floor_area_m2": "-20"}, "“建筑面积(平方米)”为“-20”，超出允许范围"),
    ({"lon": "116.4"}, "“经度”为“116.4”，超出允许范围，应为数字，范围105.9–106.6"),
    ({"address": ""}, "“详细地址”为空，必填项为空"),
    ({"address": "未知"}, "“详细地址”为“未知”，必填项为空，或填写了无、/、不详、未知"),
    ({"use": "住房"}, "“房屋用途”为“住房”，不是允许的取值，应为：住宅、学校"),
    ({"structure_type": "木结构"}, "“结构类型”为“木结构”，不是允许的取值"),
    ({"town_code": "640399999", "town_name": ""}, "“乡镇代码”为“640399999”，“乡镇”为空，乡镇代码或名称不存在"),
    ({"town_name": "高闸镇"}, "“乡镇代码”为“640302100”，“乡镇”为“高闸镇”，乡镇代码与乡镇名称不一致"),
    ({"responsible_unit": "ABC"}, "“责任单位”为“ABC”，责任单位代码不存在"),
    ({"survey_date": "2023-13-45"}, "“调查日期”为“2023-13-45”，格式不正确，应为日期(年-月-日)"),
    ({"survey_date": "2099-01-01"}, "“调查日期”为“2099-01-01”，日期不合理：应在1950年之后且不晚于今天"),
    ({"year_built": "2025"}, "“建成年份”为“2025”，“调查日期”为“2023-05-12”，建成年份晚于调查日期"),
]


@pytest.mark.parametrize(("overrides", "message"), DEFECTS, ids=[m[:14] for _, m in DEFECTS])
def test_each_building_defect_is_refused_with_its_message(deployment, overrides, message):
    rows = [example_row("buildings", building_id="B1"), example_row("buildings", building_id="B2", **overrides)]
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", rows, "utf-8-sig", "\r\n"))
    result = deployment.intake("buildings")["buildings"]
    assert (result.valid, result.quarantined) == (1, 1)
    messages = _messages(deployment, 3)
    assert any(m.startswith("第3行：" + message) for m in messages), messages
    (file, row_no, record) = deployment.query("SELECT source_file, row_no, record_id FROM quarantine")[0]
    assert (file, row_no, record) == ("buildings/ZJJ/2023-1/a.csv", 3, "B2")


def test_duplicate_ids_conflict_and_exact_repeats(deployment):
    rows = [
        example_row("buildings", building_id="B1"),
        example_row("buildings", building_id="B1", floors_above="5"),  # conflict
        example_row("buildings", building_id="B2"),
        example_row("buildings", building_id="B2"),  # exact repeat
    ]
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", rows))
    result = deployment.intake("buildings")["buildings"]
    assert (result.valid, result.quarantined) == (1, 3)
    assert deployment.query("SELECT building_id, row_no FROM stg_buildings") == [("B2", 4)]
    checks = deployment.query("SELECT row_no, check_id FROM validation_failures ORDER BY row_no")
    assert checks == [(2, "id_conflict"), (3, "id_conflict"), (5, "exact_repeat")]
    assert "a.csv第2行、buildings/ZJJ/2023-1/a.csv第3行" in _messages(deployment, 2)[0]


def test_same_id_in_two_rounds_is_a_resurvey_not_a_duplicate(deployment):
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [example_row("buildings")]), rnd="2023-1")
    later = example_row("buildings", floors_above="4", survey_date="2024-05-01")
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [later]), rnd="2024-1")
    result = deployment.intake("buildings")["buildings"]
    assert (result.valid, result.quarantined) == (2, 0)


def test_bridge_span_longer_than_bridge(deployment):
    row = example_row("bridges", max_span_m="80", total_length_m="66.5")
    deployment.drop("bridges", "q.csv", csv_bytes("bridges", [row]))
    deployment.intake("bridges")
    assert _messages(deployment, 2) == ["第2行：“最大跨径(米)”为“80”，“桥梁全长(米)”为“66.5”，最大跨径大于桥梁全长"]


def test_credit_code_checksum_and_inventory_site_link(deployment):
    good = "91640302MA76XXXX0" + check_char("91640302MA76XXXX0")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    sites = [example_row("hazchem_sites", site_id=good), example_row("hazchem_sites", site_id=bad, name="乙")]
    deployment.drop("hazchem_sites", "s.csv", csv_bytes("hazchem_sites", sites), unit="YJJ")
    inventory = [example_row("hazchem_inventory", site_id=good), example_row("hazchem_inventory", site_id=bad)]
    deployment.drop("hazchem_inventory", "i.csv", csv_bytes("hazchem_inventory", inventory), unit="YJJ")
    results = deployment.intake("hazchem_sites", "hazchem_inventory")
    assert (results["hazchem_sites"].valid, results["hazchem_sites"].quarantined) == (1, 1)
    assert (results["hazchem_inventory"].valid, results["hazchem_inventory"].quarantined) == (1, 1)
    checks = deployment.query("SELECT kind, row_no, check_id FROM validation_failures ORDER BY ALL")
    assert checks == [
        ("hazchem_inventory", 3, "site_id:checksum"),
        ("hazchem_inventory", 3, "site_known"),
        ("hazchem_sites", 3, "site_id:checksum"),
    ]


def test_pipeline_town_list(deployment):
    ok = example_row("pipelines", segment_id="P1", town_codes="金积镇、640302104")
    bad = example_row("pipelines", segment_id="P2", town_codes="640302100;火星镇")
    deployment.drop("pipelines", "p.csv", csv_bytes("pipelines", [ok, bad]), unit="FGJ")
    deployment.intake("pipelines")
    assert deployment.query("SELECT segment_id, town_codes FROM stg_pipelines") == [("P1", "640302100;640302104")]
    assert "含有不存在的乡镇" in _messages(deployment, 3)[0]


def test_unreadable_file_is_reported_and_other_files_go_through(deployment):
    deployment.drop("buildings", "good.csv", csv_bytes("buildings", [example_row("buildings")]))
    headers = ["房屋编码", "详细地址"]
    deployment.drop("buildings", "short.csv", csv_bytes("buildings", [example_row("buildings")], headers=headers))
    deployment.drop("buildings", "old.xls", b"\xd0\xcf\x11\xe0 not supported")
    result = deployment.intake("buildings")["buildings"]
    assert result.valid == 1
    problems = dict(deployment.query("SELECT rel_path, problem_zh FROM intake_files WHERE status = 'unreadable'"))
    assert problems["buildings/ZJJ/2023-1/short.csv"].startswith("缺少必填列：“乡镇代码”，“经度”，“纬度”")
    assert "另存为.xlsx" in problems["buildings/ZJJ/2023-1/old.xls"]


def test_department_column_mapping(deployment):
    keys = [f for f in example_row("buildings")]
    row = example_row("buildings")
    headers = ["建筑物编号" if k == "building_id" else "层数" if k == "floors_above" else None for k in keys]
    from pipeline.registries.templates import load_template

    t = load_template("buildings")
    headers = [h or t.field(k).header for h, k in zip(headers, keys, strict=True)]
    deployment.drop("buildings", "wjj.csv", csv_bytes("buildings", [row], headers=headers), unit="WJJ")
    mapping = "本单位列名,模板列名\r\n建筑物编号,房屋编码\r\n层数,地上层数\r\n".encode("utf-8-sig")
    (deployment.data_raw / "buildings" / "WJJ" / "列映射.csv").write_bytes(mapping)
    result = deployment.intake("buildings")["buildings"]
    assert result.valid == 1
    assert deployment.query("SELECT building_id, floors_above FROM stg_buildings") == [("JZ-640302100-000001", 3)]


def test_mapping_to_an_unknown_template_column_refuses_the_file(deployment):
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [example_row("buildings")]), unit="WJJ")
    (deployment.data_raw / "buildings" / "WJJ" / "列映射.csv").write_text("本单位列名,模板列名\n层数,楼层\n", "utf-8")
    deployment.intake("buildings")
    (problem,) = deployment.query("SELECT problem_zh FROM intake_files")[0]
    assert problem == "列映射.csv第2行：模板列名“楼层”不是房屋建筑模板中的列"


def test_header_variants_are_matched(deployment):
    from pipeline.registries.templates import load_template

    t = load_template("buildings")
    variants = {"floor_area_m2": " 建筑面积（㎡） ", "height_m": "建筑高度（m）", "village": "村（社区）", "lon": "lon"}
    headers = [variants.get(f.key, f.header) for f in t.fields]
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [example_row("buildings")], headers=headers))
    assert deployment.intake("buildings")["buildings"].valid == 1
    assert deployment.query("SELECT floor_area_m2, height_m, village, lon FROM stg_buildings") == [
        (2350.5, 10.5, "金积村", 106.2135)
    ]
