"""Cells that a spreadsheet would run as a formula are neutralised before any export: the one
neutraliser for every CSV and XLSX the project writes for people (OWASP "CSV Injection").

A text cell is neutralised (an apostrophe in front, so Excel shows it as text) when it starts with
a formula character (= + - @, or their full-width forms that a Chinese input method types), or with
a tab, carriage return, line feed or NUL, or with spaces followed by a formula character (Excel and
LibreOffice trim leading blanks on import). A text that is just a number ("-12.5") stays as it is,
and numbers stay numbers: only `str` values are ever changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipeline.atomic import atomic_path

FORMULA_STARTS = ("=", "+", "-", "@", "＝", "＋", "－", "＠")
CONTROL_STARTS = ("\t", "\r", "\n", "\0")
PLAIN_NUMBER = re.compile(r"[+-]?(\d[\d,]*(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?")


def is_formula_like(text: str) -> bool:
    """Would a spreadsheet read this text as a formula (or as the start of one)?"""
    if text.startswith(CONTROL_STARTS):
        return True
    stripped = text.lstrip()
    return stripped.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(stripped)


def safe_cell(value: object) -> object:
    """Prefix a text that a spreadsheet would read as a formula with an apostrophe; anything else as is."""
    if isinstance(value, str) and is_formula_like(value):
        return "'" + value
    return value


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
