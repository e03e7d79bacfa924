"""Fire rates on the bundled sample district: every rule fires somewhere or is listed with the reason it
cannot in the sample; no hazard rule floods the ledger; the share of buildings with an open hazard is the
one the docs state and justify (docs/ledger.md)."""

from __future__ import annotations

import csv

import duckdb

from pipeline.platform.paths import PROJECT_ROOT
from pipeline.scoring.fire_rates import fire_rates
from pipeline.scoring.ruleset import load_ruleset

SILENT = PROJECT_ROOT / "tests" / "data" / "rules_silent_in_sample.csv"
MAX_HAZARD_SHARE = 0.40


def _published(sample) -> duckdb.DuckDBPyConnection:
    deployment, _ = sample
    return duckdb.connect(str(deployment.db), read_only=True)


def test_every_rule_fires_on_the_sample_or_says_why_it_cannot(sample):
    with open(SILENT, encoding="utf-8") as f:
        silent = {r["rule_id"]: r["reason"] for r in csv.DictReader(f)}
    con = _published(sample)
    try:
        fired = set(fire_rates(con)["rule_id"])
    finally:
        con.close()
    rules = {r.id for r in load_ruleset().rules}
    assert rules - fired == set(silent), "a rule is silent without a stated reason, or fires though listed silent"
    assert all(len(reason) > 10 for reason in silent.values())


def test_no_hazard_rule_fires_on_more_than_40_percent_of_its_kind(sample):
    hazard_rules = {r.id for r in load_ruleset().rules if r.hazard}
    con = _published(sample)
    try:
        rates = fire_rates(con)
    finally:
        con.close()
    flooding = rates[rates["rule_id"].isin(hazard_rules) & (rates["share"] > MAX_HAZARD_SHARE)]
    assert flooding.empty, flooding.to_string()


def test_the_share_of_buildings_with_an_open_hazard_is_the_one_the_readme_states(sample):
    con = _published(sample)
    try:
        with_hazard, buildings = con.execute(
            """
            SELECT (SELECT count(DISTINCT asset_id) FROM hazards
                    WHERE kind = 'buildings' AND status NOT IN ('已销号', '已撤销')),
                   (SELECT count(*) FROM scores WHERE kind = 'buildings')
            """
        ).fetchall()[0]
    finally:
        con.close()
    readme = (PROJECT_ROOT / "docs" / "ledger.md").read_text(encoding="utf-8")  # moved from the README (issue 31)
    stated = f"{with_hazard:,} of the sample's {buildings:,} buildings ({with_hazard / buildings:.1%})"
    assert stated in readme
