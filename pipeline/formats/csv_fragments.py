"""A big CSV for people assembled from fragments kept with a fingerprint, each written by DuckDB COPY (issue 14,
reused by the 待鉴定清单 in issue 30).

The file is the header and one fragment per group of rows (an asset kind's town, a town), in the file's order.
The fragments are kept in a cache folder (outside the folder people read) with a fingerprint of their rows
(a manifest, pipeline/platform/manifest.py): only those whose rows changed are written again, the others are copied as
they are by the kernel. The file is written to a temporary name and renamed; UTF-8 with BOM (Excel opens it as
Chinese). What each fragment shows is the caller's SELECT, every text through the SQL neutraliser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.formats.excel_safe import sql_text
from pipeline.platform import faults
from pipeline.platform.atomic import atomic_path
from pipeline.platform.manifest import Manifest

BOM = "\ufeff".encode()
MANIFEST_NAME = "exports_manifest.json"
# the rows of a file as a count and two order-free sums of their row_hash
ROWS_FINGERPRINT_SQL = "count(*), sum(row_hash::HUGEINT)::VARCHAR, bit_xor(row_hash)::VARCHAR"


@dataclass(frozen=True)
class Fragment:
    rel: str  # its file name in the cache folder
    query: str  # the SELECT of its rows, in the file's order and columns
    fingerprint: str  # of what its rows show


def refresh_fragments(
    con: duckdb.DuckDBPyConnection, cache: Path, fragments: Sequence[Fragment], copy_options: str
) -> int:
    """Write into `cache` the fragments whose fingerprint changed (or whose file is missing or was changed), by
    COPY with `copy_options`, and drop the cached fragments no longer listed; returns the number written now.
    The manifest is saved before the caller assembles its file: a fragment is never recorded without its file,
    and a crash loses nothing."""
    cache.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(cache / MANIFEST_NAME)
    written = 0
    for fragment in fragments:
        if not manifest.is_current(fragment.rel, fragment.fingerprint):
            with atomic_path(cache / fragment.rel) as tmp:
                con.execute(f"COPY ({fragment.query}) TO {sql_text(str(tmp))} ({copy_options})")
            manifest.record(fragment.rel, fragment.fingerprint)
            written += 1
    for rel in set(manifest.entries) - {f.rel for f in fragments}:  # a group with no row left
        (cache / rel).unlink(missing_ok=True)
        manifest.forget(rel)
    manifest.save()
    return written


def assemble_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    cache: Path,
    header_query: str,
    fragments: Sequence[Fragment],
    at_half: Callable[[], None] | None = None,
) -> int:
    """`path`: the header of `header_query` (its columns, no rows) then every fragment in order. Writes the
    fragments whose fingerprint changed (or whose file is missing or was changed), drops the cached
    fragments no longer listed, and calls `at_half` after the first half of them (a fault point). Returns
    the number of fragments written now."""
    written = refresh_fragments(con, cache, fragments, "FORMAT csv, HEADER false")
    with atomic_path(path) as tmp:
        con.execute(f"COPY ({header_query}) TO {sql_text(str(tmp))} (FORMAT csv, HEADER true)")
        header = tmp.read_bytes()
        with open(tmp, "wb", buffering=0) as out:
            out.write(BOM + header)
            for i, fragment in enumerate(fragments):
                if at_half and i == len(fragments) // 2:
                    at_half()
                append_file(out, cache / fragment.rel)
            if at_half and not fragments:
                at_half()
    return written


def append_file(out, path: Path) -> None:
    """`path`'s bytes at the end of `out` (an unbuffered file), copied by the kernel (copy_file_range: a
    sixth of the time of a read and write loop for the 470 MB CSV at 1 M buildings)."""
    with open(path, "rb") as f:
        size, done = os.fstat(f.fileno()).st_size, 0
        try:
            while done < size and (n := os.copy_file_range(f.fileno(), out.fileno(), size - done)):
                done += n
        except OSError:  # a file system or kernel without it: the bytes not yet copied, by read and write
            f.seek(done)
            shutil.copyfileobj(f, out, 16 << 20)


def fault_point(name: str) -> Callable[[], None]:
    return lambda: faults.point(name)
