"""The 待鉴定清单 kept like the ledger (issue 30): only the buildings scored again change the table, only the
towns whose rows changed have their files written again, and the result is the same as rebuilding it whole."""

from __future__ import annotations

import csv
import io

import dagster as dg
import openpyxl

from pipeline.platform import store
from pipeline.platform.resources import SparkResource
from pipeline.scoring.worklist import WORKLIST_NAME, WORKLIST_TABLE, update_worklist, write_worklist_files
from tests.conftest import Deployment, csv_bytes
from tests.test_ledger import building

JINJI, GAOZHA = ("640302100", "金积镇"), ("640302102", "高闸镇")
STEPS = dg.AssetSelection.groups("intake", "validation") | dg.AssetSelection.assets(
    "scores_buildings", "appraisal_worklist"
)


def old_house(bid: str, town: tuple[str, str], **overrides) -> dict:
    """An unappraised brick-and-timber house without seismic design: on the list by its low S."""
    return building(bid, town_code=town[0], town_name=town[1], structure_type="砖木", year_built="1995",
                    seismic_design="否", appraisal_grade="未鉴定", **overrides)  # fmt: skip


def run(d: Deployment) -> dict:
    from pipeline.wiring.definitions import all_assets

    result = dg.materialize(all_assets, selection=STEPS, resources={"store": d.resource(), "spark": SparkResource()})
    assert result.success
    return {k: v.value for k, v in result.asset_materializations_for_node("appraisal_worklist")[0].metadata.items()}


def rows_of(d: Deployment) -> list[tuple]:
    return d.query(f"SELECT * EXCLUDE (row_hash) FROM {WORKLIST_TABLE} ORDER BY town_part, priority")


def test_nothing_changed_writes_nothing_and_a_small_change_rewrites_only_its_town(tmp_path):
    d = Deployment(tmp_path)
    jinji = [old_house(f"J-{i}", JINJI, occupants=str(i)) for i in range(1, 7)]
    gaozha = [old_house(f"G-{i}", GAOZHA) for i in range(1, 5)]
    d.drop("buildings", "r1.csv", csv_bytes("buildings", [*jinji, *gaozha]), unit="ZJJ", rnd="2023-1")
    first = run(d)
    assert first["written_now"] and first["rows"] == 10 and first["table_rows_written"] == 10
    assert (first["town_files_written"], first["town_files_skipped"]) == (2, 0)
    folder = d.output / "worklists"
    files = {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.xlsx")} | {
        p.name: p.stat().st_mtime_ns for p in folder.glob("*.csv")
    }
    assert set(files) == {f"{WORKLIST_NAME}.xlsx", f"{WORKLIST_NAME}_金积镇.xlsx", f"{WORKLIST_NAME}_高闸镇.xlsx",
                          f"{WORKLIST_NAME}.csv"}  # fmt: skip

    again = run(d)  # nothing changed: no row, no file
    assert not again["written_now"] and again["rows"] == 10
    assert {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.xlsx")} | {
        p.name: p.stat().st_mtime_ns for p in folder.glob("*.csv")
    } == files

    # one 金积镇 house appraised in the second round: off the list; 高闸镇's rows and file stay as they were
    gaozha_rows = [r for r in rows_of(d) if r[4].startswith("G-")]  # r[4]: building_id
    d.drop("buildings", "r2.csv", csv_bytes("buildings", [building("J-3", town_code=JINJI[0], town_name=JINJI[1],
                                                                   appraisal_grade="B", survey_date="2023-10-01")]),
           unit="ZJJ", rnd="2023-2")  # fmt: skip
    third = run(d)
    assert third["written_now"] and third["rows"] == 9
    assert third["table_rows_written"] == 5  # 金积镇's five rows, ranked again; none of 高闸镇's
    assert (third["town_files_written"], third["town_files_skipped"]) == (1, 1)
    town_files = {p.name: p.stat().st_mtime_ns for p in (folder / "乡镇").glob("*.xlsx")}
    assert town_files[f"{WORKLIST_NAME}_高闸镇.xlsx"] == files[f"{WORKLIST_NAME}_高闸镇.xlsx"]
    assert town_files[f"{WORKLIST_NAME}_金积镇.xlsx"] != files[f"{WORKLIST_NAME}_金积镇.xlsx"]
    assert [r for r in rows_of(d) if r[4].startswith("G-")] == gaozha_rows

    # the same as a rebuild from every building: table, CSV and the town's workbook
    kept = rows_of(d)
    csv_text = (folder / f"{WORKLIST_NAME}.csv").read_bytes()
    with store.connect(d.db) as con:
        from pipeline.scoring.ruleset import install

        install(con)
        update_worklist(con, whole=True)
        assert con.execute(f"SELECT * EXCLUDE (row_hash) FROM {WORKLIST_TABLE} ORDER BY town_part, priority"
                           ).fetchall() == kept  # fmt: skip
        write_worklist_files(con, tmp_path / "rebuilt")
    assert (tmp_path / "rebuilt" / f"{WORKLIST_NAME}.csv").read_bytes() == csv_text
    rows = list(csv.DictReader(io.StringIO(csv_text.decode("utf-8-sig"))))
    assert [r["房屋编码"] for r in rows] == ["J-6", "J-5", "J-4", "J-2", "J-1", "G-1", "G-2", "G-3", "G-4"]
    assert [r["序号"] for r in rows] == ["1", "2", "3", "4", "5", "1", "2", "3", "4"]  # each town's own order
    sheet = openpyxl.load_workbook(folder / "乡镇" / f"{WORKLIST_NAME}_金积镇.xlsx", read_only=True)[WORKLIST_NAME]
    cells = list(sheet.iter_rows(values_only=True))
    assert cells[0][0] == "序号" and [c[2] for c in cells[1:]] == ["J-6", "J-5", "J-4", "J-2", "J-1"]
    district = openpyxl.load_workbook(folder / f"{WORKLIST_NAME}.xlsx", read_only=True)
    assert [c[2] for c in list(district[WORKLIST_NAME].iter_rows(values_only=True))[1:]] == [
        r["房屋编码"] for r in rows
    ]
    summary = list(district["乡镇汇总"].iter_rows(values_only=True))
    assert summary[1][:4] == ("金积镇", 0, 5, 5) and summary[2][:4] == ("高闸镇", 0, 4, 4)


def test_a_town_is_split_into_sheets_at_the_row_limit(tmp_path):
    d = Deployment(tmp_path)
    d.drop("buildings", "r1.csv", csv_bytes("buildings", [old_house(f"J-{i}", JINJI) for i in range(1, 6)]))
    run(d)
    with store.connect(d.db) as con:
        write_worklist_files(con, tmp_path / "small", max_rows=3)  # two rows and the header a sheet
    book = openpyxl.load_workbook(tmp_path / "small" / "乡镇" / f"{WORKLIST_NAME}_金积镇.xlsx", read_only=True)
    assert book.sheetnames == [f"{WORKLIST_NAME}(1)", f"{WORKLIST_NAME}(2)", f"{WORKLIST_NAME}(3)", "说明"]
    ids = [r[2] for name in book.sheetnames[:3] for r in list(book[name].iter_rows(values_only=True))[1:]]
    assert ids == [f"J-{i}" for i in range(1, 6)]


def test_rescored_buildings_are_cut_from_the_view_alike_by_a_list_of_ids_and_by_a_join(tmp_path, monkeypatch):
    """A small scope is cut from v_buildings by a list of ids (DuckDB filters before the view's window), a large
    one by a join with the whole view: both give the rows a rebuild gives."""
    from pipeline.scoring import worklist
    from pipeline.scoring.ruleset import install

    d = Deployment(tmp_path)
    houses = [old_house(f"J-{i}", JINJI, occupants=str(i)) for i in range(1, 5)] + [old_house("G-1", GAOZHA)]
    d.drop("buildings", "r1.csv", csv_bytes("buildings", houses), unit="ZJJ", rnd="2023-1")
    run(d)
    rebuilt = rows_of(d)
    with store.connect(d.db) as con:
        install(con)
        for limit in (worklist.SCOPE_AS_LIST, 0):
            monkeypatch.setattr(worklist, "SCOPE_AS_LIST", limit)
            con.execute(f"INSERT INTO {worklist.WORKLIST_LOG} VALUES ('buildings', 'J-2'), ('buildings', 'G-1')")
            assert update_worklist(con, whole=False) == 5  # both towns ranked again, nothing else
            assert con.execute(f"SELECT * EXCLUDE (row_hash) FROM {WORKLIST_TABLE} ORDER BY town_part, priority"
                               ).fetchall() == rebuilt  # fmt: skip
