"""Blank upload templates: generated from the schema, one XLSX and one CSV per kind."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from pipeline.intake.blank_templates import (
    CODES_SHEET,
    DATA_SHEET,
    GUIDE_SHEET,
    LAST_DATA_ROW,
    VALUES_SHEET,
    template_stem,
    write_blank_templates,
    write_xlsx,
)
from pipeline.registries.templates import TEMPLATE_KINDS as KINDS
from pipeline.registries.templates import Field, Template, load_template, towns, units

BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("templates")
    write_blank_templates(out)
    return out


def _xlsx(out_dir: Path, kind: str) -> Path:
    return out_dir / f"{template_stem(load_template(kind))}.xlsx"


def _csv(out_dir: Path, kind: str) -> Path:
    return out_dir / f"{template_stem(load_template(kind))}.csv"


def _row_values(ws: Worksheet, row: int, width: int) -> list[str]:
    return [ws.cell(row=row, column=c).value or "" for c in range(1, width + 1)]


def _validations_by_column(ws: Worksheet) -> dict[str, list]:
    """Column letter → data validations whose range starts at row 2 of that column."""
    found: dict[str, list] = {}
    for dv in ws.data_validations.dataValidation:
        for rng in dv.sqref.ranges:
            found.setdefault(get_column_letter(rng.min_col), []).append((dv, rng))
    return found


def test_returns_both_files_for_every_kind(tmp_path: Path) -> None:
    paths = write_blank_templates(tmp_path)
    expected = {tmp_path / f"{template_stem(load_template(k))}.{ext}" for k in KINDS for ext in ("xlsx", "csv")}
    assert set(paths) == expected
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert (tmp_path / "房屋建筑_buildings_模板.xlsx").is_file()


@pytest.mark.parametrize("kind", KINDS)
def test_xlsx_header_row_is_the_template_headers(out_dir: Path, kind: str) -> None:
    template = load_template(kind)
    wb = load_workbook(_xlsx(out_dir, kind))
    assert wb.sheetnames[0] == DATA_SHEET
    ws = wb[DATA_SHEET]
    headers = [c.value for c in ws[1]]
    assert headers == [f.header for f in template.fields]
    assert ws.freeze_panes == "A2"


@pytest.mark.parametrize("kind", KINDS)
def test_xlsx_example_row_is_text(out_dir: Path, kind: str) -> None:
    template = load_template(kind)
    ws = load_workbook(_xlsx(out_dir, kind))[DATA_SHEET]
    assert _row_values(ws, 2, len(template.fields)) == [f.example for f in template.fields]
    for col, fld in enumerate(template.fields, start=1):
        cell = ws.cell(row=2, column=col)
        assert cell.number_format == "@"
        if fld.example:
            assert isinstance(cell.value, str), fld.key
    assert ws.max_row == 2


def test_codes_stay_text(out_dir: Path) -> None:
    template = load_template("buildings")
    ws = load_workbook(_xlsx(out_dir, "buildings"))[DATA_SHEET]
    col = template.keys.index("town_code") + 1
    assert ws.cell(row=2, column=col).value == template.field("town_code").example


@pytest.mark.parametrize("kind", KINDS)
def test_required_headers_are_marked(out_dir: Path, kind: str) -> None:
    template = load_template(kind)
    ws = load_workbook(_xlsx(out_dir, kind))[DATA_SHEET]
    for col, fld in enumerate(template.fields, start=1):
        cell = ws.cell(row=1, column=col)
        assert cell.comment is not None, fld.key
        assert fld.expected_zh() in cell.comment.text
        if fld.note:
            assert fld.note in cell.comment.text
        is_red = cell.font.color is not None and str(cell.font.color.rgb).endswith("FF0000")
        assert cell.font.b
        assert is_red == fld.required, fld.key
        assert cell.comment.text.startswith("必填") == fld.required, fld.key


@pytest.mark.parametrize("kind", KINDS)
def test_csv_has_bom_crlf_and_same_headers(out_dir: Path, kind: str) -> None:
    template = load_template(kind)
    raw = _csv(out_dir, kind).read_bytes()
    assert raw.startswith(BOM)
    assert raw.count(b"\r\n") == 2
    assert b"\n" not in raw.replace(b"\r\n", b"")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows == [[f.header for f in template.fields], [f.example for f in template.fields]]


@pytest.mark.parametrize("kind", KINDS)
def test_enum_and_bool_columns_have_drop_downs(out_dir: Path, kind: str) -> None:
    template = load_template(kind)
    ws = load_workbook(_xlsx(out_dir, kind))[DATA_SHEET]
    by_col = _validations_by_column(ws)
    for col, fld in enumerate(template.fields, start=1):
        letter = get_column_letter(col)
        if not fld.allowed_values():
            assert letter not in by_col, fld.key
            continue
        [(dv, rng)] = by_col[letter]
        assert dv.type == "list"
        assert (rng.min_row, rng.max_row, rng.max_col) == (2, LAST_DATA_ROW, col)
        assert dv.formula1 == '"' + ",".join(fld.allowed_values()) + '"'


def test_buildings_use_drop_down(out_dir: Path) -> None:
    template = load_template("buildings")
    ws = load_workbook(_xlsx(out_dir, "buildings"))[DATA_SHEET]
    letter = get_column_letter(template.keys.index("use") + 1)
    [(dv, _)] = _validations_by_column(ws)[letter]
    assert dv.formula1.strip('"').split(",") == list(template.field("use").allowed_values())


def test_long_value_list_goes_to_hidden_sheet(tmp_path: Path) -> None:
    values = tuple(f"很长的取值名称第{i:03d}项" for i in range(40))
    long_enum = Field(key="long_enum", header="长列表", type="enum", values=values)
    base = load_template("buildings")
    template: Template = dataclasses.replace(base, fields=(*base.fields, long_enum))
    wb = load_workbook(write_xlsx(template, tmp_path / "long.xlsx"))
    hidden = wb[VALUES_SHEET]
    assert hidden.sheet_state == "hidden"
    assert wb.sheetnames[-1] == VALUES_SHEET
    assert [hidden.cell(row=r, column=1).value for r in range(2, len(values) + 2)] == list(values)
    letter = get_column_letter(len(template.fields))
    [(dv, _)] = _validations_by_column(wb[DATA_SHEET])[letter]
    assert dv.formula1 == f"'{VALUES_SHEET}'!$A$2:$A${len(values) + 1}"


@pytest.mark.parametrize("kind", KINDS)
def test_guide_sheet_explains_every_column(out_dir: Path, kind: str) -> None:
    template = load_template(kind)
    ws = load_workbook(_xlsx(out_dir, kind))[GUIDE_SHEET]
    rows = [[c if c is not None else "" for c in r] for r in ws.iter_rows(values_only=True)]
    start = rows.index(["列名", "英文键", "是否必填", "类型/取值", "说明", "示例"])
    intro = "\n".join(str(r[0]) for r in rows[:start])
    for text in ("未知", "不详", f"data_raw/{kind}/", "output/receipts/"):
        assert text in intro
    body = rows[start + 1 :]
    assert [r[0] for r in body] == [f.header for f in template.fields]
    for row, fld in zip(body, template.fields, strict=True):
        assert row == [
            fld.header,
            fld.key,
            "是" if fld.required else "否",
            fld.expected_zh(),
            fld.note,
            fld.example,
        ]


def test_codes_sheet_lists_towns_and_units(out_dir: Path) -> None:
    ws = load_workbook(_xlsx(out_dir, "bridges"))[CODES_SHEET]
    assert [ws["A1"].value, ws["B1"].value, ws["D1"].value, ws["E1"].value] == [
        "乡镇代码",
        "乡镇名称",
        "单位代码",
        "单位名称",
    ]
    town_rows = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(2, len(towns()) + 2)}
    assert town_rows == towns()
    unit_rows = {ws.cell(r, 4).value: ws.cell(r, 5).value for r in range(2, len(units()) + 2)}
    assert unit_rows == {code: row["unit_name"] for code, row in units().items()}


def test_cli_writes_into_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.intake.blank_templates import main

    assert main(["--out", str(tmp_path / "t")]) == 0
    assert len(list((tmp_path / "t").iterdir())) == 2 * len(KINDS)
    assert "模板.xlsx" in capsys.readouterr().out
