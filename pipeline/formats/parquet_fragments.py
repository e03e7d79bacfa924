"""A big Parquet file assembled from fragments kept with a fingerprint (issue 30), like the CSV
(pipeline/formats/csv_fragments.py).

Each fragment is a Parquet file of one group of rows (an asset kind's town), written by DuckDB COPY and kept in
a cache folder with a fingerprint of its rows: only those whose rows changed are written again. The file people
read is the fragments' row groups one after another, their bytes copied as they are, under one footer: the
fragments' footers' row groups with their byte offsets moved to where their bytes now are. Encoding a million
rows again on a small change took seconds; copying their bytes takes a few hundredths.

The footer is Thrift's compact protocol (parquet.thrift). It is read into a small tree and written back field by
field, every field kept as read; only the offsets (ColumnChunk 2, 4, 6; ColumnMetaData 9, 10, 11, 14; RowGroup 5),
the row groups' ordinals (RowGroup 7) and the row count (FileMetaData 3) change.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import duckdb

from pipeline.formats.csv_fragments import Fragment, refresh_fragments
from pipeline.platform.atomic import atomic_path

MAGIC = b"PAR1"
STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)
# Thrift field ids (parquet.thrift) of what moves
FILE_ROWS, FILE_ROW_GROUPS = 3, 4
GROUP_COLUMNS, GROUP_FILE_OFFSET, GROUP_ORDINAL = 1, 5, 7
CHUNK_OFFSETS = (2, 4, 6)  # file_offset, offset_index_offset, column_index_offset
CHUNK_META = 3
META_OFFSETS = (9, 10, 11, 14)  # data_page, index_page, dictionary_page, bloom_filter


def assemble_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, cache: Path, fragments: Sequence[Fragment], options: str
) -> int:
    """`path`: the rows of every fragment in order, one Parquet file. Writes the fragments whose fingerprint
    changed (or whose file is missing or was changed) by COPY with `options` (FORMAT parquet, …), drops the cached
    fragments no longer listed. Returns the number written now. No fragment: nothing to take a schema from, the
    caller writes the file itself."""
    written = refresh_fragments(con, cache, fragments, options)
    concatenate([cache / f.rel for f in fragments], path)
    return written


def concatenate(parts: Sequence[Path], path: Path) -> None:
    """One Parquet file at `path` holding the row groups of `parts` (the same columns) in order."""
    footers = [_footer(p) for p in parts]
    groups, rows = [], 0
    with atomic_path(path) as tmp, open(tmp, "wb", buffering=0) as out:
        out.write(MAGIC)
        for part, (footer, body_end) in zip(parts, footers, strict=True):
            shift = out.tell() - len(MAGIC)  # the part's bytes after its magic land here
            _append_range(out, part, body_end)
            for group in _field(footer, FILE_ROW_GROUPS)[1]:
                groups.append(_moved_group(group, shift, len(groups)))
            rows += _field(footer, FILE_ROWS)
        merged = [(fid, t, (rows if fid == FILE_ROWS else (STRUCT, groups) if fid == FILE_ROW_GROUPS else v))
                  for fid, t, v in footers[0][0]]  # fmt: skip
        encoded = bytearray()
        _write_struct(encoded, merged)
        out.write(bytes(encoded) + struct.pack("<I", len(encoded)) + MAGIC)


def _footer(path: Path) -> tuple[list, int]:
    """(the file's FileMetaData as a tree, where its footer starts)."""
    with open(path, "rb") as f:
        f.seek(-8, 2)
        tail = f.read(8)
        if tail[4:] != MAGIC:
            raise ValueError(f"不是Parquet文件：{path.name}")
        (length,) = struct.unpack("<I", tail[:4])
        start = f.seek(-8 - length, 2)
        data = f.read(length)
    tree, _ = _read_struct(data, 0)
    return tree, start


def _append_range(out, part: Path, end: int) -> None:
    """`part`'s bytes from after its magic to `end` (where its footer starts): its row groups, their page
    indexes and bloom filters (the whole file at 1 M buildings is 20 MB: read and written)."""
    with open(part, "rb") as f:
        f.seek(len(MAGIC))
        out.write(f.read(end - len(MAGIC)))


def _field(tree: list, fid: int):
    return next(v for i, _, v in tree if i == fid)


def _moved_group(group: list, shift: int, ordinal: int) -> list:
    """A RowGroup with every byte offset moved by `shift` and its ordinal in the new file."""
    out = []
    for fid, t, v in group:
        if fid == GROUP_COLUMNS:
            v = (STRUCT, [_moved_chunk(c, shift) for c in v[1]])
        elif fid == GROUP_FILE_OFFSET:
            v += shift
        elif fid == GROUP_ORDINAL:
            v = ordinal
        out.append((fid, t, v))
    return out


def _moved_chunk(chunk: list, shift: int) -> list:
    out = []
    for fid, t, v in chunk:
        if fid in CHUNK_OFFSETS:
            v += shift
        elif fid == CHUNK_META:
            v = [(i, tt, vv + shift if i in META_OFFSETS else vv) for i, tt, vv in v]
        out.append((fid, t, v))
    return out


# --- Thrift compact protocol: a struct is a list of (field id, type, value) -------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _read_value(data: bytes, pos: int, t: int):
    if t in (TRUE, FALSE):  # a bool in a list or map: one byte
        return data[pos], pos + 1
    if t == BYTE:
        return data[pos], pos + 1
    if t in (I16, I32, I64):
        n, pos = _varint(data, pos)
        return _zigzag(n), pos
    if t == DOUBLE:
        return data[pos : pos + 8], pos + 8
    if t == BINARY:
        n, pos = _varint(data, pos)
        return data[pos : pos + n], pos + n
    if t in (LIST, SET):
        head = data[pos]
        pos += 1
        size, element = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(data, pos)
        items = []
        for _ in range(size):
            item, pos = _read_value(data, pos, element)
            items.append(item)
        return (element, items), pos
    if t == MAP:
        size, pos = _varint(data, pos)
        kinds = data[pos] if size else 0
        pos += 1 if size else 0
        pairs = []
        for _ in range(size):
            k, pos = _read_value(data, pos, kinds >> 4)
            v, pos = _read_value(data, pos, kinds & 0x0F)
            pairs.append((k, v))
        return (kinds, pairs), pos
    if t == STRUCT:
        return _read_struct(data, pos)
    raise ValueError(f"Parquet footer: unknown Thrift type {t}")


def _read_struct(data: bytes, pos: int) -> tuple[list, int]:
    fields, last = [], 0
    while True:
        head = data[pos]
        pos += 1
        if head == STOP:
            return fields, pos
        delta, t = head >> 4, head & 0x0F
        if delta:
            fid = last + delta
        else:
            n, pos = _varint(data, pos)
            fid = _zigzag(n)
        if t in (TRUE, FALSE):  # a bool field's value is its type
            value = t == TRUE
        else:
            value, pos = _read_value(data, pos, t)
        fields.append((fid, t, value))
        last = fid


def _put_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _put_zigzag(out: bytearray, n: int) -> None:
    _put_varint(out, (n << 1) ^ (n >> 63))


def _write_value(out: bytearray, t: int, value) -> None:
    if t in (TRUE, FALSE, BYTE):
        out.append(value)
    elif t in (I16, I32, I64):
        _put_zigzag(out, value)
    elif t == DOUBLE:
        out += value
    elif t == BINARY:
        _put_varint(out, len(value))
        out += value
    elif t in (LIST, SET):
        element, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | element)
        else:
            out.append(0xF0 | element)
            _put_varint(out, len(items))
        for item in items:
            _write_value(out, element, item)
    elif t == MAP:
        kinds, pairs = value
        _put_varint(out, len(pairs))
        if pairs:
            out.append(kinds)
        for k, v in pairs:
            _write_value(out, kinds >> 4, k)
            _write_value(out, kinds & 0x0F, v)
    elif t == STRUCT:
        _write_struct(out, value)
    else:
        raise ValueError(f"Parquet footer: unknown Thrift type {t}")


def _write_struct(out: bytearray, fields: list) -> None:
    last = 0
    for fid, t, value in fields:
        if 0 < fid - last <= 15:
            out.append((fid - last) << 4 | t)
        else:
            out.append(t)
            _put_zigzag(out, fid)
        if t not in (TRUE, FALSE):
            _write_value(out, t, value)
        last = fid
    out.append(STOP)
