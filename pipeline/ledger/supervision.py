"""Who supervises a hazard — accepts it (验收、销号), decides its extensions, sees it as supervisor in the portal —
decided per hazard by sector, as data the district edits (reference/supervision.csv).

管行业必须管业务必须管安全 (安全生产法 第三条, 16号令): the town or owner is responsible, the sector department
supervises. Each row maps an asset kind and its sector (the asset's use, its site type: rules/kinds.yaml
`sector`, kept in the scores) to a department; a kind's '*' row covers every other sector. A hazard whose
responsible unit is that department itself (a bureau's own school) goes to the unit's superior in the
registry (the district government). A kind without a row falls back to the responsible unit's superior.

Before this table, every hazard was supervised by its responsible unit's superior in the registry, which
made the emergency bureau the acceptor of nearly all of them (LEGACY_SUPERVISOR): a ledger made then is
re-routed on its next update, with an event per hazard naming both departments.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache

import duckdb
import pandas as pd

from pipeline.platform.paths import REFERENCE_DIR
from pipeline.registries import units as registry

SUPERVISION_FILE = "supervision.csv"
ANY_SECTOR = "*"
# Before issue 26 the registry made the emergency bureau the superior of every town and department; the
# hazards of a ledger made then were supervised by it (an enterprise's by the department that filed it).
LEGACY_SUPERVISOR = "YJJ"
ROUTES_TABLE = "ref_supervision"  # temp table: kind, sector, supervisor_code, object_zh


@dataclass(frozen=True)
class Route:
    kind: str
    sector: str  # a sector value, or '*' for the kind's other assets
    supervisor_code: str
    object_zh: str
    basis_zh: str


@cache
def routes() -> tuple[Route, ...]:
    """The table's rows, checked: every supervisor is a district unit, no (kind, sector) twice."""
    with open(REFERENCE_DIR / SUPERVISION_FILE, encoding="utf-8") as f:
        rows = [Route(*(r[k].strip() for k in ("kind", "sector", "supervisor_code", "object_zh", "basis_zh")))
                for r in csv.DictReader(f)]  # fmt: skip
    problems, seen = [], set()
    for i, r in enumerate(rows, start=2):
        if r.supervisor_code not in registry.district_units():
            problems.append(f"第{i}行：监管部门代码“{r.supervisor_code}”不在单位名录中")
        if (r.kind, r.sector) in seen:
            problems.append(f"第{i}行：{r.kind}/{r.sector} 重复")
        seen.add((r.kind, r.sector))
    if problems:
        raise ValueError(f"reference/{SUPERVISION_FILE}：" + "；".join(problems))
    return tuple(rows)


def install(con: duckdb.DuckDBPyConnection) -> None:
    """The table as `ref_supervision`, and the registry as `ref_unit_superiors` (unit_code, superior, unit_name,
    unit_kind)."""
    frame = pd.DataFrame([(r.kind, r.sector, r.supervisor_code, r.object_zh) for r in routes()],
                         columns=["kind", "sector", "supervisor_code", "object_zh"], dtype=object)  # fmt: skip
    units = registry.units()
    superiors = pd.DataFrame([(c, u.supervisor or registry.TOP_UNIT, u.name, u.kind) for c, u in units.items()],
                             columns=["unit_code", "superior", "unit_name", "unit_kind"], dtype=object)  # fmt: skip
    for name, df in ((ROUTES_TABLE, frame), ("ref_unit_superiors", superiors)):
        con.register(f"{name}_df", df)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_df")
        finally:
            con.unregister(f"{name}_df")


def routed_sql(source: str) -> str:
    """`source` (any columns with kind, sector, responsible_unit) with `sector_supervisor` and the table's
    `supervision_object`: the sector's row, else the kind's '*' row, else the responsible unit's superior; a
    department never supervises itself (its own hazards go to its superior)."""
    sup = f"coalesce(e.supervisor_code, a.supervisor_code, own.superior, '{registry.TOP_UNIT}')"
    return f"""
    SELECT src.*, CASE WHEN {sup} = src.responsible_unit THEN coalesce(own.superior, '{registry.TOP_UNIT}')
                       ELSE {sup} END AS sector_supervisor,
           {sup} = src.responsible_unit AS own_hazard, coalesce(e.object_zh, a.object_zh) AS supervision_object
    FROM {source} src
    LEFT JOIN ref_unit_superiors own ON own.unit_code = src.responsible_unit
    LEFT JOIN {ROUTES_TABLE} e ON e.kind = src.kind AND e.sector = src.sector
    LEFT JOIN {ROUTES_TABLE} a ON a.kind = src.kind AND a.sector = '{ANY_SECTOR}'
    """


def legacy_supervisor_sql(alias: str) -> str:
    """Who supervised a hazard before the table (see LEGACY_SUPERVISOR), with `ref_unit_superiors` joined as
    `own`: an enterprise's filing department, the government for the emergency bureau's own, else the bureau."""
    return f"""CASE WHEN {alias}.responsible_unit = '{LEGACY_SUPERVISOR}' THEN '{registry.TOP_UNIT}'
                    WHEN own.unit_kind = 'enterprise' THEN own.superior
                    ELSE '{LEGACY_SUPERVISOR}' END"""


def hazard_supervisor(h: dict) -> str | None:
    """The department that accepts and decides for one hazard (a row of `hazards`): its recorded
    sector_supervisor; a hazard not routed yet (an old ledger before its update) by its unit's superior."""
    return h.get("sector_supervisor") or registry.supervisor_of(h.get("responsible_unit"))
