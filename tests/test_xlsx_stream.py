"""The streamed XLSX writer: rows rendered by DuckDB read back exactly as the same values rendered from
Python, through the one neutraliser, in a package openpyxl opens (styles, filters, links, title)."""

from __future__ import annotations

import datetime as dt
import zipfile
from decimal import Decimal

import duckdb
import openpyxl
import pytest

from pipeline.formats.xlsx_stream import (
    LEVEL_FILL,
    column_letter,
    fetch_xml,
    python_rows,
    row_xml_sql,
    streamed_workbook,
)

TEXTS = ["=1+2", "-1+cmd", "-12.5", " @SUM(A1)", "＝HYPERLINK(1)", "\tx", "a & b <c> \"d\" 'e'", "行1\n行2\r行3",
         "ctrl\x01\x1f\ufffe end", "  leading and trailing  ", "", None, "金积镇", "x" * 5000]  # fmt: skip
COLUMNS = ["name", "n", "x", "d", "ts", "ok", "amount", "level"]


def _rows() -> list[tuple]:
    rows = []
    for i, text in enumerate(TEXTS):
        rows.append((text, i - 3, (i - 5) * 1.25 if i != 4 else None, dt.date(2023, 1, 1) + dt.timedelta(days=37 * i),
                     dt.datetime(2023, 5, 1, 8, 30) + dt.timedelta(hours=i) if i % 3 else None, i % 2 == 0,
                     Decimal("12.34") if i % 4 else None, list(LEVEL_FILL)[i % 4] if i % 5 else None))  # fmt: skip
    return rows


def _read(path, title):
    ws = openpyxl.load_workbook(path)[title]
    return ws, [[c.value for c in row] for row in ws.iter_rows(min_row=2)]


@pytest.fixture
def table():
    con = duckdb.connect()
    con.execute("""CREATE TABLE t (rn INTEGER, name VARCHAR, n INTEGER, x DOUBLE, d DATE, ts TIMESTAMP,
                                    ok BOOLEAN, amount DECIMAL(10, 2), level VARCHAR)""")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [(i, *r) for i, r in enumerate(_rows())])
    yield con
    con.close()


def test_duckdb_and_python_render_the_same_cells(table, tmp_path):
    path = tmp_path / "t.xlsx"
    rows = _rows()
    header = COLUMNS[:-1]
    with streamed_workbook(path, "标题 & <测试>") as wb:
        xml, _ = python_rows([r[:-1] for r in rows], [r[-1] for r in rows], coloured=[0])
        wb.add_sheet("python", header, xml, len(rows))
        query = "SELECT * FROM t"
        row = row_xml_sql(table, query, level_column="level", coloured=["name"], hidden=["rn"])
        wb.add_sheet("duckdb", header, fetch_xml(table, f"SELECT {row} FROM ({query}) ORDER BY rn DESC"), len(rows))
    ws_py, from_python = _read(path, "python")
    ws_db, from_duckdb = _read(path, "duckdb")
    assert from_duckdb == from_python[::-1]  # the order of `order_by`
    names = [r[0] for r in from_python]
    assert names[:6] == ["'=1+2", "'-1+cmd", "-12.5", "' @SUM(A1)", "'＝HYPERLINK(1)", "'\tx"]
    assert names[6:10] == [
        "a & b <c> \"d\" 'e'",
        "行1\n行2\r行3",
        "ctrl\ufffd\ufffd\ufffd end",
        "  leading and trailing  ",
    ]
    assert names[10:] == [None, None, "金积镇", "x" * 5000]
    first = from_python[0]
    assert first[1:4] == [-3, -6.25, dt.datetime(2023, 1, 1)] and first[5] is True
    assert from_python[1][4] == dt.datetime(2023, 5, 1, 9, 30) and from_python[1][6] == pytest.approx(12.34)
    assert from_python[4][2] is None  # a NULL stays empty
    for ws in (ws_py, ws_db):
        assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:G{len(rows) + 1}"
        assert [c.font.b for c in ws[1]] == [True] * 7 and ws.column_dimensions["A"].width == 14
        dates = [row[3] for row in ws.iter_rows(min_row=2)]
        assert all(c.is_date and c.number_format == "yyyy-mm-dd" for c in dates)
        by_name = {row[0].value: row[0] for row in ws.iter_rows(min_row=2) if row[0].value}
        assert by_name["'-1+cmd"].fill.fgColor.rgb == "FF" + LEVEL_FILL["orange"]  # row 1: 'orange'
        assert by_name["'=1+2"].fill.fill_type is None  # row 0: no level
    assert openpyxl.load_workbook(path).properties.title == "标题 & <测试>"


def test_a_sheet_with_links_and_percent_and_an_empty_workbook(tmp_path):
    path = tmp_path / "links.xlsx"
    with streamed_workbook(path, "目录") as wb:
        xml, links = python_rows([["乡镇", 0.125, "乡镇/隐患台账_金积镇.xlsx"], ["单位", None, None]],
                                 formats={1: "0.0%"}, links=[2])  # fmt: skip
        wb.add_sheet("目录", ["类别", "整改率", "文件"], xml, 2, links)
        wb.add_sheet("空", ["a"], [], 0)
    wb = openpyxl.load_workbook(path)
    rows = list(wb["目录"].iter_rows(min_row=2))
    assert rows[0][1].value == 0.125 and rows[0][1].number_format == "0.0%"
    assert rows[0][2].hyperlink.target == rows[0][2].value == "乡镇/隐患台账_金积镇.xlsx"
    assert rows[1][2].value is None and rows[1][2].hyperlink is None
    assert wb["空"].max_row == 1 and wb["空"].auto_filter.ref is None
    empty = tmp_path / "empty.xlsx"
    with streamed_workbook(empty, "无"):
        pass
    assert openpyxl.load_workbook(empty).sheetnames == ["Sheet1"]


def test_a_failing_sheet_leaves_no_file(table, tmp_path):
    path = tmp_path / "t.xlsx"
    with pytest.raises(duckdb.Error), streamed_workbook(path, "x") as wb:
        wb.add_sheet("bad", ["a"], fetch_xml(table, "SELECT no_such_column FROM t"), 1)
    assert list(tmp_path.iterdir()) == []


def test_column_letters_and_a_valid_package(tmp_path):
    assert [column_letter(i) for i in (1, 26, 27, 52, 53, 702, 703)] == ["A", "Z", "AA", "AZ", "BA", "ZZ", "AAA"]
    path = tmp_path / "p.xlsx"
    with streamed_workbook(path, "p") as wb:
        wb.add_sheet("a'b", ["x"], python_rows([[1]])[0], 1)
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert "'a''b'!$A$1:$A$2" in z.read("xl/workbook.xml").decode()
