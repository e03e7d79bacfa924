"""Only new work costs time (issue 14, the per-step half): a run whose inputs did not change validates,
scores and updates nothing, and says so; a changed input redoes the steps that read it."""

from __future__ import annotations

import dagster as dg

from pipeline.platform.resources import SparkResource
from tests.conftest import Deployment, csv_bytes, example_row, run_all
from tests.test_ledger import building


def flags(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Per step: did it do its work in this run (validated_now / scored_now / updated_now)?"""
    out = {}
    for node, key in [*((f"stg_{k}", "validated_now") for k in ("buildings", "bridges")),
                      *((f"scores_{k}", "scored_now") for k in ("buildings", "bridges")), ("hazard_ledger", "updated_now")]:  # fmt: skip
        out[node] = result.asset_materializations_for_node(node)[0].metadata[key].value
    return out


def test_a_run_with_nothing_new_does_no_work_and_a_new_file_redoes_only_its_kind(tmp_path, monkeypatch):
    d = Deployment(tmp_path)
    d.drop("buildings", "b.csv", csv_bytes("buildings", [building("B-1", appraisal_grade="D"), building("B-2")]))
    first = run_all(d, publish=False)
    assert first.success and all(flags(first).values())
    before = d.query("SELECT kind, asset_id, run_id, score FROM scores ORDER BY ALL")
    events = d.query("SELECT count(*) FROM hazard_events")

    again = run_all(d, publish=False)
    assert again.success and not any(flags(again).values())
    assert d.query("SELECT kind, asset_id, run_id, score FROM scores ORDER BY ALL") == before  # not rescored
    assert d.query("SELECT count(*) FROM hazard_events") == events
    stg = again.asset_materializations_for_node("stg_buildings")[0].metadata
    assert stg["valid"].value == 2 and stg["quarantined"].value == 0  # the figures still reported

    d.drop("bridges", "q.csv", csv_bytes("bridges", [example_row("bridges")]), unit="ZJJ")
    third = run_all(d, publish=False)
    assert flags(third) == {"stg_buildings": False, "stg_bridges": True, "scores_buildings": False,
                            "scores_bridges": True, "hazard_ledger": True}  # fmt: skip

    monkeypatch.setenv("LITONG_TODAY", "2099-01-01")  # a new day: the 'not after today' checks are redone
    fourth = run_all(d, publish=False)
    assert flags(fourth)["stg_buildings"] and not flags(fourth)["scores_buildings"]  # same records: same scores


def test_charts_briefing_and_exports_are_not_redrawn_when_nothing_changed(tmp_path):
    d = Deployment(tmp_path)
    d.drop("buildings", "b.csv", csv_bytes("buildings", [building("B-1", appraisal_grade="D"), building("B-2")]))
    assert run_all(d).success
    png = d.output / "charts" / "levels_by_town.png"
    stamp = png.stat().st_mtime_ns
    again = run_all(d)
    assert again.success
    chart = again.asset_materializations_for_node("chart_levels_by_town")[0].metadata
    assert chart["drawn_now"].value is False and chart["total"].value == 2
    checks = {e.check_name: e.passed for e in again.get_asset_check_evaluations()
              if e.asset_key.to_user_string() == "chart_levels_by_town"}  # fmt: skip
    assert checks == {"numbers_add_up": True, "all_glyphs_drawn": True}  # reported as recorded when drawn
    assert again.asset_materializations_for_node("briefing")[0].metadata["written_now"].value is False
    assert again.asset_materializations_for_node("ledger_exports")[0].metadata["exported_now"].value is False
    assert png.stat().st_mtime_ns == stamp
    png.unlink()  # a chart deleted by hand is drawn again
    third = run_all(d)
    assert third.asset_materializations_for_node("chart_levels_by_town")[0].metadata["drawn_now"].value is True
    assert png.is_file()


def test_a_building_naming_an_enterprise_is_taken_in_the_run_that_finds_the_enterprise(tmp_path):
    """The enterprises come from the hazchem scoring, and the validation of a 责任单位 column waits for it: a
    building whose 责任单位 is an enterprise not known yet is refused, and taken in the very run in which the
    enterprise's survey arrives (its kind's fingerprint names the enterprises its rows name); the run after has
    nothing to do, and kinds whose rows name none are not validated again."""
    from tests.test_enterprises import SITE

    d = Deployment(tmp_path)
    d.drop("buildings", "b.csv", csv_bytes("buildings", [building("B-1", responsible_unit=SITE), building("B-2")]))
    assert run_all(d, publish=False).success
    assert d.query("SELECT count(*) FROM quarantine WHERE kind = 'buildings'") == [(1,)]
    d.drop("hazchem_sites", "s.csv", csv_bytes("hazchem_sites", [example_row("hazchem_sites", site_id=SITE)]),
           unit="YJJ")  # fmt: skip
    second = run_all(d, publish=False)
    assert flags(second)["stg_buildings"] and not flags(second)["stg_bridges"]
    assert d.query("SELECT responsible_unit FROM stg_buildings WHERE building_id = 'B-1'") == [(SITE,)]
    assert d.query("SELECT count(*) FROM quarantine WHERE kind = 'buildings'") == [(0,)]
    third = run_all(d, publish=False)
    assert not any(flags(third).values())


def test_scoring_and_the_ledger_of_the_changed_assets_only_equal_a_full_pass(tmp_path, monkeypatch):
    """One deployment scores and updates only what changed; a twin fed the same files does everything every
    run. After each change their findings, scores, hazards and events are the same."""
    from pipeline.ledger import assets as ledger_assets
    from pipeline.scoring import changes
    from pipeline.wiring.definitions import all_assets

    CORE = dg.AssetSelection.groups("intake", "validation", "scoring") | dg.AssetSelection.assets("hazard_ledger")  # noqa: N806

    live, full = Deployment(tmp_path / "live"), Deployment(tmp_path / "full")
    collect, update = changes.collect, ledger_assets.update_from_findings

    def everything(con, deps, id_column):
        return collect(con, deps, id_column)[0], True

    def both(step):
        for d in (live, full):
            step(d)
            with monkeypatch.context() as m:
                if d is full:
                    m.setattr(changes, "collect", everything)
                    m.setattr(ledger_assets, "update_from_findings", lambda con, only_rescored: update(con))
                assert dg.materialize(
                    all_assets, selection=CORE, resources={"store": d.resource(), "spark": SparkResource()}
                ).success

    def state(d):
        return [d.query("SELECT * EXCLUDE (run_id) FROM findings ORDER BY ALL"),
                d.query("SELECT * EXCLUDE (run_id) FROM scores ORDER BY ALL"),
                d.query("SELECT * FROM hazards ORDER BY ALL"),
                d.query("SELECT hazard_no, event_date, from_status, to_status, unit, source_file, note "
                        "FROM hazard_events ORDER BY ALL")]  # fmt: skip

    def drop(name, rnd, rows):
        return lambda d: d.drop("buildings", name, csv_bytes("buildings", rows), unit="ZJJ", rnd=rnd)

    both(drop("r1.csv", "2023-1", [building("B-1", appraisal_grade="D"), building("B-2"),
                                   building("B-3", falling_hazard="是")]))  # fmt: skip
    assert state(live) == state(full)
    untouched = live.query("SELECT run_id FROM scores WHERE asset_id = 'B-2'")

    both(drop("r2.csv", "2023-2", [building("B-1", appraisal_grade="B", survey_date="2023-10-01"),
                                   building("B-4", appraisal_grade="D", survey_date="2023-10-01")]))  # fmt: skip
    assert state(live) == state(full)
    assert live.query("SELECT run_id FROM scores WHERE asset_id = 'B-2'") == untouched  # not scored again
    assert live.query("SELECT status FROM hazards WHERE asset_id = 'B-1'") == [("已整改待验收",)]  # resurvey cleared it

    both(lambda d: (d.data_raw / "buildings" / "ZJJ" / "2023-2" / "r2.csv").unlink())
    assert state(live) == state(full)
    assert live.query("SELECT count(*) FROM rescored_assets") == [(0,)]
    assert live.query("SELECT count(*) FROM staged_changes") == [(0,)]
