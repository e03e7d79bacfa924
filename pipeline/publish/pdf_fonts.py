"""The font subsets a PDF embeds, kept between runs (issue 30).

matplotlib's PDF backend embeds every font it drew with as a subset of the glyphs drawn (`pdf.fonttype` 42: the
text stays selectable), made by fontTools from the whole font file at every save: for the briefing, Noto Sans
CJK (a 19 MB collection) parsed and cut twice (the glyphs and their alternates), about half of the briefing's
seconds. A subset is a function of the font file, its face, the glyphs and the fontTools and matplotlib
versions only. Kept on disk under that key, a later briefing drawing the same glyphs (new figures, the same
characters: the usual case) embeds the same subset without fontTools: it is read back as a font and saved as
matplotlib saves the one it made (its timestamp set the same way), so the PDF is what it would have been.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.platform.atomic import write_bytes_atomic

KEPT = 16  # subsets kept (the newest used): a briefing uses two


@dataclass
class KeptSubset:
    """What matplotlib reads of a subset (`font`, `glyph_index_map`: the original glyph index → the subset's)."""

    font: object
    glyph_index_map: dict[int, int]


def subset_key(fontfile, glyphs) -> str:
    """The subset's name: the font file (path, face, size, time), the glyphs and the versions that cut it."""
    import fontTools
    import matplotlib

    stat = Path(fontfile).stat()
    parts = [str(fontfile), getattr(fontfile, "face_index", 0), stat.st_size, stat.st_mtime_ns,
             sorted(int(g) for g in glyphs), fontTools.version, matplotlib.__version__]  # fmt: skip
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


class SubsetKeeper:
    """matplotlib's `get_glyphs_subset`, kept in `folder`: a subset made once is read back after."""

    def __init__(self, folder: Path, make):
        self.folder, self.make = folder, make
        self.made = self.reused = 0

    @contextmanager
    def __call__(self, fontfile, glyphs) -> Iterator[object]:
        from fontTools.ttLib import TTFont

        glyphs = list(glyphs)
        kept = self.folder / f"{subset_key(fontfile, glyphs)}.json"
        try:
            entry = json.loads(kept.read_text(encoding="utf-8"))
            data = bytes.fromhex(entry["font"])
            index_map = {int(k): v for k, v in entry["map"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            entry = None
        if entry is not None:
            self.reused += 1
            kept.touch()
            with TTFont(io.BytesIO(data), recalcBBoxes=False, recalcTimestamp=False) as font:  # as fontTools cut it
                yield KeptSubset(font, index_map)
            return
        self.made += 1
        with self.make(fontfile, glyphs) as subset:
            buf = io.BytesIO()
            subset.font.save(buf, reorderTables=False)
            entry = {"font": buf.getvalue().hex(), "map": {str(k): int(v) for k, v in subset.glyph_index_map.items()}}
            self.folder.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(kept, json.dumps(entry).encode("utf-8"))
            yield subset
        self._prune()

    def _prune(self) -> None:
        entries = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in entries[KEPT:]:
            old.unlink(missing_ok=True)


@contextmanager
def kept_font_subsets(folder: Path | None) -> Iterator[SubsetKeeper | None]:
    """For the block (a PDF saved in this thread): font subsets are taken from `folder` when made before, and
    kept there when made now. None: matplotlib as it is."""
    if folder is None:
        yield None
        return
    from matplotlib.backends import _backend_pdf_ps

    make = _backend_pdf_ps.get_glyphs_subset
    keeper = SubsetKeeper(folder, make)
    _backend_pdf_ps.get_glyphs_subset = keeper
    try:
        yield keeper
    finally:
        _backend_pdf_ps.get_glyphs_subset = make
