"""What the charts and the briefing read: the scores and the ledger, each loaded once, as of a date.

Publishing reads the two stages before it (scores, ledger) and nothing earlier, except the scoring
view of hazchem sites for the computed GB 18218 grade, which the scores table does not keep.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property

import duckdb
import pandas as pd

from pipeline.ledger.exports import KIND_ZH, query_ledger
from pipeline.ledger.model import WITHDRAWN, ensure_ledger_schema
from pipeline.registries.templates import towns
from pipeline.scoring.engine import ensure_scoring_schema

GRADES = ["一级", "二级", "三级", "四级", "非重大危险源"]
TOP_N = 10
MAP_CELL_DEGREES = 0.001  # ~100 m, about a pixel of the map: assets in one cell are drawn as one marker


def short_town(name: str) -> str:
    """Town names as a chart label: the agricultural park's full name is three times the others'."""
    return name.removeprefix("宁夏吴忠国家")


class PublishInputs:
    """What the charts and the briefing read, as small frames that DuckDB aggregates from the scores and the
    ledger (a million assets never become a million pandas rows), each computed once over one open
    connection; `as_of` fixes what counts as overdue."""

    def __init__(self, con: duckdb.DuckDBPyConnection, as_of: dt.date):
        self.con = con
        self.as_of = as_of
        ensure_scoring_schema(con)  # an empty database publishes empty charts, not errors
        ensure_ledger_schema(con)

    def _frame(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def _ledger(self, select: str) -> pd.DataFrame:
        return query_ledger(self.con, self.as_of, select, ordered=False)  # each select orders what it shows

    def _with_names(self, df: pd.DataFrame) -> pd.DataFrame:
        if "kind" in df:
            df["kind_zh"] = df["kind"].map(KIND_ZH)
        if "town_code" in df:
            df["town_name"] = df["town_code"].map(towns()).fillna("乡镇不明")
        return df

    @cached_property
    def score_counts(self) -> pd.DataFrame:
        """Scored assets per kind, town and level (`n`), and how many of them have no position (`unlocated`)."""
        return self._with_names(self._frame(
            "SELECT kind, town_code, level, count(*) AS n, "
            "count(*) FILTER (WHERE lon IS NULL OR lat IS NULL) AS unlocated FROM scores GROUP BY ALL"))  # fmt: skip

    @cached_property
    def scored(self) -> pd.DataFrame:
        """Scored assets per kind, counted apart from `score_counts` (the charts' checks compare the two)."""
        return self._frame("SELECT kind, count(*) AS n FROM scores GROUP BY kind")

    def scored_total(self, kind: str | None = None) -> int:
        s = self.scored
        return int(s["n"].sum() if kind is None else s.loc[s["kind"] == kind, "n"].sum())

    @cached_property
    def ledger_counts(self) -> pd.DataFrame:
        """Hazards per responsible unit, status, grade and whether overdue (`n`)."""
        return self._ledger(
            "SELECT coalesce(unit_name, responsible_unit, '未明确') AS unit_name, status, hazard_grade, "
            "overdue_days IS NOT NULL AS overdue, count(*) AS n FROM l GROUP BY ALL")  # fmt: skip

    @cached_property
    def open_total(self) -> int:
        """Hazards not 已销号, counted apart from `ledger_counts`."""
        return int(self._ledger("SELECT count(*) AS n FROM l WHERE status <> '已销号'")["n"].iloc[0])

    @cached_property
    def overdue_major(self) -> pd.DataFrame:
        """Overdue 重大隐患, longest overdue first."""
        return self._ledger(
            "SELECT hazard_no, asset_name, status, deadline, next_review, overdue_days, overdue_kind, control_deadline, "
            "coalesce(unit_name, responsible_unit, '未明确') AS unit_name, coalesce(town_name, '乡镇不明') AS town_name "
            "FROM l WHERE hazard_grade = '重大' AND overdue_days IS NOT NULL ORDER BY overdue_days DESC, hazard_no")  # fmt: skip

    @cached_property
    def events_daily(self) -> pd.DataFrame:
        """Per day with a change up to `as_of`: hazards found (new, less those withdrawn by a rule change, plus
        those that came back) and closed (已销号, less those reopened)."""
        return self._frame(f"""
            SELECT event_date,
                   sum((from_status IS NULL OR from_status = '{WITHDRAWN}')::INTEGER
                       - (to_status = '{WITHDRAWN}')::INTEGER)::BIGINT AS found,
                   sum((to_status = '已销号')::INTEGER - coalesce(from_status = '已销号', false)::INTEGER)::BIGINT
                       AS closed
            FROM hazard_events WHERE event_date <= ? GROUP BY event_date ORDER BY event_date""", [self.as_of])  # fmt: skip

    @cached_property
    def map_cells(self) -> pd.DataFrame:
        """Located assets per kind, level and map cell (`n`), the cell at its centre."""
        g = MAP_CELL_DEGREES
        return self._with_names(self._frame(
            f"SELECT kind, level, round(lon / {g}) * {g} AS lon, round(lat / {g}) * {g} AS lat, count(*) AS n "
            "FROM scores WHERE lon IS NOT NULL AND lat IS NOT NULL GROUP BY ALL"))  # fmt: skip

    @cached_property
    def town_centres(self) -> pd.DataFrame:
        """The median position of each town's located assets (those of no known town together)."""
        df = self._frame(
            "SELECT CASE WHEN list_contains(?, town_code) THEN town_code END AS town_code, "
            "median(lon) AS lon, median(lat) AS lat FROM scores WHERE lon IS NOT NULL AND lat IS NOT NULL "
            "GROUP BY 1 ORDER BY 1", [list(towns())])  # fmt: skip
        return self._with_names(df)

    @cached_property
    def top_assets(self) -> pd.DataFrame:
        """The TOP_N highest scores; the score is capped at 100, so the points before the cap rank them (then
        the number of hazards: the more to fix, the higher)."""
        return self._with_names(self._frame(
            "SELECT kind, asset_id, asset_name, town_code, score, raw_points, n_hazards, level, top_reasons "
            "FROM scores ORDER BY score DESC, raw_points DESC, n_hazards DESC, asset_id LIMIT ?", [TOP_N]))  # fmt: skip

    @cached_property
    def shelter_capacity(self) -> pd.DataFrame:
        """Per town: the capacity of its usable shelters against the people it must shelter (v_shelter_capacity,
        rules/views/shelter_capacity.sql), one row per town once any shelter has been surveyed; with the usable
        capacity counted again from the shelters (the chart's check)."""
        columns = ["town_code", "town_name", "population", "people_to_shelter", "usable_capacity", "capacity_gap",
                   "capacity_ratio", "shelters", "usable_shelters", "counted"]  # fmt: skip
        has_view = self.con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = 'v_shelter_capacity' AND NOT internal"
        ).fetchall()[0][0]
        if not has_view:
            return pd.DataFrame({c: [] for c in columns}, dtype=object)
        return self.con.execute(
            "SELECT c.town_code, c.town_name, c.population, c.people_to_shelter, c.usable_capacity, c.capacity_gap, "
            "c.capacity_ratio, c.shelters, c.usable_shelters, "
            "(SELECT coalesce(sum(s.counted_capacity), 0) FROM v_shelters s WHERE s.usable AND s.town_code = c.town_code) "
            "AS counted FROM v_shelter_capacity c ORDER BY c.town_code"
        ).df()

    @cached_property
    def hazchem_grades(self) -> pd.DataFrame:
        """One row per scored hazchem site: computed and declared GB 18218 grade."""
        has_view = self.con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = 'v_hazchem_sites' AND NOT internal"
        ).fetchall()[0][0]
        if not has_view:
            return pd.DataFrame({"site_id": [], "computed_grade": [], "declared_grade": []}, dtype=object)
        return self.con.execute(
            "SELECT v.site_id, v.computed_grade, v.declared_grade FROM v_hazchem_sites v "
            "JOIN scores s ON s.kind = 'hazchem_sites' AND s.asset_id = v.site_id ORDER BY v.site_id"
        ).df()
