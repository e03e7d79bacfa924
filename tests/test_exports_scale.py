"""Exports that work at any size (issue 14): one workbook per town and per responsible unit under 乡镇/ and
责任单位/, rewritten only when what it shows changed; 隐患台账.xlsx as the district's summary with a 目录 of
working links; the whole ledger as CSV (DuckDB COPY, neutralised by the SQL form of the one neutraliser)
and Parquet. Every test reads the written files back."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
from pathlib import Path

import duckdb
import openpyxl
import pytest

from pipeline.formats.excel_safe import CONTROL_STARTS, FORMULA_STARTS, install_excel_safe, safe_cell
from pipeline.formats.xlsx_stream import LEVEL_FILL
from pipeline.ledger import exports
from pipeline.ledger.exports import EXPORT_FILES, LEDGER_COLUMNS, export_ledger
from pipeline.platform import store
from pipeline.platform.clock import as_of_label
from tests.test_ledger import KIND_SHEETS, building, survey

AS_OF = dt.date(2023, 9, 1)
HYPERLINK = '=HYPERLINK("http://x","y")'
TOWN_FILES = ["乡镇/隐患台账_金积镇.xlsx", "乡镇/隐患台账_金银滩镇.xlsx"]
UNIT_FILES = ["责任单位/隐患台账_JYJ.xlsx", "责任单位/隐患台账_T100.xlsx", "责任单位/隐患台账_T101.xlsx"]

ADVERSARIAL = [
    "=1+1", "+cmd", "-2", "-12.5", "@x", "＝1+1", "＋cmd", "－2", "＠x", " =1+1", "   =1", "\u3000=1", "\xa0+1",
    "\t=1", "\tplain", "\r=1", "\n=1", "\0x", "12%", "-12%", "+3", " -2", "1e5", "-1,000.5", ".5", "-.5e-3", "-１２",
    "", None, "金积镇", "a=b", "1+1", "-", "=", "+86 139 0000 0000", "'=x", HYPERLINK, "-1+cmd", "@SUM(A1)",
    "  ", "\u3000", "\u2003-2", "- 2", "−2",
]  # fmt: skip


def _texts() -> list[str | None]:
    """The adversarial list, and every blank prefix × start × rest combination."""
    starts = [*FORMULA_STARTS, *CONTROL_STARTS, "1", "金", "'", "%", "."]
    rests = ["", "1", "1+1", "12.5", "12%", "cmd", "1,000", "1e5", " 2", "5e", "1.2.3"]
    combos = ["".join(t) for t in itertools.product(["", " ", "\u3000", "\t", "\xa0 "], starts, rests)]
    return ADVERSARIAL + combos


def test_the_sql_neutraliser_gives_what_the_python_one_gives():
    con = duckdb.connect()
    install_excel_safe(con)
    texts = _texts()
    con.execute("CREATE TABLE t AS SELECT unnest($1::VARCHAR[]) AS x, unnest(range(len($1))) AS i", [texts])
    got = [x for (x,) in con.execute("SELECT excel_safe_text(x) FROM t ORDER BY i").fetchall()]
    assert len(got) == len(texts) > 500
    assert got == [safe_cell(x) for x in texts]
    assert got[:5] == ["'=1+1", "'+cmd", "-2", "-12.5", "'@x"]  # and both are right, not just alike


@pytest.fixture
def district(deployment):
    """Three hazards in two towns for three units."""
    survey(deployment, "2023-1", [
        building("JZ-A", name=HYPERLINK, falling_hazard="是", town_code="640302100", responsible_unit="T100"),
        building("JZ-B", appraisal_grade="D", town_code="640302101", town_name="金银滩镇", responsible_unit="JYJ"),
        building("JZ-C", appraisal_grade="D", town_code="640302101", town_name="金银滩镇", responsible_unit="T101"),
    ])  # fmt: skip
    return deployment


def _export(deployment, out: Path, as_of: dt.date = AS_OF, **kw):
    with store.connect(deployment.db) as con:
        return export_ledger(con, as_of, out, **kw)


def _numbers(path: Path) -> list[str]:
    wb = openpyxl.load_workbook(path)
    kinds = [ws for ws in wb.worksheets if ws.title != "说明"]
    return [row[0].value for ws in kinds for row in ws.iter_rows(min_row=2)]


def _state(out: Path) -> dict[str, tuple[int, bytes]]:
    return {rel: ((out / rel).stat().st_mtime_ns, (out / rel).read_bytes()) for rel in TOWN_FILES + UNIT_FILES}


def test_one_workbook_per_town_and_per_unit_with_its_hazards(district, tmp_path):
    export = _export(district, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in export.files[len(EXPORT_FILES) :]] == TOWN_FILES + UNIT_FILES
    assert _numbers(tmp_path / TOWN_FILES[0]) == ["JZ-A-B11"]
    assert _numbers(tmp_path / TOWN_FILES[1]) == ["JZ-B-B01", "JZ-C-B01"]
    assert [_numbers(tmp_path / rel) for rel in UNIT_FILES] == [["JZ-B-B01"], ["JZ-A-B11"], ["JZ-C-B01"]]
    town = openpyxl.load_workbook(tmp_path / TOWN_FILES[0])
    assert town.sheetnames == [*KIND_SHEETS, "说明"]
    assert town.properties.title == f"利通区地震风险隐患台账 金积镇（{as_of_label(AS_OF)}）"
    (row,) = list(town["房屋建筑"].iter_rows(min_row=2))
    header = [c.value for c in town["房屋建筑"][1]]
    assert row[header.index("资产名称")].value == "'" + HYPERLINK  # neutralised
    fill = row[header.index("风险等级")].fill  # coloured by its level
    assert fill.fill_type == "solid" and fill.fgColor.rgb[-6:] in LEVEL_FILL.values()
    assert row[header.index("发现日期")].is_date
    notes = {r[0].value: r[1].value for r in town["说明"].iter_rows(min_row=2)}
    assert notes["台账日期"] == as_of_label(AS_OF) and notes["范围"] == "乡镇：金积镇"


def test_the_district_workbook_lists_every_file_with_a_working_link(district, tmp_path):
    export = _export(district, tmp_path)
    wb = openpyxl.load_workbook(export.files[0])
    assert wb.sheetnames[:3] == ["汇总", "责任单位汇总", "目录"] and wb.sheetnames[-1] == "说明"
    rows = list(wb["目录"].iter_rows(min_row=2))
    assert [(r[0].value, r[1].value, r[3].value) for r in rows] == [
        ("乡镇", "640302100", 1), ("乡镇", "640302101", 2), ("责任单位", "JYJ", 1), ("责任单位", "T100", 1),
        ("责任单位", "T101", 1)]  # fmt: skip
    assert [r[4].hyperlink.target for r in rows] == [r[4].value for r in rows] == TOWN_FILES + UNIT_FILES
    assert all((export.files[0].parent / r[4].hyperlink.target).is_file() for r in rows)
    units = {r[0].value: r for r in wb["责任单位汇总"].iter_rows(min_row=2)}
    header = [c.value for c in wb["责任单位汇总"][1]]
    assert units["T100"][header.index("整改率")].number_format == "0.0%"


def test_a_large_ledger_keeps_its_rows_out_of_the_district_workbook(district, tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "SMALL_LEDGER_ROWS", 2)  # three hazards: "large"
    export = _export(district, tmp_path)
    wb = openpyxl.load_workbook(export.files[0])
    assert wb.sheetnames == ["汇总", "责任单位汇总", "目录", "说明"]
    assert "不含明细" in [r[1].value for r in wb["说明"].iter_rows(min_row=2) if r[0].value == "明细"][0]


def test_a_town_bigger_than_a_sheet_is_split_in_its_workbook(district, tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "EXCEL_MAX_ROWS", 2)  # header + 1 hazard a sheet
    _export(district, tmp_path)
    wb = openpyxl.load_workbook(tmp_path / TOWN_FILES[1])
    assert wb.sheetnames == ["房屋建筑(1)", "房屋建筑(2)", *KIND_SHEETS[1:], "说明"]
    assert [[r[0].value for r in wb[t].iter_rows(min_row=2)] for t in wb.sheetnames[:2]] == [["JZ-B-B01"], ["JZ-C-B01"]]


def test_only_the_workbooks_of_what_changed_are_written_again(district, tmp_path):
    first = _export(district, tmp_path)
    assert len(first.written) == 5 and first.skipped == []
    before = _state(tmp_path)

    again = _export(district, tmp_path)  # nothing changed
    assert again.written == [] and len(again.skipped) == 5
    assert _state(tmp_path) == before

    district.query("UPDATE hazards SET person = '王五' WHERE hazard_no = 'JZ-C-B01'")  # 金银滩镇, T101
    changed = _export(district, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in changed.written) == [
        "乡镇/隐患台账_金银滩镇.xlsx", "责任单位/隐患台账_T101.xlsx"]  # fmt: skip
    after = _state(tmp_path)
    for rel in TOWN_FILES + UNIT_FILES:
        assert (after[rel] == before[rel]) is (
            rel not in ("乡镇/隐患台账_金银滩镇.xlsx", "责任单位/隐患台账_T101.xlsx")
        )

    (tmp_path / TOWN_FILES[0]).unlink()  # deleted by hand
    restored = _export(district, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in restored.written] == [TOWN_FILES[0]]
    assert _numbers(tmp_path / TOWN_FILES[0]) == ["JZ-A-B11"]

    later = _export(district, tmp_path, as_of=dt.date(2023, 9, 2))  # a new date: overdue days and the label
    assert len(later.written) == 5


def test_a_town_without_hazards_loses_its_workbook(district, tmp_path):
    _export(district, tmp_path)
    district.query("UPDATE hazards SET status = '已撤销' WHERE hazard_no = 'JZ-A-B11'")  # withdrawn: not shown
    export = _export(district, tmp_path)
    assert not (tmp_path / TOWN_FILES[0]).exists() and not (tmp_path / "责任单位/隐患台账_T100.xlsx").exists()
    assert export.hazards == 2 and (tmp_path / TOWN_FILES[1]).exists()


def test_the_csv_by_copy_and_the_parquet_hold_every_hazard(district, tmp_path):
    export = _export(district, tmp_path)
    raw = export.files[1].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\xef\xbb\xbf") == 1
    with open(export.files[1], encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(LEDGER_COLUMNS.values())
        rows = list(reader)
    parquet = duckdb.connect().execute(f"SELECT * FROM '{export.files[2]}'").df()
    assert list(parquet.columns) == list(LEDGER_COLUMNS.values())
    assert [r["隐患编号"] for r in rows] == list(parquet["隐患编号"]) == ["JZ-A-B11", "JZ-B-B01", "JZ-C-B01"]
    assert rows[0]["资产名称"] == "'" + HYPERLINK and parquet["资产名称"][0] == HYPERLINK  # CSV for Excel only
    assert [r["发现日期"] for r in rows] == [d.isoformat() for d in parquet["发现日期"].dt.date]
    assert rows[0]["逾期天数"] == str((AS_OF - dt.date(2023, 6, 11)).days)


def test_the_csv_rewrites_only_the_fragments_whose_rows_changed(district, tmp_path):
    cache = tmp_path / "cache"
    first = _export(district, tmp_path / "ledger", cache_dir=cache)

    def fragments() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in cache.glob("*.csv")}

    before = fragments()
    assert len(before) == 2 and first.files[1].read_bytes().count(b"\n") == 4  # 金积镇 and 金银滩镇; header + 3
    district.query("UPDATE hazards SET person = '王五' WHERE hazard_no = 'JZ-C-B01'")  # 金银滩镇
    changed = _export(district, tmp_path / "ledger", cache_dir=cache)
    after = fragments()
    assert [name for name in before if after[name] != before[name]] == [max(before, key=before.get)]
    fresh = _export(district, tmp_path / "fresh")  # the same ledger exported afresh (fragments not kept)
    assert changed.files[1].read_bytes() == fresh.files[1].read_bytes()
    assert "王五" in changed.files[1].read_text(encoding="utf-8-sig")

    district.query("UPDATE hazards SET status = '已撤销' WHERE hazard_no = 'JZ-A-B11'")  # 金积镇 has none left
    emptied = _export(district, tmp_path / "ledger", cache_dir=cache)
    assert len(fragments()) == 1 and emptied.hazards == 2
    assert emptied.files[1].read_bytes() == _export(district, tmp_path / "fresh2").files[1].read_bytes()
    (cache / next(iter(fragments()))).write_text("edited by hand\n")
    again = _export(district, tmp_path / "ledger", cache_dir=cache)
    assert b"edited by hand" not in again.files[1].read_bytes()
    assert not any(p.name.startswith(".") for p in (tmp_path / "ledger").iterdir())  # the cache is elsewhere


def test_an_as_of_export_keeps_its_own_workbooks(district, tmp_path):
    _export(district, tmp_path)
    before = _state(tmp_path)
    export = _export(district, tmp_path, as_of=dt.date(2023, 8, 1), suffix="_2023-08-01")
    assert export.files[0] == tmp_path / "隐患台账_2023-08-01.xlsx"
    assert export.files[len(EXPORT_FILES)] == tmp_path / "隐患台账_2023-08-01" / TOWN_FILES[0]
    wb = openpyxl.load_workbook(export.files[0])
    links = [r[4].hyperlink.target for r in wb["目录"].iter_rows(min_row=2)]
    assert links[0] == "隐患台账_2023-08-01/" + TOWN_FILES[0] and all((tmp_path / link).is_file() for link in links)
    assert _state(tmp_path) == before  # today's workbooks untouched


def test_file_names_come_only_from_safe_reference_names(district, tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "towns", lambda: {"640302100": "../金积镇", "640302101": "金银滩镇"})
    with pytest.raises(ValueError, match="文件名"):
        _export(district, tmp_path)
