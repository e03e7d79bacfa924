"""A unit sends its feedback file again, corrected or with more rows (a new version of the same file, or the
same rows in a new file): the rows applied before are said to be applied before, not refused and not applied
twice; the new rows are checked and applied as any; the receipt names the unit and counts each outcome."""

from __future__ import annotations

import openpyxl

from pipeline.intake.receipts import receipt_path
from pipeline.ledger.feedback import REPEATED, applied_results, preview, write_feedback_receipts
from pipeline.platform import store
from tests.conftest import csv_bytes
from tests.test_ledger import A_DAMAGE, A_FALL, B_D, fb, feedback, round_one, statuses


def test_a_resent_file_applies_its_new_rows_and_says_the_old_ones_were_applied_before(deployment):
    round_one(deployment)
    first = fb(A_DAMAGE, "整改中", report_date="2023-08-15")
    (sent,) = feedback(deployment, "整改反馈.csv", [first])
    assert [r.outcome for r in sent.rows] == ["已执行"]
    events = deployment.query("SELECT count(*) FROM hazard_events")[0][0]

    corrected = [first, fb(A_FALL, "整改中", report_date="2023-08-16")]  # the same file again, one row added
    (again,) = feedback(deployment, "整改反馈.csv", corrected)
    assert [(r.row_no, r.outcome) for r in again.rows] == [(2, REPEATED), (3, "已执行")]
    assert (again.applied, again.refused, again.repeated) == (1, 0, 1)
    assert "整改反馈.csv第2行相同" in again.rows[0].reason_zh and "不再重复执行" in again.rows[0].reason_zh
    assert statuses(deployment)[A_FALL] == "整改中" and statuses(deployment)[A_DAMAGE] == "整改中"
    assert deployment.query("SELECT count(*) FROM hazard_events")[0][0] == events + 1  # only the new row

    (renamed,) = feedback(deployment, "八月反馈（补报）.csv", [first], batch="2023-08b")  # the same row, a new file
    assert [r.outcome for r in renamed.rows] == [REPEATED]

    (other,) = feedback(deployment, "他单位.csv", [fb(A_DAMAGE, "整改中", unit="T101", report_date="2023-08-15")],
                        unit="T101", batch="2023-08")  # fmt: skip
    assert other.rows[0].outcome == "退回"  # another unit's identical row is not its own: checked, and refused

    with store.connect(deployment.db) as con:
        written = write_feedback_receipts(con, deployment.output / "receipts")
        result = next(r for r in applied_results(con) if r.file_id == again.file_id)
    assert result.repeated == 1  # read back from the store as recorded
    path = receipt_path(deployment.output / "receipts", again.rel_path, again.department)
    assert path in written
    book = openpyxl.load_workbook(path)
    summary = dict(book["回执"].iter_rows(min_row=2, values_only=True))
    assert (summary["执行行数"], summary["退回行数"], summary["此前已执行行数"]) == (1, 0, 1)
    rows = list(book["逐行结果"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[2], r[3]) for r in rows] == [(2, "T100（金积镇人民政府）", REPEATED),
                                                 (3, "T100（金积镇人民政府）", "已执行")]  # fmt: skip


def test_the_preview_of_a_resent_row_says_it_was_applied_before(deployment):
    round_one(deployment)
    row = fb(B_D, "整改中", report_date="2023-08-15", **{"funds_wan": "12", "plan_finish": "2024-06-30",
                                                          "plan_no": "YJYA-2023-017"})  # fmt: skip
    feedback(deployment, "a.csv", [row])
    deployment.drop("feedback", "b.csv", csv_bytes("feedback", [row]), unit="T100", rnd="2023-09")
    from pipeline.ledger.feedback import validate_feedback

    with store.connect(deployment.db) as con:
        validate_feedback(con, deployment.data_raw)
        file_id = con.execute(
            "SELECT file_id FROM intake_files WHERE rel_path LIKE '%b.csv' AND is_current"
        ).fetchone()[0]
        shown = preview(con, file_id)
    assert [r.outcome for r in shown.rows] == [REPEATED] and shown.applied == 0 and shown.refused == 0
