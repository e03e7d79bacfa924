"""Real bytes, as Excel writes them: GBK, UTF-8 with BOM and CRLF, UTF-16, XLSX."""

from __future__ import annotations

import openpyxl
import pytest

from pipeline.intake.readers import UnreadableFile, detect_encoding, open_xlsx, read_csv, read_sheet
from tests.conftest import csv_bytes, example_row


def first_row(rows) -> int:
    return 0


def read_xlsx_rows(path, columns: list[str]) -> list[tuple]:
    with open_xlsx(path) as wb:
        sheet = read_sheet(wb, wb.sheetnames[0], 0)
    return [tuple(r[c] for c in columns) for r in sheet.data.to_pylist()]


@pytest.mark.parametrize(
    ("encoding", "newline", "expected"),
    [
        ("gbk", "\r\n", "gb18030"),
        ("utf-8-sig", "\r\n", "utf-8-sig"),
        ("utf-8", "\n", "utf-8"),
        ("utf-16", "\r\n", "utf-16"),
    ],
)
def test_csv_encodings_read_to_the_same_text(tmp_path, encoding, newline, expected):
    data = csv_bytes("buildings", [example_row("buildings", address="金积镇金积村三组12号")], encoding, newline)
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    assert detect_encoding(path) == expected
    data = read_csv(path, first_row).data.to_pylist()
    row = [(r["房屋编码"], r["详细地址"], r["是否抗震设防"]) for r in data]
    assert row == [("JZ-640302100-000001", "金积镇金积村三组12号", "是")]


def test_gbk_file_is_not_valid_utf8(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes("房屋编码,详细地址\r\nA,金积镇\r\n".encode("gbk"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    assert detect_encoding(path) == "gb18030"


def test_binary_garbage_is_unreadable_with_a_chinese_message(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(bytes([0x81, 0x20, 0xFF, 0xFE, 0x00, 0x81]) * 50)
    with pytest.raises(UnreadableFile, match="编码无法识别"):
        detect_encoding(path)


def test_xlsx_keeps_excel_row_numbers_and_cell_text(tmp_path):
    import datetime as dt

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["房屋编码", "地上层数", "调查日期", "建筑面积(平方米)"])
    ws.append(["A1", 3.0, dt.datetime(2023, 5, 12), 2350.5])
    ws.append([None, None, None, None])
    ws.append(["A2", 2, dt.date(2023, 6, 1), "1,200"])
    path = tmp_path / "f.xlsx"
    wb.save(path)
    rows = read_xlsx_rows(path, ["__row_no", "房屋编码", "地上层数", "调查日期", "建筑面积(平方米)"])
    assert rows == [
        (2, "A1", "3", "2023-05-12", "2350.5"),
        (3, None, None, None, None),
        (4, "A2", "2", "2023-06-01", "1,200"),
    ]


def test_broken_xlsx_is_unreadable(tmp_path):
    path = tmp_path / "f.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UnreadableFile, match="XLSX"), open_xlsx(path):
        pass


def test_arrow_and_exact_csv_readers_agree(tmp_path):
    """Excel's rectangular CSV goes through Arrow; anything else through Python's csv module. Both
    give the same cells and the same record numbers (quoted line breaks, blank lines, BOM)."""
    from pipeline.intake.readers import _read_csv_exact, sniff_delimiter

    text = '\ufeff房屋编码,详细地址,备注\r\nA1,"金积村\r\n三组",\r\n,,\r\nA2,"引号""内",x\r\n'
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode("utf-8"))
    fast = read_csv(path, first_row)
    exact = _read_csv_exact(path, "utf-8-sig", sniff_delimiter(path, "utf-8-sig"), first_row)

    def cells(sheet):
        return [{k: v or None for k, v in row.items()} for row in sheet.data.to_pylist()]

    assert fast.header == exact.header == ["房屋编码", "详细地址", "备注"]
    assert (
        cells(fast)
        == cells(exact)
        == [
            {"__row_no": 2, "房屋编码": "A1", "详细地址": "金积村\r\n三组", "备注": None},
            {"__row_no": 3, "房屋编码": None, "详细地址": None, "备注": None},
            {"__row_no": 4, "房屋编码": "A2", "详细地址": '引号"内', "备注": "x"},
        ]
    )
