"""Incremental by file version (issue 14): a file version is normalised and checked once, the checks across
files run on the ids a change touched, and the result is always the one a full validation gives."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from pipeline.intake.ingest import ingest_kind
from pipeline.intake.validate import normalize, validate
from pipeline.platform import clock, store
from pipeline.registries.templates import load_template
from tests.conftest import Deployment, csv_bytes, example_row


def intake(d: Deployment, kinds=("buildings",), today: dt.date | None = None) -> dict:
    clock.use_data_raw(d.data_raw)
    out = {}
    with store.connect(d.db) as con:
        for kind in kinds:
            ingest_kind(con, d.data_raw, kind)
            t = load_template(kind)
            normalize(con, t, today)
            out[kind] = validate(con, t, today)
    return out


def outcome(d: Deployment, kind: str = "buildings") -> dict[str, list]:
    """What validation gave, without what differs between two stores (ids of versions, upload times)."""
    return {
        "staged": d.query(f"SELECT source_file, row_no, * EXCLUDE (file_id, uploaded_at) FROM stg_{kind} ORDER BY ALL"),
        "quarantine": d.query(
            "SELECT source_file, row_no, n_reasons, reasons_zh FROM quarantine WHERE kind = ? ORDER BY ALL", [kind]
        ),  # fmt: skip
        "failures": d.query(
            "SELECT source_file, row_no, check_id, message_zh FROM validation_failures WHERE kind = ? ORDER BY ALL",
            [kind],
        ),  # fmt: skip
    }


def from_scratch(d: Deployment, tmp: Path, kinds=("buildings",), today: dt.date | None = None) -> Deployment:
    """A fresh store fed the same files at once."""
    fresh = Deployment(tmp)
    shutil.rmtree(fresh.data_raw)
    shutil.copytree(d.data_raw, fresh.data_raw)
    intake(fresh, kinds, today)
    clock.use_data_raw(d.data_raw)
    return fresh


def b(bid: str, **over) -> dict:
    return example_row("buildings", building_id=bid, **over)


def row_keys(d: Deployment, name: str) -> list:
    return d.query("SELECT _row_key FROM norm_buildings WHERE source_file LIKE ? ORDER BY 1", [f"%{name}"])


def test_a_new_file_checks_only_its_rows_and_the_ids_it_shares(tmp_path):
    d = Deployment(tmp_path / "live")
    d.drop("buildings", "a.csv", csv_bytes("buildings", [b("B-1"), b("B-2"), b("B-3", floors_above="x")]))
    first = intake(d)["buildings"]
    assert (first.valid, first.quarantined) == (2, 1)
    keys_a = row_keys(d, "a.csv")

    # b.csv repeats B-1 with other content and B-2 exactly: both ids' rows are checked again, a.csv is not
    d.drop("buildings", "b.csv", csv_bytes("buildings", [b("B-1", floors_above="9"), b("B-2"), b("B-4")]))
    second = intake(d)["buildings"]
    assert row_keys(d, "a.csv") == keys_a  # a.csv was not normalised again
    assert (second.valid, second.quarantined) == (2, 4)  # B-1 twice (conflict), b's B-2 (repeat), a's B-3
    conflict = d.query("SELECT source_file, message_zh FROM validation_failures WHERE check_id = 'id_conflict' "
                       "ORDER BY 1")  # fmt: skip
    assert [c[0][-5:] for c in conflict] == ["a.csv", "b.csv"] and "b.csv第2行" in conflict[0][1]
    assert outcome(d) == outcome(from_scratch(d, tmp_path / "s1"))

    # removing b.csv releases a.csv's B-1
    (d.data_raw / "buildings" / "ZJJ" / "2023-1" / "b.csv").unlink()
    third = intake(d)["buildings"]
    assert (third.valid, third.quarantined) == (2, 1)
    assert d.query("SELECT building_id FROM stg_buildings ORDER BY 1") == [("B-1",), ("B-2",)]
    assert outcome(d) == outcome(from_scratch(d, tmp_path / "s2"))


def test_a_replaced_version_and_a_sequence_of_changes_give_what_a_full_validation_gives(tmp_path):
    d = Deployment(tmp_path / "live")
    steps = [
        ("a.csv", [b("B-1"), b("B-2"), b("B-2")], "ZJJ"),
        ("b.csv", [b("B-2", floors_above="5"), b("B-3")], "ZJJ"),
        ("a.csv", [b("B-1"), b("B-5", floors_above="-1")], "ZJJ"),  # a new version of a.csv
        ("c.csv", [b("B-3"), b("B-1", floors_above="7")], "JYJ"),
        ("b.csv", None, "ZJJ"),  # removed
        ("a.csv", None, "ZJJ"),
    ]
    for i, (name, rows, unit) in enumerate(steps):
        path = d.data_raw / "buildings" / unit / "2023-1" / name
        if rows is None:
            path.unlink()
        else:
            d.drop("buildings", name, csv_bytes("buildings", rows), unit=unit)
        intake(d)
        assert outcome(d) == outcome(from_scratch(d, tmp_path / f"s{i}")), f"after step {i}: {name}"
        rows_in = d.query("SELECT coalesce(sum(rows_read), 0) FROM intake_files WHERE kind = 'buildings' "
                          "AND is_current AND status = 'ingested'")[0][0]  # fmt: skip
        counted = d.query("SELECT (SELECT count(*) FROM stg_buildings) + "
                          "(SELECT count(*) FROM quarantine WHERE kind = 'buildings')")[0][0]  # fmt: skip
        assert counted == rows_in


def test_a_new_day_redoes_only_the_versions_whose_dates_it_changes(tmp_path):
    d = Deployment(tmp_path / "live")
    d.drop("buildings", "old.csv", csv_bytes("buildings", [b("B-1", survey_date="2023-05-01")]))
    d.drop("buildings", "future.csv", csv_bytes("buildings", [b("B-2", survey_date="2023-07-01")]))
    day1 = intake(d, today=dt.date(2023, 6, 1))["buildings"]
    assert (day1.valid, day1.quarantined) == (1, 1)  # 2023-07-01 is after today
    old, future = row_keys(d, "old.csv"), row_keys(d, "future.csv")

    day2 = intake(d, today=dt.date(2023, 6, 30))["buildings"]  # no date of either file lies in between
    assert (day2.valid, day2.quarantined) == (1, 1)
    assert (row_keys(d, "old.csv"), row_keys(d, "future.csv")) == (old, future)

    day3 = intake(d, today=dt.date(2023, 7, 1))["buildings"]
    assert (day3.valid, day3.quarantined) == (2, 0)
    assert row_keys(d, "old.csv") == old and row_keys(d, "future.csv") != future  # only future.csv redone
    assert outcome(d) == outcome(from_scratch(d, tmp_path / "s", today=dt.date(2023, 7, 1)))


def test_a_site_filed_later_releases_the_inventory_rows_that_named_it(tmp_path):
    d = Deployment(tmp_path / "live")
    site = example_row("hazchem_sites")
    d.drop(
        "hazchem_inventory", "inv.csv", csv_bytes("hazchem_inventory", [example_row("hazchem_inventory")]), unit="YJJ"
    )
    kinds = ("hazchem_sites", "hazchem_inventory")
    first = intake(d, kinds)
    assert first["hazchem_inventory"].quarantined == 1
    d.drop("hazchem_sites", "sites.csv", csv_bytes("hazchem_sites", [site]), unit="YJJ")
    second = intake(d, kinds)
    assert (second["hazchem_inventory"].valid, second["hazchem_inventory"].quarantined) == (1, 0)
    assert outcome(d, "hazchem_inventory") == outcome(from_scratch(d, tmp_path / "s", kinds), "hazchem_inventory")


def test_a_new_template_or_registry_redoes_every_version(tmp_path, monkeypatch):
    from pipeline.intake import file_versions

    d = Deployment(tmp_path / "live")
    d.drop("buildings", "a.csv", csv_bytes("buildings", [b("B-1")]))
    intake(d)
    when = d.query("SELECT normalised_at FROM norm_versions")
    intake(d)
    assert d.query("SELECT normalised_at FROM norm_versions") == when  # nothing changed: nothing redone
    monkeypatch.setattr(file_versions, "context_version", lambda t: "another template")
    intake(d)
    assert d.query("SELECT normalised_at FROM norm_versions") > when
    assert d.query("SELECT count(*) FROM stg_buildings") == [(1,)]
