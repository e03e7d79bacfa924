"""Every character drawn has an outline: the check run on each figure before it is saved (charts, maps, PDFs).

A font's character map can list a character whose glyph is empty: WenQuanYi Micro Hei maps Ⅹ (U+2169) to a
glyph with no contours, so 「Ⅹ度」 was drawn as 「度」 with no warning (matplotlib warns only when the map lacks
the character). The check reads the glyph itself with fontTools (TrueType `glyf` contours or CFF charstrings,
through the font's glyph set and a bounds pen): a character other than a space is drawable only if the font
matplotlib picks for it (the first font of the text's family list whose map has it: matplotlib's own fallback)
has a glyph with an outline.

Decision (issue 28 §3): the product draws with Noto Sans CJK SC (Debian fonts-noto-cjk, installed by `make
setup`), whose glyphs are complete; WenQuanYi stays listed after it only for machines without Noto. When the font
in use lacks an outline for one of the product's own characters (the degrees Ⅰ–Ⅻ), a map or a PDF is not saved
and FontMissingError names the characters and the fix: a report that silently loses a numeral (Ⅹ度 → 度) is worse
than a loud error (the 首报's .txt, written first, is there either way). A character of the data the font cannot
draw (a rare character or an emoji in an object's name) is drawn as 〓 and the page says so: one name must not
stop the 首报, its 排查清单 and map. A chart reports either through its `all_glyphs_drawn` check.
"""

from __future__ import annotations

import functools
import json
import os
import unicodedata
from pathlib import Path

from pipeline.platform.atomic import write_bytes_atomic
from pipeline.publish.style import FontMissingError

# What the glyphs of each font file hold, kept across processes (issue 30): reading a CJK font's tables with
# fontTools costs seconds, every run, for the same few hundred characters. In matplotlib's cache folder, beside
# its own font list (deleting that folder, as the fix for a missing font says, clears this too); a font file
# replaced (another size or time) is read again.
OUTLINES_FILE = "litong_glyph_outlines.json"


@functools.cache
def _face(path: str, index: int):
    from fontTools.ttLib import TTFont

    return TTFont(path, fontNumber=index, lazy=True)


@functools.cache
def _cmap(path: str, index: int) -> dict[int, str]:
    return _face(path, index).getBestCmap() or {}


def _outlines_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_cachedir()) / OUTLINES_FILE


@functools.cache
def _kept() -> dict[str, dict[str, bool | None]]:
    """The outline states kept by earlier processes, by font (`_font_key`) and character."""
    try:
        kept = json.loads(_outlines_path().read_text(encoding="utf-8"))
        return kept if isinstance(kept, dict) else {}
    except (OSError, ValueError):
        return {}


@functools.cache
def _font_key(path: str, index: int) -> str:
    stat = os.stat(path)
    return f"{path}#{index}#{stat.st_size}#{stat.st_mtime_ns}"


def _keep_new_states() -> None:
    """Write the states read in this process beside those another process may have written since (best effort:
    a cache; a failed write costs the next process a read of the font)."""
    if not _unsaved:
        return
    try:
        on_disk = json.loads(_outlines_path().read_text(encoding="utf-8"))
        on_disk = on_disk if isinstance(on_disk, dict) else {}
    except (OSError, ValueError):
        on_disk = {}
    for key, states in _kept().items():
        on_disk.setdefault(key, {}).update(states)
    try:
        write_bytes_atomic(_outlines_path(), json.dumps(on_disk, ensure_ascii=False).encode("utf-8"))
    except OSError:
        return
    _unsaved.clear()


_unsaved: set[str] = set()  # fonts with states read in this process and not yet written


@functools.cache
def outline_state(path: str, index: int, ch: str) -> bool | None:
    """None: the font's map lacks the character (matplotlib tries the next font); True: its glyph has an
    outline; False: the map lists it but the glyph is empty (nothing would be drawn)."""
    states = _kept().setdefault(_font_key(path, index), {})
    if ch not in states:
        states[ch] = _read_outline(path, index, ch)
        _unsaved.add(_font_key(path, index))
    return states[ch]


def _read_outline(path: str, index: int, ch: str) -> bool | None:
    """outline_state read from the font file itself."""
    from fontTools.pens.boundsPen import BoundsPen

    name = _cmap(path, index).get(ord(ch))
    if name is None:
        return None
    glyphs = _face(path, index).getGlyphSet()
    pen = BoundsPen(glyphs)
    glyphs[name].draw(pen)
    return pen.bounds is not None


def _drawn(ch: str) -> bool:
    """Characters that must leave ink: not spaces, not control or format characters."""
    return not ch.isspace() and not unicodedata.category(ch).startswith(("C", "Z"))


def _font_files(families: tuple[str, ...]) -> tuple[tuple[str, int, str], ...]:
    """(path, face index, family name) of each installed font of the list, generic names (sans-serif …)
    expanded as matplotlib does (with the rcParams of now); the fonts not installed are left out (matplotlib
    skips them too)."""
    import matplotlib

    names: list[str] = []
    for family in families:
        if family in ("sans-serif", "serif", "monospace", "cursive", "fantasy"):
            names += matplotlib.rcParams[f"font.{family}"]
        else:
            names.append(family)
    return _installed(tuple(dict.fromkeys(names)))


@functools.cache
def _installed(names: tuple[str, ...]) -> tuple[tuple[str, int, str], ...]:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    files = []
    for name in names:
        if name not in installed:
            continue
        found = font_manager.findfont(font_manager.FontProperties(family=name), fallback_to_default=False)
        files.append((str(found), int(getattr(found, "face_index", 0) or 0), name))
    return tuple(files)


def missing_outlines(text: str, families: tuple[str, ...] | list[str] | None = None) -> dict[str, str]:
    """Character → the font that would draw it empty (or "" when no font of the list has it), for every
    character of `text` that would not be drawn; {} when all of them have outlines."""
    missing = _missing_outlines(text, families)
    _keep_new_states()
    return missing


def _missing_outlines(text: str, families: tuple[str, ...] | list[str] | None) -> dict[str, str]:
    import matplotlib

    files = _font_files(tuple(families or matplotlib.rcParams["font.sans-serif"]))
    missing: dict[str, str] = {}
    for ch in dict.fromkeys(text):
        if not _drawn(ch):
            continue
        for path, index, name in files:
            state = outline_state(path, index, ch)
            if state is None:
                continue
            if not state:
                missing[ch] = name
            break
        else:
            missing[ch] = ""
    return missing


def check_glyphs(text: str, families: tuple[str, ...] | list[str] | None = None) -> None:
    """FontMissingError naming each character of `text` the fonts would draw empty."""
    missing = missing_outlines(text, families)
    if missing:
        raise FontMissingError(_message(missing))


def figure_missing_outlines(fig) -> dict[str, str]:
    """`missing_outlines` of every text of the figure (titles, labels, ticks, legends, annotations), each in its
    own font family."""
    from matplotlib.text import Text

    missing: dict[str, str] = {}
    for artist in fig.findobj(Text):
        text = artist.get_text()
        if not text or not artist.get_visible():
            continue
        missing |= _missing_outlines(text.replace(r"\$", "$"), tuple(artist.get_fontproperties().get_family()))
    _keep_new_states()
    return missing


def check_figure_glyphs(fig) -> None:
    """FontMissingError when a character of the figure would be drawn empty: run before a map or a PDF is
    saved (the charts report it through their `all_glyphs_drawn` check instead: `outline_problem`)."""
    if missing := figure_missing_outlines(fig):
        raise FontMissingError(_message(missing))


# The product's own characters that must never be replaced: the intensity degrees. A font without their outlines
# is a setup to fix (FontMissingError); a character of the data (an object's name) the font cannot draw is
# shown as 〓 (the typesetter's mark for a missing character) with a note, so that one name never stops a report.
OWN_CHARACTERS = frozenset("ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩⅪⅫ")
MISSING_MARK = "〓"


def settle_glyphs(fig) -> list[str]:
    """Before a map or a PDF is saved: FontMissingError when one of OWN_CHARACTERS (or the mark itself) would be
    drawn empty; every other character without an outline replaced by 〓 in its text. The characters replaced
    (for the note the caller adds), [] when every character is drawn."""
    from matplotlib.text import Text

    missing = figure_missing_outlines(fig)
    if not missing:
        return []
    if fatal := {ch: font for ch, font in missing.items() if ch in OWN_CHARACTERS}:
        raise FontMissingError(_message(fatal))
    if missing_outlines(MISSING_MARK):
        raise FontMissingError(_message(missing))
    for artist in fig.findobj(Text):
        text = artist.get_text()
        if text and any(ch in missing for ch in text):
            artist.set_text("".join(MISSING_MARK if ch in missing else ch for ch in text))
    return list(missing)


def outline_problem(fig) -> list[str]:
    """[the Chinese message] when a character of the figure would be drawn empty, else []."""
    missing = figure_missing_outlines(fig)
    return [_message(missing)] if missing else []


def _message(missing: dict[str, str]) -> str:
    chars = "、".join(f"“{ch}”（U+{ord(ch):04X}，{f'{font}中为空字形' if font else '已安装字体中均无'}）"
                      for ch, font in missing.items())  # fmt: skip
    return (
        f"以下字符无法画出：{chars}。请安装完整的中文字体 Noto Sans CJK（Debian 软件包 fonts-noto-cjk，`make setup` "
        "会安装）并删除 matplotlib 的字体缓存（~/.cache/matplotlib）后重试。"
    )
