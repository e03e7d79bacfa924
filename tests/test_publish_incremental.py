"""Charts and the briefing are drawn again only when what they show changed (issue 30): a run whose scores or
ledger changed without changing a chart's figures leaves its picture as it was; a changed figure redraws it."""

from __future__ import annotations

import pandas as pd

from pipeline.publish.figures import frame_fingerprint
from tests.conftest import Deployment, csv_bytes, run_all
from tests.test_ledger import building

SCORE_CHARTS = ("levels_by_town", "asset_map", "top_assets")


def drawn(result, name: str) -> bool:
    return result.asset_materializations_for_node(f"chart_{name}")[0].metadata["drawn_now"].value


def test_a_resurvey_that_changes_no_figure_redraws_no_chart_and_a_new_building_does(tmp_path):
    d = Deployment(tmp_path)
    d.drop("buildings", "b.csv", csv_bytes("buildings", [building("B-1", appraisal_grade="D"), building("B-2")]))
    assert run_all(d).success
    charts = d.output / "charts"
    stamps = {n: (charts / f"{n}.png").stat().st_mtime_ns for n in SCORE_CHARTS}
    previews = {p.name: p.stat().st_mtime_ns for p in (d.db.parent / ".cache" / "chart_previews").glob("*.json")}
    assert len(previews) >= len(SCORE_CHARTS)

    # B-2 surveyed again in the next round, as it was: its kind is scored again (a new file), nothing shown changes
    d.drop("buildings", "b2.csv", csv_bytes("buildings", [building("B-2")]), rnd="2023-2")
    again = run_all(d)
    assert again.success
    assert again.asset_materializations_for_node("scores_buildings")[0].metadata["scored_now"].value is True
    assert not any(drawn(again, n) for n in SCORE_CHARTS)
    assert {n: (charts / f"{n}.png").stat().st_mtime_ns for n in SCORE_CHARTS} == stamps
    meta = again.asset_materializations_for_node("chart_levels_by_town")[0].metadata
    assert meta["total"].value == 2 and meta["chart"].value.startswith("![chart](data:image/png;base64,")
    assert {
        p.name: p.stat().st_mtime_ns for p in (d.db.parent / ".cache" / "chart_previews").glob("*.json")
    } == previews

    # a new building graded D: the counts per level change, those charts are drawn again
    d.drop("buildings", "b3.csv", csv_bytes("buildings", [building("B-3", appraisal_grade="D")]), rnd="2023-2")
    third = run_all(d)
    assert third.success
    assert drawn(third, "levels_by_town") and drawn(third, "asset_map")
    assert third.asset_materializations_for_node("chart_levels_by_town")[0].metadata["total"].value == 3
    assert (charts / "levels_by_town.png").stat().st_mtime_ns != stamps["levels_by_town"]
    assert third.asset_materializations_for_node("briefing")[0].metadata["written_now"].value is True


def test_a_frames_fingerprint_is_its_values_in_any_row_order():
    df = pd.DataFrame({"town": ["金积镇", "古城镇"], "n": [3, 4]})
    assert frame_fingerprint(df) == frame_fingerprint(df.iloc[::-1])
    assert frame_fingerprint(df) != frame_fingerprint(df.assign(n=[3, 5]))
    assert frame_fingerprint(df) != frame_fingerprint(df.rename(columns={"n": "m"}))
    assert frame_fingerprint(df.iloc[:0]) != frame_fingerprint(df)
