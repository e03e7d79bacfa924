"""待鉴定清单 (appraisal worklist): the buildings that need a 抗震性能鉴定, in the order to do them.

Two classes, each row with its reason and legal basis in Chinese:

一类 依法应当鉴定  学校、幼儿园、医院、养老机构 (listed first), then the other crowded places (商业、宗教
                 buildings used by 50 people or more: our reading of 人员密集场所, J) that have no appraisal (房屋安全鉴定等级 empty or 未鉴定) and have not been shown to meet the
                 current code: no seismic design, design unknown, designed below the site's intensity, or
                 built before 2001 (GB 50023-2009 A/B class), and not retrofitted since.
                 防震减灾法 Art. 39 (4): 学校、医院等人员密集场所的建设工程 that took no seismic measures
                 or whose measures fall short must be appraised; 建设工程抗震管理条例 (国务院令第744号)
                 Art. 19 makes that appraisal the owner's duty, Art. 20 says what it decides and Art. 21 what
                 follows from it (monitoring, stop or restrict use, retrofit).
二类 初步筛查低分  every other unappraised building whose screening score S (FEMA P-154 2015, Level 1,
                 high seismicity) is below the cut-off 2.0.

Within a class the lowest S comes first (then more occupants). The screening score is the priority;
it opens no hazard (issue 10). Written as the DuckDB table `appraisal_worklist` and, for people, as
output/worklists/待鉴定清单.xlsx and .csv (every text cell through the formula neutraliser, every file
written atomically).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.atomic import atomic_path
from pipeline.excel_safe import write_safe_csv, xlsx_cell
from pipeline.intake.schema import towns, units

WORKLIST_TABLE = "appraisal_worklist"
WORKLIST_NAME = "待鉴定清单"
S_CUTOFF = 2.0
CROWDED_USES = ("商业", "宗教")  # other crowded places, when used by CROWDED_OCCUPANTS or more (J)
CROWDED_OCCUPANTS = 50

LEGAL_BASIS = (
    "《中华人民共和国防震减灾法》第三十九条第（四）项；《建设工程抗震管理条例》（国务院令第744号）"
    "第十九条（所有权人委托鉴定）、第二十条（判定是否存在严重抗震安全隐患、是否需要加固）、"
    "第二十一条（监测、停用或限制使用、加固）"
)
LOW_S_BASIS = (
    "FEMA P-154（2015年第3版）一级快速筛查，高烈度区，S低于2.0需详细抗震评估；"
    "《建设工程抗震管理条例》第十九条第二款（国家鼓励对未采取抗震设防措施或未达到强制性标准的建设工程进行抗震性能鉴定）"
)

WORKLIST_SQL = f"""
WITH b AS (
    SELECT *,
        coalesce(appraisal_grade, '未鉴定') = '未鉴定' AS unappraised,
        CASE
            WHEN coalesce(seismic_design, '不详') = '否' THEN '未进行抗震设防'
            WHEN coalesce(seismic_design, '不详') <> '是' THEN '抗震设防情况不详'
            WHEN design_intensity = '不设防' OR design_intensity_num < site_design_intensity
                THEN '设防烈度低于本地抗震设防烈度'
            WHEN year_built < 2001 THEN '2001年前按旧规范建造（GB 50023 A/B类）'
        END AS shortfall
    FROM v_buildings
),
listed AS (
    SELECT *,
        CASE WHEN (is_key_fortification OR ("use" IN {CROWDED_USES} AND occupants >= {CROWDED_OCCUPANTS}))
                  AND shortfall IS NOT NULL AND NOT coalesce(retrofitted, false)
             THEN 1
             WHEN screening_score < {S_CUTOFF} THEN 2 END AS worklist_class
    FROM b
    WHERE unappraised
)
SELECT
    row_number() OVER (ORDER BY worklist_class, worklist_class = 1 AND NOT is_key_fortification,
                             screening_score NULLS LAST, occupants DESC NULLS LAST, building_id) AS priority,
    worklist_class,
    CASE worklist_class WHEN 1 THEN '一类：依法应当鉴定（人员密集场所）' ELSE '二类：初步筛查得分低' END AS class_zh,
    building_id, name, town_code, village, address, "use", structure_type, fema_type, year_built, floors_above,
    seismic_design, design_intensity, coalesce(appraisal_grade, '未鉴定') AS appraisal_grade, screening_score,
    CASE worklist_class
        WHEN 1 THEN "use" || '（' || CASE WHEN is_class_b THEN '重点设防类'
                                                  WHEN is_key_fortification THEN '地震应急重点对象'
                                                  ELSE '人员密集场所' END
                    || '），' || shortfall || '，尚未进行抗震性能鉴定'
        ELSE '初步筛查得分S=' || printf('%.1f', screening_score) || '，低于' || printf('%.1f', {S_CUTOFF})
             || '（' || structure_type || '，按' || fema_type || '类评分），尚未进行抗震性能鉴定'
    END AS reason_zh,
    CASE worklist_class WHEN 1 THEN '{LEGAL_BASIS}' ELSE '{LOW_S_BASIS}' END AS legal_basis_zh,
    responsible_unit, owner, occupants, survey_round, survey_date
FROM listed
WHERE worklist_class IS NOT NULL
ORDER BY priority
"""

COLUMNS_ZH = {
    "priority": "序号", "class_zh": "清单类别", "building_id": "房屋编码", "name": "建筑名称", "town_name": "乡镇",
    "village": "村(社区)", "address": "详细地址", "use": "房屋用途", "structure_type": "结构类型",
    "year_built": "建成年份", "floors_above": "地上层数", "seismic_design": "是否抗震设防",
    "appraisal_grade": "房屋安全鉴定等级", "screening_score": "初步筛查得分S（越低越优先）", "reason_zh": "列入原因",
    "legal_basis_zh": "依据", "unit_name": "责任单位", "owner": "产权人/使用单位", "occupants": "常住(使用)人数",
    "survey_date": "调查日期",
}  # fmt: skip


@dataclass
class WorklistResult:
    rows: int
    legal: int
    low_score: int
    files: list[Path]


def build_worklist(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The worklist in priority order (v_buildings must be installed), with town and unit names."""
    df = con.execute(WORKLIST_SQL).df()
    for col in ("priority", "worklist_class", "year_built", "floors_above", "occupants"):
        df[col] = df[col].astype("Int64")
    df.insert(df.columns.get_loc("town_code") + 1, "town_name", df["town_code"].map(towns()))
    names = {code: u["unit_name"] for code, u in units().items()}
    df.insert(df.columns.get_loc("responsible_unit") + 1, "unit_name", df["responsible_unit"].map(names))
    return df


def write_worklist(con: duckdb.DuckDBPyConnection, out_dir: Path) -> WorklistResult:
    """Rebuild the table `appraisal_worklist` and write 待鉴定清单.xlsx and .csv under `out_dir`."""
    df = build_worklist(con)
    con.register("_worklist_df", df)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {WORKLIST_TABLE} AS SELECT * FROM _worklist_df")
    finally:
        con.unregister("_worklist_df")
    shown = _display(df)
    xlsx = write_xlsx(shown, Path(out_dir) / f"{WORKLIST_NAME}.xlsx")
    csv = write_safe_csv(shown, Path(out_dir) / f"{WORKLIST_NAME}.csv")
    legal = int((df["worklist_class"] == 1).sum())
    return WorklistResult(len(df), legal, len(df) - legal, [xlsx, csv])


def _display(df: pd.DataFrame) -> pd.DataFrame:
    out = df[list(COLUMNS_ZH)].rename(columns=COLUMNS_ZH)
    return out.astype(object).where(out.notna(), None)


def write_xlsx(shown: pd.DataFrame, path: Path) -> Path:
    """One sheet, frozen header and filters; written in openpyxl's write-only mode, atomically."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(WORKLIST_NAME)
    ws.freeze_panes = "A2"
    header = list(shown.columns)
    widths = {"列入原因": 48, "依据": 60, "详细地址": 30, "建筑名称": 24}
    for i, h in enumerate(header, start=1):
        ws.column_dimensions[get_column_letter(i)].width = widths.get(h, 14)
    if len(shown):
        ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{len(shown) + 1}"
    bold = Font(bold=True)
    head = []
    for h in header:
        cell = WriteOnlyCell(ws, value=xlsx_cell(h))
        cell.font = bold
        head.append(cell)
    ws.append(head)
    for row in shown.itertuples(index=False):
        ws.append([xlsx_cell(_plain(v)) for v in row])
    with atomic_path(Path(path)) as tmp:
        wb.save(tmp)
    return Path(path)


def _plain(value: object) -> object:
    """numpy scalars and pandas timestamps as plain Python values openpyxl writes."""
    if isinstance(value, pd.Timestamp):
        return value.date()
    if hasattr(value, "item"):
        return value.item()
    return value
