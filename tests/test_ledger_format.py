"""The ledger as a clerk reads it (issue 11 §5): dates as dates, 整改率 as a percentage, 隐患描述 as a Chinese
sentence, the rule and its source, and a kind too big for one Excel sheet split over several. Every test reads
the written files back (csv, openpyxl)."""

from __future__ import annotations

import csv
import datetime as dt
import re
import time
from pathlib import Path

import duckdb
import openpyxl
import pytest

from pipeline.ledger import exports
from pipeline.ledger.describe import derived_labels, describe_evidence, evidence_labels
from pipeline.ledger.exports import export_ledger
from pipeline.ledger.model import HARM_ZH
from pipeline.platform import store
from pipeline.registries.templates import KINDS, load_template
from tests.test_ledger import A_DAMAGE, A_FALL, B_D, KIND_SHEETS, RULESET, building, round_one, survey

AS_OF = dt.date(2023, 9, 1)
FOUND = dt.date(2023, 5, 12)  # the survey date of tests.test_ledger's round one
CJK = re.compile(r"[\u4e00-\u9fff]")


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _sheet(path: Path, title: str) -> list[dict[str, openpyxl.cell.Cell]]:
    ws = openpyxl.load_workbook(path)[title]
    header = [c.value for c in ws[1]]
    return [dict(zip(header, row, strict=True)) for row in ws.iter_rows(min_row=2)]


def _export(deployment, out: Path, as_of: dt.date = AS_OF):
    with store.connect(deployment.db) as con:
        return export_ledger(con, as_of, out)


def test_dates_are_dates_in_the_csv_and_date_cells_in_the_xlsx(deployment, tmp_path):
    round_one(deployment)
    _export(deployment, tmp_path)
    text = (tmp_path / "隐患台账.csv").read_text(encoding="utf-8-sig")
    assert "00:00:00" not in text
    rows = {r["隐患编号"]: r for r in _csv(tmp_path / "隐患台账.csv")}
    assert (rows[B_D]["发现日期"], rows[B_D]["最近一次调查日期"], rows[B_D]["整改时限"]) == (
        "2023-05-12", "2023-05-12", "2024-05-11")  # fmt: skip
    assert rows[B_D]["批准延期至"] == rows[B_D]["验收日期"] == ""
    assert rows[A_FALL]["逾期天数"] == str((AS_OF - dt.date(2023, 6, 11)).days)  # a whole number, not 82.0

    cells = {r["隐患编号"].value: r for r in _sheet(tmp_path / "隐患台账.xlsx", "房屋建筑")}
    for column, expected in (("发现日期", FOUND), ("整改时限", dt.date(2024, 5, 11))):
        cell = cells[B_D][column]
        assert cell.is_date and cell.number_format == "yyyy-mm-dd"
        assert cell.value.date() == expected and cell.value.time() == dt.time(0)
    assert cells[B_D]["批准延期至"].value is None
    assert cells[A_FALL]["逾期天数"].value == (AS_OF - dt.date(2023, 6, 11)).days


def test_rectification_rate_is_a_percentage_in_the_csv_and_a_percent_cell_in_the_xlsx(deployment, tmp_path):
    round_one(deployment)  # three hazards in 金积镇, T100 responsible
    deployment.query("UPDATE hazards SET status = '已销号', accept_date = ? WHERE hazard_no = ?", [FOUND, A_FALL])
    _export(deployment, tmp_path)
    for name in ("乡镇汇总.csv", "责任单位汇总.csv"):
        (row,) = _csv(tmp_path / name)
        assert (row["发现隐患"], row["已销号"], row["整改率"]) == ("3", "1", "33.3%")
    (town,) = _sheet(tmp_path / "隐患台账.xlsx", "汇总")
    assert town["整改率"].value == pytest.approx(1 / 3, abs=1e-4)
    assert town["整改率"].number_format == "0.0%"
    assert town["发现隐患"].value == 3 and town["发现隐患"].number_format == "General"


def test_the_description_is_a_chinese_sentence_in_the_ledger_and_both_files(deployment, tmp_path):
    round_one(deployment)
    (name,) = deployment.query("SELECT asset_name FROM hazards WHERE hazard_no = ?", [A_DAMAGE])[0]
    expected = {
        A_DAMAGE: f"{name}：房屋有明显裂缝、变形或倾斜。依据：是否有明显裂缝、变形、倾斜为“是”，倾斜率(‰)为1.5。"
        + HARM_ZH["buildings"],
        A_FALL: f"{name}：女儿墙、出屋面烟囱等易坠落物。依据：女儿墙、出屋面烟囱等易坠落物为“是”。"
        + HARM_ZH["buildings"],
        B_D: f"{name}：房屋安全鉴定为D级（整幢危房）。依据：房屋安全鉴定等级为“D”。" + HARM_ZH["buildings"],
    }
    assert dict(deployment.query("SELECT hazard_no, description FROM hazards")) == expected
    _export(deployment, tmp_path)
    assert {r["隐患编号"]: r["隐患描述"] for r in _csv(tmp_path / "隐患台账.csv")} == expected
    sheet = _sheet(tmp_path / "隐患台账.xlsx", "房屋建筑")
    assert {r["隐患编号"].value: r["隐患描述"].value for r in sheet} == expected

    round_one(deployment)  # the same survey again: the description is state, and it does not move
    assert dict(deployment.query("SELECT hazard_no, description FROM hazards")) == expected
    (state,) = deployment.query("SELECT state->>'description' FROM hazard_events WHERE hazard_no = ?", [A_DAMAGE])[0]
    assert state == expected[A_DAMAGE]


def test_a_rule_views_derived_evidence_reads_with_its_label_from_the_data_file(deployment):
    """B05 (masonry over the storey limit) cites the town's intensity and the limit, columns of the view."""
    survey(deployment, "2023-1", [_masonry("JZ-M")])
    (text,) = deployment.query("SELECT description FROM hazards WHERE rule_id = 'B05'")[0]
    assert "结构类型为“砖混”" in text and "地上层数为8" in text
    assert f"{derived_labels()['masonry_max_storeys']}为" in text
    assert f"{derived_labels()['design_pga_g']}为0." in text
    assert not re.search(r"[{}\"]|\btrue\b|\bfalse\b|\d\.0(?!\d)|[a-z]+_[a-z]+", text)


def _masonry(bid: str) -> dict:
    return building(bid, structure_type="砖混", floors_above="8", height_m="24", ring_beam_tie_column="是",
                    town_code="640302100")  # fmt: skip


def test_evidence_values_in_chinese():
    con = duckdb.connect()
    ev = ('{"visible_damage": true, "retrofitted": false, "tilt_permille": 7.0, "height_m": 17.55, '
          '"design_pga_g": 0.3, "floors_above": 6, "use": null, "computed_grade": null, "structure_type": "砖混", '
          '"declared_q_differs": ["甲醇", "液氨"], "not_a_label": 2.5}')  # fmt: skip
    assert describe_evidence(con, "buildings", ev) == (
        "是否有明显裂缝、变形、倾斜为“是”，是否抗震加固为“否”，倾斜率(‰)为7，建筑高度(米)为17.55，"
        "所在乡镇设计基本地震加速度(g)为0.3，地上层数为6，房屋用途未填报，按GB 18218-2018核算的重大危险源等级无，"
        "结构类型为“砖混”，申报临界量与标准不一致的物质为“甲醇、液氨”，not_a_label为2.5"
    )
    assert describe_evidence(con, "pipelines", '{"fault_crossing": true}') == "是否穿越活动断层为“是”"
    bridge = '{"last_inspection": "2021-09-06", "years_since_inspection": 0.9172}'
    assert describe_evidence(con, "bridges", bridge) == "最近定期检查日期为2021-09-06，距最近定期检查(年)为0.92"
    assert describe_evidence(con, "buildings", "{}") is None  # no evidence: the description leaves 依据 out


def test_every_evidence_key_of_every_rule_has_a_chinese_label():
    labels = evidence_labels()
    missing = [(r.id, k) for r in RULESET.rules for k in r.evidence if (r.kind, k) not in labels]
    assert missing == []
    assert all(CJK.search(labels[(r.kind, k)][0]) for r in RULESET.rules for k in r.evidence)
    used = {k for r in RULESET.rules for k in r.evidence}
    assert set(derived_labels()) <= used, "evidence_labels.csv lists a key no rule cites"
    shadowed = [k for k in derived_labels() for kind in RULESET.kinds if kind in KINDS and load_template(kind).has(k)]
    assert shadowed == [], "a derived label for a template field: the template's header is used"


def test_describing_a_million_hazards_is_one_fast_statement():
    con = duckdb.connect()
    con.execute("""CREATE TABLE f AS SELECT 'buildings' AS kind,
        to_json({'structure_type': '砖混', 'floors_above': i % 9, 'height_m': (i % 300) / 10,
                 'site_design_intensity': 8.0, 'masonry_type_allowed': i % 2 = 0}) AS evidence
        FROM range(1000000) t(i)""")
    describe_evidence(con, "buildings", "{}")  # installs the macro
    start = time.perf_counter()
    con.execute("CREATE TABLE d AS SELECT evidence_zh(kind, evidence) AS text FROM f")
    assert time.perf_counter() - start < 15  # about half a second on a laptop; per-row Python takes minutes
    assert (
        con.execute("SELECT count(*) FROM d WHERE text LIKE '结构类型为“砖混”，地上层数为%'").fetchone()[0] == 1_000_000
    )


def test_the_rule_column_names_the_rule_and_its_basis(deployment, tmp_path):
    round_one(deployment)
    _export(deployment, tmp_path)
    rows = {r["隐患编号"]: r for r in _csv(tmp_path / "隐患台账.csv")}
    assert rows[B_D]["规则及依据"].startswith(  # the rule's Chinese citation (source.zh), as a clerk reads it
        "B01 房屋安全鉴定为D级（整幢危房）；依据：《危险房屋鉴定标准》（JGJ 125-2016）第6.3条"
    )
    for r in rows.values():  # the rule's title is Chinese whatever its source cites
        rule_id, title = r["规则及依据"].split("；依据：")[0].split(" ", 1)
        assert CJK.search(title) and rule_id in r["隐患编号"]
    assert all(CJK.search(r.title_zh) for r in RULESET.rules if r.hazard)


def test_a_kind_bigger_than_a_sheet_is_split_over_numbered_sheets(deployment, tmp_path, monkeypatch):
    rows = [building("JZ-A", falling_hazard="是", visible_damage="是"), building("JZ-B", appraisal_grade="D"),
            _masonry("JZ-M")]  # fmt: skip
    survey(deployment, "2023-1", rows)  # four building hazards or more: two sheets or more
    (n,) = deployment.query("SELECT count(*) FROM hazards WHERE kind = 'buildings'")[0]
    monkeypatch.setattr(exports, "EXCEL_MAX_ROWS", 3)  # header + 2 hazards a sheet
    export = _export(deployment, tmp_path)
    sheets = [f"房屋建筑({i})" for i in range(1, -(-n // 2) + 1)]
    district = openpyxl.load_workbook(tmp_path / "隐患台账.xlsx")  # a small ledger: the kinds are here too
    assert district.sheetnames == ["汇总", "责任单位汇总", "目录", *sheets, *KIND_SHEETS[1:], "说明"]
    town = openpyxl.load_workbook(tmp_path / "乡镇" / "隐患台账_金积镇.xlsx")  # every hazard is in 金积镇
    assert town.sheetnames == [*sheets, *KIND_SHEETS[1:], "说明"]
    for wb in (district, town):
        numbers = []
        for title in sheets:
            ws = wb[title]
            assert ws.max_row <= 3 and ws.freeze_panes == "A2"
            assert [c.value for c in ws[1]] == list(exports.SHEET_COLUMNS.values())
            assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(ws.max_column)}{ws.max_row}"
            numbers += [row[0].value for row in ws.iter_rows(min_row=2)]
        assert numbers == sorted(numbers) and len(numbers) == n == export.hazards
    assert [r["隐患编号"] for r in _csv(tmp_path / "隐患台账.csv")] == numbers  # the CSV has no row limit
