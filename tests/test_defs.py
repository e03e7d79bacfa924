"""The Dagster definitions load, and their asset keys and groups are what the README says."""

from __future__ import annotations

from pipeline.definitions import defs


def test_definitions_load_with_the_expected_assets_and_groups():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    kinds = ["buildings", "bridges", "hazchem_sites", "hazchem_inventory", "pipelines"]
    scored = ["buildings", "bridges", "hazchem_sites", "pipelines"]
    expected = {f"raw_{k}" for k in kinds} | {f"stg_{k}" for k in kinds} | {f"scores_{k}" for k in scored}
    expected |= {"blank_templates", "hazard_ledger", "ledger_feedback", "ledger_exports"}
    assert keys == expected
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["raw_buildings"] == "intake" and groups["stg_buildings"] == "validation"
    assert groups["scores_buildings"] == "scoring" and groups["hazard_ledger"] == "ledger"
    checks = {c.name for c in graph.asset_check_keys}
    assert {"files_readable", "rows_accounted_for", "quarantine_share"} <= checks
    assert {j.name for j in defs.jobs} >= {"main_job", "intake_job"}
