"""The ledger exports after a small change (issue 30): what an export writes over the last one is what an export
from scratch writes (CSV bytes, Parquet rows, every workbook's cells, the 督办建议清单), and the work it does
follows the change: the ledger's rows computed are those of the hazards that changed (the table is kept by hazard
in the cache), the CSV fragments written those of the kind's towns that changed, the rows rendered those of the
workbooks that changed, the 督办建议清单 is written again only when what it shows changed, and nothing is
computed, rendered or written when nothing changed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import openpyxl
import pyarrow.parquet as pq

from pipeline.formats import parquet_fragments
from pipeline.ledger import export_table, exports
from pipeline.ledger.duban import PROPOSALS_NAME
from pipeline.ledger.exports import EXPORT_FILES, export_ledger, query_ledger
from pipeline.platform import store
from tests.test_exports_scale import AS_OF, HYPERLINK, TOWN_FILES, UNIT_FILES
from tests.test_ledger import building, survey

PROPOSAL_FILES = [f"{PROPOSALS_NAME}.csv", f"{PROPOSALS_NAME}.xlsx"]


def _district(deployment):
    """Five hazards in two towns for three units; the two 重大 ones (appraisal D) are proposed for 督办."""
    survey(deployment, "2023-1", [
        building("JZ-A", name=HYPERLINK, falling_hazard="是", town_code="640302100", responsible_unit="T100"),
        building("JZ-B", appraisal_grade="D", town_code="640302101", town_name="金银滩镇", responsible_unit="JYJ"),
        building("JZ-C", appraisal_grade="D", town_code="640302101", town_name="金银滩镇", responsible_unit="T101"),
        building("JZ-D", falling_hazard="是", town_code="640302101", town_name="金银滩镇", responsible_unit="T101"),
        building("JZ-E", falling_hazard="是", town_code="640302100", responsible_unit="T100"),
    ])  # fmt: skip
    return deployment


def _export(deployment, out: Path, cache: Path | None, as_of: dt.date = AS_OF):
    with store.connect(deployment.db) as con:
        return export_ledger(con, as_of, out, cache_dir=cache)


def _cells(path: Path) -> dict[str, list[list]]:
    wb = openpyxl.load_workbook(path)
    return {ws.title: [[c.value for c in row] for row in ws.iter_rows()] for ws in wb.worksheets}


def _parquet_rows(path: Path) -> list[tuple]:
    return duckdb.connect().execute(f"SELECT * FROM '{path}'").fetchall()


def _same_as_from_scratch(kept: Path, fresh: Path) -> None:
    """Every file of the export in `kept` (written over earlier exports) holds what `fresh` (from scratch) does."""
    names = [f"{n}{e}" for n, e in EXPORT_FILES if e == ".csv"] + [PROPOSAL_FILES[0]]
    for name in names:
        assert (kept / name).read_bytes() == (fresh / name).read_bytes(), name
    assert _parquet_rows(kept / "隐患台账.parquet") == _parquet_rows(fresh / "隐患台账.parquet")
    books = sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*.xlsx"))
    assert books == sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*.xlsx"))
    for rel in books:
        assert _cells(kept / rel) == _cells(fresh / rel), rel


def _mtimes(out: Path, rels: list[str]) -> dict[str, int]:
    return {rel: (out / rel).stat().st_mtime_ns for rel in rels}


def test_an_export_after_small_changes_is_the_export_from_scratch(deployment, tmp_path):
    district = _district(deployment)
    kept, cache = tmp_path / "kept", tmp_path / "cache"
    _export(district, kept, cache)
    changes = [
        "UPDATE hazards SET person = '王五' WHERE hazard_no = 'JZ-C-B01'",  # 金银滩镇, T101: not on the 督办 list
        "UPDATE hazards SET asset_name = '=1+1' WHERE hazard_no = 'JZ-B-B01'",  # a proposed hazard's name
        "UPDATE hazards SET status = '已撤销' WHERE hazard_no = 'JZ-A-B11'",  # withdrawn: no longer shown
    ]
    for i, change in enumerate(changes):
        district.query(change)
        again = _export(district, kept, cache)
        fresh = _export(district, tmp_path / f"fresh{i}", None)
        _same_as_from_scratch(kept, tmp_path / f"fresh{i}")
        assert again.hazards == fresh.hazards == 5 - (i == 2)
    with store.connect(district.db) as con:  # the files keep the ledger's order (kind, town, number)
        order = list(query_ledger(con, AS_OF)["hazard_no"])
    assert [r[0] for r in _parquet_rows(kept / "隐患台账.parquet")] == order == ["JZ-E-B11", "JZ-B-B01", "JZ-C-B01",
                                                                                "JZ-D-B11"]  # fmt: skip
    survey(district, "2023-2", [  # a new hazard between two others (金银滩镇): no row number to move
        building("JZ-BB", appraisal_grade="D", town_code="640302101", town_name="金银滩镇", responsible_unit="T101"),
    ])  # fmt: skip
    added = _export(district, kept, cache)
    fresh = _export(district, tmp_path / "fresh_added", None)
    _same_as_from_scratch(kept, tmp_path / "fresh_added")
    assert added.hazards == fresh.hazards > 4
    later = _export(district, kept, cache, as_of=dt.date(2023, 9, 2))  # a new day: every overdue day moves
    _export(district, tmp_path / "fresh_later", None, as_of=dt.date(2023, 9, 2))
    _same_as_from_scratch(kept, tmp_path / "fresh_later")
    assert later.proposals_written and len(later.written) == 5 and later.rows_computed == later.hazards


def test_the_work_of_an_export_follows_the_change(deployment, tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "SMALL_LEDGER_ROWS", 2)  # a large ledger: the district workbook holds no rows
    district = _district(deployment)
    out, cache = tmp_path / "ledger", tmp_path / "cache"
    first = _export(district, out, cache)
    assert len(first.written) == 5 and first.rows_rendered == 5 and first.proposals_written and first.proposed == 2
    before = _mtimes(out, TOWN_FILES + UNIT_FILES + PROPOSAL_FILES)

    again = _export(district, out, cache)  # nothing changed: nothing rendered, nothing written
    assert again.written == [] and again.rows_rendered == 0 and not again.proposals_written
    assert _mtimes(out, TOWN_FILES + UNIT_FILES + PROPOSAL_FILES) == before

    district.query("UPDATE hazards SET person = '王五' WHERE hazard_no = 'JZ-D-B11'")  # 金银滩镇, T101; not proposed
    changed = _export(district, out, cache)
    assert sorted(p.relative_to(out).as_posix() for p in changed.written) == [
        "乡镇/隐患台账_金银滩镇.xlsx", "责任单位/隐患台账_T101.xlsx"]  # fmt: skip
    assert changed.rows_rendered == 3  # 金银滩镇's three hazards (T101's two among them), not the district's five
    assert not changed.proposals_written and _mtimes(out, PROPOSAL_FILES) == {r: before[r] for r in PROPOSAL_FILES}

    district.query("UPDATE hazards SET asset_name = '新名称' WHERE hazard_no = 'JZ-C-B01'")  # shown on the 督办 list
    proposed = _export(district, out, cache)
    assert proposed.proposals_written and proposed.rows_rendered == 3
    assert "新名称" in (out / PROPOSAL_FILES[0]).read_text(encoding="utf-8-sig")

    (out / PROPOSAL_FILES[1]).unlink()  # deleted by hand: written again
    restored = _export(district, out, cache)
    assert restored.proposals_written and restored.written == [] and (out / PROPOSAL_FILES[1]).is_file()


def test_the_ledger_as_of_the_date_is_kept_by_group(deployment, tmp_path):
    """Only the rows of the kind's towns with a hazard whose row changed are computed again and only their CSV
    and Parquet fragments written; none when nothing changed. A hazard withdrawn is taken out. The table is
    kept in the cache, not in the store (the snapshot copies the store's file)."""
    district = _district(deployment)
    out, cache = tmp_path / "ledger", tmp_path / "cache"
    first = _export(district, out, cache)
    assert first.rows_computed == 5 and first.csv_fragments_written == first.parquet_fragments_written == 2

    again = _export(district, out, cache)  # buildings of two towns
    assert again.rows_computed == again.csv_fragments_written == again.parquet_fragments_written == 0

    district.query("UPDATE hazards SET person = '王五' WHERE hazard_no = 'JZ-D-B11'")  # no event: seen all the same
    one = _export(district, out, cache)
    assert one.rows_computed == 3  # 金银滩镇's buildings: JZ-B, JZ-C, JZ-D; not 金积镇's two
    assert one.csv_fragments_written == one.parquet_fragments_written == 1

    district.query("UPDATE hazards SET status = '已撤销' WHERE hazard_no = 'JZ-E-B11'")  # 金积镇: JZ-A stays
    withdrawn = _export(district, out, cache)
    assert withdrawn.rows_computed == 1 and withdrawn.hazards == 4 and withdrawn.csv_fragments_written == 1
    assert "JZ-E-B11" not in (out / "隐患台账.csv").read_text(encoding="utf-8-sig")

    assert (cache / export_table.KEPT_FILE).is_file()
    with store.connect(district.db) as con:
        assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ledger_export'").fetchone()[0]
    with duckdb.connect(str(cache / export_table.KEPT_FILE), read_only=True) as kept:
        numbers = sorted(r[0] for r in kept.execute("SELECT hazard_no FROM ledger_export").fetchall())
    assert numbers == ["JZ-A-B11", "JZ-B-B01", "JZ-C-B01", "JZ-D-B11"]


def test_a_damaged_kept_table_is_computed_again(deployment, tmp_path):
    """The kept table is a cache: a file that cannot be opened (cut short, overwritten) is computed again and the
    export is the one from scratch, never a failed run."""
    district = _district(deployment)
    out, cache, fresh = tmp_path / "ledger", tmp_path / "cache", tmp_path / "fresh"
    _export(district, out, cache)
    (cache / export_table.KEPT_FILE).write_bytes(b"not a database" * 1000)
    again = _export(district, out, cache)
    assert again.rows_computed == 5
    _export(district, fresh, None)
    _same_as_from_scratch(out, fresh)


def test_a_parquet_file_of_fragments_is_their_rows_in_order(tmp_path):
    """concatenate: the row groups of several Parquet files (several row groups each, dictionary pages,
    statistics) under one footer read back as the rows of the files one after another, by DuckDB and pyarrow."""
    con = duckdb.connect()
    parts = []
    for i, n in enumerate((2500, 1, 7000)):
        parts.append(tmp_path / f"{i}.parquet")
        con.execute(f"""COPY (SELECT {i} * 100000 + x AS n, 'town' || (x % 7) AS town, DATE '2023-01-01' + x::INTEGER AS d,
                                     CASE WHEN x % 3 = 0 THEN NULL ELSE x / 7.0 END AS v
                              FROM range({n}) t(x) ORDER BY x)
                        TO '{parts[-1]}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 2048)""")  # fmt: skip
    whole = tmp_path / "whole.parquet"
    parquet_fragments.concatenate(parts, whole)
    expected = [r for p in parts for r in con.execute(f"SELECT * FROM '{p}'").fetchall()]
    assert con.execute(f"SELECT * FROM '{whole}'").fetchall() == expected and len(expected) == 9501
    table = pq.read_table(whole)
    assert table.num_rows == 9501 and table.column("n").to_pylist() == [r[0] for r in expected]
    assert con.execute(f"SELECT count(*) FROM '{whole}' WHERE n = 200005").fetchone()[0] == 1  # statistics moved
