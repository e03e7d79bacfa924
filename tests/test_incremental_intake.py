"""A small change costs the intake, validation and scoring of buildings work in proportion to it (issue 30): the
scoring reads only the changed assets' staged rows, the validation step rewrites only the receipts it changed,
a rule set is verified once per store, and each result equals what a full pass gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import openpyxl

from pipeline.engines.base import SCORING_INPUT
from pipeline.intake.ingest import ingest_kind
from pipeline.intake.receipts import write_receipts
from pipeline.intake.validate import validate_if_changed
from pipeline.ledger.assets import update_ledger_if_changed
from pipeline.platform import store
from pipeline.platform.paths import RULES_DIR
from pipeline.platform.resources import SparkResource
from pipeline.registries.templates import load_template
from pipeline.scoring import ruleset as rules
from pipeline.scoring.assets import score_if_changed
from pipeline.scoring.engine import score_kind
from pipeline.scoring.ruleset import ruleset_version
from tests.conftest import Deployment, csv_bytes
from tests.test_ledger import building

CORE = dg.AssetSelection.groups("intake", "validation", "scoring") | dg.AssetSelection.assets("hazard_ledger")


def run_core(d: Deployment) -> dg.ExecuteInProcessResult:
    from pipeline.wiring.definitions import all_assets

    result = dg.materialize(all_assets, selection=CORE, resources={"store": d.resource(), "spark": SparkResource()})
    assert result.success
    return result


def drop(d: Deployment, name: str, rnd: str, rows: list[dict]) -> None:
    d.drop("buildings", name, csv_bytes("buildings", rows), unit="ZJJ", rnd=rnd)


def district(d: Deployment) -> None:
    """Three files of round 2023-1, one with a refused row (a town that does not exist)."""
    drop(d, "a.csv", "2023-1", [building(f"A-{i}", appraisal_grade="D" if i % 2 else "B") for i in range(1, 6)]
         + [building("A-9", town_code="999")])  # fmt: skip
    drop(d, "b.csv", "2023-1", [building(f"B-{i}") for i in range(1, 4)])
    drop(d, "c.csv", "2023-1", [building(f"C-{i}", falling_hazard="是") for i in range(1, 4)])


def resurvey(d: Deployment) -> None:
    """Round 2023-2 resurveys A-1 (now appraised B) and adds D-1."""
    drop(d, "r2.csv", "2023-2", [building("A-1", appraisal_grade="B", survey_date="2023-10-01"),
                                 building("D-1", appraisal_grade="D", survey_date="2023-10-01")])  # fmt: skip


def validate(d: Deployment) -> None:
    """The intake and validation of buildings, as their steps do them."""
    with store.connect(d.db) as con:
        ingest_kind(con, d.data_raw, "buildings")
        assert validate_if_changed(con, load_template("buildings"))[1]


def sheets(path: Path) -> dict[str, list[tuple]]:
    """A receipt's cells, without the time it was made."""
    wb = openpyxl.load_workbook(path, read_only=True)
    return {ws.title: [r for r in ws.iter_rows(values_only=True) if r[0] != "回执生成时间"] for ws in wb.worksheets}


def test_only_the_receipts_a_change_touches_are_written_and_they_equal_a_full_rewrite(tmp_path):
    d = Deployment(tmp_path)
    district(d)
    first = run_core(d)
    written = first.asset_materializations_for_node("stg_buildings")[0].metadata["receipts"].value
    assert len(written) == 3  # every file's receipt, the first time
    receipts = sorted((d.output / "receipts").rglob("*_回执.xlsx"))
    stamps = {p: p.stat().st_mtime_ns for p in receipts}

    resurvey(d)
    second = run_core(d)
    written = second.asset_materializations_for_node("stg_buildings")[0].metadata["receipts"].value
    assert [Path(p).name for p in written] == ["r2.csv_回执.xlsx"]  # the new file's (a round of its own)
    assert all(p.stat().st_mtime_ns == stamps[p] for p in receipts)

    drop(d, "b2.csv", "2023-1", [building("B-1", appraisal_grade="D")])  # B-1 again, different: both refused
    third = run_core(d)
    written = third.asset_materializations_for_node("stg_buildings")[0].metadata["receipts"].value
    assert sorted(Path(p).name for p in written) == ["b.csv_回执.xlsx", "b2.csv_回执.xlsx"]  # b.csv's B-1 rechecked
    assert all(p.stat().st_mtime_ns == stamps[p] for p in receipts if not p.name.startswith("b.csv"))
    assert d.query("SELECT count(*) FROM quarantine WHERE record_id LIKE '%B-1%'") == [(2,)]

    again = run_core(d)  # nothing new: none
    assert again.asset_materializations_for_node("stg_buildings")[0].metadata["receipts"].value == []
    (d.output / "receipts" / "ZJJ" / "buildings" / "2023-1" / "b.csv_回执.xlsx").unlink()  # deleted by hand
    fourth = run_core(d)
    assert [
        Path(p).name for p in fourth.asset_materializations_for_node("stg_buildings")[0].metadata["receipts"].value
    ] == ["b.csv_回执.xlsx"]

    with store.connect(d.db) as con:  # what a full rewrite of every receipt says, word for word
        full = write_receipts(con, tmp_path / "full", "buildings")
    kept = {p.relative_to(d.output / "receipts"): sheets(p) for p in (d.output / "receipts").rglob("*_回执.xlsx")}
    assert len(full) == len(kept) == 5
    assert kept == {Path(r["path"]).relative_to(tmp_path / "full"): sheets(Path(r["path"])) for r in full}


def test_scoring_and_the_ledger_update_of_a_few_assets_read_only_their_rows_and_equal_scoring_every_asset(tmp_path):
    d = Deployment(tmp_path)
    district(d)
    validate(d)
    version = ruleset_version(RULES_DIR)
    with store.connect(d.db) as con:
        assert score_if_changed(con, "buildings", ["stg_buildings"], version)[1]
        assert update_ledger_if_changed(con)[1]  # every asset, the first time
    resurvey(d)
    validate(d)
    with store.connect(d.db) as con:
        assert score_if_changed(con, "buildings", ["stg_buildings"], version)[1]
        # the work: A-1's two surveys and D-1's one of the 13 staged rows, two assets scored
        assert con.execute("SELECT count(*) FROM stg_buildings").fetchall() == [(13,)]
        assert con.execute("SELECT count(*) FROM __scope_stg_buildings").fetchall() == [(3,)]
        assert con.execute(f"SELECT asset_id FROM {SCORING_INPUT} ORDER BY 1").fetchall() == [("A-1",), ("D-1",)]
        assert update_ledger_if_changed(con)[1]
        # the ledger update read the scores, findings and hazards of those two assets only
        read = {v: {r[0] for r in con.execute(f"SELECT asset_id FROM __ledger_{v}").fetchall()}
                for v in ("scores", "findings", "hazards")}  # fmt: skip
        assert read["scores"] == {"A-1", "D-1"} and read["findings"] and read["findings"] <= {"A-1", "D-1"}
        assert "A-1" in read["hazards"] and read["hazards"] <= {"A-1", "D-1"}
        assert con.execute("SELECT count(DISTINCT asset_id) FROM hazards").fetchall()[0][0] > len(read["hazards"])
        incremental = [con.execute(f"SELECT * EXCLUDE (run_id) FROM {t} WHERE kind = 'buildings' ORDER BY ALL").fetchall()
                       for t in ("findings", "scores")]  # fmt: skip
        score_kind(con, rules.load_ruleset(con=con), "buildings")  # every asset, from scratch
        full = [con.execute(f"SELECT * EXCLUDE (run_id) FROM {t} WHERE kind = 'buildings' ORDER BY ALL").fetchall()
                for t in ("findings", "scores")]  # fmt: skip
        latest = con.execute("SELECT survey_round FROM scores WHERE asset_id = 'A-1'").fetchall()
    assert incremental == full and len(full[1]) == 12  # the 13 staged rows but A-1's older survey
    assert latest == [("2023-2",)]


def test_a_rule_set_is_verified_once_per_store_and_again_when_it_changes(tmp_path, monkeypatch):
    verified = []
    verify = rules.verify
    monkeypatch.setattr(rules, "verify", lambda r: (verified.append(r.version), verify(r)))
    monkeypatch.setattr(rules, "_VERIFIED", set())
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    version = rules.load_ruleset(con=con).version
    monkeypatch.setattr(rules, "_VERIFIED", set())  # the next step: another process, the same store
    rules.load_ruleset(con=con)
    assert verified == [version]
    monkeypatch.setattr(rules, "_VERIFIED", set())
    rules.load_ruleset(con=duckdb.connect(str(tmp_path / "b.duckdb")))  # another store: verified
    assert verified == [version, version]

    elsewhere = tmp_path / "checkout" / "rules"  # the same rule files in another checkout: not verified again
    shutil.copytree(RULES_DIR, elsewhere)
    monkeypatch.setattr(rules, "_VERIFIED", set())
    assert rules.load_ruleset(elsewhere, con=con).version == version and verified == [version, version]

    changed = tmp_path / "rules"
    shutil.copytree(RULES_DIR, changed)
    path = changed / "buildings.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\n# a comment\n", encoding="utf-8")
    other = rules.load_ruleset(changed, con=con)  # other rule files: verified again
    assert verified == [version, version, other.version] and other.version != version

    rules.load_ruleset(con=con)  # the store records this rule set again
    monkeypatch.setattr(rules, "_VERIFIED", set())
    rules.load_ruleset(con=con)
    assert verified == [version, version, other.version, version]
    schemas = tmp_path / "schemas"  # another template: the examples are staged otherwise, verified again
    shutil.copytree(rules.SCHEMAS_DIR, schemas)
    template = schemas / "buildings.yaml"
    template.write_text(template.read_text(encoding="utf-8") + "\n# a comment\n", encoding="utf-8")
    monkeypatch.setattr(rules, "SCHEMAS_DIR", schemas)
    monkeypatch.setattr(rules, "_VERIFIED", set())
    rules.load_ruleset(con=con)
    assert verified == [version, version, other.version, version, version]
