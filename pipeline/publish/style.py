"""matplotlib set up for Chinese labels, and the colours every chart shares.

The CJK font is a system package (Debian fonts-noto-cjk, installed by `make setup`; fonts-wqy-microhei
after it, for machines without Noto), never downloaded at run time. Noto Sans CJK SC comes first: its glyphs are
complete, while WenQuanYi maps Ⅹ (U+2169) to an empty glyph. matplotlib only warns ("Glyph … missing from
font") when a font lacks a character, so `check_cjk_font` makes the missing font an error the analyst can act
on, and pipeline/publish/glyphs.py checks that every character drawn has an outline.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from pipeline.registries.risk_levels import risk_levels

CJK_FONTS = ["Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "Noto Sans CJK JP"]
# Where Debian puts them: added explicitly when matplotlib's font cache predates their installation.
CJK_FONT_FILES = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
]
LEVELS = [lv.key for lv in risk_levels()]  # most to least severe: stacking and legend order
# colour first: 红色（重大风险） is an object's risk level, not to be read as 重大隐患 (the hazard's own grade)
LEVEL_ZH = {lv.key: lv.label_zh for lv in risk_levels()}
LEVEL_COLOUR = {"red": "#d62728", "orange": "#ff8c1a", "yellow": "#f2c500", "blue": "#2f6fd0"}
OVERDUE_COLOUR = "#8b0000"
INK = "#222222"
MUTED = "#777777"


class FontMissingError(RuntimeError):
    pass


def use_cjk_style() -> None:
    """Agg backend, a CJK sans-serif font first, ASCII minus (the CJK fonts lack U+2212)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {
            "font.family": "sans-serif",
            "font.sans-serif": [*CJK_FONTS, "DejaVu Sans"],
            "axes.unicode_minus": False,
            "pdf.fonttype": 42,  # TrueType in the PDF: text stays selectable and searchable
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "normal",  # the CJK fonts have no bold face
            "axes.titlesize": 12,
            "font.size": 9,
        }
    )


def check_cjk_font() -> str:
    """The CJK font matplotlib will use; FontMissingError with the fix if there is none."""
    from matplotlib import font_manager

    known = {f.fname for f in font_manager.fontManager.ttflist}
    for path in CJK_FONT_FILES:  # a font cache written before the font was installed does not list it
        if path not in known and Path(path).exists():
            font_manager.fontManager.addfont(path)
    available = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in available:
            return name
    raise FontMissingError(
        "No Chinese font for the charts: install Debian's fonts-noto-cjk (or fonts-wqy-microhei), "
        "then delete matplotlib's font cache (~/.cache/matplotlib) so it is found. `make setup` does both."
    )


def printable(text: object) -> str:
    """Text as the font can draw it on one line: control and format characters (tab, line break,
    zero-width space …: the font has no glyph for them) become spaces, and runs of blanks one space."""
    text = "" if text is None else str(text)
    return " ".join("".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text).split())


def wrap(text: object, width: int, max_lines: int | None = None) -> str:
    """Printable text in lines of at most `width` characters, for a table cell that shows it in full (Chinese
    has no spaces to break at: a line ends at its width); with `max_lines`, a longer text's last line ends
    with an ellipsis. `$` escaped as in `clip`."""
    text = printable(text)
    lines = [text[i : i + width] for i in range(0, len(text), width)] or [""]
    if max_lines and len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][: width - 1] + "…"]
    return "\n".join(lines).replace("$", r"\$")


def clip(text: object, n: int) -> str:
    """The one helper for labels from the data: printable, cut to n characters with an ellipsis (long
    unit and asset names break table layouts), `$` escaped so that a name is never read as mathtext."""
    text = printable(text)
    text = text if len(text) <= n else text[: n - 1] + "…"
    return text.replace("$", r"\$")
