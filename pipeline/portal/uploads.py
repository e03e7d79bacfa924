"""An upload from the page: received within a size bound, typed by its bytes, staged, previewed, and on the
clerk's confirmation landed atomically in `data_raw/<kind>/<unit>/<folder>/` with its audit record.

The file name is the browser's, made safe (its last component only, no control or reserved characters,
no leading dot, a bounded length, the suffix its content proves); the unit is always the account's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
import shutil
import sqlite3
import unicodedata
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.portal.accounts import Account, now

CHUNK = 1 << 20
MAX_NAME_CHARS = 100
_RESERVED = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')


class UploadRefused(Exception):
    """The file is not taken (Chinese message naming the file); `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Staged:
    upload_id: str
    path: Path
    file_name: str
    sha256: str
    size: int


def safe_file_name(name: str, suffix: str) -> str:
    """The browser's file name as a plain name under data_raw: never a path, never hidden, with `suffix`."""
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name or ""))[-1]
    stem = _RESERVED.sub("_", base.rsplit(".", 1)[0] if "." in base else base).strip(" ._~$")
    stem = stem[:MAX_NAME_CHARS] or f"上传文件_{now():%Y%m%d_%H%M%S}"
    return f"{stem}{suffix}"


def sniff(path: Path, name: str) -> str:
    """'.xlsx' or '.csv' by what the bytes are, whatever the name says; UploadRefused otherwise."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        raise UploadRefused(f"{name}：文件为空（0字节）")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UploadRefused(f"{name}：是旧版Excel（.xls）或其他Office文件，请在Excel中另存为.xlsx或CSV UTF-8后上传")
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                members = set(z.namelist())
        except zipfile.BadZipFile as e:
            raise UploadRefused(f"{name}：压缩包已损坏，不是有效的Excel工作簿") from e
        if "[Content_Types].xml" in members and "xl/workbook.xml" in members:
            return ".xlsx"
        raise UploadRefused(f"{name}：是压缩包或其他Office文档，不是Excel工作簿（.xlsx）")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" (UTF-16)
        return ".csv"
    if b"\x00" in head or head.startswith((b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"MZ", b"\x7fELF")):
        raise UploadRefused(f"{name}：不是表格文件（只接受Excel工作簿.xlsx或CSV文本）")
    for encoding in ("utf-8", "gb18030"):
        try:
            head.decode(encoding)
            return ".csv"
        except UnicodeDecodeError as e:
            if e.start >= len(head) - 4:  # a character cut by the 4 KB window
                return ".csv"
    raise UploadRefused(f"{name}：无法识别的文本编码，请另存为CSV UTF-8或Excel工作簿后上传")


async def receive(chunks: AsyncIterator[bytes], staging_dir: Path, original_name: str, max_bytes: int) -> Staged:
    """Write the upload to its own staging folder, hashing as it comes, refusing past `max_bytes`."""
    upload_id = secrets.token_hex(12)
    folder = staging_dir / upload_id
    folder.mkdir(parents=True)
    part = folder / "upload.part"
    digest, size = hashlib.sha256(), 0
    try:
        with open(part, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadRefused(
                        f"{original_name}：文件超过{max_bytes // (1 << 20)}MB上限，请拆分为几个较小的文件（例如按乡镇）后上传",
                        413,
                    )
                digest.update(chunk)
                out.write(chunk)
        suffix = sniff(part, original_name)
        name = safe_file_name(original_name, suffix)
        path = folder / name
        part.rename(path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Staged(upload_id, path, name, digest.hexdigest(), size)


def record_preview(con: sqlite3.Connection, staged: Staged, account: Account, kind: str, folder: str,
                   original_name: str, accepted: int, refused: int, summary: str) -> None:  # fmt: skip
    con.execute(
        "INSERT INTO uploads (upload_id, username, unit_code, kind, folder, file_name, original_name, sha256, "
        "size_bytes, created_at, state, preview_accepted, preview_refused, preview_summary) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'previewed', ?, ?, ?)",
        [staged.upload_id, account.username, account.unit_code, kind, folder, staged.file_name, original_name,
         staged.sha256, staged.size, now().isoformat(), accepted, refused, summary],
    )  # fmt: skip


def record_landed(con: sqlite3.Connection, account: Account, kind: str, path: Path, rel: Path, summary: str) -> None:
    """The audit record of a file the portal wrote itself (an earthquake declaration), already in place."""
    from pipeline.intake.ingest import sha256_of

    stamp = now().isoformat()
    con.execute(
        "INSERT INTO uploads (upload_id, username, unit_code, kind, folder, file_name, original_name, rel_path, "
        "sha256, size_bytes, created_at, state, landed_at, preview_summary) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'landed', ?, ?)",
        [secrets.token_hex(12), account.username, account.unit_code, kind, account.unit_code, path.name, path.name,
         rel.as_posix(), sha256_of(path), path.stat().st_size, stamp, stamp, summary],
    )  # fmt: skip


def get_upload(con: sqlite3.Connection, upload_id: str) -> sqlite3.Row | None:
    return con.execute("SELECT * FROM uploads WHERE upload_id = ?", [upload_id]).fetchone()


def target_rel_path(upload: sqlite3.Row) -> str:
    return f"{upload['kind']}/{upload['unit_code']}/{upload['folder']}/{upload['file_name']}"


TMP_SUFFIX = ".portal.tmp"  # a file being landed: `.<upload id>.portal.tmp` beside its final name
INTERRUPTED_ZH = "提交未完成（提交过程中服务中断），文件没有进入处理，请重新上传"


def land(con: sqlite3.Connection, staging_dir: Path, data_raw: Path, upload: sqlite3.Row) -> str:
    """Put the staged file into data_raw/ under the account's unit: the bytes under a hidden temp name (which
    the intake skips), one rename, and only then the audit record says 'landed'. Until then it says 'landing':
    a portal killed in between leaves no landed record of a file that is not there (`recover` sorts it out)."""
    rel = target_rel_path(upload)
    source = staging_dir / upload["upload_id"] / upload["file_name"]
    target = data_raw / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{upload['upload_id']}{TMP_SUFFIX}")
    con.execute("UPDATE uploads SET state = 'landing', rel_path = ? WHERE upload_id = ?", [rel, upload["upload_id"]])
    try:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        con.execute("UPDATE uploads SET state = 'failed' WHERE upload_id = ?", [upload["upload_id"]])
        raise
    con.execute("UPDATE uploads SET state = 'landed', landed_at = ? WHERE upload_id = ?",
                [now().isoformat(), upload["upload_id"]])  # fmt: skip
    shutil.rmtree(staging_dir / upload["upload_id"], ignore_errors=True)
    return rel


def recover(con: sqlite3.Connection, staging_dir: Path, data_raw: Path) -> int:
    """At the portal's start, what a landing cut short (the portal killed mid-copy) left: the hidden temp
    files go; an upload whose file made it to its place (renamed, not yet recorded) is recorded as landed,
    any other is marked failed with a sentence for its page. Returns how many uploads were sorted out."""
    from pipeline.intake.ingest import sha256_of

    for folder, _, files in os.walk(data_raw):
        for name in files:
            if name.startswith(".") and name.endswith(TMP_SUFFIX):
                Path(folder, name).unlink(missing_ok=True)
    rows = con.execute("SELECT upload_id, rel_path, sha256 FROM uploads WHERE state = 'landing'").fetchall()
    for upload_id, rel, sha256 in rows:
        target = data_raw / (rel or "")
        if rel and target.is_file() and sha256_of(target) == sha256:
            con.execute("UPDATE uploads SET state = 'landed', landed_at = ? WHERE upload_id = ?",
                        [now().isoformat(), upload_id])  # fmt: skip
        else:
            con.execute("UPDATE uploads SET state = 'failed', result = ? WHERE upload_id = ?",
                        [INTERRUPTED_ZH, upload_id])  # fmt: skip
        shutil.rmtree(staging_dir / upload_id, ignore_errors=True)
    return len(rows)


def discard(con: sqlite3.Connection, staging_dir: Path, upload_id: str) -> None:
    con.execute("UPDATE uploads SET state = 'discarded' WHERE upload_id = ? AND state = 'previewed'", [upload_id])
    shutil.rmtree(staging_dir / upload_id, ignore_errors=True)


def expire_stale(con: sqlite3.Connection, staging_dir: Path, hours: int = 24) -> int:
    """Previews nobody confirmed or discarded within `hours`: their staged files go, the audit says so."""
    cutoff = (now() - dt.timedelta(hours=hours)).isoformat()
    stale = [r[0] for r in con.execute(
        "SELECT upload_id FROM uploads WHERE state = 'previewed' AND created_at < ?", [cutoff]).fetchall()]  # fmt: skip
    for upload_id in stale:
        con.execute("UPDATE uploads SET state = 'expired' WHERE upload_id = ? AND state = 'previewed'", [upload_id])
        shutil.rmtree(staging_dir / upload_id, ignore_errors=True)
    return len(stale)


def uploads_of(con: sqlite3.Connection, account: Account, limit: int = 50) -> list[sqlite3.Row]:
    """The unit's uploads, newest first (every unit's for those who read everything)."""
    if account.reads_all:
        return con.execute("SELECT * FROM uploads ORDER BY created_at DESC LIMIT ?", [limit]).fetchall()
    return con.execute(
        "SELECT * FROM uploads WHERE unit_code = ? ORDER BY created_at DESC LIMIT ?", [account.unit_code, limit]
    ).fetchall()


def set_result(con: sqlite3.Connection, upload_id: str, result: str) -> None:
    con.execute("UPDATE uploads SET result = ? WHERE upload_id = ?", [result, upload_id])
