"""The asset register: one row per scored asset with what readers need of it (where it is, who answers for it,
its open hazards and the facts of its kind), published with the snapshot.

Readers that need every asset at once — the earthquake response above all, which must shake a million assets
within seconds of an event — read this one table instead of joining the views and the ledger themselves.

Kept in the store by asset (issue 30), like the ledger: an asset's row changes only when it was scored again
(the log `register_rescored` the scoring writes) or one of its hazards changed (an event of the ledger after
the last one the register saw). Publishing takes those rows out and puts them back as they are now, then
copies the store: the register is never computed whole on a small change. A change of the rule set (views,
reference tables, kinds), of this code or of DuckDB, a kind scored whole, or more than SCOPE_AS_LIST assets to
redo rebuild it whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from pipeline.platform import stage_inputs
from pipeline.platform.failures import rollback
from pipeline.platform.paths import PROJECT_ROOT, RULES_DIR
from pipeline.scoring.engine import REGISTER_LOG, ensure_scoring_schema
from pipeline.scoring.ruleset import load_kinds, ruleset_version

REGISTER_TABLE = "asset_register"
STEP = "asset_register"  # its state in stage_inputs: what it was built from and the last ledger event it saw
SCOPE = "__register_scope"  # (kind, asset_id) of the rows to redo
# Assets redone by a list of their ids: DuckDB then filters the views before their latest-survey window (10 k of
# 1 M buildings in 0.2 s, the whole view 2 s); the list is searched row by row, so a larger scope rebuilds whole.
SCOPE_AS_LIST = 100_000
# Each kind's view is filtered by the ids of that kind alone (`$ids_<kind>`): a filter by a long list costs ~0.2 s
# even on a view of a hundred rows (1 M buildings, 10 k ids), and a new buildings file has no bridge in its scope.
VIEW_KINDS = {"buildings": "building_id", "bridges": "bridge_id", "hazchem_sites": "site_id", "pipelines": "segment_id"}

OPEN_STATUSES = "('待整改', '整改中', '已整改待验收', '管控中')"

# `{src}` is the schema the tables are read from ('' in the database itself, 'led.' for an attached snapshot);
# `{only_*}` cut each part down to the assets of a scope (empty: every asset).
REGISTER_SELECT = """
WITH open_hazards AS (
    SELECT kind, asset_id, count(*) AS open_hazards, count(*) FILTER (WHERE hazard_grade = '重大') AS open_major,
           string_agg(hazard_no, '、' ORDER BY hazard_grade DESC, hazard_no) AS hazard_nos
    FROM {src}hazards WHERE status IN {open}{only_hazards} GROUP BY ALL
), b AS (
    SELECT building_id AS asset_id, "use" AS building_use, structure_type, occupants, appraisal_grade, is_masonry,
           ring_beam_tie_column
    FROM {src}v_buildings{only_b} QUALIFY row_number() OVER (PARTITION BY building_id) = 1
), br AS (
    SELECT bridge_id AS asset_id, coalesce(lifeline_route, false) AS lifeline FROM {src}v_bridges{only_br}
    QUALIFY row_number() OVER (PARTITION BY bridge_id) = 1
), h AS (
    SELECT site_id AS asset_id, computed_grade FROM {src}v_hazchem_sites{only_h}
    QUALIFY row_number() OVER (PARTITION BY site_id) = 1
), p AS (
    SELECT segment_id AS asset_id, start_lon, start_lat, end_lon, end_lat, coalesce(fault_crossing, false) AS fault_crossing,
           ala_k1, length_km
    FROM {src}v_pipelines{only_p} QUALIFY row_number() OVER (PARTITION BY segment_id) = 1
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
{extra_join}{only_scores}"""

# The columns a kind may fill from its view (rules/kinds.yaml `register`), with their types: NULL for every other
# kind. Adding a kind that needs one of them touches no Python.
REGISTER_COLUMNS = {
    "label": "VARCHAR",  # shown after the asset's name (a dam's safety class, a water facility's type)
    "towns_served": "VARCHAR",  # town codes, ';'-separated, that depend on the asset (a water main's towns)
    "design_intensity": "INTEGER",  # its 抗震设防烈度
    "capacity": "DOUBLE",  # the people it holds (a shelter's counted capacity)
    "site_usable": "BOOLEAN",  # its site can be counted on after an earthquake
}


def _only(column: str, scoped: bool, joiner: str = " WHERE", kind: str | None = None) -> str:
    """A filter keeping the rows whose `column` (an expression of a view's id alone: DuckDB then filters before
    the view's window) is one of the scope's ids (`$ids`; of `kind` only: `$ids_<kind>`), or nothing unscoped."""
    return f"{joiner} list_contains($ids{f'_{kind}' if kind else ''}, {column})" if scoped else ""


def scoped_kinds() -> list[str]:
    """The kinds whose views the scoped register filters by their own ids (`$ids_<kind>`)."""
    return list(dict.fromkeys([*VIEW_KINDS, *(k for k, spec in load_kinds().items() if spec.register)]))


def _extra(src: str, scoped: bool = False) -> tuple[str, str]:
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
        branches.append(f"SELECT '{kind}' AS kind, CAST({spec.id} AS VARCHAR) AS asset_id, {cols} FROM {src}{spec.view}"
                        f"{_only(f'CAST({spec.id} AS VARCHAR)', scoped, kind=kind)} QUALIFY row_number() OVER (PARTITION BY {spec.id}) = 1")  # fmt: skip
    if not branches:
        return ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in REGISTER_COLUMNS.items()), ""
    columns = ", ".join(f"x.{c}" for c in REGISTER_COLUMNS)
    join = f"LEFT JOIN ({' UNION ALL '.join(branches)}) x ON x.kind = s.kind AND x.asset_id = s.asset_id\n"
    return columns, join


def register_select(src: str = "", scoped: bool = False) -> str:
    """The register's rows; `scoped`: only those of the assets in the table SCOPE (kind, asset_id), whose ids are
    the parameters `$ids` and, per kind of `scoped_kinds`, `$ids_<kind>` (lists: see SCOPE_AS_LIST, `_scope`)."""
    columns, join = _extra(src, scoped)
    only_scores = (f"WHERE EXISTS (SELECT 1 FROM {SCOPE} x WHERE x.kind = s.kind AND x.asset_id = s.asset_id)\n"
                   if scoped else "")  # fmt: skip
    return REGISTER_SELECT.format(
        src=src, open=OPEN_STATUSES, extra_columns=columns, extra_join=join, only_scores=only_scores,
        only_hazards=_only("asset_id", scoped, " AND"),
        **{f"only_{short}": _only(VIEW_KINDS[kind], scoped, kind=kind)
           for short, kind in (("b", "buildings"), ("br", "bridges"), ("h", "hazchem_sites"), ("p", "pipelines"))},
    )  # fmt: skip


def has_register_inputs(con: duckdb.DuckDBPyConnection, database: str | None = None) -> bool:
    """Whether the database holds scores and hazards (a store before its first scoring run has neither)."""
    where = f"database_name = '{database}' AND " if database else ""
    return bool(con.execute(
        f"SELECT 1 FROM duckdb_tables() WHERE {where}table_name IN ('scores', 'hazards') HAVING count(*) = 2"
    ).fetchall())  # fmt: skip


def write_asset_register(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)write `asset_register` whole in the connected database; returns its rows (0 before the first scoring)."""
    if not has_register_inputs(con, con.execute("SELECT current_database()").fetchone()[0]):
        return 0
    con.execute(f"CREATE OR REPLACE TABLE {REGISTER_TABLE} AS {register_select()}")
    return con.execute(f"SELECT count(*) FROM {REGISTER_TABLE}").fetchone()[0]


@dataclass(frozen=True)
class RegisterUpdate:
    whole: bool  # rebuilt from every asset
    rows_written: int  # rows inserted (0: the register was left as it was, nothing written)


def register_base() -> str:
    """What every row depends on besides its asset's scores and hazards: the rule set (the views, their reference
    tables, rules/kinds.yaml), this code and DuckDB's version. A change rebuilds the register whole."""
    code = stage_inputs.files_version(PROJECT_ROOT / "pipeline/publish/asset_register.py")
    return stage_inputs.fingerprint(ruleset_version(RULES_DIR), code, duckdb.__version__)


def update_asset_register(con: duckdb.DuckDBPyConnection) -> RegisterUpdate:
    """Bring `asset_register` in the store up to date and empty the log of rescored assets: only the rows of the
    assets scored again or whose hazards changed since it was last brought up to date are taken out and put back
    (the reason, and when it is rebuilt whole: the module's docstring). Nothing changed: nothing is written, so
    the store's file stays as it was and the snapshot is not copied again."""
    if not has_register_inputs(con, con.execute("SELECT current_database()").fetchone()[0]):
        return RegisterUpdate(False, 0)
    ensure_scoring_schema(con)  # the log, in a store scored before it existed
    base, state = register_base(), stage_inputs.recorded_detail(con, STEP) or {}
    last_event = con.execute("SELECT max(seq) FROM hazard_events").fetchone()[0]
    whole = state.get("base") != base or not _has_table(con) or bool(
        con.execute(f"SELECT count(*) FROM {REGISTER_LOG} WHERE asset_id IS NULL").fetchone()[0])  # fmt: skip
    ids: dict[str, list[str]] = {"ids": []}
    if not whole:
        ids = _scope(con, state.get("last_event"))
        if not ids["ids"] and last_event == state.get("last_event"):
            con.execute(f"DROP TABLE IF EXISTS {SCOPE}")
            return RegisterUpdate(False, 0)
        whole = len(ids["ids"]) > SCOPE_AS_LIST
    con.execute("BEGIN TRANSACTION")
    try:
        if whole:
            written = write_asset_register(con)
        else:
            con.execute(f"DELETE FROM {REGISTER_TABLE} r WHERE EXISTS "
                        f"(SELECT 1 FROM {SCOPE} x WHERE x.kind = r.kind AND x.asset_id = r.asset_id)")  # fmt: skip
            written = con.execute(f"INSERT INTO {REGISTER_TABLE} BY NAME {register_select(scoped=True)}",
                                  ids).fetchone()[0]  # fmt: skip
        if con.execute(f"SELECT count(*) FROM {REGISTER_LOG}").fetchone()[0]:
            con.execute(f"DELETE FROM {REGISTER_LOG}")
        stage_inputs.record(con, STEP, base, {"base": base, "last_event": last_event})
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # never masks the error (a failed COMMIT leaves no transaction)
        raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS {SCOPE}")
    return RegisterUpdate(whole, int(written))


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary",
                            [REGISTER_TABLE]).fetchone()[0])  # fmt: skip


def _scope(con: duckdb.DuckDBPyConnection, last_event: int | None) -> dict[str, list[str]]:
    """The temp table SCOPE: the assets scored again since the register was brought up to date, and those with a
    hazard whose event came after `last_event`; returns their ids (`ids`) and each kind's (`ids_<kind>`)."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {SCOPE} AS
                    SELECT kind, asset_id FROM {REGISTER_LOG}
                    UNION SELECT h.kind, h.asset_id FROM hazards h
                    WHERE h.hazard_no IN (SELECT hazard_no FROM hazard_events WHERE seq > ?)""",
                [-1 if last_event is None else last_event])  # fmt: skip
    by_kind: dict[str, list[str]] = {f"ids_{kind}": [] for kind in scoped_kinds()}
    ids: dict[str, None] = {}  # every kind's, each id once
    for kind, asset_id in con.execute(f"SELECT DISTINCT kind, asset_id FROM {SCOPE}").fetchall():
        ids[asset_id] = None
        if f"ids_{kind}" in by_kind:
            by_kind[f"ids_{kind}"].append(asset_id)
    return {"ids": list(ids), **by_kind}
