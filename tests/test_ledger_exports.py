"""Exports: formula neutralisation in both files, Excel layout, summaries with derived overdue."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pandas as pd

from pipeline.ledger.exports import export_ledger, ledger_rows, summary
from pipeline.platform import store
from tests.test_ledger import A_DAMAGE, B_D, KIND_SHEETS, building, fb, feedback, survey

# 五落实 of a 重大 hazard (funds, finish date, plan) before it may be 整改中
FIVE = {"funds_wan": "12", "plan_finish": "2024-06-30", "plan_no": "YJYA-2023-017"}


def test_exports_neutralise_formulas_and_colour_levels(deployment, tmp_path):
    rows = [building("JZ-A", name="=HYPERLINK(\"http://x\")", falling_hazard="是"),
            building("JZ-B", name="@SUM(A1)", appraisal_grade="D")]  # fmt: skip
    survey(deployment, "2023-1", rows)
    feedback(deployment, "f.csv", [fb(B_D, "整改中", measures="-1+2 加固", person="+张三", **FIVE)])  # 重大: 五落实
    with store.connect(deployment.db) as con:
        export = export_ledger(con, dt.date(2023, 9, 1), tmp_path)
    xlsx, csv_path = export.files[:2]
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    for formula in ("=HYPERLINK", "@SUM", "-1+2", "+张三"):
        assert f"'{formula}" in text
        assert f",{formula}" not in text and f'"{formula}' not in text
    wb = openpyxl.load_workbook(xlsx)  # a small ledger: the district workbook holds the kind sheets too
    assert wb.sheetnames == ["汇总", "责任单位汇总", "目录", *KIND_SHEETS, "说明"]
    ws = wb["房屋建筑"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref
    cells = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert not any(v.startswith(("=", "+", "-", "@")) for v in cells)
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)
    header = [c.value for c in ws[1]]
    level_col = header.index("风险等级")
    red_rows = [r for r in ws.iter_rows(min_row=2) if r[level_col].value == "红色（重大风险）"]
    assert red_rows and red_rows[0][level_col].fill.fgColor.rgb.endswith("FFC7CE")


def test_overdue_is_derived_as_of_a_date_and_summed_per_town(deployment):
    survey(deployment, "2023-1", [building("JZ-A", falling_hazard="是", visible_damage="是"),
                                  building("JZ-B", appraisal_grade="D")])  # fmt: skip
    # falling hazard deadline 2023-06-11, visible damage 2023-08-10 (extended to 2023-12-31), D grade 2024-05-11
    feedback(deployment, "f.csv", [fb(A_DAMAGE, "整改中", extend_to="2023-12-31", extend_reason="资金未到位")])
    approve = fb(A_DAMAGE, "整改中", unit="", report_date="2023-08-20", extension_decision="批准", measures="同意延期")
    feedback(deployment, "批.csv", [approve], unit="ZJJ", batch="2023-08")  # only an approved extension counts
    with store.connect(deployment.db) as con:
        df = ledger_rows(con, dt.date(2023, 9, 1))
        overdue = dict(zip(df["hazard_no"], df["overdue_days"], strict=True))
        assert overdue["JZ-A-B11"] == (dt.date(2023, 9, 1) - dt.date(2023, 6, 11)).days
        assert overdue["JZ-A-B09"] is pd.NA  # the extension has not passed
        town = summary(con, "town", dt.date(2023, 9, 1), dt.date(2023, 5, 1)).iloc[0]
        # the D-grade house (立即停止使用): its control, due 2023-05-15, was never reported in place (管控逾期, 109 days)
        assert (overdue["JZ-B-B01"], df.set_index("hazard_no").loc["JZ-B-B01", "overdue_kind"]) == (109, "管控逾期")
        assert (town["发现隐患"], town["未销号重大隐患"], town["逾期数"], town["逾期总天数"]) == (3, 1, 2, 82 + 109)
        assert (town["红色风险对象隐患"], town["本期新增"], town["整改率"]) == (1, 3, 0.0)
        unit = summary(con, "unit", dt.date(2023, 9, 1), dt.date(2023, 5, 1))
        assert list(unit["名称"]) == ["金积镇人民政府"]
        later = ledger_rows(con, dt.date(2024, 1, 10))
        assert dict(zip(later["hazard_no"], later["overdue_days"], strict=True))["JZ-A-B09"] == 10
