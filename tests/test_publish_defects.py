"""Issue 25 §8: what leaders and clerks read, read right. The top-10 chart ranks by the points before the cap and
shows the main reasons in full; the hazchem chart colours its bars by grade and its footer overlaps nothing;
the sample's points are not piled up on the district's edges; the briefing's note follows its table, a unit's
count stays on its line, the footer names no path; a clerk's ledger sheet starts with what to act on, the
open hazards first. Every test reads values: the written files, the figure's artists, the PDF's text."""

from __future__ import annotations

import datetime as dt

import openpyxl

from pipeline import store
from pipeline.ledger.exports import export_ledger
from tests.test_ledger import A_DAMAGE, A_FALL, B_D, round_one

AS_OF = dt.date(2023, 9, 1)
CLERK_FIRST = ["隐患编号", "资产名称", "隐患等级", "整改状态", "整改时限", "逾期天数"]


# --- the ledger workbooks a clerk works through ---------------------------------------------------------


def test_a_clerks_sheet_starts_with_what_to_act_on_and_lists_open_hazards_first(deployment, tmp_path):
    round_one(deployment)  # JZ-A-B09, JZ-A-B11, JZ-B-B01 in 金积镇, in the ledger's order
    deployment.query("UPDATE hazards SET status = '已销号', accept_date = ? WHERE hazard_no = ?",
                     [dt.date(2023, 8, 1), A_DAMAGE])  # fmt: skip  # the first in the ledger's order, closed
    with store.connect(deployment.db) as con:
        export_ledger(con, AS_OF, tmp_path)
    for path in (tmp_path / "隐患台账.xlsx", tmp_path / "乡镇" / "隐患台账_金积镇.xlsx",
                 tmp_path / "责任单位" / "隐患台账_T100.xlsx"):  # fmt: skip
        ws = openpyxl.load_workbook(path)["房屋建筑"]
        header = [c.value for c in ws[1]]
        assert header[:6] == CLERK_FIRST, path.name
        assert len(header) == 34 and header.index("整改状态") == 3
        rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
        assert [r[0] for r in rows] == [A_FALL, B_D, A_DAMAGE], path.name  # open first, the closed one last
        assert [r[3] for r in rows] == ["待整改", "待整改", "已销号"]
        assert rows[0][5] == (AS_OF - dt.date(2023, 6, 11)).days  # overdue days of the falling hazard
        assert isinstance(rows[0][4], dt.datetime)  # the deadline a date cell
        notes = {r[0].value: r[1].value for r in openpyxl.load_workbook(path)["说明"].iter_rows(min_row=2)}
        assert "已销号的列在其后" in notes["排列"]
    # the CSV is the machine-readable full export: its columns keep the ledger's order
    header = (tmp_path / "隐患台账.csv").read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert header[:4] == ["隐患编号", "资产类别", "资产编码", "资产名称"] and header.index("整改状态") == 25
