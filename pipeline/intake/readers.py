"""Read one uploaded CSV or XLSX file into a DuckDB temp table of text columns.

Excel writes CSV as UTF-8, UTF-8 with BOM, GBK/GB18030 (Chinese Windows "CSV") or
UTF-16 ("Unicode text"). DuckDB reads UTF-8 only and cannot download its encodings
extension here, so anything else is transcoded to a temporary UTF-8 file first,
streaming, chunk by chunk.
"""

from __future__ import annotations

import codecs
import datetime as dt
import tempfile
from pathlib import Path

import duckdb

CHUNK = 1 << 20


class UnreadableFile(Exception):
    """The file cannot be read at all; the message is Chinese, for the department."""


def _decodes_as(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as f:
        try:
            while chunk := f.read(CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def detect_encoding(path: Path) -> str:
    """utf-8 (with or without BOM), utf-16, or gb18030 (a superset of GBK)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _decodes_as(path, "utf-8"):
        return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    if _decodes_as(path, "gb18030"):
        return "gb18030"
    raise UnreadableFile("文件编码无法识别：请在Excel中“另存为”CSV UTF-8（逗号分隔）或XLSX格式后重新上传")


def _transcode_to_utf8(path: Path, encoding: str, workdir: Path) -> Path:
    out = workdir / (path.stem + ".utf8.csv")
    with (
        open(path, encoding=encoding, newline="") as src,
        open(out, "w", encoding="utf-8", newline="") as dst,
    ):
        while chunk := src.read(CHUNK):
            dst.write(chunk)
    return out


def read_csv(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> str:
    """Load `path` into temp table `table` (all VARCHAR, file order kept). Returns the encoding."""
    encoding = detect_encoding(path)
    with tempfile.TemporaryDirectory(prefix="litong-") as tmp:
        source = path if encoding.startswith("utf-8") else _transcode_to_utf8(path, encoding, Path(tmp))
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_csv(?, "
                "header=true, all_varchar=true, null_padding=true, normalize_names=false, "
                "auto_detect=true)",
                [str(source)],
            )
        except duckdb.Error as e:
            raise UnreadableFile(f"文件无法按CSV格式读取（{_first_line(e)}）") from e
    return encoding


def _cell_text(value: object) -> str | None:
    """An Excel cell as the text a clerk sees: dates as YYYY-MM-DD, 3.0 as 3."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def read_xlsx(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> str:
    """Load the first sheet (or the one named 填报表) into temp table `table`.

    Rows are numbered as Excel numbers them; the header is the first non-empty row."""
    import openpyxl
    import pyarrow as pa

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a broken file
        raise UnreadableFile(f"XLSX文件无法打开（{type(e).__name__}），请确认文件未损坏") from e
    try:
        ws = wb["填报表"] if "填报表" in wb.sheetnames else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header, header_row = None, 0
        for header_row, row in enumerate(rows, start=1):  # noqa: B007
            if any(v not in (None, "") for v in row):
                header = [_cell_text(v) or f"column{i}" for i, v in enumerate(row)]
                break
        if header is None:
            raise UnreadableFile("XLSX文件的第一个工作表为空")
        columns: list[list[str | None]] = [[] for _ in header]
        excel_rows: list[int] = []
        for excel_row, row in enumerate(rows, start=header_row + 1):
            excel_rows.append(excel_row)
            for i in range(len(header)):
                columns[i].append(_cell_text(row[i]) if i < len(row) else None)
    finally:
        wb.close()
    arrow = pa.table(
        {"__excel_row": pa.array(excel_rows, pa.int32())}
        | {name: pa.array(col, pa.string()) for name, col in _dedupe(header, columns)}
    )
    con.register("__xlsx_upload", arrow)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM __xlsx_upload")
    con.unregister("__xlsx_upload")
    return "xlsx"


def _dedupe(header: list[str], columns: list[list]) -> list[tuple[str, list]]:
    seen: dict[str, int] = {}
    out = []
    for name, col in zip(header, columns, strict=True):
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append((name if n == 0 else f"{name}_{n}", col))
    return out


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200]
