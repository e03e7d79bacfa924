"""XLSX workbooks streamed into their zip, the big sheets' rows rendered by DuckDB (issue 14).

Why not openpyxl or XlsxWriter for the ledger: both build every cell in Python, 130-200 µs for a row of the
ledger's 34 columns (measured here: 43,000 rows in 8.6 s with openpyxl's write-only mode, 5.7 s with
XlsxWriter's constant_memory mode), so one town's workbook at 1 M buildings took 20 s and a whole export
five minutes. A sheet is a list of SpreadsheetML <row> elements: DuckDB renders each row's element in one
vectorised expression (`row_xml_sql`) and Python only streams the Arrow buffer of those strings into the
zip (`fetch_xml`). Rows and cells carry no reference (ECMA-376 makes `r` optional; Excel, LibreOffice and
openpyxl place them in order), so a row is the same text on any sheet and any row number: the ledger
renders each hazard's row once for its town's and its unit's workbook. Small sheets (summaries, notes,
目录) are rendered from Python values by the same rules (`python_rows`):

- text as an inline string, through the one neutraliser (`excel_safe_text` in SQL, `safe_cell` in Python)
  and escaped for XML; the characters XML cannot hold (C0 controls but tab, line feed and carriage return;
  U+FFFE, U+FFFF) are shown as � (excel_safe.xlsx_cell), visibly where they were;
- numbers as numbers, dates as Excel's serial days in a yyyy-mm-dd cell, timestamps likewise;
- the row's level as a fill on the coloured columns, a percent format, a link to a relative path.

Every sheet has its header in bold and frozen, a filter over its rows and columns 14 characters wide. The
package around the sheets is fixed: content types, the workbook (sheet names, filter ranges), one styles
part and the core properties (the title). Written to a temporary name and renamed (atomic_path).
"""

from __future__ import annotations

import datetime as dt
import math
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import duckdb
import numpy as np
import pyarrow as pa

from pipeline.formats.excel_safe import NOT_IN_XML, REPLACEMENT, install_excel_safe, safe_cell, sql_text, visible_text
from pipeline.platform.atomic import atomic_path

LEVEL_FILL = {"red": "FFC7CE", "orange": "FFD8A8", "yellow": "FFF2A8", "blue": "C6DBF7"}
PERCENT_FORMAT = "0.0%"
PLAIN, BOLD, DATE, DATETIME, PERCENT, LINK = range(6)  # cell styles, in the order of CELL_XFS
FILL_STYLE = {level: 6 + i for i, level in enumerate(LEVEL_FILL)}
FORMAT_STYLE = {PERCENT_FORMAT: PERCENT}
COLUMN_WIDTH = 14
CHUNK_ROWS = 20_000  # rows fetched from DuckDB at a time
EXCEL_EPOCH = dt.date(1899, 12, 30)  # serial day 0 as Excel counts from 1900-03-01 on
TEXT_ENTITIES = {"\r": "&#13;"}  # a carriage return kept (XML readers turn a bare one into a line feed)

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
CT_SHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
REL_SHEET = f"{REL_NS}/worksheet"
REL_LINK = f"{REL_NS}/hyperlink"
FONT = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
CELL_XFS = [  # PLAIN, BOLD, DATE, DATETIME, PERCENT, LINK, then one fill per level
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>',
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>',
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>',
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>',
    '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>',
    '<xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" applyFont="1"/>',
    *(f'<xf numFmtId="0" fontId="0" fillId="{2 + i}" borderId="0" xfId="0" applyFill="1"/>' for i in range(len(LEVEL_FILL))),
]  # fmt: skip


def column_letter(index: int) -> str:
    """A, B, … Z, AA … for the 1-based column `index`."""
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def xml_text(text: str) -> str:
    """`text` as the content of an XML element: escaped, the characters XML cannot hold shown as �."""
    return escape(visible_text(text), TEXT_ENTITIES)


# --- cells from Python values ---------------------------------------------------------------------------


def cell_xml(value: object, style: int = PLAIN) -> str:
    """One cell (no reference: cells and rows are placed in the order they come, as ECMA-376 allows, so a
    hazard's row is the same text in every workbook): text neutralised and escaped, a number, a date or
    timestamp with its format, a boolean, or an empty cell that keeps the place of the next ones."""
    if isinstance(value, str):
        value = safe_cell(value)
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    s = f' s="{style}"' if style else ""
    if value is None or value == "":
        return f"<c{s}/>"
    if isinstance(value, bool):
        return f'<c{s} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float | Decimal):
        return f"<c{s}><v>{value}</v></c>"
    if isinstance(value, dt.datetime) and value.time() == dt.time() and value.tzinfo is None:
        value = value.date()  # a date that went through pandas
    if isinstance(value, dt.datetime):
        naive = value.replace(tzinfo=None)
        serial = (naive - dt.datetime.combine(EXCEL_EPOCH, dt.time())).total_seconds() / 86400
        return f'<c s="{DATETIME if style in (PLAIN, DATETIME) else style}"><v>{serial!r}</v></c>'
    if isinstance(value, dt.date):
        return f'<c s="{DATE if style in (PLAIN, DATE) else style}"><v>{(value - EXCEL_EPOCH).days}</v></c>'
    if hasattr(value, "item"):  # a numpy scalar
        return cell_xml(value.item(), style)
    return f'<c{s} t="inlineStr"><is><t xml:space="preserve">{xml_text(str(value))}</t></is></c>'


def python_rows(
    rows: Iterable[Sequence],
    levels: Iterable[str | None] | None = None,
    coloured: Iterable[int] = (),
    formats: dict[int, str] | None = None,
    links: Iterable[int] = (),
    first_row: int = 2,
    style: int = PLAIN,
) -> tuple[list[str], list[tuple[str, str]]]:
    """The <row> elements of `rows` (every cell in `style`), each row's level (`levels`) as the fill of
    its `coloured` columns (0-based), `formats` (column -> number format) on those columns, and the text of
    the `links` columns as a link to that relative path. Returns (rows, [(cell, target) of each link]), the
    link cells named as on a sheet whose first of these rows is row `first_row`."""
    styles = {i: FORMAT_STYLE[f] for i, f in (formats or {}).items()}
    coloured, links = set(coloured), set(links)
    out, hyperlinks = [], []
    pairs = ((row, None) for row in rows) if levels is None else zip(rows, levels, strict=True)
    for r, (row, level) in enumerate(pairs, start=first_row):
        cells = []
        for i, value in enumerate(row):
            cell_style = FILL_STYLE.get(level, style) if i in coloured else styles.get(i, style)
            if i in links and value:
                cell_style, _ = LINK, hyperlinks.append((f"{column_letter(i + 1)}{r}", str(value)))
            cells.append(cell_xml(value, cell_style))
        out.append(f"<row>{''.join(cells)}</row>")
    return out, hyperlinks


# --- rows rendered by DuckDB ----------------------------------------------------------------------------


def xml_text_sql(expr: str) -> str:
    """The SQL form of xml_text (same characters shown as �, same escapes). Most texts need none: one scan
    for a character that does, before the six that change it (a fifth of the time at 1 M buildings)."""
    inner = f"translate({expr}, {sql_text(NOT_IN_XML)}, {sql_text(REPLACEMENT * len(NOT_IN_XML))})"
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), *TEXT_ENTITIES.items()):
        inner = f"replace({inner}, chr({ord(char)}), '{entity}')"
    needs = "".join(f"\\x{{{ord(c):x}}}" for c in "&<>" + "".join(TEXT_ENTITIES) + NOT_IN_XML)
    return f"CASE WHEN regexp_matches({expr}, '[{needs}]') THEN {inner} ELSE {expr} END"


INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "DECIMAL")  # fmt: skip


def _cell_sql(column: str, column_type: str, style: str | None) -> str:
    """The SQL of one cell of column `column` (its DuckDB type), as cell_xml writes it; `style` is the SQL
    of a ` s="N"` attribute for a coloured column (None: not coloured)."""
    c, attr = f'"{column}"', style or "''"
    empty = f"'<c' || {attr} || '/>'"
    base = column_type.split("(")[0]
    if base == "DATE":
        value = f"'<c s=\"{DATE}\"><v>' || ({c} - DATE '{EXCEL_EPOCH}') || '</v></c>'"
    elif base.startswith("TIMESTAMP"):
        serial = f"(epoch({c}::TIMESTAMP) / 86400 + {(dt.date(1970, 1, 1) - EXCEL_EPOCH).days})"
        value = f"'<c s=\"{DATETIME}\"><v>' || {serial} || '</v></c>'"
    elif base == "BOOLEAN":
        value = f"'<c' || {attr} || ' t=\"b\"><v>' || {c}::INTEGER || '</v></c>'"
    elif base in ("DOUBLE", "FLOAT"):
        value = f"CASE WHEN isfinite({c}) THEN '<c' || {attr} || '><v>' || {c} || '</v></c>' ELSE {_text_sql(attr, f'{c}::VARCHAR')} END"
    elif base in INTEGER_TYPES:
        value = f"'<c' || {attr} || '><v>' || {c} || '</v></c>'"
    else:
        text = c if base == "VARCHAR" else f"{c}::VARCHAR"
        return f"CASE WHEN {text} IS NULL OR {text} = '' THEN {empty} ELSE {_text_sql(attr, text)} END"
    return f"CASE WHEN {c} IS NULL THEN {empty} ELSE {value} END"


def _text_sql(attr: str, text: str) -> str:
    escaped = xml_text_sql(f"excel_safe_text({text})")
    return f"'<c' || {attr} || ' t=\"inlineStr\"><is><t xml:space=\"preserve\">' || {escaped} || '</t></is></c>'"


def row_xml_sql(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: list | None = None,
    level_column: str | None = None,
    coloured: Iterable[str] = (),
    hidden: Iterable[str] = (),
) -> str:
    """The SQL expression of each row's <row> element over the columns of `query` (in their order, but the
    `hidden` ones); `level_column` (not shown) gives each row's level, its fill on the `coloured` columns.
    Installs excel_safe_text on `con`, which the expression uses."""
    install_excel_safe(con)
    described = con.execute(f"DESCRIBE SELECT * FROM ({query})", params or []).fetchall()
    not_shown = {level_column, *hidden}
    shown = [(name, kind) for name, kind, *_ in described if name not in not_shown]
    fill = " ".join(f"WHEN '{level}' THEN ' s=\"{style}\"'" for level, style in FILL_STYLE.items())
    style = f"CASE \"{level_column}\" {fill} ELSE '' END" if level_column else None
    coloured = set(coloured)
    cells = ", ".join(_cell_sql(name, kind, style if name in coloured else None) for name, kind in shown)
    return f"concat('<row>', {cells}, '</row>')"  # concat(): a third faster than a chain of ||


def fetch_xml(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> Iterator[bytes]:
    """The first column of `query`'s rows (rendered <row> elements, in its order), joined a chunk of
    CHUNK_ROWS rows at a time as UTF-8 bytes. An Arrow string column holds its values back to back in one
    buffer: that slice is the chunk, with no Python string made (half the time of a 60,000-row sheet)."""
    for batch in con.sql(query, params=params or None).to_arrow_reader(CHUNK_ROWS):
        column = batch.column(0)
        if column.type == pa.string() and len(column):
            _, offsets, data = column.buffers()
            ends = np.frombuffer(offsets, dtype=np.int32, count=len(column) + 1, offset=column.offset * 4)
            yield memoryview(data)[ends[0] : ends[-1]] if data is not None else b""
        else:
            yield "".join(v for v in column.to_pylist() if v is not None).encode()


# --- the package ----------------------------------------------------------------------------------------


@dataclass
class _Sheet:
    title: str
    n_columns: int
    n_rows: int  # data rows, the header not counted


@contextmanager
def streamed_workbook(path: Path, title: str) -> Iterator[StreamedWorkbook]:
    """A workbook written sheet by sheet into a zip at a temporary name, renamed into place when the block
    ends without an error (removed when it fails):

        with streamed_workbook(path, title) as wb:
            wb.add_sheet("汇总", header, rows, n_rows)
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        wb = StreamedWorkbook(package, title)
        yield wb
        wb.write_package()


@dataclass
class StreamedWorkbook:
    """The sheets written so far into `package`; see streamed_workbook."""

    package: zipfile.ZipFile
    title: str
    sheets: list[_Sheet] = field(default_factory=list)

    def add_sheet(
        self,
        title: str,
        header: Sequence[str],
        rows: Iterable[str | bytes | memoryview],
        n_rows: int,
        hyperlinks: Sequence[tuple[str, str]] = (),
    ) -> None:
        """A sheet of `header` (bold, frozen) and `rows`, the <row> elements from python_rows or fetch_xml
        (`n_rows` of them, for the filter's range); `hyperlinks` pairs a cell with its target."""
        number = len(self.sheets) + 1
        self.sheets.append(_Sheet(title, len(header), n_rows))
        last = f"{column_letter(max(1, len(header)))}{n_rows + 1}"
        head_rows, _ = python_rows([header], first_row=1, style=BOLD)
        with self.package.open(f"xl/worksheets/sheet{number}.xml", "w", force_zip64=True) as out:
            out.write(
                f'{XML_DECL}<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><dimension ref="A1:{last}"/>'
                '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
                'state="frozen"/><selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
                f'<sheetFormatPr defaultRowHeight="15"/><cols><col min="1" max="{max(1, len(header))}" '
                f'width="{COLUMN_WIDTH}" customWidth="1"/></cols><sheetData>{head_rows[0]}'.encode()
            )  # fmt: skip
            for chunk in rows:
                out.write(chunk.encode() if isinstance(chunk, str) else chunk)
            tail = "</sheetData>"
            if n_rows and header:
                tail += f'<autoFilter ref="A1:{last}"/>'
            if hyperlinks:
                tail += "<hyperlinks>" + "".join(f'<hyperlink ref="{ref}" r:id="rId{i}"/>' for i, (ref, _) in
                                                 enumerate(hyperlinks, start=1)) + "</hyperlinks>"  # fmt: skip
            out.write((tail + "</worksheet>").encode())
        if hyperlinks:
            rels = "".join(f'<Relationship Id="rId{i}" Type="{REL_LINK}" Target={quoteattr(target)} TargetMode="External"/>'
                           for i, (_, target) in enumerate(hyperlinks, start=1))  # fmt: skip
            self.package.writestr(f"xl/worksheets/_rels/sheet{number}.xml.rels",
                               f'{XML_DECL}<Relationships xmlns="{PKG_REL_NS}">{rels}</Relationships>')  # fmt: skip

    def write_package(self) -> None:
        if not self.sheets:  # a workbook has at least one sheet
            self.add_sheet("Sheet1", [], [], 0)
        z, sheets, n = self.package, self.sheets, len(self.sheets)
        overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{CT_SHEET}"/>'
                            for i in range(1, n + 1))  # fmt: skip
        z.writestr("[Content_Types].xml", f"""{XML_DECL}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\
<Default Extension="xml" ContentType="application/xml"/>\
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>\
<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>\
<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>\
{overrides}</Types>""")  # fmt: skip
        z.writestr("_rels/.rels", f"""{XML_DECL}<Relationships xmlns="{PKG_REL_NS}">\
<Relationship Id="rId1" Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/>\
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" \
Target="docProps/core.xml"/></Relationships>""")  # fmt: skip
        z.writestr("docProps/core.xml", f"""{XML_DECL}<cp:coreProperties \
xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" \
xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{xml_text(self.title)}</dc:title>\
<dc:creator>利通区地震风险隐患台账</dc:creator></cp:coreProperties>""")  # fmt: skip
        entries = "".join(f'<sheet name={quoteattr(s.title)} sheetId="{i}" r:id="rId{i}"/>'
                          for i, s in enumerate(sheets, start=1))  # fmt: skip
        names = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
            f"{xml_text(_quoted(s.title))}!$A$1:${column_letter(s.n_columns)}${s.n_rows + 1}</definedName>"
            for i, s in enumerate(sheets) if s.n_rows and s.n_columns
        )  # fmt: skip
        z.writestr("xl/workbook.xml", f"""{XML_DECL}<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}">\
<bookViews><workbookView/></bookViews><sheets>{entries}</sheets>\
{f"<definedNames>{names}</definedNames>" if names else ""}</workbook>""")  # fmt: skip
        rels = "".join(f'<Relationship Id="rId{i}" Type="{REL_SHEET}" Target="worksheets/sheet{i}.xml"/>'
                       for i in range(1, n + 1))  # fmt: skip
        z.writestr("xl/_rels/workbook.xml.rels", f"""{XML_DECL}<Relationships xmlns="{PKG_REL_NS}">{rels}\
<Relationship Id="rId{n + 1}" Type="{REL_NS}/styles" Target="styles.xml"/></Relationships>""")  # fmt: skip
        z.writestr("xl/styles.xml", styles_xml())


def _quoted(sheet_title: str) -> str:
    return "'" + sheet_title.replace("'", "''") + "'"


def styles_xml() -> str:
    """Fonts (plain, bold, link), the level fills, the date, timestamp and percent formats, CELL_XFS."""
    fills = "".join(f'<fill><patternFill patternType="solid"><fgColor rgb="FF{colour}"/><bgColor indexed="64"/>'
                    "</patternFill></fill>" for colour in LEVEL_FILL.values())  # fmt: skip
    return f"""{XML_DECL}<styleSheet xmlns="{MAIN_NS}"><numFmts count="3">\
<numFmt numFmtId="164" formatCode="yyyy-mm-dd"/><numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/>\
<numFmt numFmtId="166" formatCode="{PERCENT_FORMAT}"/></numFmts>\
<fonts count="3"><font>{FONT}</font><font><b/>{FONT}</font><font><u/><color rgb="FF0563C1"/>{FONT}</font></fonts>\
<fills count="{2 + len(LEVEL_FILL)}"><fill><patternFill patternType="none"/></fill>\
<fill><patternFill patternType="gray125"/></fill>{fills}</fills>\
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>\
<cellXfs count="{len(CELL_XFS)}">{"".join(CELL_XFS)}</cellXfs>\
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>"""
