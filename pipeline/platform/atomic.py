"""Every output file is written under a temporary name in its own folder and renamed into place, so a
reader (or a run killed half-way) never sees half a file: the old file stays until the new one is whole.

The temp file is created with the permissions the process's umask allows (0644 under the usual 022), as
`open()` would: the files are for people, read from a file share or by a portal under another account
(tempfile.mkstemp would make them 0600, readable by the writer's account only)."""

from __future__ import annotations

import os
import secrets
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
    tmp_path = _create_temp(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def temp_name(path: Path) -> Path:
    """A fresh temp name beside `path`: hidden (the intake and the portal never read hidden files) and
    matched by remove_stale_temps."""
    return path.parent / f".{path.stem[:40]}.{secrets.token_hex(6)}.tmp{path.suffix}"


def _create_temp(path: Path) -> Path:
    """Create a new empty temp file beside `path`, mode 0666 less the umask (never an existing file)."""
    while True:
        tmp = temp_name(path)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


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
