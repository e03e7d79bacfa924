"""Receipts (回执): one XLSX per uploaded file version, for the department that sent it.

`output/receipts/<unit>/<kind>/<file name>_回执.xlsx` says how many rows were accepted and
refused, and lists every refused row with every reason (file, row, column, value, what
was expected). A file that could not be read gets a receipt that says why.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath

import duckdb

from pipeline.excel_safe import safe_cell
from pipeline.intake.schema import load_template, units

RECEIPT_SUFFIX = "_回执.xlsx"


def receipt_path(receipts_dir: Path, rel_path: str, department: str | None) -> Path:
    p = PurePosixPath(rel_path)
    unit = department if department in units() else "_未识别单位"
    return receipts_dir / unit / p.parts[0] / f"{p.stem}{RECEIPT_SUFFIX}"


def _summary_rows(f: dict, accepted: int, refused: int) -> list[tuple[str, object]]:
    template = load_template(f["kind"])
    if f["status"] != "ingested":
        verdict = "文件无法读取，全部未接收，请修改后重新上传"
    elif refused == 0:
        verdict = "全部接收"
    else:
        verdict = f"部分退回：{refused}行未通过校验，请按“退回明细”修改后重新上传整个文件"
    unit = units().get(f["department"] or "", {}).get("unit_name", f["department"] or "未识别")
    return [
        ("文件", f["rel_path"]),
        ("调查类别", template.title),
        ("报送单位", unit),
        ("调查轮次", f["survey_round"] or ""),
        ("文件版本", f["version"]),
        ("文件指纹(SHA-256)", f["sha256"][:16]),
        ("接收时间", str(f["uploaded_at"])),
        ("回执生成时间", dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")),
        ("处理结果", verdict),
        ("数据行数", f["rows_read"] or 0),
        ("接收行数", accepted),
        ("退回行数", refused),
        ("空行(已忽略)", f["blank_rows"] or 0),
        ("未识别的列(已忽略)", "、".join(f["unknown_headers"] or []) or "无"),
        ("文件问题", f["problem_zh"] or "无"),
    ]


def write_receipt(con: duckdb.DuckDBPyConnection, f: dict, path: Path) -> dict:
    """Write one file's receipt; returns its counts."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    accepted = con.execute(f"SELECT count(*) FROM stg_{f['kind']} WHERE file_id = ?", [f["file_id"]]).fetchall()[0][0]
    refused_rows = con.execute(
        "SELECT row_no, record_id, n_reasons, reasons_zh FROM quarantine WHERE file_id = ? ORDER BY row_no",
        [f["file_id"]],
    ).fetchall()
    problems = con.execute(
        "SELECT row_no, record_id, headers_zh, values_raw, problem_zh FROM validation_failures "
        "WHERE file_id = ? ORDER BY row_no, check_id",
        [f["file_id"]],
    ).fetchall()
    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    sheets = [
        ("回执", ("项目", "内容"), _summary_rows(f, accepted, len(refused_rows))),
        ("退回明细", ("行号", "记录编码", "问题数", "退回原因"), refused_rows),
        ("问题明细", ("行号", "记录编码", "列", "填写值", "问题"), problems),
    ]
    for title, header, rows in sheets:
        ws = wb.create_sheet(title)
        ws.freeze_panes = "A2"
        ws.append([_bold(ws, h, bold) for h in header])
        for row in rows:
            ws.append([safe_cell(v) for v in row])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return {"accepted": accepted, "refused": len(refused_rows), "path": str(path)}


def _bold(ws, value: str, font):
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws, value=value)
    cell.font = font
    return cell


def write_receipts(con: duckdb.DuckDBPyConnection, receipts_dir: Path, kind: str) -> list[dict]:
    """A receipt for every current file version of `kind`."""
    cur = con.execute("SELECT * FROM intake_files WHERE kind = ? AND is_current ORDER BY rel_path", [kind])
    names = [d[0] for d in cur.description]
    files = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    out = []
    for f in files:
        path = receipt_path(receipts_dir, f["rel_path"], f["department"])
        out.append({"file": f["rel_path"], **write_receipt(con, f, path)})
    return out
