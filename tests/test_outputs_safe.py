"""Every file people open is safe: formulas from the data are neutralised in every CSV and XLSX, every
output is written to a temporary name and renamed (a failure half-way leaves the previous file whole and
no temporary file behind), and names with control characters draw without missing glyphs."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from matplotlib.figure import Figure
from openpyxl import Workbook

from pipeline.formats.excel_safe import BLANKS, neutralise, safe_cell, write_safe_csv
from pipeline.formats.xlsx_stream import StreamedWorkbook, streamed_workbook
from pipeline.intake import blank_templates
from pipeline.ledger.exports import EXPORT_FILES, export_ledger, write_sheet
from pipeline.platform import faults, store
from pipeline.publish.briefing import write_briefing
from pipeline.publish.charts import CHARTS_BY_NAME
from pipeline.publish.inputs import PublishInputs
from pipeline.publish.render import render_chart
from pipeline.publish.style import clip
from pipeline.registries.templates import load_template
from tests.test_ledger import building, survey

HYPERLINK = '=HYPERLINK("http://x","y")'
CMD = "+cmd|' /C calc'!A0"
AS_OF = dt.date(2023, 9, 1)


# --- the neutraliser ---------------------------------------------------------------------------


def test_blanks_are_every_character_str_strip_removes():
    """BLANKS stops at U+3000 (issue 30: start-up); no blank of this Python's Unicode lies above it."""
    every = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    assert BLANKS == every
    assert "\u3000" in BLANKS and " " in BLANKS


@pytest.mark.parametrize(
    "text",
    [HYPERLINK, CMD, "-1+cmd", "@SUM(A1)", "\t=1+1", "\r=1+1", "\n=1", " =1+1", "\u3000=1+1", "  +1+1", "＝1+1",
     "\tplain", "-", "=", "+86 139 0000 0000"],
)  # fmt: skip
def test_text_a_spreadsheet_would_run_gets_an_apostrophe(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["金积镇", "1+1", "a=b", "", "-12.5", "+3", " -2", "1e5", 0, -1, -2.5, None])
def test_plain_text_and_numbers_stay_as_they_are(value):
    assert safe_cell(value) == value
    assert type(safe_cell(value)) is type(value)


def test_neutralise_changes_text_cells_only():
    df = pd.DataFrame({"名称": [HYPERLINK, "ok", None], "n": [-1, 2, 3], "x": [-1.5, None, 2.0]})
    out = neutralise(df)
    assert out["名称"].tolist()[:2] == ["'" + HYPERLINK, "ok"] and pd.isna(out["名称"].iloc[2])
    assert out["n"].tolist() == [-1, 2, 3] and str(out["n"].dtype) == "int64"
    assert out["x"].iloc[0] == -1.5


def test_write_safe_csv_is_utf8_bom_and_keeps_negative_numbers(tmp_path):
    path = write_safe_csv(pd.DataFrame({"名称": ["-1+cmd", CMD], "值": [-1, 2]}), tmp_path / "a.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8-sig").splitlines() == ["名称,值", "'-1+cmd,-1", f"'{CMD},2"]


# --- the files the pipeline writes -------------------------------------------------------------


@pytest.fixture
def hostile(deployment):
    """A scored ledger where a building is named with a live formula and another after a DDE owner."""
    survey(deployment, "2023-1", [building("JZ-A", name=HYPERLINK, appraisal_grade="D"),
                                  building("JZ-B", name=CMD, owner=CMD, appraisal_grade="D")])  # fmt: skip
    return deployment


def _xlsx_strings(path: Path) -> list[str]:
    wb = openpyxl.load_workbook(path)
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert all(c.data_type != "f" for c in cells)  # not one formula cell
    return [c.value for c in cells if isinstance(c.value, str)]


def test_formulas_in_names_end_neutralised_in_top_assets_ledger_csv_and_xlsx(hostile, tmp_path):
    with store.connect(hostile.db) as con:
        chart = render_chart(CHARTS_BY_NAME["top_assets"], PublishInputs(con, AS_OF), tmp_path / "charts")
        export = export_ledger(con, AS_OF, tmp_path / "ledger")
    top = chart.csv.read_text(encoding="utf-8-sig")
    ledger_csv = (tmp_path / "ledger" / "隐患台账.csv").read_text(encoding="utf-8-sig")
    for text in (top, ledger_csv):
        assert "'=HYPERLINK(" in text and f"'{CMD}" in text
        assert ",=HYPERLINK" not in text and '"=HYPERLINK' not in text and f",{CMD}" not in text
    assert pd.read_csv(chart.csv, encoding="utf-8-sig")["名称"].tolist() == ["'" + HYPERLINK, "'" + CMD]
    for workbook in (export.files[0], *export.files[len(EXPORT_FILES) :]):  # the district's, the town's and the unit's
        strings = _xlsx_strings(workbook)
        assert "'" + HYPERLINK in strings and "'" + CMD in strings
        assert not any(s.lstrip().startswith(("=", "+", "-", "@")) for s in strings)
    assert [p.relative_to(tmp_path / "ledger").as_posix() for p in export.files] == [
        "隐患台账.xlsx", "隐患台账.csv", "隐患台账.parquet", "乡镇汇总.csv", "责任单位汇总.csv", "监管部门汇总.csv",
        "乡镇/隐患台账_金积镇.xlsx", "责任单位/隐患台账_T100.xlsx"]  # fmt: skip


def test_xlsx_keeps_negative_numbers_as_numbers(hostile, tmp_path):
    hostile.query("UPDATE hazards SET lon = -106.25 WHERE asset_id = 'JZ-A'")
    with store.connect(hostile.db) as con:
        export_ledger(con, AS_OF, tmp_path / "ledger")
    for path in (tmp_path / "ledger" / "隐患台账.xlsx", tmp_path / "ledger" / "乡镇" / "隐患台账_金积镇.xlsx"):
        ws = openpyxl.load_workbook(path)["房屋建筑"]
        lon_col = [c.value for c in ws[1]].index("经度")
        assert min(row[lon_col].value for row in ws.iter_rows(min_row=2)) == -106.25  # a number, not text
    with streamed_workbook(tmp_path / "s.xlsx", "t") as wb:
        write_sheet(wb, "汇总", ["差值", "说明"], [[-1, "-1+cmd"]])
    assert [c.value for c in openpyxl.load_workbook(tmp_path / "s.xlsx")["汇总"][2]] == [-1, "'-1+cmd"]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _files(out: Path) -> dict[Path, bytes]:
    return {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_a_failure_half_way_through_the_ledger_csv_leaves_the_previous_file_whole(hostile, tmp_path, monkeypatch):
    out = tmp_path / "ledger"
    with store.connect(hostile.db) as con:
        export_ledger(con, AS_OF, out)
    before = _files(out)
    assert len(before[Path("隐患台账.csv")].splitlines()) == 3  # header and two hazards

    seen: list[list[str]] = []

    def crash(name: str) -> None:  # LITONG_FAULT=ledger_exports:mid kills the process here
        if name == "ledger_exports:mid":
            seen.append([p.read_text(encoding="utf-8-sig") for p in out.glob(".隐患台账.*.tmp.csv")])
            raise RuntimeError("killed half-way")

    monkeypatch.setattr(faults, "point", crash)
    with store.connect(hostile.db) as con, pytest.raises(RuntimeError, match="half-way"):
        export_ledger(con, dt.date(2024, 9, 1), out)  # a later date: every cell of 逾期天数 would change
    assert len(seen) == 1 and len(seen[0]) == 1 and len(seen[0][0].splitlines()) == 1  # the header, no fragment yet
    assert _files(out) == before  # every file as it was: the CSV, the workbooks, the manifest
    assert _leftovers(out) == []


def test_the_next_export_removes_temporary_files_a_killed_writer_left(hostile, tmp_path):
    out = tmp_path / "ledger"
    out.mkdir()
    (out / ".隐患台账.abc123.tmp.csv").write_text("隐患编号\nJZ-")  # what kill -9 half-way leaves
    with store.connect(hostile.db) as con:
        export_ledger(con, AS_OF, out)
    assert _leftovers(out) == []


def _raise(error: Exception):
    raise error


def _failing_save(monkeypatch, cls, method: str) -> None:
    """Make `cls.method(self, path, ...)` leave half a file at `path` and fail, like a full disk."""
    original = getattr(cls, method)

    def half_then_fail(self, path, *args, **kwargs):
        original(self, path, *args, **kwargs)  # (lets openpyxl close its write-only sheets)
        Path(path).write_bytes(Path(path).read_bytes()[:100])
        raise OSError("disk full")

    monkeypatch.setattr(cls, method, half_then_fail)


def test_a_failing_chart_keeps_the_previous_png_and_csv(hostile, tmp_path, monkeypatch):
    out = tmp_path / "charts"
    with store.connect(hostile.db) as con:
        first = render_chart(CHARTS_BY_NAME["top_assets"], PublishInputs(con, AS_OF), out)
        png, csv = first.png.read_bytes(), first.csv.read_bytes()
        _failing_save(monkeypatch, Figure, "savefig")
        with pytest.raises(OSError):
            render_chart(CHARTS_BY_NAME["top_assets"], PublishInputs(con, AS_OF), out)
    assert first.png.read_bytes() == png and first.csv.read_bytes() == csv
    assert _leftovers(out) == []


def test_a_failing_briefing_keeps_the_previous_pdf(hostile, tmp_path, monkeypatch):
    pdf = tmp_path / "briefing" / "简报_2023-09-01.pdf"
    with store.connect(hostile.db) as con:
        write_briefing(PublishInputs(con, AS_OF), pdf)
        good = pdf.read_bytes()
        _failing_save(monkeypatch, Figure, "savefig")
        with pytest.raises(OSError):
            write_briefing(PublishInputs(con, AS_OF), pdf)
    assert pdf.read_bytes() == good and good.startswith(b"%PDF")
    assert _leftovers(pdf.parent) == []


def test_a_failing_ledger_xlsx_keeps_the_previous_one(hostile, tmp_path, monkeypatch):
    out = tmp_path / "ledger"
    with store.connect(hostile.db) as con:
        export_ledger(con, AS_OF, out)
        good = (out / "隐患台账.xlsx").read_bytes()
        monkeypatch.setattr(StreamedWorkbook, "write_package", lambda self: _raise(OSError("disk full")))
        with pytest.raises(OSError):
            export_ledger(con, AS_OF, out)
    assert (out / "隐患台账.xlsx").read_bytes() == good
    assert _leftovers(out) == []


def test_failing_blank_templates_keep_the_previous_ones(tmp_path, monkeypatch):
    template = load_template("buildings")
    xlsx = blank_templates.write_xlsx(template, tmp_path / "t.xlsx")
    csv = blank_templates.write_csv(template, tmp_path / "t.csv")
    good = xlsx.read_bytes(), csv.read_bytes()
    _failing_save(monkeypatch, Workbook, "save")
    with pytest.raises(OSError):
        blank_templates.write_xlsx(template, xlsx)
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        blank_templates.write_csv(template, csv)
    assert (xlsx.read_bytes(), csv.read_bytes()) == good
    assert _leftovers(tmp_path) == []


# --- labels ------------------------------------------------------------------------------------


def test_clip_cleans_control_characters_and_escapes_dollars():
    assert clip("金积镇\t中心\n小学\x07", 20) == "金积镇 中心 小学"
    assert clip("a\u200bb", 5) == "a b"
    assert clip("$\\frac$", 10) == r"\$\frac\$"  # never parsed as mathtext (that would raise)
    assert clip("一二三四五六", 4) == "一二三…"


def test_a_tab_or_dollars_in_a_name_draw_without_missing_glyphs(deployment, tmp_path):
    survey(deployment, "2023-1", [building("JZ-A", name="金积镇\t中心小学\x07", appraisal_grade="D"),
                                  building("JZ-B", name="$\\frac$ 仓库", appraisal_grade="D")])  # fmt: skip
    with store.connect(deployment.db) as con:
        names = [n for (n,) in con.execute("SELECT asset_name FROM scores ORDER BY asset_id").fetchall()]
        r = render_chart(CHARTS_BY_NAME["top_assets"], PublishInputs(con, AS_OF), tmp_path)
        write_briefing(PublishInputs(con, dt.date(2025, 1, 1)), tmp_path / "b.pdf")  # lists them as overdue
    assert "\t" in names[0]  # the name reached the scores as it was sent
    assert r.missing_glyphs == [] and r.shown_total == r.expected_total == 2
