"""Which generated files are current: a fingerprint of what each file shows, kept in a small JSON file
beside them (written to a temporary name and renamed). A file is current when its fingerprint is the
recorded one and the file on disk is the one that was written (same size and modification time): a file
deleted or edited by hand is written again."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.platform.atomic import write_bytes_atomic


@dataclass
class Manifest:
    path: Path  # the JSON file; the files it lists are relative to its folder
    entries: dict[str, dict[str, str | int]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """The manifest at `path`; an empty one when there is none or it cannot be read (every file is then
        written again, which is always safe)."""
        try:
            entries = json.loads(Path(path).read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            entries = {}
        return cls(Path(path), entries if isinstance(entries, dict) else {})

    def is_current(self, rel: str, fingerprint: str) -> bool:
        entry = self.entries.get(rel)
        if entry is None or entry.get("fingerprint") != fingerprint:
            return False
        try:
            stat = (self.path.parent / rel).stat()
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) == (entry.get("size"), entry.get("mtime_ns"))

    def record(self, rel: str, fingerprint: str) -> None:
        stat = (self.path.parent / rel).stat()
        self.entries[rel] = {"fingerprint": fingerprint, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def forget(self, rel: str) -> None:
        self.entries.pop(rel, None)

    def save(self) -> Path:
        text = json.dumps({"files": dict(sorted(self.entries.items()))}, ensure_ascii=False, indent=1)
        return write_bytes_atomic(self.path, text.encode("utf-8"))
