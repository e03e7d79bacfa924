"""The staging tables published as Parquet, one folder per town, for the Spark engine to score from.

`<warehouse>/staging/<table>/town_code=<code>/part-<fingerprint>.parquet` (Hive partitions Spark reads as a
table). Publishing is incremental by file version: a staged row is the row `row_no` of the file version
`file_id` (pipeline/intake/file_versions.py), which never changes its content, so a town's rows are known by
the set of (file_id, row_no) they hold. A town whose set did not change since the last publication keeps its
folder; a changed town is written to a hidden folder and swapped in; a town with no rows left goes. Which
fingerprint each town has is kept in the table's `_published.json` (Spark ignores files starting with `_`), with
the kind's normalisation context (template, registries, intake code): when that changes, every version was
normalised again and every town is written again.

A table without a town (a site's chemical inventory) takes its site's town.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import duckdb

from pipeline.formats.excel_safe import sql_text
from pipeline.platform.atomic import atomic_path
from pipeline.platform.store import quote, table_columns

MANIFEST = "_published.json"
NO_TOWN = "__HIVE_DEFAULT_PARTITION__"  # rows without a town: Spark reads this partition's town_code as NULL
# tables whose rows carry no town: the join that gives it (over the table's rows as `r`)
TOWN_OF = {
    "stg_hazchem_inventory": "(SELECT max(s.town_code) FROM stg_hazchem_sites s WHERE s.site_id = r.site_id)",
}


def town_expression(con: duckdb.DuckDBPyConnection, table: str) -> str:
    if "town_code" in table_columns(con, table):
        return f"coalesce(r.town_code, '{NO_TOWN}')"
    if table in TOWN_OF:
        return f"coalesce({TOWN_OF[table]}, '{NO_TOWN}')"
    return f"'{NO_TOWN}'"


def publish(con: duckdb.DuckDBPyConnection, table: str, root: Path, context: str = "") -> tuple[Path, dict[str, int]]:
    """Bring `<root>/<table>` to the staged rows; returns its folder and what was done (towns written, kept,
    removed). `context` is what the table's normalisation depended on (the scoring stage gives
    file_versions.context_version of its template): when it changes, every town is written again."""
    folder = root / table
    folder.mkdir(parents=True, exist_ok=True)
    town = town_expression(con, table)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __publish_towns AS "
        f"SELECT {town} AS town, count(*) AS n, bit_xor(hash(r.file_id, r.row_no)) AS h FROM {table} r GROUP BY ALL"
    )
    current = {t: f"{n}-{h:016x}" for t, n, h in con.execute("SELECT town, n, h FROM __publish_towns").fetchall()}
    manifest = _read_manifest(folder)
    before = manifest.get("towns", {}) if manifest.get("context") == context else {}
    on_disk = {p.name.removeprefix("town_code=") for p in folder.glob("town_code=*") if p.is_dir()}
    changed = [t for t in current if before.get(t) != current[t] or t not in on_disk]
    gone = [t for t in on_disk if t not in current]
    for t in changed:
        _write_town(con, table, town, t, current[t], folder)
    for t in gone:
        shutil.rmtree(folder / f"town_code={t}", ignore_errors=True)
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(
            json.dumps({"context": context, "towns": current}, ensure_ascii=False, sort_keys=True), encoding="utf-8"
        )
    con.execute("DROP TABLE IF EXISTS __publish_towns")
    return folder, {"written": len(changed), "kept": len(current) - len(changed), "removed": len(gone)}


def _write_town(con: duckdb.DuckDBPyConnection, table: str, town: str, code: str, fp: str, folder: Path) -> None:
    """The town's rows to a hidden folder, then swapped for the old one (readers never see half a town)."""
    final = folder / f"town_code={code}"
    staging = folder / f".tmp-{uuid.uuid4().hex[:8]}-town_code={code}"
    staging.mkdir()
    target = staging / f"part-{fp}.parquet"
    columns = ", ".join(f"r.{quote(c)}" for c in table_columns(con, table) if c != "town_code")
    con.execute(
        f"COPY (SELECT {columns} FROM {table} r WHERE {town} = {sql_text(code)} ORDER BY r.file_id, r.row_no) "
        f"TO {sql_text(str(target))} (FORMAT parquet, COMPRESSION zstd)"
    )
    old = folder / f".old-{uuid.uuid4().hex[:8]}-town_code={code}"
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: every town is written again
