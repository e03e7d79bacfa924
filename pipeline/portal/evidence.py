"""Photos reported with a hazard (整改前 / 整改后), issue 27 §1.

A photo is judged by its bytes, never its name (JPEG or PNG only), bounded in size and pixels, and re-encoded
with Pillow so that nothing of the camera's metadata (EXIF, GPS position, comments) is kept; the clean bytes are
stored once under their SHA-256 in data_raw/evidence/<first two hex digits>/<sha256>.<jpg|png>. The feedback row
the form writes names the photos by that hash in its 整改照片 column, and the ledger keeps them in the hazard's
event (pipeline/ledger/feedback.py), so the pipeline ties each photo to the event it was reported with.
Thumbnails are made by Pillow on first request and cached beside the portal's other files.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

EVIDENCE_FOLDER = "evidence"
STAGED_FOLDER = "附件"  # a staged report's photos, in its staging folder
MAX_PIXELS = 40_000_000  # a larger picture is refused before it is decoded (no decompression bombs)
THUMB_PX = 320
SHA = re.compile(r"[0-9a-f]{64}")
FORMATS = {b"\xff\xd8\xff": ("JPEG", "jpg"), b"\x89PNG\r\n\x1a\n": ("PNG", "png")}


class PhotoRefused(ValueError):
    """A photo the portal will not take; the message is Chinese, for the person who chose the file."""


def photo_type(data: bytes) -> tuple[str, str] | None:
    """(Pillow format, suffix) from the file's first bytes, or None when it is neither JPEG nor PNG."""
    for magic, kind in FORMATS.items():
        if data.startswith(magic):
            return kind
    return None


def clean(data: bytes, name: str, max_bytes: int) -> tuple[bytes, str]:
    """The photo re-encoded without metadata, and its suffix; PhotoRefused (in Chinese) for anything else."""
    if len(data) > max_bytes:
        raise PhotoRefused(f"照片“{name}”超过每张{max_bytes / 2**20:.0f} MB的上限，请压缩后再上传")
    if not data:
        raise PhotoRefused(f"照片“{name}”是空文件")
    kind = photo_type(data)
    if kind is None:
        raise PhotoRefused(f"“{name}”不是JPEG或PNG照片（按文件内容判断，与文件名无关），只能上传JPEG或PNG格式的照片")
    fmt, suffix = kind
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            if im.width * im.height > MAX_PIXELS:
                raise PhotoRefused(f"照片“{name}”像素过多（{im.width}×{im.height}），请缩小后再上传")
            im.load()
            upright = ImageOps.exif_transpose(im)  # keep how the camera meant it to be seen, then drop the EXIF
            if fmt == "JPEG":
                pixels = upright.convert("RGB")
            else:
                alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
                pixels = upright.convert("RGBA" if alpha else "RGB")
            bare = Image.frombytes(pixels.mode, pixels.size, pixels.tobytes())  # the pixels only: no EXIF, no text
            out = io.BytesIO()
            if fmt == "JPEG":
                bare.save(out, "JPEG", quality=90, optimize=True)
            else:
                bare.save(out, "PNG", optimize=True)
    except PhotoRefused:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise PhotoRefused(f"照片“{name}”已损坏或无法读取，请重新拍摄或另存后再上传") from e
    return out.getvalue(), suffix


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store(root: Path, data: bytes, suffix: str) -> str:
    """Write the clean photo once under its SHA-256 (a second copy of the same photo is the same file)."""
    sha = sha256(data)
    path = root / sha[:2] / f"{sha}.{suffix}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{sha}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return sha


def find(root: Path, sha: str) -> Path | None:
    if not SHA.fullmatch(sha):
        return None
    for suffix in ("jpg", "png"):
        path = root / sha[:2] / f"{sha}.{suffix}"
        if path.is_file() and not path.is_symlink():
            return path
    return None


def thumbnail(source: Path, cache: Path) -> Path:
    """A JPEG at most THUMB_PX on its longer side, made once per photo (the photo's hash names it)."""
    path = cache / f"{source.stem}.jpg"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as im:
            im.thumbnail((THUMB_PX, THUMB_PX))
            tmp = path.with_name(f".{source.stem}.tmp")
            im.convert("RGB").save(tmp, "JPEG", quality=80)
            os.replace(tmp, path)
    return path


def land(staged: Path, data_raw: Path) -> list[str]:
    """Copy a confirmed report's photos from its staging folder into data_raw/evidence/ (before its CSV lands, so
    the run that applies the row finds them); their hashes."""
    target_root = data_raw / EVIDENCE_FOLDER
    hashes = []
    for source in sorted(staged.glob("*/*")):
        if SHA.fullmatch(source.stem) and source.suffix in (".jpg", ".png") and not source.is_symlink():
            if find(target_root, source.stem) is None:
                store(target_root, source.read_bytes(), source.suffix[1:])
            hashes.append(source.stem)
    return hashes
