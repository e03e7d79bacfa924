"""Issue 25: where files come from, how they land, and what failures say.

Authority cannot be borrowed by copying a file (bytes the portal knows from one unit are refused in another
unit's folder; with the portal in use a file without an audit record is refused); nothing half-landed
(`cli feedback` lands temp-then-rename, a preview lands nothing, a rerun after a killed refresh finishes it);
errors that say what happened (a full disk named in Chinese, the original error surviving a failed
ROLLBACK); files for people readable as the umask allows."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import pytest

from pipeline.atomic import write_bytes_atomic
from pipeline.intake.blank_templates import write_blank_templates

# --- files for people are readable as the umask allows ----------------------------------------------


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_for_people_take_the_umask_not_0600(tmp_path, mask, mode):
    with _umask(mask):
        one = write_bytes_atomic(tmp_path / "回执.xlsx", b"x")
        templates = write_blank_templates(tmp_path / "templates")
    assert stat.S_IMODE(one.stat().st_mode) == mode
    assert templates and {stat.S_IMODE(p.stat().st_mode) for p in templates} == {mode}
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temp file left behind
