"""Charts and the briefing: built from the sample and from an empty ledger, with every glyph drawn
and totals that add up; the briefing is one A4 page carrying the headline numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from pypdf import PdfReader

from pipeline.ledger.exports import ledger_rows
from pipeline.platform import store
from pipeline.platform.clock import district_today, sample_as_of
from pipeline.publish import style
from pipeline.publish.briefing import write_briefing
from pipeline.publish.charts import CHARTS, CHARTS_BY_NAME
from pipeline.publish.inputs import PublishInputs
from pipeline.publish.render import render_chart

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_chart_of_the_sample_run_is_written_and_its_checks_pass(sample):
    deployment, result = sample
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    for chart in CHARTS:
        png = deployment.output / "charts" / f"{chart.name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000, chart.name
        assert checks[(f"chart_{chart.name}", "numbers_add_up")], chart.name
        assert checks[(f"chart_{chart.name}", "all_glyphs_drawn")], chart.name
        shown_in_ui = result.asset_materializations_for_node(f"chart_{chart.name}")[0].metadata["chart"].value
        assert shown_in_ui.startswith("![chart](data:image/png;base64,") and len(shown_in_ui) < 200_000, chart.name


@pytest.mark.parametrize("chart", CHARTS, ids=lambda c: c.name)
def test_chart_from_the_sample_has_no_missing_glyph_and_adds_up(sample, chart, tmp_path):
    deployment, _ = sample
    with store.connect(deployment.db) as con:
        r = render_chart(chart, PublishInputs(con, district_today()), tmp_path)
    assert r.missing_glyphs == []  # render_chart records every "missing from font" warning while drawing
    assert r.shown_total == r.expected_total > 0


def test_chart_numbers_match_the_database(sample):
    deployment, _ = sample
    scored = deployment.query("SELECT count(*), count(*) FILTER (WHERE level = 'red') FROM scores")[0]
    (hazards, open_hazards), = deployment.query("SELECT count(*), count(*) FILTER (WHERE status <> '已销号') FROM hazards")  # fmt: skip
    (sites,) = deployment.query("SELECT count(*) FROM scores WHERE kind = 'hazchem_sites'")[0]
    with store.connect(deployment.db) as con:
        inp = PublishInputs(con, district_today())
        levels = CHARTS_BY_NAME["levels_by_town"].table(inp)
        by_unit = CHARTS_BY_NAME["open_hazards_by_unit"].table(inp)
        progress = CHARTS_BY_NAME["rectification_progress"].table(inp)
        top = CHARTS_BY_NAME["top_assets"].table(inp)
        grades = CHARTS_BY_NAME["hazchem_grades"].table(inp)
        best = con.execute("SELECT max(score) FROM scores").fetchall()[0][0]
    assert levels["合计"].sum() == scored[0] and levels["red"].sum() == scored[1]
    assert by_unit["合计"].sum() == open_hazards
    assert (by_unit[["逾期", "整改期限内", "已整改待验收", "管控中"]].sum(axis=1) == by_unit["合计"]).all()
    assert progress["累计发现"].iloc[-1] == hazards and progress["累计发现"].is_monotonic_increasing
    assert len(top) == 10 and top["得分（封顶100）"].iloc[0] == best and top["封顶前累计分"].is_monotonic_decreasing
    assert grades["按GB 18218计算"].sum() == sites and grades["单位申报"].sum() == sites


@pytest.mark.parametrize("chart", CHARTS, ids=lambda c: c.name)
def test_chart_from_an_empty_ledger(deployment, chart, tmp_path):
    with store.connect(deployment.db) as con:
        r = render_chart(chart, PublishInputs(con, dt.date(2024, 1, 1)), tmp_path)
    assert r.png.read_bytes()[:8] == PNG_MAGIC
    assert r.missing_glyphs == [] and r.shown_total == r.expected_total == 0


def test_a_font_without_chinese_is_reported_as_missing_glyphs(deployment, tmp_path, monkeypatch):
    """The check can fail: with only a Latin font, the Chinese labels are reported, not silently boxed."""
    monkeypatch.setattr(style, "CJK_FONTS", ["DejaVu Sans"])
    with store.connect(deployment.db) as con:
        r = render_chart(CHARTS_BY_NAME["levels_by_town"], PublishInputs(con, dt.date(2024, 1, 1)), tmp_path)
    assert r.missing_glyphs and "missing from font" in r.missing_glyphs[0]


def _pdf_text(path) -> tuple[int, str, tuple[float, float]]:
    reader = PdfReader(path)
    page = reader.pages[0]
    return len(reader.pages), "".join(p.extract_text() for p in reader.pages), (float(page.mediabox.width),
                                                                                  float(page.mediabox.height))  # fmt: skip


def test_briefing_of_the_sample_is_one_a4_page_with_the_headline_numbers(sample):
    deployment, _ = sample
    pdf = deployment.output / "briefing" / "简报.pdf"
    pages, text, (w, h) = _pdf_text(pdf)
    assert pages == 1 and round(w) == 595 and round(h) == 842
    found, closed, control = deployment.query(
        "SELECT count(*), count(*) FILTER (WHERE status = '已销号'), count(*) FILTER (WHERE status = '管控中') FROM hazards"
    )[0]
    (red,) = deployment.query("SELECT count(*) FROM scores WHERE level = 'red'")[0]
    assert found > 10_000 and red > 1000
    assert "利通区地震风险隐患排查整治简报" in text
    for label, value in [("发现隐患", found), ("已销号", closed), ("管控中", control), ("红色风险对象", red)]:
        assert label in text and f"{value:,}" in text, label
    assert f"{closed / found:.1%}" in text
    # the overdue 重大 hazards as of the sample's date, the longest overdue first in the list
    with store.connect(deployment.db) as con:
        rows = ledger_rows(con, sample_as_of())
    overdue = rows[(rows["hazard_grade"] == "重大") & rows["overdue_days"].notna()]
    longest = overdue.sort_values(["overdue_days", "hazard_no"], ascending=[False, True])["hazard_no"].iloc[0]
    assert f"逾期重大隐患共 {len(overdue):,} 项" in text and longest in text
    assert "样例数据，截至2025年6月30日" in text


def test_briefing_of_an_empty_ledger(deployment, tmp_path):
    with store.connect(deployment.db) as con:
        head = write_briefing(PublishInputs(con, dt.date(2024, 1, 1)), tmp_path / "b.pdf")
    pages, text, _ = _pdf_text(tmp_path / "b.pdf")
    assert pages == 1 and head.found == 0
    assert "逾期重大隐患：无" in text and "暂无数据" in text and "2024年01月01日" in text


def test_sample_outputs_are_whole_and_excel_safe(sample):
    """No temporary file is left beside any output; every CSV is UTF-8 with BOM and no cell in it
    starts like a formula unless neutralised with an apostrophe."""
    import csv

    from pipeline.formats.excel_safe import is_formula_like

    deployment, _ = sample
    for folder in ("charts", "ledger", "briefing", "templates"):
        path = deployment.output / folder
        if not path.exists():
            continue
        assert not [p.name for p in path.iterdir() if p.name.startswith(".")], folder
        for f in path.glob("*.csv"):
            raw = f.read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf"), f.name
            cells = [c for row in csv.reader(raw.decode("utf-8-sig").splitlines()) for c in row]
            assert not [c for c in cells if is_formula_like(c)], f.name
