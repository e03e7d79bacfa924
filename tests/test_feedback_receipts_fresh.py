"""Issue 27 §4: one decision applied writes its own receipt (and any missing one), not the district's 170."""

from __future__ import annotations

import dagster as dg
import duckdb
from conftest import csv_bytes
from portal_support import copy_deployment

from pipeline.intake.receipts import receipt_path
from pipeline.platform.resources import LitongStore, SparkResource
from pipeline.registries import units as registry
from pipeline.wiring.definitions import all_assets


def test_a_decision_rewrites_only_its_own_receipt_and_the_missing_ones(sample, tmp_path):
    deployment, _ = sample
    root = copy_deployment(deployment.root, tmp_path / "d")
    receipts = root / "output" / "receipts"
    con = duckdb.connect(str(root / "test.duckdb"), read_only=True)
    try:
        registry.load_enterprises(con)  # an enterprise's receipts are under its credit code, as the run names them
        hazard_no = con.execute("SELECT min(hazard_no) FROM hazards WHERE sector_supervisor = 'ZJJ' "
                                "AND status = '已整改待验收'").fetchall()[0][0]  # fmt: skip
        applied = con.execute("SELECT a.rel_path, f.department FROM feedback_applied a "
                              "JOIN intake_files f USING (file_id) WHERE f.is_current").fetchall()  # fmt: skip
    finally:
        con.close()
    old = {rel: receipt_path(receipts, rel, dept) for rel, dept in applied}
    assert len(old) > 20 and all(p.is_file() for p in old.values())
    lost_rel, lost = sorted(old.items())[0]
    lost.unlink()  # a receipt a crash never wrote
    stamps = {rel: p.stat().st_mtime_ns for rel, p in old.items() if rel != lost_rel}
    row = {"hazard_no": hazard_no, "unit": "ZJJ", "status": "已销号", "measures": "验收通过（已销号）",
           "person": "住建局监管", "report_date": "2025-06-30", "acceptor": "住建局监管", "accept_date": "2025-06-30",
           "accept_result": "通过"}  # fmt: skip
    decision = root / "data_raw" / "feedback" / "ZJJ" / "2025-06-30" / "网页办理_accept_测试.csv"
    decision.parent.mkdir(parents=True, exist_ok=True)
    decision.write_bytes(csv_bytes("feedback", [row]))
    store = LitongStore(database=str(root / "test.duckdb"), data_raw=str(root / "data_raw"),
                        output=str(root / "output"))  # fmt: skip
    result = dg.materialize(all_assets, selection=["ledger_feedback"],
                            resources={"store": store, "spark": SparkResource()})  # fmt: skip
    assert result.success
    con = duckdb.connect(str(root / "test.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT status FROM hazards WHERE hazard_no = ?", [hazard_no]).fetchall()[0][0] == "已销号"
    finally:
        con.close()
    from openpyxl import load_workbook

    mine = receipt_path(receipts, "feedback/ZJJ/2025-06-30/网页办理_accept_测试.csv", "ZJJ")
    summary = dict(load_workbook(mine)["回执"].iter_rows(min_row=2, values_only=True))
    assert summary["执行行数"] == 1 and summary["退回行数"] == 0
    assert lost.is_file()  # the missing one is written again
    assert {rel: old[rel].stat().st_mtime_ns for rel in stamps} == stamps  # the others stand as they were
