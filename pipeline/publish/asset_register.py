"""The asset register: one row per scored asset with what readers need of it (where it is, who answers for it,
its open hazards and the facts of its kind), written into the published snapshot.

Readers that need every asset at once — the earthquake response above all, which must shake a million assets
within seconds of an event — read this one table instead of joining the views and the ledger themselves.
"""

from __future__ import annotations

import duckdb

from pipeline.scoring.ruleset import load_kinds

OPEN_STATUSES = "('待整改', '整改中', '已整改待验收', '管控中')"

# `{src}` is the schema the tables are read from ('' in the database itself, 'led.' for an attached snapshot).
REGISTER_SELECT = """
WITH open_hazards AS (
    SELECT kind, asset_id, count(*) AS open_hazards, count(*) FILTER (WHERE hazard_grade = '重大') AS open_major,
           string_agg(hazard_no, '、' ORDER BY hazard_grade DESC, hazard_no) AS hazard_nos
    FROM {src}hazards WHERE status IN {open} GROUP BY ALL
), b AS (
    SELECT building_id AS asset_id, "use" AS building_use, structure_type, occupants, appraisal_grade, is_masonry,
           ring_beam_tie_column
    FROM {src}v_buildings QUALIFY row_number() OVER (PARTITION BY building_id) = 1
), br AS (
    SELECT bridge_id AS asset_id, coalesce(lifeline_route, false) AS lifeline FROM {src}v_bridges
    QUALIFY row_number() OVER (PARTITION BY bridge_id) = 1
), h AS (
    SELECT site_id AS asset_id, computed_grade FROM {src}v_hazchem_sites
    QUALIFY row_number() OVER (PARTITION BY site_id) = 1
), p AS (
    SELECT segment_id AS asset_id, start_lon, start_lat, end_lon, end_lat, coalesce(fault_crossing, false) AS fault_crossing,
           ala_k1, length_km
    FROM {src}v_pipelines QUALIFY row_number() OVER (PARTITION BY segment_id) = 1
)
SELECT s.kind, s.asset_id, s.asset_name, s.town_code, s.lon, s.lat, s.responsible_unit, s.level,
       coalesce(o.open_hazards, 0) AS open_hazards, coalesce(o.open_major, 0) AS open_major, o.hazard_nos,
       b.building_use, b.structure_type, coalesce(b.occupants, 0) AS occupants, b.appraisal_grade,
       coalesce(b.is_masonry, false) AS is_masonry, b.ring_beam_tie_column, coalesce(br.lifeline, false) AS lifeline,
       coalesce(h.computed_grade, '非重大危险源') AS computed_grade, coalesce(p.fault_crossing, false) AS fault_crossing,
       p.start_lon, p.start_lat, p.end_lon, p.end_lat, p.ala_k1, p.length_km, {extra_columns}
FROM {src}scores s
LEFT JOIN open_hazards o USING (kind, asset_id)
LEFT JOIN b ON s.kind = 'buildings' AND b.asset_id = s.asset_id
LEFT JOIN br ON s.kind = 'bridges' AND br.asset_id = s.asset_id
LEFT JOIN h ON s.kind = 'hazchem_sites' AND h.asset_id = s.asset_id
LEFT JOIN p ON s.kind = 'pipelines' AND p.asset_id = s.asset_id
{extra_join}"""

# The columns a kind may fill from its view (rules/kinds.yaml `register`), with their types: NULL for every other
# kind. Adding a kind that needs one of them touches no Python.
REGISTER_COLUMNS = {
    "label": "VARCHAR",  # shown after the asset's name (a dam's safety class, a water facility's type)
    "towns_served": "VARCHAR",  # town codes, ';'-separated, that depend on the asset (a water main's towns)
    "design_intensity": "INTEGER",  # its 抗震设防烈度
    "capacity": "DOUBLE",  # the people it holds (a shelter's counted capacity)
    "site_usable": "BOOLEAN",  # its site can be counted on after an earthquake
}


def _extra(src: str) -> tuple[str, str]:
    """The register's per-kind columns (REGISTER_COLUMNS) and their join: one UNION ALL branch per kind that fills
    any of them (rules/kinds.yaml `register`), the latest row of its view per id."""
    branches = []
    for kind, spec in load_kinds().items():
        given = dict(spec.register)
        if not given:
            continue
        unknown = set(given) - set(REGISTER_COLUMNS)
        if unknown:
            raise ValueError(f"rules/kinds.yaml {kind}.register: unknown columns {sorted(unknown)}")
        cols = ", ".join(f"CAST(({given[c]}) AS {t}) AS {c}" if c in given else f"CAST(NULL AS {t}) AS {c}"
                         for c, t in REGISTER_COLUMNS.items())  # fmt: skip
        branches.append(f"SELECT '{kind}' AS kind, CAST({spec.id} AS VARCHAR) AS asset_id, {cols} FROM {src}{spec.view} "
                        f"QUALIFY row_number() OVER (PARTITION BY {spec.id}) = 1")  # fmt: skip
    if not branches:
        return ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in REGISTER_COLUMNS.items()), ""
    columns = ", ".join(f"x.{c}" for c in REGISTER_COLUMNS)
    join = f"LEFT JOIN ({' UNION ALL '.join(branches)}) x ON x.kind = s.kind AND x.asset_id = s.asset_id\n"
    return columns, join


def register_select(src: str = "") -> str:
    columns, join = _extra(src)
    return REGISTER_SELECT.format(src=src, open=OPEN_STATUSES, extra_columns=columns, extra_join=join)


def has_register_inputs(con: duckdb.DuckDBPyConnection, database: str | None = None) -> bool:
    """Whether the database holds scores and hazards (a store before its first scoring run has neither)."""
    where = f"database_name = '{database}' AND " if database else ""
    return bool(con.execute(
        f"SELECT 1 FROM duckdb_tables() WHERE {where}table_name IN ('scores', 'hazards') HAVING count(*) = 2"
    ).fetchall())  # fmt: skip


def write_asset_register(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)write `asset_register` in the connected database; returns its rows (0 before the first scoring)."""
    if not has_register_inputs(con, con.execute("SELECT current_database()").fetchone()[0]):
        return 0
    con.execute(f"CREATE OR REPLACE TABLE asset_register AS {register_select()}")
    return con.execute("SELECT count(*) FROM asset_register").fetchone()[0]
