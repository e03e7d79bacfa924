"""Every output file is written under a temporary name in its own folder and renamed into place, so a
reader (or a run killed half-way) never sees half a file: the old file stays until the new one is whole."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside `path` to write to; on success it replaces `path` (os.replace is
    atomic on one file system), on error it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:40]}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temps(path: Path) -> None:
    """Temp files of `path` left by a writer that was killed before its rename. Only the holder of the
    writer lock writes outputs, so any such file is an orphan."""
    for stale in Path(path).parent.glob(f".{_glob_escape(Path(path).stem[:40])}.*.tmp{Path(path).suffix}*"):
        stale.unlink(missing_ok=True)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
