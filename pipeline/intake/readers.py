"""Read one uploaded CSV or XLSX file into Arrow tables of text, one per sheet, rows numbered as
Excel shows them.

Files arrive as departments make them: Excel writes CSV as UTF-8, UTF-8 with BOM, GBK/GB18030
(Chinese Windows "CSV") or UTF-16 tab-delimited ("Unicode text"); government forms put a title
row and a 填报单位 row above the header; cells hold line breaks (Alt+Enter). So:

* the header row is chosen by the caller (`choose_header`, best match with a template) among
  the first `HEADER_SCAN_ROWS` rows; rows above it are ignored;
* a CSV is read by Arrow's CSV reader (fast, quoted line breaks allowed) when every record has
  the same number of fields, which is what Excel writes; any other file (ragged rows, a title
  row of one cell, odd quoting) is read exactly by Python's csv module, record by record;
* a value in a column without a header, right of the table (an unquoted comma shifts every
  later column), and a cell longer than `MAX_CELL_CHARS`, are row problems: the row is kept
  and refused later with the reason, the file's other rows are not affected.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import itertools
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

CHUNK = 1 << 20
HEADER_SCAN_ROWS = 10
MAX_CELL_CHARS = 2000  # longer is a pasting accident, not survey data
SHOWN_CHARS = 50  # how much of an over-long cell is kept (and shown on the receipt)
BATCH_ROWS = 50_000
ARROW_BLOCK = 1 << 24  # one CSV record must fit in a block, else the exact reader takes over
# A CSV larger than this is read record by record and handed to the database batch by batch (`Sheet.data` is
# then a RecordBatchReader, read once): one upload of millions of rows is never whole in memory.
STREAM_BYTES = 64 << 20
FLAGGED = "__flagged"  # in a streamed sheet: the row has a row problem (never taken as blank)
csv.field_size_limit(1 << 30)  # a 1 MB cell is a row problem, not a reader error

# The rows a clerk's form ends with, below the data: a total (合计 …) and the signature block (填表人 …). Matched on the
# row's first non-empty cell, spaces removed; the label may be followed by a colon or a bracket and what was written.
SUMMARY_LABEL = re.compile(r"(合计|小计|总计|共计)([:：(（].*)?", re.S)
SIGNATURE_LABEL = re.compile(
    r"(填表人|填报人|制表人|审核人|审批人|负责人|单位负责人|联系人|联系电话|填报日期|填表日期|报送日期|审核日期|"
    r"填报单位|单位盖章|签字|签名)([:：(（].*)?",
    re.S,
)

# Sheets of our own blank template that carry no records.
TEMPLATE_AUX_SHEETS = ("填写说明", "代码表", "取值")

HeaderChooser = Callable[[list[list[str | None]]], int]


class UnreadableFile(Exception):
    """The file cannot be read at all; the message is Chinese, for the department."""


class ExpandsTooLarge(UnreadableFile):
    """An XLSX (a zip) that would expand past the memory bound: refused before it is parsed (the portal's preview
    shows the message as the run's reason)."""


# --- bounds on an XLSX before it is parsed (a zip bomb: 6 MB that expand to 6 GB of one cell) --------------
# The parts a workbook may expand to in all, in MB (the reader holds the shared strings and the sheet's rows).
XLSX_MAX_EXPANDED_ENV = "LITONG_XLSX_MAX_EXPANDED_MB"
XLSX_MAX_EXPANDED_MB = 512  # ~350,000 rows of 37 columns; a larger survey comes as CSV (streamed)
# A part over XLSX_RATIO_GRACE bytes may expand at most this many times its compressed size (Apache POI's bound;
# Excel's own sheets compress about 5 to 20 times).
XLSX_MAX_RATIO = 100
XLSX_RATIO_GRACE = 1 << 20
# The longest text between two '<' in a part, in bytes: a cell's text, an attribute. Excel holds at most 32,767
# characters in a cell (~100 KB in UTF-8, escaped); longer is not a workbook Excel made.
XLSX_MAX_TEXT_BYTES = 4 << 20


@dataclass
class RowProblem:
    row_no: int
    column: str | None  # the source header of the cell, or None for the whole row
    problem_zh: str


@dataclass
class Sheet:
    """One table of an upload: its header and its data rows as text."""

    header: list[str]  # source headers, made unique; '' headers become `column<i>`
    header_row: int  # as Excel numbers it
    data: pa.Table | pa.RecordBatchReader  # `__row_no` (int32) + one string column per header (+ FLAGGED, streamed)
    sheet_name: str | None = None  # XLSX only
    encoding: str = "xlsx"
    problems: list[RowProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # Chinese, for the receipt (unnamed columns, skipped rows)

    streamed_rows: int = 0  # a streamed sheet: the records read so far (blank ones included)
    loaded_columns: set[str] | None = None  # the headers loaded (set before a streamed sheet is read)

    @property
    def streamed(self) -> bool:
        return isinstance(self.data, pa.RecordBatchReader)

    @property
    def found_headers(self) -> list[str]:
        return [h for h in self.header if not h.startswith("column")]


# --- encodings ------------------------------------------------------------------------------


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
    if not head:
        raise UnreadableFile("文件为空（0字节）：请在Excel中重新保存后上传")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _decodes_as(path, "utf-8"):
        return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    if _decodes_as(path, "gb18030"):
        return "gb18030"
    raise UnreadableFile("文件编码无法识别：请在Excel中“另存为”CSV UTF-8（逗号分隔）或XLSX格式后重新上传")


def _head_lines(path: Path, encoding: str, n: int = HEADER_SCAN_ROWS) -> list[str]:
    with open(path, encoding=encoding, newline="") as f:
        return [line for _, line in zip(range(n), f, strict=False)]


def sniff_delimiter(path: Path, encoding: str) -> str:
    """Tab for Excel's "Unicode text" (and any file whose first lines hold more tabs than commas)."""
    head = "".join(_head_lines(path, encoding))
    return "\t" if head.count("\t") > head.count(",") else ","


def read_text_rows(path: Path) -> tuple[list[list[str]], str]:
    """A small CSV (a department's 列映射.csv) as rows of text, in any encoding an upload may have."""
    encoding = detect_encoding(path)
    with open(path, encoding=encoding, newline="") as f:
        return list(csv.reader(f, delimiter=sniff_delimiter(path, encoding))), encoding


# --- CSV -----------------------------------------------------------------------------------


def read_csv(path: Path, choose_header: HeaderChooser) -> Sheet:
    """Read a CSV upload; `choose_header` picks the header among the first rows (0-based index)."""
    encoding = detect_encoding(path)
    delimiter = sniff_delimiter(path, encoding)
    if path.stat().st_size > STREAM_BYTES:
        return _stream_csv(path, encoding, delimiter, choose_header)
    grid = _arrow_grid(path, encoding, delimiter)
    if grid is not None:
        head = [list(r.values()) for r in grid.slice(0, HEADER_SCAN_ROWS).to_pylist()]
        h, header_cells = _header_index(head, choose_header)
        sheet = _sheet_from_grid(grid.slice(h + 1), header_cells, h + 1)
    else:
        sheet = _read_csv_exact(path, encoding, delimiter, choose_header)
    sheet.encoding = encoding
    return sheet


def _arrow_grid(path: Path, encoding: str, delimiter: str) -> pa.Table | None:
    """Every record as a row of text columns f0…fn, or None when the records are not all the same
    width (or Arrow cannot parse the file): the exact reader then handles it."""
    import pyarrow.csv as pacsv

    first = next(csv.reader(_head_lines(path, encoding, 1), delimiter=delimiter), None)
    if not first:
        return None
    names = [f"f{i}" for i in range(len(first))]
    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, encoding=_arrow_encoding(encoding),
                                           block_size=ARROW_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )  # fmt: skip
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeError):
        return None


def _arrow_encoding(encoding: str) -> str:
    # Arrow strips a UTF-8 BOM itself and decodes UTF-8 natively; other encodings go through Python.
    return "utf8" if encoding.startswith("utf-8") else encoding


def _read_csv_exact(path: Path, encoding: str, delimiter: str, choose_header: HeaderChooser) -> Sheet:
    """Record by record with Python's csv module: ragged rows, any quoting, exact record numbers."""
    with open(path, encoding=encoding, newline="") as f:
        records = enumerate(csv.reader(f, delimiter=delimiter), start=1)  # (record number, cells)
        head = list(itertools.islice(records, HEADER_SCAN_ROWS))
        h, header_no, header = _csv_header(head, choose_header)
        return _sheet_from_records(itertools.chain(head[h + 1 :], records), header, header_no)


def _csv_header(head: list[tuple[int, list[str]]], choose_header: HeaderChooser) -> tuple[int, int, list[str]]:
    """(index among the first records, record number, cells) of the header."""
    h, header_cells = _header_index([cells for _, cells in head], choose_header)
    return h, head[h][0], _trim_header(header_cells)


def _stream_csv(path: Path, encoding: str, delimiter: str, choose_header: HeaderChooser) -> Sheet:
    """Like `_read_csv_exact`, but the rows are a stream of batches the database reads once; each batch's row
    problems (values right of the header, over-long cells) go to `problems` as it passes, and its rows with
    one are marked in FLAGGED.

    The records are parsed by Arrow's streaming reader (as `_arrow_grid` parses a smaller file, ~10x faster than
    Python's csv module: issue 30, raw intake at 5 M) while they are all as wide as the header; from the first
    one that is not, Python's csv module goes on record by record, exactly."""
    with open(path, encoding=encoding, newline="") as f:
        head = list(itertools.islice(enumerate(csv.reader(f, delimiter=delimiter), start=1), HEADER_SCAN_ROWS))
    _, header_no, header = _csv_header(head, choose_header)
    width, names = len(header), _unique_names(header)
    schema = pa.schema([("__row_no", pa.int32()), *((n, pa.string()) for n in names), (FLAGGED, pa.bool_())])
    sheet = Sheet(names, header_no, pa.table({}), encoding=encoding, notes=_unnamed_notes(header, header_no))
    # Arrow skips lines, csv records: only when every record down to the header is one line
    lines_are_records = len(list(csv.reader(_head_lines(path, encoding, header_no), delimiter=delimiter))) == header_no

    def batch(numbers: pa.Array, columns: list[pa.Array], problems: list[RowProblem]) -> pa.RecordBatch:
        table = _cut_long_cells(pa.table([numbers, *columns], names=["__row_no", *names]), problems)
        flagged = sorted({p.row_no for p in problems if p.column is None or p.column in (sheet.loaded_columns or ())})
        sheet.problems.extend(problems)
        sheet.streamed_rows += len(numbers)
        mask = pc.is_in(numbers, value_set=pa.array(flagged, pa.int32()))
        return pa.RecordBatch.from_arrays([*(c.combine_chunks() for c in table.columns), mask], schema=schema)

    def python_batch(numbers: list[int], rows: list[list], problems: list[RowProblem]) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True)) if rows else [()] * width
        return batch(pa.array(numbers, pa.int32()), [pa.array(c, pa.string()) for c in columns], problems)

    def batches() -> Iterator[pa.RecordBatch]:
        done = header_no  # records passed on (or the header's)
        if lines_are_records:
            try:
                for b in _arrow_stream(path, encoding, delimiter, header_no, width):
                    yield batch(pa.array(range(done + 1, done + 1 + b.num_rows), pa.int32()), b.columns, [])
                    done += b.num_rows
                return
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeError):
                pass  # a record not as wide as the header: the exact reader goes on from it
        with open(path, encoding=encoding, newline="") as f:
            numbers, rows, problems = [], [], []
            for row_no, rec in enumerate(csv.reader(f, delimiter=delimiter), start=1):
                if row_no <= done:
                    continue
                numbers.append(row_no)
                rows.append(_fit_to_header(row_no, rec, width, problems))
                if len(rows) >= BATCH_ROWS:
                    yield python_batch(numbers, rows, problems)
                    numbers, rows, problems = [], [], []
            yield python_batch(numbers, rows, problems)

    sheet.data = pa.RecordBatchReader.from_batches(schema, batches())
    return sheet


def _arrow_stream(path: Path, encoding: str, delimiter: str, skip: int, width: int) -> Iterator[pa.RecordBatch]:
    """The records after the first `skip` lines as batches of `width` text columns; raises ArrowInvalid at the
    first record of another width (the batches before it are whole)."""
    import pyarrow.csv as pacsv

    names = [f"f{i}" for i in range(width)]
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip, encoding=_arrow_encoding(encoding),
                                       block_size=ARROW_BLOCK),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )  # fmt: skip
    yield from reader


# --- XLSX ----------------------------------------------------------------------------------


@contextmanager
def open_xlsx(path: Path):
    """The workbook, read-only; a file openpyxl cannot open is unreadable."""
    import openpyxl

    check_xlsx_bounds(path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except MemoryError as e:  # past the process's memory within the bounds: refused as too large, not as broken
        raise ExpandsTooLarge(
            f"文件展开后过大：“{path.name}”打开时超出服务器可用内存。请把文件拆分为几个较小的文件，"
            "或另存为CSV UTF-8后重新上传"
        ) from e
    except Exception as e:  # openpyxl raises many kinds for a broken file
        raise UnreadableFile(f"XLSX文件无法打开（{type(e).__name__}），请确认文件未损坏") from e
    try:
        yield wb
    finally:
        wb.close()


def xlsx_max_expanded_bytes() -> int:
    """The setting LITONG_XLSX_MAX_EXPANDED_MB (MB), XLSX_MAX_EXPANDED_MB when unset."""
    value = os.environ.get(XLSX_MAX_EXPANDED_ENV, "").strip()
    return int(float(value) * (1 << 20)) if value else XLSX_MAX_EXPANDED_MB << 20


def check_xlsx_bounds(path: Path) -> None:
    """Refuse a workbook that would expand past the bounds, before anything parses it: the XML parts' sizes in
    all and each one's compression ratio (as the zip's directory states them: reading a part never yields more
    than its stated size), then the longest text in each, streamed. Pictures and other binary parts are never
    read by the reader and are not counted. A file that is not a zip is left to openpyxl's own refusal."""
    try:
        package = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    with package:
        parts = [p for p in package.infolist() if _is_xml(package, p)]
        total, limit = sum(p.file_size for p in parts), xlsx_max_expanded_bytes()
        if total > limit:
            raise _too_large(path, f"解压后共{_mb(total, up=True)}（上限{_mb(limit)}）")
        for part in parts:
            if part.file_size > XLSX_RATIO_GRACE and part.file_size > XLSX_MAX_RATIO * max(part.compress_size, 1):
                ratio = part.file_size // max(part.compress_size, 1)
                raise _too_large(
                    path, f"其中一部分压缩了{ratio}倍（解压后{_mb(part.file_size, up=True)}），不是Excel保存的表格"
                )
        for part in parts:
            if _longest_text(package, part) > XLSX_MAX_TEXT_BYTES:
                raise _too_large(path, "其中有一个单元格的内容超过数百万个字符（Excel的单元格最多32767个字符）")


# Bytes never in the first bytes of an XML part (in UTF-8): C0 controls but tab, LF, CR, and bytes no UTF-8 text holds.
# Pictures (PNG, JPEG, GIF, BMP, EMF, TIFF) and OLE parts (vbaProject.bin) have some within their first 64 bytes.
BINARY_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\xc0\xc1\xf5-\xff]")


def _is_xml(package: zipfile.ZipFile, part: zipfile.ZipInfo) -> bool:
    """Whether the reader may parse the part as XML, by its first bytes, whatever its name: anything but a picture
    or other binary part (UTF-16 XML, with or without its byte order mark, counts as XML)."""
    try:
        with package.open(part) as f:
            head = f.read(64)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
        return False  # a damaged part: the reader says where
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"<\x00", b"\x00<")):
        return True
    return not BINARY_BYTES.search(head.removeprefix(codecs.BOM_UTF8))


def _too_large(path: Path, detail: str) -> ExpandsTooLarge:
    return ExpandsTooLarge(
        f"文件展开后过大：“{path.name}”{detail}，可能已损坏或被改动，为保护服务器未读取。"
        "请在Excel中打开，检查后另存为新的XLSX文件（或CSV UTF-8）再上传"
    )


def _mb(n: int, up: bool = False) -> str:
    """`n` bytes in MB, rounded down (a bound) or `up` (a size past it)."""
    return f"{-(-n >> 20) if up else n >> 20:,} MB"


def _longest_text(package: zipfile.ZipFile, part: zipfile.ZipInfo) -> int:
    """The longest run of bytes without a '<' in the part, read a chunk at a time (0 when it cannot be read:
    the reader reports that)."""
    import numpy as np

    longest = run = 0
    try:
        with package.open(part) as f:
            while chunk := f.read(CHUNK):
                marks = np.flatnonzero(np.frombuffer(chunk, np.uint8) == ord("<"))
                if not len(marks):
                    run += len(chunk)
                else:
                    inner = int(np.diff(marks).max()) - 1 if len(marks) > 1 else 0
                    longest = max(longest, run + int(marks[0]), inner)
                    run = len(chunk) - int(marks[-1]) - 1
                if run > XLSX_MAX_TEXT_BYTES:
                    return run
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
        return 0  # a damaged part: the reader says where
    return max(longest, run)


def sheet_names(wb) -> list[str]:
    """Visible sheets that may hold records, the data sheet 填报表 first."""
    names = [ws.title for ws in wb.worksheets if ws.sheet_state == "visible" and ws.title not in TEMPLATE_AUX_SHEETS]
    return sorted(names, key=lambda n: n != "填报表")


def head_rows(wb, name: str) -> list[list[str | None]]:
    """The first rows of a sheet, as text, to choose its header from."""
    return [[_cell_text(v) for v in row] for _, row in _sheet_rows(wb, name, HEADER_SCAN_ROWS)]


def read_sheet(wb, name: str, header_index: int, choose_header: HeaderChooser | None = None) -> Sheet:
    """One sheet, its header at `header_index` (0-based) of its rows; with `choose_header`, a header over two
    rows is read as one (`_two_row_header`)."""
    cells = None
    if choose_header is not None:
        header_index, cells = _two_row_header(head_rows(wb, name), header_index, choose_header)
    rows = _sheet_rows(wb, name)
    header: list[str] = []
    header_row = header_index + 1
    for excel_row, row in rows:
        if excel_row == header_row:
            # an empty cell (merged, a spacer column): ''
            header = _trim_header(cells if cells is not None else [_text(_cell_text(v)) for v in row])
            break
    if not header:
        raise UnreadableFile(f"工作表“{name}”为空")
    records = ((n, [_cell_text(v) for v in row]) for n, row in rows)
    sheet = _sheet_from_records(records, header, header_row)
    sheet.sheet_name = name
    return sheet


def _sheet_rows(wb, name: str, limit: int | None = None) -> Iterator[tuple[int, tuple]]:
    """(Excel row number, values); a damaged sheet or cell is the file's refusal, naming where."""
    last = 0
    try:
        for last, row in enumerate(wb[name].iter_rows(values_only=True, max_row=limit), start=1):  # noqa: B007
            yield last, row
    except UnreadableFile:
        raise
    except Exception as e:
        raise UnreadableFile(
            f"XLSX文件已损坏：工作表“{name}”第{last + 1}行无法读取（{type(e).__name__}，如数字格式的单元格中含有文字）。"
            "请在Excel中打开，检查该行后另存为新的XLSX文件再上传"
        ) from e


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


# --- shared: header, rows, problems --------------------------------------------------------


def _text(v: object) -> str:
    return "" if v is None else str(v)


def _header_index(head: list[list], choose_header: HeaderChooser) -> tuple[int, list[str]]:
    """(index of the header row among the first rows, its cells as text)."""
    if not any(_text(v).strip() for row in head for v in row):
        raise UnreadableFile("文件为空：前10行没有任何内容")
    return _two_row_header(head, choose_header(head), choose_header)


def _two_row_header(head: list[list], h: int, choose_header: HeaderChooser) -> tuple[int, list[str]]:
    """(index of the header row, its cells as text), the header chosen at `h` read over two rows when that names
    more template columns: a form's header often has the columns without a group merged down over two rows (their
    names in the upper row) and the grouped ones named in the lower row, under their group (基本信息 …). Each
    column's name is then the lower row's cell, or the upper row's where the lower one is empty; the lower row is
    the header row (data start below it). A title or group row adds no template column, and is left alone."""
    own = [_text(v) for v in head[h]]
    candidates = [(h, own)]
    if h > 0:
        candidates.append((h, _over_two_rows([_text(v) for v in head[h - 1]], own)))
    if h + 1 < len(head):
        candidates.append((h + 1, _over_two_rows(own, [_text(v) for v in head[h + 1]])))
    return candidates[choose_header([cells for _, cells in candidates])]  # the first of the best: `own` on a tie


def _over_two_rows(upper: list[str], lower: list[str]) -> list[str]:
    width = max(len(upper), len(lower))
    upper, lower = upper + [""] * (width - len(upper)), lower + [""] * (width - len(lower))
    return [low if low.strip() else up for up, low in zip(upper, lower, strict=True)]


def _trim_header(cells: list[str]) -> list[str]:
    """Header cells up to the last non-empty one: columns right of it have no header."""
    while cells and not cells[-1].strip():
        cells.pop()
    return cells


def _unique_names(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, cell in enumerate(header):
        name = cell.strip() or f"column{i}"
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n}")
    return out


def _unnamed_notes(header: list[str], header_row: int) -> list[str]:
    """A note naming the header row's empty cells (a spacer column, or 序号 merged down over a two-row header
    so that its name is in the row above): those columns are not read."""
    from openpyxl.utils import get_column_letter

    empty = [f"{get_column_letter(i + 1)}列" for i, cell in enumerate(header) if not cell.strip()]
    if not empty:
        return []
    return [f"表头（第{header_row}行）中{'、'.join(empty)}没有列名（空白列，或列名在合并单元格的上一行），这些列未读取"]


def _extra_values_problem(row_no: int, extras: list[str], width: int) -> RowProblem:
    shown = "、".join(f"“{_short(v)}”" for v in extras if v and v.strip())
    return RowProblem(
        row_no, None,
        f"此行在表头以外的列（第{width + 1}列起）还有内容{shown}：可能某个单元格中有英文逗号而未加引号，使其后各列错位；"
        "请检查此行，把内容放回对应的列后重新上传",
    )  # fmt: skip


def _short(v: str) -> str:
    return v if len(v) <= SHOWN_CHARS else v[:SHOWN_CHARS] + "…"


def _sheet_from_grid(grid: pa.Table, header_cells: list[str], header_row: int) -> Sheet:
    """Arrow's rectangular grid → a Sheet; values right of the header are row problems."""
    header = _trim_header(header_cells)
    width = len(header)
    row_no = pa.array(range(header_row + 1, header_row + 1 + grid.num_rows), pa.int32())
    problems = []
    if grid.num_columns > width:
        extra = grid.select(list(range(width, grid.num_columns)))
        mask = None
        for col in extra.columns:
            filled = pc.not_equal(pc.utf8_trim_whitespace(col), "")
            mask = filled if mask is None else pc.or_(mask, filled)
        for i in pc.indices_nonzero(mask).to_pylist():
            values = [extra.column(c)[i].as_py() for c in range(extra.num_columns)]
            problems.append(_extra_values_problem(row_no[i].as_py(), values, width))
    names = _unique_names(header)
    data = pa.table([row_no, *grid.columns[:width]], names=["__row_no", *names])
    return _with_long_cells_cut(Sheet(names, header_row, data, problems=problems,
                                      notes=_unnamed_notes(header, header_row)))  # fmt: skip


def _sheet_from_records(records: Iterator[tuple[int, list]], header: list[str], header_row: int) -> Sheet:
    """Numbered records → a Sheet, in batches; short rows are padded, long ones are row problems."""
    width = len(header)
    names = _unique_names(header)
    schema = pa.schema([("__row_no", pa.int32()), *((n, pa.string()) for n in names)])
    problems: list[RowProblem] = []
    batches, numbers, rows = [], [], []

    def flush() -> None:
        columns = list(zip(*rows, strict=True)) if rows else [()] * width
        arrays = [pa.array(numbers, pa.int32()), *(pa.array(c, pa.string()) for c in columns)]
        batches.append(pa.record_batch(arrays, schema=schema))
        numbers.clear()
        rows.clear()

    for row_no, rec in records:
        numbers.append(row_no)
        rows.append(_fit_to_header(row_no, rec, width, problems))
        if len(rows) >= BATCH_ROWS:
            flush()
    flush()
    data = pa.Table.from_batches(batches, schema=schema)
    return _with_long_cells_cut(Sheet(names, header_row, data, problems=problems,
                                      notes=_unnamed_notes(header, header_row)))  # fmt: skip


def _fit_to_header(row_no: int, rec: list, width: int, problems: list[RowProblem]) -> list:
    """The record padded or cut to the header's width; values right of the header are a row problem."""
    if len(rec) != width:
        if len(rec) > width and any(v and str(v).strip() for v in rec[width:]):
            problems.append(_extra_values_problem(row_no, rec[width:], width))
        rec = (list(rec) + [None] * width)[:width]
    return rec


def _with_long_cells_cut(sheet: Sheet) -> Sheet:
    """Cells over MAX_CELL_CHARS become row problems; the stored text keeps only its start."""
    sheet.data = _cut_long_cells(sheet.data, sheet.problems)
    sheet.problems.sort(key=lambda p: p.row_no)
    return sheet


def _cut_long_cells(data: pa.Table, problems: list[RowProblem]) -> pa.Table:
    """`data` with every cell over MAX_CELL_CHARS cut to its start, each such cell a row problem in `problems`."""
    columns = []
    for name, col in zip(data.column_names, data.columns, strict=True):
        if name != "__row_no" and col.null_count < len(col):
            lengths = pc.utf8_length(col)
            if (pc.max(lengths).as_py() or 0) > MAX_CELL_CHARS:
                too_long = pc.greater(lengths, MAX_CELL_CHARS)
                for i in pc.indices_nonzero(too_long).to_pylist():
                    n = lengths[i].as_py()
                    problems.append(RowProblem(data.column("__row_no")[i].as_py(), name,
                                               f"内容过长（{n}个字符，上限{MAX_CELL_CHARS}个）：请检查是否误粘贴了大段内容"))  # fmt: skip
                cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(col, 0, SHOWN_CHARS), "…(已截断)", "")
                col = pc.if_else(too_long, cut, col)
        columns.append(col)
    return pa.table(columns, names=data.column_names)


# --- the rows under the data ---------------------------------------------------------------


def skip_footer_rows(sheet: Sheet, columns: list[str], id_columns: list[str]) -> list[str]:
    """Drop the total (合计/小计/总计) and signature rows (填表人、审核人、联系电话、填报日期 …) a form ends with, and
    return the sheet's notes for the receipt, the skipped rows named.

    Only rows at the bottom of the data are looked at (from the last row up, passing blank ones, stopping at the
    first row that is not such a row), and a row is one only when its first non-empty cell is such a label and
    every record-id column (`id_columns`) is empty or a label itself: a record always has its id, so a real record
    is never skipped. `columns` are the source columns loaded (a row empty in all of them is blank, counted as
    such). A streamed sheet (a very large CSV, read once) keeps its rows."""
    if sheet.streamed or not sheet.data.num_rows:
        return sheet.notes
    data = sheet.data
    filled = None
    for name in columns:
        col = pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(data.column(name)), ""), False)
        filled = col if filled is None else pc.or_(filled, col)
    if filled is None:
        return sheet.notes
    summary, signature = [], []
    names = [n for n in data.column_names if n != "__row_no"]
    for i in reversed(pc.indices_nonzero(filled).to_pylist()):
        row = data.slice(i, 1).to_pylist()[0]
        label = _footer_label(row, names, id_columns)
        if label is None:
            break
        (summary if label == "summary" else signature).append(row["__row_no"])
    skipped = summary + signature
    if not skipped:
        return sheet.notes
    keep = pc.invert(pc.is_in(data.column("__row_no"), pa.array(skipped, pa.int32())))
    sheet.data = data.filter(keep)
    sheet.problems = [p for p in sheet.problems if p.row_no not in set(skipped)]
    parts = []
    if summary:
        parts.append(f"合计行（第{_row_list(summary)}行）")
    if signature:
        parts.append(f"签字栏（第{_row_list(signature)}行）")
    note = f"表格末尾的{'和'.join(parts)}不是调查记录，已跳过（共{len(skipped)}行，不计入数据行数）"
    return [*sheet.notes, note]


def _footer_label(row: dict, names: list[str], id_columns: list[str]) -> str | None:
    """'summary' or 'signature' when `row` is a total or signature row, else None."""
    first = next((name for name in names if row[name] and str(row[name]).strip()), None)
    if first is None:
        return None
    label = _label_of(row[first])
    if label is None:
        return None
    for name in id_columns:
        value = row.get(name)
        if name != first and value and value.strip() and _label_of(value) is None:
            return None  # a record id: a real record
    return label


def _label_of(text: str) -> str | None:
    compact = re.sub(r"\s+", "", text)
    if SUMMARY_LABEL.fullmatch(compact):
        return "summary"
    if SIGNATURE_LABEL.fullmatch(compact):
        return "signature"
    return None


def _row_list(rows: list[int]) -> str:
    return "、".join(str(n) for n in sorted(rows))
