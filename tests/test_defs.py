"""The Dagster definitions load, and their asset keys and groups are what the README says."""

from __future__ import annotations

from pipeline.wiring.definitions import defs


def test_definitions_load_with_the_expected_assets_and_groups():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    kinds = ["buildings", "bridges", "hazchem_sites", "hazchem_inventory", "pipelines",
             "geohazards", "shelters", "reservoirs", "water_supply"]  # issue 29's kinds, from their files  # fmt: skip
    scored = ["buildings", "bridges", "hazchem_sites", "pipelines",
              "geohazards", "shelters", "shelter_capacity", "reservoirs", "water_supply"]  # fmt: skip
    expected = {f"raw_{k}" for k in kinds} | {f"stg_{k}" for k in kinds} | {f"scores_{k}" for k in scored}
    expected |= {
        "blank_templates",
        "appraisal_worklist",
        "hazard_ledger",
        "ledger_quake_damage",
        "ledger_feedback",
        "ledger_exports",
        "briefing",
        "published_snapshot",
        "quake_shaking",
        "quake_first_report",
        "quake_follow_up",
    }
    expected |= {f"chart_{c}" for c in ["levels_by_town", "open_hazards_by_unit", "rectification_progress",
                                         "asset_map", "top_assets", "hazchem_grades", "shelter_capacity"]}  # fmt: skip
    assert keys == expected
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["raw_buildings"] == "intake" and groups["stg_buildings"] == "validation"
    assert groups["scores_buildings"] == "scoring" and groups["hazard_ledger"] == "ledger"
    assert groups["briefing"] == "publish" and groups["chart_asset_map"] == "publish"
    assert groups["published_snapshot"] == "publish"
    assert groups["appraisal_worklist"] == "scoring"
    assert groups["quake_shaking"] == groups["quake_first_report"] == groups["quake_follow_up"] == "quake"
    assert groups["ledger_quake_damage"] == "ledger"
    checks = {c.name for c in graph.asset_check_keys}
    assert {"files_readable", "rows_accounted_for", "quarantine_share", "numbers_add_up", "all_glyphs_drawn"} <= checks
    assert {j.name for j in defs.jobs} == {
        "main_job",
        "intake_job",
        "feedback_job",
        "daily_job",
        "quake_job",
        "declare_earthquake_job",
        "quake_followup_job",
        "close_earthquake_job",
    }
    assert [s.name for s in defs.sensors] == ["data_raw_sensor", "earthquake_sensor"] and [
        s.name for s in defs.schedules
    ] == ["daily_refresh"]


def test_loading_the_definitions_does_not_import_matplotlib_or_great_expectations():
    """The code server and the sensor load the definitions often: heavy libraries load inside assets."""
    import subprocess
    import sys

    code = "import sys, pipeline.wiring.definitions; print('matplotlib' in sys.modules, 'great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
