"""Blank upload templates (XLSX and CSV) for every survey kind.

Everything about a column — header, required flag, type, allowed values, range, note
and example — comes from `pipeline.registries.templates` (i.e. `schemas/<kind>.yaml`); this
module only decides how to lay it out.

    python -m pipeline.intake.blank_templates --out output/templates
"""

from __future__ import annotations

import argparse
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from pipeline.formats.excel_safe import safe_cell, write_safe_csv
from pipeline.intake.ingest import FOLDER_ZH
from pipeline.platform.atomic import atomic_path
from pipeline.platform.paths import PROJECT_ROOT, output_dir
from pipeline.registries.templates import (
    TEMPLATE_KINDS,
    UNKNOWN_MARKERS,
    Field,
    Template,
    load_template,
    towns,
    units,
)

DATA_SHEET = "填报表"
GUIDE_SHEET = "填写说明"
CODES_SHEET = "代码表"
VALUES_SHEET = "取值"
LAST_DATA_ROW = 5000
INLINE_LIST_LIMIT = 255  # Excel's limit on an inline list formula
TITLE_LIMIT, MESSAGE_LIMIT = 32, 255  # Excel's limits on validation titles and messages
TEXT_FORMAT = "@"
REQUIRED_FONT = Font(bold=True, color="FF0000")
OPTIONAL_FONT = Font(bold=True)
INFO_FONT = Font(bold=True, color="808080")  # a column for reading only (the intake ignores it)
GUIDE_COLUMNS = ("列名", "英文键", "是否必填", "类型/取值", "说明", "示例")


def template_stem(template: Template) -> str:
    return f"{template.title}_{template.kind}_模板"


def template_files(out_dir: Path) -> list[Path]:
    """The files write_blank_templates writes into `out_dir`."""
    return [out_dir / f"{template_stem(load_template(k))}{ext}" for k in TEMPLATE_KINDS for ext in (".xlsx", ".csv")]


def templates_inputs() -> str:
    """What the templates are made from: the schemas, the towns and units (代码表), the code that lays them out."""
    from pipeline.platform import stage_inputs
    from pipeline.platform.paths import SCHEMAS_DIR

    return stage_inputs.fingerprint(
        stage_inputs.files_version(*sorted(SCHEMAS_DIR.glob("*.yaml"))),
        stage_inputs.reference_version("towns.csv", "units.csv"),
        stage_inputs.code_version("pipeline/intake"),
        stage_inputs.files_version(*(PROJECT_ROOT / "pipeline" / f for f in ("excel_safe.py", "atomic.py"))),
    )


def write_blank_templates(out_dir: Path) -> list[Path]:
    """Write `<title>_<kind>_模板.xlsx` and `.csv` for every kind; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for kind in TEMPLATE_KINDS:
        template = load_template(kind)
        stem = template_stem(template)
        paths.append(write_xlsx(template, out_dir / f"{stem}.xlsx"))
        paths.append(write_csv(template, out_dir / f"{stem}.csv"))
    return paths


# --- CSV ---------------------------------------------------------------------------


def write_csv(template: Template, path: Path) -> Path:
    """UTF-8 with BOM and CRLF line ends: the variant Excel opens without mojibake; Excel-safe, atomic."""
    example = pd.DataFrame([[fld.example for fld in template.fields]], columns=[fld.header for fld in template.fields])
    return write_safe_csv(example, path, lineterminator="\r\n")


# --- XLSX --------------------------------------------------------------------------


def write_xlsx(
    template: Template, path: Path, rows: Sequence[dict[str, str]] | None = None, info: Sequence[tuple[str, str]] = ()
) -> Path:
    """The blank template; with `rows` (field key -> value), a template pre-filled with them in place of
    the example row (e.g. a unit's feedback file with its hazard numbers). `info` (header, row key): columns for
    reading only, beside the first field (e.g. the object's name and the deadline beside the hazard number); the
    intake ignores them (their headers are no template's)."""
    wb = Workbook()
    ws = wb.active
    ws.title = DATA_SHEET
    shift = len(info)
    _write_data_sheet(ws, template, rows, shift)
    for i, (header, key) in enumerate(info, start=2):
        cell = ws.cell(row=1, column=i, value=safe_cell(header))
        cell.font = INFO_FONT
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for r, row in enumerate(rows or [], start=2):
            value = row.get(key)
            ws.cell(row=r, column=i, value=safe_cell(value) if isinstance(value, str) else value)
        ws.column_dimensions[get_column_letter(i)].width = 16
    _add_validations(wb, ws, template.fields, shift)
    _write_guide_sheet(wb.create_sheet(GUIDE_SHEET), template)
    _write_codes_sheet(wb.create_sheet(CODES_SHEET))
    if VALUES_SHEET in wb.sheetnames:  # keep the hidden list sheet last
        wb.move_sheet(VALUES_SHEET, offset=len(wb.sheetnames) - 1)
    wb.active = 0
    with atomic_path(path) as tmp:
        wb.save(tmp)
    return path


def _write_data_sheet(
    ws: Worksheet, template: Template, rows: Sequence[dict[str, str]] | None = None, shift: int = 0
) -> None:
    for col, fld in enumerate(template.fields, start=1):
        col += shift if col > 1 else 0  # room for reading-only columns beside the first field
        _write_header_cell(ws, col, fld)
        for r, row in enumerate([{f.key: f.example for f in template.fields}] if rows is None else rows, start=2):
            cell = ws.cell(row=r, column=col, value=safe_cell(row.get(fld.key)) or None)
            cell.number_format = TEXT_FORMAT
        letter = get_column_letter(col)
        ws.column_dimensions[letter].width = _column_width(fld.header, fld.example)
        ws.column_dimensions[letter].number_format = TEXT_FORMAT  # typed values stay text
    ws.freeze_panes = "A2"
    ws.row_dimensions[1].height = 30


def _write_header_cell(ws: Worksheet, col: int, fld: Field) -> None:
    cell = ws.cell(row=1, column=col, value=safe_cell(fld.header))
    cell.font = REQUIRED_FONT if fld.required else OPTIONAL_FONT
    cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    cell.number_format = TEXT_FORMAT
    comment = Comment(header_comment(fld), "模板")
    comment.width, comment.height = 260, 140
    cell.comment = comment


def header_comment(fld: Field) -> str:
    """Comment text of a header cell; the first line is 必填 or 选填."""
    lines = ["必填" if fld.required else "选填", f"填写：{fld.expected_zh()}"]
    if fld.note:
        lines.append(f"说明：{fld.note}")
    if fld.example:
        lines.append(f"示例：{fld.example}")
    return "\n".join(lines)


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _column_width(*texts: str) -> float:
    widest = max(_display_width(t) for t in texts)
    return float(min(max(widest + 2, 10), 40))


# --- drop-down lists ---------------------------------------------------------------


def _add_validations(wb: Workbook, ws: Worksheet, fields: Sequence[Field], shift: int = 0) -> None:
    for col, fld in enumerate(fields, start=1):
        col += shift if col > 1 else 0
        values = fld.allowed_values()
        if not values:
            continue
        letter = get_column_letter(col)
        dv = _list_validation(fld, _list_formula(wb, fld, values))
        dv.add(f"{letter}2:{letter}{LAST_DATA_ROW}")
        ws.add_data_validation(dv)


def _list_formula(wb: Workbook, fld: Field, values: Sequence[str]) -> str:
    inline = ",".join(values)
    if len(inline) <= INLINE_LIST_LIMIT and not any('"' in v or "," in v for v in values):
        return f'"{inline}"'
    return _values_range(wb, fld, values)


def _values_range(wb: Workbook, fld: Field, values: Sequence[str]) -> str:
    """Put the values in a column of the hidden sheet and return its absolute range."""
    if VALUES_SHEET in wb.sheetnames:
        sheet = wb[VALUES_SHEET]
        col = sheet.max_column + 1
    else:
        sheet = wb.create_sheet(VALUES_SHEET)
        sheet.sheet_state = "hidden"
        col = 1
    sheet.cell(row=1, column=col, value=safe_cell(fld.header))
    for row, value in enumerate(values, start=2):
        sheet.cell(row=row, column=col, value=safe_cell(value)).number_format = TEXT_FORMAT
    letter = get_column_letter(col)
    return f"{quote_sheetname(VALUES_SHEET)}!${letter}$2:${letter}${len(values) + 1}"


def _list_validation(fld: Field, formula: str) -> DataValidation:
    # A warning, not a stop: the parser also accepts aliases (Y/N, 有/无 …) and, in
    # optional columns, the unknown markers, so the clerk may override the list.
    return DataValidation(
        type="list",
        formula1=formula,
        allow_blank=True,
        showDropDown=False,  # False = show the in-cell arrow (OOXML naming is inverted)
        showErrorMessage=True,
        errorStyle="warning",
        errorTitle=_truncate(fld.header, TITLE_LIMIT),
        error=_truncate(f"请从下拉列表中选择：{fld.expected_zh()}", MESSAGE_LIMIT),
        promptTitle=_truncate(fld.header, TITLE_LIMIT),
        prompt=_truncate(fld.expected_zh(), MESSAGE_LIMIT),
        showInputMessage=True,
    )


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- 填写说明 and 代码表 -------------------------------------------------------------


def guide_intro(template: Template) -> list[str]:
    """Lines above the column table of the 填写说明 sheet."""
    depts = (
        "、".join(units().get(c, {}).get("unit_name", c) for c in template.departments)
        or "各责任单位（含企业），只报本单位负责的对象"
    )
    folder = FOLDER_ZH.get(template.kind, "调查轮次")
    markers = "、".join(m for m in UNKNOWN_MARKERS if m != "／")
    return [
        f"{template.title}（{template.title_en}）调查上传模板：在“{DATA_SHEET}”工作表填写，"
        f"第1行为表头（请勿修改），第2行为示例（上传前请删除或覆盖）。",
        f"填报单位：{depts}。红色加粗表头为必填列；鼠标悬停表头可查看填写要求。",
        f"{markers} 表示“不详/未知”，仅可用于选填列；必填列填写这些值视为未填。",
        f"上传位置：data_raw/{template.kind}/<单位代码>/<{folder}>/，"
        f"可保存为 xlsx 或 csv（UTF-8 或 GBK）。单位代码、乡镇代码见“{CODES_SHEET}”工作表。",
        "校验回执（每行通过或退回及原因）返回至 output/receipts/<单位代码>/。",
    ]


def guide_row(fld: Field) -> list[str]:
    return [
        fld.header,
        fld.key,
        "是" if fld.required else "否",
        fld.expected_zh(),
        fld.note,
        fld.example,
    ]


def _write_guide_sheet(ws: Worksheet, template: Template) -> None:
    intro = guide_intro(template)
    for line in intro:
        ws.append([safe_cell(line)])
    ws["A1"].font = Font(bold=True, size=12)
    ws.append([])
    ws.append(list(GUIDE_COLUMNS))
    header_row = ws.max_row
    for cell in ws[header_row]:
        cell.font = Font(bold=True)
    for fld in template.fields:
        ws.append([safe_cell(v) for v in guide_row(fld)])
        _format_guide_row(ws, ws.max_row, fld)
    for letter, width in zip("ABCDEF", (28, 22, 10, 50, 50, 24), strict=True):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)


def _format_guide_row(ws: Worksheet, row: int, fld: Field) -> None:
    for cell in ws[row]:
        cell.number_format = TEXT_FORMAT
        cell.alignment = Alignment(vertical="top", wrap_text=True)
    if fld.required:
        ws.cell(row=row, column=1).font = REQUIRED_FONT


def _write_codes_sheet(ws: Worksheet) -> None:
    _write_table(ws, 1, ("乡镇代码", "乡镇名称"), list(towns().items()))
    unit_rows = [(code, row["unit_name"]) for code, row in units().items()]
    _write_table(ws, 4, ("单位代码", "单位名称"), unit_rows)
    for letter, width in zip("ABCDE", (14, 30, 4, 12, 36), strict=True):
        ws.column_dimensions[letter].width = width


def _write_table(ws: Worksheet, first_col: int, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    for offset, header in enumerate(headers):
        ws.cell(row=1, column=first_col + offset, value=safe_cell(header)).font = Font(bold=True)
    for r, row in enumerate(rows, start=2):
        for offset, value in enumerate(row):
            cell = ws.cell(row=r, column=first_col + offset, value=safe_cell(value))
            cell.number_format = TEXT_FORMAT


# --- command line ------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="生成各类调查的空白上传模板（xlsx 与 csv）")
    parser.add_argument("--out", type=Path, default=output_dir() / "templates")
    args = parser.parse_args(argv)
    for path in write_blank_templates(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
