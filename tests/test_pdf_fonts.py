"""The briefing's font subsets kept between runs (issue 30): a briefing drawing the glyphs of one before embeds
the subset made then, with no fontTools work, and its PDF is the one matplotlib makes alone: every object the
same, the embedded fonts byte for byte."""

from __future__ import annotations

import datetime as dt
import re
import zlib
from pathlib import Path

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


PDF_OBJECT = re.compile(rb"^(\d+) 0 obj\n(.*?)\nendobj$", re.S | re.M)
NEGATIVE_ZERO = re.compile(rb"(?<![\d.])-0(?![\d.])")


def pdf_objects(path: Path) -> dict[int, tuple[bytes, bytes]]:
    """A PDF matplotlib wrote, object by object (dictionary, decompressed stream), without what only follows
    the streams' compressed sizes (the objects holding a stream's length, offsets).

    matplotlib's layout is not bit-stable from one draw to the next, even of the same figure: the briefing's
    footer band starts at y = -6.5e-13 on one draw and -5.9e-13 or +0 on another (seen in CI: the page drew
    `0 -0 m` once and `0 0 m` the next), so the page content is compared with the sign of zero dropped."""
    raw = path.read_bytes()
    lengths = {int(n) for n in re.findall(rb"/Length (\d+) 0 R", raw)}
    contents = {int(n) for n in re.findall(rb"/Contents (\d+) 0 R", raw)}
    objects = {}
    for number, body in PDF_OBJECT.findall(raw):
        if int(number) in lengths:
            continue
        head, is_stream, data = body.partition(b"stream\n")
        if is_stream:
            data = data.rsplit(b"\nendstream", 1)[0]
            data = zlib.decompress(data) if b"/FlateDecode" in head else data
            data = NEGATIVE_ZERO.sub(b"0", data) if int(number) in contents else data
        objects[int(number)] = (head, data)
    return objects


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
    reference = pdf_objects(tmp_path / "plain.pdf")
    fonts = [data for head, data in reference.values() if b"/Length1 " in head]  # the embedded font files
    assert len(fonts) == plain and all(data[:4] in (b"\x00\x01\x00\x00", b"OTTO") for data in fonts)  # sfnt
    assert pdf_objects(tmp_path / "first.pdf") == reference
    assert pdf_objects(tmp_path / "again.pdf") == reference


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
