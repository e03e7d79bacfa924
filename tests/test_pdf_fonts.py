"""The briefing's font subsets kept between runs (issue 30): a briefing drawing the glyphs of one before embeds
the subset made then, with no fontTools work, and its PDF is byte for byte the one matplotlib makes alone."""

from __future__ import annotations

import datetime as dt

from matplotlib.backends import _backend_pdf_ps

from pipeline.platform import store
from pipeline.publish.briefing import write_briefing
from pipeline.publish.inputs import PublishInputs
from pipeline.publish.pdf_fonts import SubsetKeeper


def _counting(monkeypatch) -> list[int]:
    """Counts the subsets matplotlib (fontTools) cuts."""
    cut, make = [], _backend_pdf_ps.get_glyphs_subset

    def counted(fontfile, glyphs):
        cut.append(len(list(glyphs)))
        return make(fontfile, glyphs)

    monkeypatch.setattr(_backend_pdf_ps, "get_glyphs_subset", counted)
    return cut


def test_a_briefing_with_the_glyphs_of_one_before_cuts_no_subset_and_is_the_same_pdf(deployment, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # matplotlib's and fontTools' timestamps fixed
    cut = _counting(monkeypatch)
    kept = tmp_path / "pdf_fonts"
    with store.connect(deployment.db) as con:
        inp = PublishInputs(con, dt.date(2024, 1, 1))
        write_briefing(inp, tmp_path / "plain.pdf")
        plain = len(cut)
        write_briefing(inp, tmp_path / "first.pdf", kept)
        first = len(cut) - plain
        write_briefing(inp, tmp_path / "again.pdf", kept)
        again = len(cut) - plain - first
    assert plain >= 1 and first == plain and again == 0  # the CJK font's subsets: cut once, then read back
    assert len(list(kept.glob("*.json"))) == plain
    reference = (tmp_path / "plain.pdf").read_bytes()
    assert (tmp_path / "first.pdf").read_bytes() == reference
    assert (tmp_path / "again.pdf").read_bytes() == reference


def test_other_glyphs_are_another_subset(tmp_path):
    from matplotlib import font_manager

    from pipeline.publish.style import check_cjk_font, use_cjk_style

    use_cjk_style()
    check_cjk_font()
    font = font_manager.FontPath(font_manager.findfont("DejaVu Sans"), 0)
    keeper = SubsetKeeper(tmp_path, _backend_pdf_ps.get_glyphs_subset)
    for glyphs in ([36, 37, 38], [36, 37, 38], [36, 37, 39]):
        with keeper(font, glyphs) as subset:
            assert set(subset.glyph_index_map) >= set(glyphs)
    assert (keeper.made, keeper.reused) == (2, 1)
