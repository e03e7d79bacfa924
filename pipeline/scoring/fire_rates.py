"""How often each rule fires on the current data: the figure that shows whether a rule is a screen that
ranks or a hazard rule a district can work through hazard by hazard (`cli rules`, tests on the sample)."""

from __future__ import annotations

import duckdb
import pandas as pd

FIRE_RATES_SQL = """
WITH assets AS (SELECT kind, count(*) AS assets FROM scores GROUP BY kind),
fired AS (SELECT kind, rule_id, count(DISTINCT asset_id) AS fired FROM findings GROUP BY ALL)
SELECT a.kind, f.rule_id, coalesce(f.fired, 0) AS fired, a.assets,
       round(coalesce(f.fired, 0) / a.assets, 4) AS share
FROM assets a JOIN fired f USING (kind)
ORDER BY a.kind, f.rule_id
"""


def fire_rates(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """kind, rule_id, fired (assets it fires on), assets (scored assets of the kind), share; rules that fire
    nowhere are absent (join with the rule set to list them)."""
    return con.execute(FIRE_RATES_SQL).df()


def scored_versions(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The rule-set versions the current scores were computed with."""
    return [v for (v,) in con.execute("SELECT DISTINCT ruleset_version FROM scores ORDER BY 1").fetchall()]
