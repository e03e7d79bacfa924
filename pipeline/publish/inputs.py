"""What the charts and the briefing read: the scores and the ledger, each loaded once, as of a date.

Publishing reads the two stages before it (scores, ledger) and nothing earlier, except the scoring
view of hazchem sites for the computed GB 18218 grade, which the scores table does not keep.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property

import duckdb
import pandas as pd

from pipeline.intake.schema import towns
from pipeline.ledger.exports import KIND_ZH, ledger_rows
from pipeline.ledger.model import ensure_ledger_schema
from pipeline.scoring.engine import ensure_scoring_schema

SCORE_COLUMNS = "kind, asset_id, asset_name, town_code, lon, lat, score, raw_points, level, hard_rule, top_reasons"
LEDGER_COLUMNS = ["hazard_no", "asset_name", "status", "hazard_grade", "deadline", "next_review", "overdue_days",
                  "responsible_unit", "unit_name", "town_name"]  # fmt: skip
GRADES = ["一级", "二级", "三级", "四级", "非重大危险源"]


def short_town(name: str) -> str:
    """Town names as a chart label: the agricultural park's full name is three times the others'."""
    return name.removeprefix("宁夏吴忠国家")


class PublishInputs:
    """Lazily loaded frames over one open connection; `as_of` fixes what counts as overdue."""

    def __init__(self, con: duckdb.DuckDBPyConnection, as_of: dt.date):
        self.con = con
        self.as_of = as_of
        ensure_scoring_schema(con)  # an empty database publishes empty charts, not errors
        ensure_ledger_schema(con)

    @cached_property
    def scores(self) -> pd.DataFrame:
        df = self.con.execute(f"SELECT {SCORE_COLUMNS} FROM scores").df()
        df["kind_zh"] = df["kind"].map(KIND_ZH)
        df["town_name"] = df["town_code"].map(towns()).fillna("乡镇不明")
        return df

    @cached_property
    def ledger(self) -> pd.DataFrame:
        df = ledger_rows(self.con, self.as_of, columns=LEDGER_COLUMNS)
        df["unit_name"] = df["unit_name"].fillna(df["responsible_unit"]).fillna("未明确")
        df["town_name"] = df["town_name"].fillna("乡镇不明")
        return df

    @cached_property
    def events(self) -> pd.DataFrame:
        """Status changes up to `as_of`: when each hazard was found, closed or reopened."""
        return self.con.execute(
            "SELECT hazard_no, event_date, from_status, to_status FROM hazard_events WHERE event_date <= ? "
            "ORDER BY event_date, seq",
            [self.as_of],
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
