"""Which assets to score again: those whose staged rows changed since their kind was last scored.

Validation logs in `staged_changes` the id keys of every staged row it adds or removes, or one entry without
ids when it rewrote most of a kind (pipeline/intake/file_versions.py). A scored kind reads the entries of the
staging kinds its view reads and scores again the assets they name — by its view's id column, which each of
those staging kinds carries among its id keys (hazchem inventory rows name their site by `site_id`). The
entries are dropped in the transaction that wrote the new scores.
"""

from __future__ import annotations

import duckdb

from pipeline.intake import file_versions
from pipeline.registries.templates import load_template

CHANGED_ASSETS = "__changed_assets"  # temp table: asset_id


def staged_kinds(deps: list[str]) -> list[str]:
    return [d.removeprefix("stg_") for d in deps]


def collect(con: duckdb.DuckDBPyConnection, deps: list[str], id_column: str) -> tuple[int, bool]:
    """(the last log entry read, whether everything changed); the named assets go to `__changed_assets`."""
    file_versions.ensure_tables(con)
    kinds = staged_kinds(deps)
    last, whole = con.execute(
        "SELECT coalesce(max(seq), 0), coalesce(bool_or(ids IS NULL), false) FROM staged_changes "
        "WHERE list_contains(?, kind)",
        [kinds],
    ).fetchall()[0]
    if any(id_column not in load_template(k).id_keys for k in kinds):
        whole = True  # a staging kind whose rows do not name the asset: no subset can be told
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CHANGED_ASSETS} AS SELECT DISTINCT json_extract_string(ids, ?) AS asset_id "
        "FROM staged_changes WHERE list_contains(?, kind) AND seq <= ? AND ids IS NOT NULL",
        [f"$.{id_column}", kinds, last],
    )
    return last, whole


def owned(deps: list[str], id_column: str) -> list[str]:
    """The staging tables whose log entries the kind consumes: those whose rows name its assets. A kind whose view
    aggregates another kind's survey (shelter_capacity over the shelters) reads their entries, always scores
    whole, and leaves the entries to the kind that owns them (else that kind would miss its changed assets)."""
    return [d for d in deps if id_column in load_template(d.removeprefix("stg_")).id_keys]


def forget(con: duckdb.DuckDBPyConnection, deps: list[str], last: int) -> None:
    """Drop the entries read (later ones, logged meanwhile, stay)."""
    con.execute("DELETE FROM staged_changes WHERE list_contains(?, kind) AND seq <= ?", [staged_kinds(deps), last])
