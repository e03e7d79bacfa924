"""The main job through Dagster: the bundled sample district, and two survey rounds with feedback."""

from __future__ import annotations

import datetime as dt

import openpyxl

from pipeline.ledger.exports import ledger_rows
from pipeline.platform import store
from pipeline.platform.clock import sample_as_of
from pipeline.registries import units as registry
from tests.conftest import Deployment, csv_bytes, run_all
from tests.test_ledger import building, fb


def test_sample_intake_accounts_for_every_row(sample):
    deployment, result = sample
    assert result.success
    checks = {f"{e.asset_key.to_user_string()}.{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}
    assert all(v for k, v in checks.items() if not k.endswith("quarantine_share")), checks
    per_kind = dict(deployment.query(
        "SELECT kind, sum(rows_read) FROM intake_files WHERE is_current AND status = 'ingested' GROUP BY kind"))  # fmt: skip
    assert per_kind == {"buildings": 20000, "bridges": 211, "hazchem_sites": 40, "hazchem_inventory": 101,
                        "pipelines": 15, "geohazards": 36, "shelters": 22, "reservoirs": 6, "water_supply": 8,
                        "feedback": 30153}  # 150 bridges in 2023-1, 61 resurveyed in 2024-2  # fmt: skip
    for kind, rows in per_kind.items():
        valid = deployment.query(f"SELECT count(*) FROM stg_{kind}")[0][0]
        refused = deployment.query("SELECT count(*) FROM quarantine WHERE kind = ?", [kind])[0][0]
        assert valid + refused == rows, kind
    refused_share = deployment.query("SELECT count(*) FROM quarantine WHERE kind = 'buildings'")[0][0] / 20000
    assert 0.02 <= refused_share <= 0.05
    receipts = list((deployment.output / "receipts").rglob("*_回执.xlsx"))
    feedback_receipts = [r for r in receipts if r.parent.parent.name == "feedback"]
    assert len(receipts) - len(feedback_receipts) == 36  # one per survey file (13 towns' shelter files among them)
    assert len(feedback_receipts) == 174  # one per feedback file


def test_sample_scores_have_sensible_level_shares(sample):
    deployment, _ = sample
    shares = dict(deployment.query(
        "SELECT level, count(*) / sum(count(*)) OVER () FROM scores WHERE kind = 'buildings' GROUP BY level"))  # fmt: skip
    assert set(shares) == {"red", "orange", "yellow", "blue"}
    assert 0.02 <= shares["red"] <= 0.20, shares
    assert shares["blue"] >= 0.10, shares
    versions = deployment.query("SELECT DISTINCT ruleset_version FROM scores")
    assert len(versions) == 1
    hard = deployment.query("SELECT count(*) FROM scores WHERE hard_rule IS NOT NULL AND level <> 'red'")
    assert hard == [(0,)]
    per_kind = dict(deployment.query("SELECT kind, count(*) FROM scores GROUP BY kind"))
    assert per_kind["hazchem_sites"] == 39 and per_kind["pipelines"] == 14


def test_sample_ledger_and_exports(sample):
    deployment, _ = sample
    (n_hazards, n_findings) = deployment.query(
        "SELECT (SELECT count(*) FROM hazards), (SELECT count(*) FROM findings WHERE hazard)")[0]  # fmt: skip
    assert n_hazards == n_findings > 0
    wb = openpyxl.load_workbook(deployment.output / "ledger" / "隐患台账.xlsx", read_only=True)
    assert wb.sheetnames[0] == "汇总"
    assert (deployment.output / "ledger" / "隐患台账.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_sample_feedback_closes_the_loop(sample):
    """The bundled feedback (sample/feedback.py) moves hazards through every status; only its two
    deliberately wrong rows are refused."""
    deployment, _ = sample
    statuses = dict(deployment.query("SELECT status, count(*) FROM hazards GROUP BY status"))
    assert set(statuses) == {"待整改", "整改中", "已整改待验收", "管控中", "已销号"}, statuses
    refused = deployment.query("SELECT reason_zh FROM feedback_results WHERE outcome = '退回' ORDER BY reason_zh")
    assert [r[0] for r in refused] == [
        "不是本单位负责的隐患（责任单位为T107（胜利镇人民政府））",
        "隐患编号“JZ-640302100-999999-B01”在台账中不存在",
    ]
    accepted = deployment.query(
        "SELECT count(*) FROM hazards WHERE status = '已销号' AND accept_result = '通过' AND acceptor IS NOT NULL"
    )
    assert accepted == [(statuses["已销号"],)]
    major_control = deployment.query(
        "SELECT count(*) FROM hazards WHERE status = '管控中' AND hazard_grade = '重大' AND plan_no IS NULL"
    )
    assert major_control == [(0,)]  # fmt: skip


def test_the_sample_is_a_programme_under_way_as_of_its_date(sample):
    """Issue 11 §4: the sample's story stops at its as-of date, which every output states; enterprises answer
    for their hazchem and pipeline hazards and their supervisors accept them; every responsible unit of the
    ledger is in the registry and reaches the district government."""
    deployment, _ = sample
    found, closed, major, supervised = deployment.query(
        "SELECT count(*), count(*) FILTER (WHERE status = '已销号'), count(*) FILTER (WHERE hazard_grade = '重大'), "
        "count(*) FILTER (WHERE hazard_grade = '重大' AND supervise_no IS NOT NULL) FROM hazards"
    )[0]
    assert 0.40 <= closed / found <= 0.50 and major > supervised  # 督办 only where the government issued a notice
    assert deployment.query("SELECT count(*) FROM hazards WHERE supervise_no LIKE '督办-%'") == [(0,)]
    with store.connect(deployment.db) as con:  # overdue as of the sample's own date: about a third of all hazards
        rows = ledger_rows(con, sample_as_of())
    assert sample_as_of() == dt.date(2025, 6, 30) and 0.25 <= rows["overdue_days"].notna().sum() / found <= 0.40
    closed_by_enterprise = deployment.query(
        "SELECT h.kind, e.unit AS acceptor, count(*) FROM hazards h JOIN hazard_events e USING (hazard_no) "
        "WHERE h.kind IN ('hazchem_sites', 'pipelines') AND e.to_status = '已销号' GROUP BY ALL ORDER BY ALL"
    )
    assert [(k, u) for k, u, _ in closed_by_enterprise] == [("hazchem_sites", "YJJ"), ("pipelines", "FGJ")]
    reported = deployment.query(
        "SELECT count(DISTINCT e.unit) FROM hazard_events e JOIN hazards h USING (hazard_no) "
        "WHERE h.kind = 'hazchem_sites' AND e.to_status = '整改中' AND e.unit = h.responsible_unit"
    )[0][0]
    assert reported >= 5  # the enterprises themselves, from their own folders
    with store.connect(deployment.db):
        units = registry.units()
        for (code,) in deployment.query("SELECT DISTINCT responsible_unit FROM hazards"):
            chain = [code]
            while chain[-1] != registry.TOP_UNIT:
                chain.append(registry.supervisor_of(chain[-1]))
                assert chain[-1] in units and len(chain) < 6, chain
    book = openpyxl.load_workbook(deployment.output / "ledger" / "隐患台账.xlsx", read_only=True)
    assert book.properties.title == "利通区地震风险隐患台账（样例数据，截至2025年6月30日）"
    assert ["台账日期", "样例数据，截至2025年6月30日"] in [list(r) for r in book["说明"].iter_rows(values_only=True)]


def test_two_rounds_and_feedback_through_dagster(tmp_path):
    deployment = Deployment(tmp_path)
    r1 = [building("JZ-A", falling_hazard="是", visible_damage="是"), building("JZ-B", appraisal_grade="D")]
    deployment.drop("buildings", "r1.csv", csv_bytes("buildings", r1), unit="ZJJ", rnd="2023-1")
    assert run_all(deployment, publish=False).success
    feedback = [fb("JZ-A-B09", "整改中"), fb("JZ-A-B11", "整改中", unit="T105")]  # row 3 types another unit
    deployment.drop("feedback", "f1.csv", csv_bytes("feedback", feedback), unit="T100", rnd="2023-08")
    assert run_all(deployment, publish=False).success
    r2 = [building("JZ-A", visible_damage="是", survey_date="2024-05-01"),
          building("JZ-B", appraisal_grade="D", survey_date="2024-05-01"),
          building("JZ-C", geo_hazard_nearby="是", survey_date="2024-05-01")]  # fmt: skip
    deployment.drop("buildings", "r2.csv", csv_bytes("buildings", r2), unit="ZJJ", rnd="2024-1")
    assert run_all(deployment, publish=False).success
    assert run_all(deployment, publish=False).success  # a run with nothing new changes nothing
    assert dict(deployment.query("SELECT hazard_no, status FROM hazards")) == {
        "JZ-A-B09": "整改中", "JZ-A-B11": "已整改待验收", "JZ-B-B01": "待整改", "JZ-C-B13": "待整改"}  # fmt: skip
    assert deployment.query("SELECT count(*) FROM hazard_events") == [(8,)]  # 8 changes (重大 is not 督办 by itself)
    receipt = deployment.output / "receipts" / "T100" / "feedback" / "2023-08" / "f1.csv_回执.xlsx"
    rows = list(openpyxl.load_workbook(receipt)["逐行结果"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[3]) for r in rows] == [(2, "已执行"), (3, "退回")]
