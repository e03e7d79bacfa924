"""Cells that a spreadsheet would run as a formula are neutralised before any export: the one
neutraliser for every CSV and XLSX the project writes for people (OWASP "CSV Injection").

A text cell is neutralised (an apostrophe in front, so Excel shows it as text) when it starts with
a formula character (= + - @, or their full-width forms that a Chinese input method types), or with
a tab, carriage return, line feed or NUL, or with spaces followed by a formula character (Excel and
LibreOffice trim leading blanks on import). A text that is just a number ("-12.5") stays as it is,
and numbers stay numbers: only `str` values are ever changed.

A workbook cell also never holds a character XML 1.0 cannot write (the C0 controls but tab, line feed and carriage
return; U+FFFE, U+FFFF; openpyxl raises IllegalCharacterError on them): `xlsx_cell` shows each as U+FFFD (�), so a
NUL from a CSV or a vertical tab pasted from Word is visible where it was. Every XLSX cell goes through it (openpyxl
writers, and pipeline/formats/xlsx_stream.py, whose SQL form does the same); a CSV keeps them (CSV can hold them).

The same rule runs in Python (`safe_cell`) and in DuckDB (the macro `excel_safe_text(x)` that
`install_excel_safe` generates from the same constants), so a file DuckDB writes by COPY is neutralised
exactly as one written from Python; a test feeds both the same adversarial texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.platform.atomic import atomic_path

FORMULA_STARTS = ("=", "+", "-", "@", "＝", "＋", "－", "＠")
CONTROL_STARTS = ("\t", "\r", "\n", "\0")
# Characters no XLSX cell (XML 1.0) can hold: each is shown as REPLACEMENT
NOT_IN_XML = "".join(map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF]))
NOT_IN_XML_RE = re.compile("[" + re.escape(NOT_IN_XML) + "]")
REPLACEMENT = "\ufffd"
# ASCII digits only (re.ASCII): the same in Python's re and in DuckDB's RE2, whose \d is ASCII
PLAIN_NUMBER = re.compile(r"[+-]?(\d[\d,]*(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?", re.ASCII)
# the blanks str.lstrip() removes (U+3000, the ideographic space, among them), spelled out for SQL. None is above
# U+3000 (tests/test_outputs_safe.py checks it against every code point): scanning all 1.1 M took 0.2 s of every
# process's start-up.
LAST_BLANK = 0x3000
BLANKS = "".join(c for c in map(chr, range(LAST_BLANK + 1)) if c.isspace())


def is_formula_like(text: str) -> bool:
    """Would a spreadsheet read this text as a formula (or as the start of one)?"""
    if text.startswith(CONTROL_STARTS):
        return True
    stripped = text.lstrip(BLANKS)
    return stripped.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(stripped)


def safe_cell(value: object) -> object:
    """Prefix a text that a spreadsheet would read as a formula with an apostrophe; anything else as is."""
    if isinstance(value, str) and is_formula_like(value):
        return "'" + value
    return value


def visible_text(text: str) -> str:
    """`text` with each character a workbook cannot hold shown as �."""
    return NOT_IN_XML_RE.sub(REPLACEMENT, text)


def xlsx_cell(value: object) -> object:
    """A value for an XLSX cell: safe_cell, then every character a workbook cannot hold shown as �."""
    value = safe_cell(value)
    return visible_text(value) if isinstance(value, str) else value


def sql_text(chars: str | tuple[str, ...]) -> str:
    """A DuckDB literal for the text made of `chars` (quotes doubled; a NUL, which a literal cannot hold,
    as || chr(0)). A literal, not a chain of chr() calls: a query binds it once, not once per call."""
    parts = "".join(chars).replace("'", "''").split("\0")
    return " || chr(0) || ".join(f"'{p}'" for p in parts)


def _re2_class(chars: str | tuple[str, ...]) -> str:
    r"""An RE2 character class of `chars`, each written \x{hex} (nothing to escape)."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"


def excel_safe_macro_sql() -> str:
    """The DuckDB macro `excel_safe_text(x)`: is_formula_like and safe_cell for a VARCHAR, generated from
    CONTROL_STARTS, BLANKS, FORMULA_STARTS and PLAIN_NUMBER."""
    control = _re2_class(CONTROL_STARTS)
    formula = _re2_class(BLANKS) + "*" + _re2_class(FORMULA_STARTS)
    number = PLAIN_NUMBER.pattern.replace("'", "''")
    first_chars = sql_text(tuple(dict.fromkeys(CONTROL_STARTS + tuple(BLANKS) + FORMULA_STARTS)))
    return (
        "CREATE OR REPLACE TEMP MACRO excel_safe_text(x) AS\n"
        f"  CASE WHEN NOT contains({first_chars}, left(x, 1)) THEN x\n"  # the common case, without a regex
        f"       WHEN regexp_matches(x, '^{control}')\n"
        f"         OR (regexp_matches(x, '^{formula}')\n"
        f"             AND NOT regexp_full_match(ltrim(x, {sql_text(BLANKS)}), '{number}'))\n"
        "       THEN chr(39) || x ELSE x END"
    )


def install_excel_safe(con: duckdb.DuckDBPyConnection) -> None:
    """Creates `excel_safe_text(x)` on `con` (a temporary macro: works on a read-only snapshot too)."""
    con.execute(excel_safe_macro_sql())


def neutralise(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` with every text cell (and column name) through safe_cell; numbers and dates as they were."""
    out = df.copy()
    out.columns = [safe_cell(str(c)) for c in df.columns]
    for i in range(df.shape[1]):
        values = df.iloc[:, i]
        if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
            out.isetitem(i, pd.Series([safe_cell(v) for v in values], index=df.index, dtype=object))
    return out


def write_safe_csv(
    df: pd.DataFrame, path: Path, midway: Callable[[], None] | None = None, lineterminator: str = "\r\n"
) -> Path:
    """`df` as an Excel-safe CSV: UTF-8 with BOM (Excel opens it as Chinese), every text cell through
    safe_cell, written to a temporary file that is renamed into place (pandas formats the values).
    `midway` is called once after half of the rows are written, before the rename (the crash tests'
    fault point)."""
    safe = neutralise(df)
    half = len(safe) // 2
    with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8-sig", newline="") as f:
        safe.iloc[:half].to_csv(f, index=False, lineterminator=lineterminator)
        if midway:
            f.flush()
            midway()
        safe.iloc[half:].to_csv(f, index=False, header=False, lineterminator=lineterminator)
    return Path(path)
