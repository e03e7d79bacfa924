"""The ledger for people: summary tables per town and per unit, XLSX and Excel-safe CSV exports.

Overdue (逾期) is derived here, as of a date, never stored: an open hazard in 待整改 or 整改中
whose deadline (or recorded extension) has passed. 管控中 and 已整改待验收 are not counted as
overdue: the unit has done its part (control measures in place, or work awaiting acceptance).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from pipeline import faults
from pipeline.atomic import atomic_path
from pipeline.clock import as_of_label
from pipeline.excel_safe import safe_cell, write_safe_csv
from pipeline.intake.schema import towns, units
from pipeline.ledger.model import DEFAULT_REVIEW_DAYS, OVERDUE_STATUSES, RECTIFICATION_ZH, WITHDRAWN

KIND_ZH = {"buildings": "房屋建筑", "bridges": "桥梁", "hazchem_sites": "危险化学品单位", "pipelines": "油气长输管道"}
LEDGER_COLUMNS = {
    "hazard_no": "隐患编号", "kind_zh": "资产类别", "asset_id": "资产编码", "asset_name": "资产名称",
    "town_name": "乡镇", "lon": "经度", "lat": "纬度", "description": "隐患描述", "hazard_grade": "隐患等级",
    "risk_level_zh": "风险等级", "rule": "规则及依据", "found_date": "发现日期",
    "last_survey_date": "最近一次调查日期", "unit_name": "责任单位", "person": "责任人", "measures": "整改措施",
    "funds_wan": "整改资金(万元)", "deadline": "整改时限", "extend_requested_to": "申请延期至", "extend_status": "延期审批",
    "extend_to": "批准延期至", "extend_reason": "延期原因",
    "monitoring": "管控措施/监测", "plan_no": "应急预案编号", "rectification_zh": "整改类型", "status": "整改状态",
    "next_review": "下次复核日期", "supervise_unit": "督办单位", "supervise_date": "督办日期",
    "supervise_no": "督办编号", "overdue_days": "逾期天数",
    "acceptor": "验收人", "accept_date": "验收日期", "accept_result": "验收结论",
}  # fmt: skip
COLOURED_COLUMNS = ("隐患编号", "资产名称", "隐患等级", "风险等级")
EXPORT_FILES = [("隐患台账", ".xlsx"), ("隐患台账", ".csv"), ("乡镇汇总", ".csv"), ("责任单位汇总", ".csv")]
LEVEL_FILL = {"red": "FFC7CE", "orange": "FFD8A8", "yellow": "FFF2A8", "blue": "C6DBF7"}
EXCEL_MAX_ROWS = 1_048_576  # rows of an Excel sheet, the header included: a bigger kind takes several sheets
RATE_COLUMN, RATE_FORMAT, PERCENT_FORMAT = "整改率", ".1%", "0.0%"  # 12.5% in the CSV, a percent cell in the XLSX


def _register_reference(con: duckdb.DuckDBPyConnection) -> None:
    con.register("ref_towns_list", pd.DataFrame({"town_code": list(towns()), "town_name": list(towns().values())}))
    con.register("ref_units_list", pd.DataFrame({"unit_code": list(units()),
                                                 "unit_name": [u["unit_name"] for u in units().values()]}))  # fmt: skip
    con.register("ref_kinds_list", pd.DataFrame({"kind": list(KIND_ZH), "kind_zh": list(KIND_ZH.values())}))


LEDGER_SQL = """
SELECT h.*, k.kind_zh, t.town_name, u.unit_name,
       h.rule_id || ' ' || h.rule_title || '；依据：' || h.source_ref AS rule,
       CASE h.rectification {rect_cases} END AS rectification_zh,
       CASE WHEN h.status = '管控中' THEN h.updated_on + coalesce(h.review_days, {review_days})::INTEGER END
           AS next_review,
       CASE WHEN h.status IN {overdue} AND $as_of > coalesce(h.extend_to, h.deadline)
                THEN date_diff('day', coalesce(h.extend_to, h.deadline), $as_of::DATE)
            WHEN h.status = '管控中' AND $as_of > next_review  -- under control: a missed review
                THEN date_diff('day', next_review, $as_of::DATE) END AS overdue_days
FROM {table} h
LEFT JOIN ref_kinds_list k USING (kind)
LEFT JOIN ref_towns_list t USING (town_code)
LEFT JOIN ref_units_list u ON u.unit_code = h.responsible_unit
WHERE h.status <> '{withdrawn}'
ORDER BY h.kind, h.town_code, h.hazard_no
"""

SUMMARY_SQL = """
WITH l AS ({ledger})
SELECT {key} AS "{key_zh}", {name} AS "名称",
       count(*) AS "发现隐患", count(*) FILTER (WHERE status <> '已销号') AS "未销号",
       count(*) FILTER (WHERE status <> '已销号' AND hazard_grade = '重大') AS "未销号重大隐患",
       count(*) FILTER (WHERE status <> '已销号' AND hazard_grade = '一般') AS "未销号一般隐患",
       count(*) FILTER (WHERE status <> '已销号' AND risk_level = 'red') AS "红",
       count(*) FILTER (WHERE status <> '已销号' AND risk_level = 'orange') AS "橙",
       count(*) FILTER (WHERE status <> '已销号' AND risk_level = 'yellow') AS "黄",
       count(*) FILTER (WHERE status <> '已销号' AND risk_level = 'blue') AS "蓝",
       count(*) FILTER (WHERE status = '已销号') AS "已销号",
       round(count(*) FILTER (WHERE status = '已销号') / count(*), 4) AS "整改率",
       count(overdue_days) AS "逾期数", coalesce(sum(overdue_days), 0) AS "逾期总天数",
       count(*) FILTER (WHERE status = '管控中') AS "管控中",
       count(*) FILTER (WHERE status <> '已销号' AND rectification = 'immediate') AS "未销号立即消除类",
       count(*) FILTER (WHERE status <> '已销号' AND rectification = 'project') AS "未销号限期整改类",
       count(*) FILTER (WHERE status <> '已销号' AND rectification = 'control') AS "未销号管控类",
       count(*) FILTER (WHERE found_date >= $period_start) AS "本期新增",
       count(*) FILTER (WHERE status = '已销号' AND accept_date >= $period_start) AS "本期销号"
FROM l GROUP BY ALL ORDER BY 1
"""


def ledger_sql(table: str = "hazards") -> str:
    """The ledger with display names, rectification kind, next review and overdue days as of `$as_of`.
    Overdue: 待整改/整改中 past the deadline (or extension); 管控中 past its next review (a missed review)."""
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in RECTIFICATION_ZH.items())
    return LEDGER_SQL.format(overdue=str(OVERDUE_STATUSES), table=table, withdrawn=WITHDRAWN,
                             rect_cases=cases, review_days=DEFAULT_REVIEW_DAYS)  # fmt: skip


def ledger_rows(
    con: duckdb.DuckDBPyConnection, as_of: dt.date, table: str = "hazards", columns: list[str] | None = None
) -> pd.DataFrame:
    """The ledger with display names and overdue days as of `as_of` (from `hazards` or a rebuilt copy);
    only `columns` of it when given (a chart needs a few of the 30 columns of a million hazards)."""
    _register_reference(con)
    sql = ledger_sql(table)
    if columns:
        sql = f"SELECT {', '.join(columns)} FROM ({sql})"
    return con.execute(sql, {"as_of": as_of}).df()


def summary(
    con: duckdb.DuckDBPyConnection, by: str, as_of: dt.date, period_start: dt.date, table: str = "hazards"
) -> pd.DataFrame:
    """Per town (`by="town"`) or per responsible unit (`by="unit"`)."""
    _register_reference(con)
    key, key_zh, name = {"town": ("town_code", "乡镇代码", "town_name"),
                         "unit": ("responsible_unit", "责任单位代码", "unit_name")}[by]  # fmt: skip
    ledger = ledger_sql(table)
    sql = SUMMARY_SQL.format(ledger=ledger, key=key, key_zh=key_zh, name=name)
    return con.execute(sql, {"as_of": as_of, "period_start": period_start}).df()


@dataclass
class LedgerExport:
    hazards: int
    overdue: int
    by_town: pd.DataFrame
    files: list[Path]


def export_ledger(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    out_dir: Path,
    suffix: str = "",
    table: str = "hazards",
    period_days: int = 30,
) -> LedgerExport:
    """隐患台账.xlsx/.csv and the summaries per town and per unit (new/closed over the last `period_days`),
    as of `as_of`, named 隐患台账{suffix}.xlsx etc. The one export both the Dagster asset and the CLI use."""
    period_start = as_of - dt.timedelta(days=period_days)
    rows = ledger_rows(con, as_of, table)
    by_town = summary(con, "town", as_of, period_start, table)
    by_unit = summary(con, "unit", as_of, period_start, table)
    paths = [
        out_dir / f"{name}{suffix}{ext}" for name, ext in EXPORT_FILES
    ]  # atomic_path clears a killed writer's temps
    write_xlsx(rows, by_town, paths[0], as_of_text=as_of_label(as_of))
    write_csv(rows, paths[1])
    write_summary_csv(by_town, paths[2])
    write_summary_csv(by_unit, paths[3])
    return LedgerExport(len(rows), int(rows["overdue_days"].notna().sum()), by_town, paths)


def _display(df: pd.DataFrame, dates: str = "text") -> pd.DataFrame:
    """The ledger's columns under their Chinese names, missing values as None. Dates as the clerk reads them:
    `dates="text"` gives 2023-05-11 (the CSV), `dates="date"` gives datetime.date (a date cell in the XLSX)."""
    out = df[list(LEDGER_COLUMNS)].rename(columns=LEDGER_COLUMNS)
    out = out.astype(object).where(out.notna(), None)
    for i, column in enumerate(df[list(LEDGER_COLUMNS)].columns):
        values = df[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            shown = values.dt.strftime("%Y-%m-%d") if dates == "text" else values.dt.date
            out.isetitem(i, shown.astype(object).where(values.notna(), None))
    return out


def _summary_display(df: pd.DataFrame) -> pd.DataFrame:
    """A summary as the CSV shows it: 整改率 as a percentage (12.5%)."""
    out = df.astype(object).where(df.notna(), None)
    if RATE_COLUMN in out.columns:
        out[RATE_COLUMN] = [None if v is None else f"{v:{RATE_FORMAT}}" for v in df[RATE_COLUMN]]
    return out


def write_summary_csv(df: pd.DataFrame, path: Path) -> Path:
    """A summary per town or unit as an Excel-safe CSV, 整改率 as a percentage."""
    return write_safe_csv(_summary_display(df), path)


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """UTF-8 with BOM (Excel opens it as Chinese), every text cell neutralised against formulas, dates as
    2023-05-11, written to a temporary file and renamed; the fault point `ledger_exports:mid` is half-way
    through the rows."""
    return write_safe_csv(_display(df), path, midway=lambda: faults.point("ledger_exports:mid"))


def write_xlsx(df: pd.DataFrame, by_town: pd.DataFrame, path: Path, as_of_text: str | None = None) -> Path:
    """A summary sheet (整改率 a percent cell), then one sheet per asset kind: frozen header, filters, colour
    by level, dates as date cells (yyyy-mm-dd). A kind with more rows than a sheet holds (Excel: 1,048,576
    with the header) is split into 房屋建筑(1), 房屋建筑(2) …

    Streaming: openpyxl's write-only mode writes each row as it comes (styling cells in normal mode is
    quadratic), and the rows are converted a chunk at a time, never the whole ledger at once."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    summary_rows = by_town.astype(object).where(by_town.notna(), None).values.tolist()
    formats = {i: PERCENT_FORMAT for i, c in enumerate(by_town.columns) if c == RATE_COLUMN}
    write_sheet(wb, "汇总", list(by_town.columns), summary_rows, [None] * len(summary_rows), formats)
    per_sheet = EXCEL_MAX_ROWS - 1
    for kind, kind_zh in KIND_ZH.items():
        part = df[df["kind"] == kind]
        n_sheets = max(1, -(-len(part) // per_sheet))
        for i in range(n_sheets):
            rows = part.iloc[i * per_sheet : (i + 1) * per_sheet]
            title = kind_zh if n_sheets == 1 else f"{kind_zh}({i + 1})"
            write_sheet(wb, title, list(LEDGER_COLUMNS.values()), _display_rows(rows), list(rows["risk_level"]),
                         n_rows=len(rows))  # fmt: skip
    if as_of_text:  # the date the ledger stands at (样例数据，截至… on the sample): title and a last sheet
        wb.properties.title = f"利通区地震风险隐患台账（{as_of_text}）"
        write_sheet(wb, "说明", ["项目", "内容"], [["台账日期", as_of_text], ["逾期计算", f"按{as_of_text}计"],
                     ["数据来源", "各部门、乡镇、企业报送的地震风险隐患调查表及整改反馈"]], [None] * 3)  # fmt: skip
    with atomic_path(path) as tmp:
        wb.save(tmp)
    return path


def _display_rows(df: pd.DataFrame, chunk: int = 50_000) -> Iterator[list]:
    """The displayed rows of `df` (dates as dates), converted a chunk at a time."""
    for start in range(0, len(df), chunk):
        yield from _display(df.iloc[start : start + chunk], dates="date").itertuples(index=False, name=None)


def write_sheet(
    wb,
    title: str,
    header: list[str],
    rows: Iterable[Sequence],
    levels: list[str | None],
    formats: dict[int, str] | None = None,
    n_rows: int | None = None,
) -> None:
    """One sheet, streamed: bold frozen header, filters over the rows, the level's colour on a few columns
    (whole-row fills are slow), `formats` (column index -> number format) on those columns' cells. Dates
    need no format of their own: openpyxl writes a date as a yyyy-mm-dd cell."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    ws.freeze_panes = "A2"
    for i in range(1, len(header) + 1):
        ws.column_dimensions[get_column_letter(i)].width = 14
    n_rows = len(levels) if n_rows is None else n_rows
    if n_rows:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{n_rows + 1}"
    bold = Font(bold=True)
    fills = {lv: PatternFill("solid", fgColor=colour) for lv, colour in LEVEL_FILL.items()}
    formats = formats or {}

    def cell(value, font=None, fill=None, number_format=None):
        c = WriteOnlyCell(ws, value=safe_cell(value) if isinstance(value, str) else value)
        if font:
            c.font = font
        if fill:
            c.fill = fill
        if number_format:
            c.number_format = number_format
        return c

    ws.append([cell(h, font=bold) for h in header])
    coloured = {i for i, h in enumerate(header) if h in COLOURED_COLUMNS}
    styled = coloured | set(formats)
    for row, level in zip(rows, levels, strict=True):
        fill = fills.get(level)
        if not fill and not formats:
            ws.append([safe_cell(v) for v in row])
            continue
        ws.append([
            cell(v, fill=fill if i in coloured else None, number_format=formats.get(i)) if i in styled else safe_cell(v)
            for i, v in enumerate(row)
        ])  # fmt: skip
