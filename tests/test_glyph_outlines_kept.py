"""The glyph outline check reads a CJK font's tables once per font file, not once per process (issue 30): the
states it read are kept beside matplotlib's font list and answer the next process."""

from __future__ import annotations

import json

import matplotlib
import pytest

from pipeline.publish import glyphs
from pipeline.publish.style import check_cjk_font, use_cjk_style


@pytest.fixture
def fresh_process(tmp_path, monkeypatch):
    """The module's per-process memory cleared, its file kept in `tmp_path`."""
    monkeypatch.setattr(matplotlib, "get_cachedir", lambda: str(tmp_path))

    def clear():
        glyphs._kept.cache_clear()
        glyphs.outline_state.cache_clear()
        glyphs._unsaved.clear()

    clear()
    yield clear
    clear()


def test_outline_states_are_kept_for_the_next_process(tmp_path, fresh_process, monkeypatch):
    use_cjk_style()
    check_cjk_font()
    assert glyphs.missing_outlines("金积镇Ⅹ度") == {}
    kept = json.loads((tmp_path / glyphs.OUTLINES_FILE).read_text(encoding="utf-8"))
    assert any(states.get("Ⅹ") is True and states.get("镇") is True for states in kept.values())

    fresh_process()  # the next process: the kept states answer, no font is read
    monkeypatch.setattr(glyphs, "_read_outline", lambda *a: pytest.fail(f"font read again for {a}"))
    assert glyphs.missing_outlines("金积镇Ⅹ度") == {}


def test_a_font_file_replaced_is_read_again(tmp_path, fresh_process, monkeypatch):
    use_cjk_style()
    check_cjk_font()
    assert glyphs.missing_outlines("镇") == {}
    kept = json.loads((tmp_path / glyphs.OUTLINES_FILE).read_text(encoding="utf-8"))
    stale = {key.rsplit("#", 1)[0] + "#1": {ch: False for ch in states} for key, states in kept.items()}
    (tmp_path / glyphs.OUTLINES_FILE).write_text(json.dumps(stale), encoding="utf-8")  # another time: not this file
    fresh_process()
    read = []
    real = glyphs._read_outline
    monkeypatch.setattr(glyphs, "_read_outline", lambda *a: (read.append(a[2]), real(*a))[1])
    assert glyphs.missing_outlines("镇") == {} and read == ["镇"]
