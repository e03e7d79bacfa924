"""Issue 27 §1: the photos a unit reports with a hazard are judged by their bytes, bounded, stripped of their
metadata (EXIF, GPS) and stored once under their SHA-256; the ledger keeps them with the hazard's event."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from pipeline.ledger.feedback import _photo_note
from pipeline.portal import evidence, reads
from pipeline.portal.evidence import PhotoRefused


def _jpeg_with_gps() -> bytes:
    im = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "LitongCam"  # Make
    exif[0x0112] = 1  # Orientation
    exif[0x8825] = {1: "N", 2: (38.0, 1.0, 0.0), 3: "E", 4: (106.0, 12.0, 0.0)}  # GPS: where it was taken
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif, comment=b"secret comment")
    return out.getvalue()


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (0, 120, 0)).save(out, "PNG")
    return out.getvalue()


def test_a_jpeg_is_stored_without_its_exif_and_gps():
    raw = _jpeg_with_gps()
    with Image.open(io.BytesIO(raw)) as im:
        assert im.getexif().get(0x010F) == "LitongCam" and im.getexif().get_ifd(0x8825)  # the camera's metadata …
    clean, suffix = evidence.clean(raw, "IMG_0001.JPG", 8 << 20)
    assert suffix == "jpg" and clean != raw
    with Image.open(io.BytesIO(clean)) as im:
        assert im.format == "JPEG" and im.size == (64, 48)
        assert not im.getexif() and "exif" not in im.info and "comment" not in im.info  # … is gone
    assert b"secret comment" not in clean and b"LitongCam" not in clean


def test_type_comes_from_the_bytes_not_the_name(tmp_path):
    clean, suffix = evidence.clean(_png(), "看起来是.jpg", 8 << 20)  # a PNG named .jpg is taken, as a PNG
    assert suffix == "png" and clean.startswith(b"\x89PNG")
    sha = evidence.store(tmp_path, clean, suffix)
    assert sha == hashlib.sha256(clean).hexdigest()
    assert (tmp_path / sha[:2] / f"{sha}.png").read_bytes() == clean
    assert evidence.store(tmp_path, clean, suffix) == sha and len(list(tmp_path.rglob("*.png"))) == 1  # once
    assert evidence.find(tmp_path, sha) == tmp_path / sha[:2] / f"{sha}.png"
    assert evidence.find(tmp_path, "../etc/passwd") is None
    thumb = evidence.thumbnail(evidence.find(tmp_path, sha), tmp_path / "thumbs")
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and im.size == (30, 20)


@pytest.mark.parametrize(
    ("data", "name", "words"),
    [
        (b"this is only text, not a photo\n", "照片.jpg", "不是JPEG或PNG照片"),
        (b"%PDF-1.4 ...", "扫描件.png", "不是JPEG或PNG照片"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 40, "坏的.jpg", "已损坏"),
        (b"", "空.jpg", "空文件"),
    ],
)
def test_anything_else_is_refused_in_chinese(data, name, words):
    with pytest.raises(PhotoRefused) as e:
        evidence.clean(data, name, 8 << 20)
    assert words in str(e.value) and name in str(e.value)


def test_an_oversize_photo_is_refused():
    raw = _jpeg_with_gps()
    with pytest.raises(PhotoRefused, match="超过每张1 MB的上限"):
        evidence.clean(raw + b"\0" * (1 << 20), "大.jpg", 1 << 20)


def test_the_ledger_keeps_the_photos_in_the_event_and_the_page_reads_them_back():
    a, b = "a" * 64, "b" * 64
    note = "已委托施工；" + _photo_note(f"整改前:{a};整改后:{b};整改后:{a.upper()}")
    assert note == f"已委托施工；整改前照片：{a}；整改后照片：{b}、{a}"
    found = reads.photos([{"note": note, "event_date": "2025-06-30", "unit": "T100"}])
    assert [(p["label"], p["sha"]) for p in found] == [("整改前", a), ("整改后", b)]
    assert _photo_note("") == "" and _photo_note("not a hash") == ""
