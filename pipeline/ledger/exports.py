"""The ledger for people: summary tables per town and per unit, XLSX, Excel-safe CSV and Parquet exports.

Overdue (逾期) is derived here, as of a date, never stored: an open hazard in 待整改 or 整改中
whose deadline (or recorded extension) has passed, or whose immediate control (停止使用, 封闭, 疏散, 限载 …) was
not reported in place by its control deadline (管控逾期, counted from that deadline; 逾期类型 says which). 管控中 and 已整改待验收 are not counted as
overdue: the unit has done its part (control measures in place, or work awaiting acceptance).

Exports at any size (issue 14): the ledger as of the date is one DuckDB table, kept between runs by asset kind
and town in the cache (pipeline/ledger/export_table.py, issue 30: only the groups with a changed hazard are
computed again, each stored in the files' order); the summaries, the files and the 督办建议清单 read that table.
The full CSV is the header and one fragment per asset kind and town, each written by DuckDB COPY (text
through the SQL form of the one neutraliser) and kept with a fingerprint, so only the fragments whose rows
changed are written again; the Parquet likewise, its fragments' row groups copied under one footer
(pipeline/formats/parquet_fragments.py). The XLSX files are one per town and one per
responsible unit, rewritten only when what they show changed (a fingerprint per file in
exports_manifest.json); the sheet rows of their hazards are rendered by DuckDB once (pipeline/formats/xlsx_stream.py)
and streamed into each workbook. 隐患台账.xlsx is the district's summary workbook with a 目录 of those files.
The 督办建议清单 is written again only when what it shows changed (its fingerprint in the same manifest).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.formats.csv_fragments import MANIFEST_NAME, ROWS_FINGERPRINT_SQL, Fragment, assemble_csv, fault_point
from pipeline.formats.excel_safe import install_excel_safe, sql_text, write_safe_csv
from pipeline.formats.parquet_fragments import assemble_parquet
from pipeline.formats.xlsx_stream import (
    PERCENT_FORMAT,
    StreamedWorkbook,
    fetch_xml,
    python_rows,
    row_xml_sql,
    streamed_workbook,
)
from pipeline.ledger import export_table
from pipeline.ledger.duban import PROPOSAL_COLUMNS, PROPOSALS_NAME, proposal_rules, proposals_sql
from pipeline.ledger.model import (
    DEFAULT_REVIEW_DAYS,
    OVERDUE_KINDS,
    OVERDUE_STATUSES,
    RECTIFICATION_ZH,
    SUPERVISE_AWAITING_CLOSE,
    SUPERVISING,
    WITHDRAWN,
    risk_label_sql,
)
from pipeline.platform import stage_inputs
from pipeline.platform.atomic import atomic_path
from pipeline.platform.clock import as_of_label
from pipeline.platform.manifest import Manifest
from pipeline.platform.paths import PROJECT_ROOT
from pipeline.registries.templates import towns, units
from pipeline.scoring.ruleset import load_kinds

KIND_ZH = {k: spec.title for k, spec in load_kinds().items()}  # rules/kinds.yaml, in its order
LEDGER_COLUMNS = {
    "hazard_no": "隐患编号", "kind_zh": "资产类别", "asset_id": "资产编码", "asset_name": "资产名称",
    "town_name": "乡镇", "lon": "经度", "lat": "纬度", "description": "隐患描述", "hazard_grade": "隐患等级",
    "risk_level_zh": "风险等级", "rule": "规则及依据", "found_date": "发现日期",
    "last_survey_date": "最近一次调查日期", "unit_name": "责任单位", "person": "责任人", "measures": "整改措施",
    "funds_wan": "整改资金(万元)", "deadline": "整改时限", "extend_requested_to": "申请延期至", "extend_status": "延期审批",
    "extend_to": "批准延期至", "extend_reason": "延期原因",
    "monitoring": "管控措施/监测", "plan_no": "应急预案编号", "rectification_zh": "整改类型", "status": "整改状态",
    "next_review": "下次复核日期", "supervise_unit": "督办单位", "supervise_date": "督办日期",
    "supervise_no": "督办通知书编号", "overdue_days": "逾期天数",
    "acceptor": "验收人", "accept_date": "验收日期", "accept_result": "验收结论", "accept_opinion": "验收意见",
    "assessment_no": "评估报告编号", "expert": "评估专家", "supervisor_name": "监管部门",
    "control_deadline": "管控时限", "control_done_on": "管控措施落实日期", "overdue_kind": "逾期类型",
    "supervise_deadline": "督办期限", "supervise_requirement": "督办要求", "supervise_status": "督办状态",
    "supervise_closed_on": "督办核销日期",
}  # fmt: skip
# The workbooks' sheets are for a clerk working through them: what to act on first (number, object, grade,
# status, deadline, overdue days), then the rest in the ledger's order; the open hazards first, those closed
# (已销号) after them. The CSV and Parquet keep LEDGER_COLUMNS' order: they are read by programs too.
SHEET_FIRST = ("hazard_no", "asset_name", "hazard_grade", "status", "deadline", "overdue_days")
SHEET_COLUMNS = {c: LEDGER_COLUMNS[c] for c in (*SHEET_FIRST, *(c for c in LEDGER_COLUMNS if c not in SHEET_FIRST))}
CLOSED_STATUS = "已销号"
SHEET_ORDER_ZH = "先列未销号的隐患，已销号的列在其后；各自按资产类别、乡镇、隐患编号排列"
GRADE_AND_COLOUR_ZH = (
    "隐患等级（一般/重大）是隐患本身的等级，由规则及判定标准确定（16号令第三条）；风险等级"
    "（红色/橙色/黄色/蓝色）是所在对象的风险分级。两者不同：红色（重大风险）对象的隐患不一定是重大隐患"
)
OVERDUE_KINDS_ZH = (
    "管控逾期：需立即管控的隐患（停止使用、封闭、疏散、限载等）过了管控时限仍未报告“管控措施已落实”，"
    "逾期天数自管控时限起算；整改逾期：待整改、整改中的隐患过了整改时限（或批准的延期）；"
    "复核逾期：管控中的隐患过了下次复核日期"
)
COLOURED_COLUMNS = ("隐患编号", "资产名称", "隐患等级", "风险等级")
EXPORT_FILES = [("隐患台账", ".xlsx"), ("隐患台账", ".csv"), ("隐患台账", ".parquet"), ("乡镇汇总", ".csv"),
                ("责任单位汇总", ".csv"), ("监管部门汇总", ".csv")]  # fmt: skip
EXCEL_MAX_ROWS = 1_048_576  # rows of an Excel sheet, the header included: a bigger kind takes several sheets
RATE_COLUMN, RATE_FORMAT = "整改率", ".1%"  # 12.5% in the CSV, a percent cell (PERCENT_FORMAT) in the XLSX
# Up to this many hazards the district workbook also holds the per-kind sheets (as before issue 14): a
# clerk of a small district opens one file. Above it, the per-kind rows are in the town and unit files only
# (writing a sheet costs about 0.3 ms a row: 100,000 rows are half a minute more).
SMALL_LEDGER_ROWS = 100_000
PARQUET_CACHE = "parquet"  # the Parquet's fragments, in the cache folder
EXPORT_TABLE = export_table.EXPORT_TABLE  # the ledger as of the date, kept by hazard (export_table.py)
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"
ROWS_XML_TABLE = "ledger_export_xml"  # … and the sheet rows of the hazards whose workbooks are written
PROPOSALS_TABLE = "ledger_export_proposals"  # … and the 督办建议清单's rows
PROPOSALS_ORDER = "ORDER BY overdue_days DESC NULLS LAST, found_date, hazard_no"  # duban.proposals_sql's order
PART_FOLDERS = {"town": "乡镇", "unit": "责任单位"}
PART_KEYS = {"town": "town_part", "unit": "unit_part"}  # '' for a town or unit not in the reference tables
UNKNOWN_PARTS = {"town": "乡镇不明", "unit": "未明确单位"}
FILE_CODE = r"[0-9A-Za-z]{1,40}"  # a unit code that may name a file (district codes, credit codes)
NOT_IN_FILE_NAMES = re.compile(r'[\\/:*?"<>|\x00-\x1f]|^\.')
WRITER_FILES = (
    "pipeline/ledger/exports.py",
    "pipeline/formats/xlsx_stream.py",
    "pipeline/formats/excel_safe.py",
    "pipeline/formats/csv_fragments.py",
    "pipeline/formats/parquet_fragments.py",
)


@functools.cache
def writer_version() -> str:
    """What the written files also depend on besides their rows: the code that writes them (layout, the
    neutraliser) and DuckDB's (how COPY writes numbers and dates). A new release writes every file again."""
    return stage_inputs.fingerprint(stage_inputs.files_version(*(PROJECT_ROOT / f for f in WRITER_FILES)),
                                    duckdb.__version__)  # fmt: skip


def register_reference(con: duckdb.DuckDBPyConnection) -> None:
    con.register("ref_towns_list", pd.DataFrame({"town_code": list(towns()), "town_name": list(towns().values())}))
    con.register("ref_units_list", pd.DataFrame({"unit_code": list(units()),
                                                 "unit_name": [u["unit_name"] for u in units().values()]}))  # fmt: skip
    con.register("ref_kinds_list", pd.DataFrame({"kind": list(KIND_ZH), "kind_zh": list(KIND_ZH.values())}))


LEDGER_SQL = """
SELECT h.* REPLACE ({risk_label} AS risk_level_zh, {supervise_state} AS supervise_status), k.kind_zh, t.town_name,
       u.unit_name, sv.unit_name AS supervisor_name,
       h.rule_id || ' ' || h.rule_title || '；依据：' || h.source_ref AS rule,
       CASE h.rectification {rect_cases} END AS rectification_zh,
       CASE WHEN h.status = '管控中' THEN h.updated_on + coalesce(h.review_days, {review_days})::INTEGER END
           AS next_review,
       CASE WHEN h.status IN {overdue} AND $as_of > h.control_deadline  -- an immediate control not in place
                 AND (h.control_done_on IS NULL OR h.control_done_on > $as_of) THEN '{kind_control}'
            WHEN h.status IN {overdue} AND $as_of > coalesce(h.extend_to, h.deadline) THEN '{kind_rect}'
            WHEN h.status = '管控中' AND $as_of > next_review THEN '{kind_review}' END AS overdue_kind,
       CASE overdue_kind WHEN '{kind_control}' THEN date_diff('day', h.control_deadline, $as_of::DATE)
            WHEN '{kind_rect}' THEN date_diff('day', coalesce(h.extend_to, h.deadline), $as_of::DATE)
            WHEN '{kind_review}' THEN date_diff('day', next_review, $as_of::DATE) END AS overdue_days
FROM {table} h
LEFT JOIN ref_kinds_list k USING (kind)
LEFT JOIN ref_towns_list t USING (town_code)
LEFT JOIN ref_units_list u ON u.unit_code = h.responsible_unit
LEFT JOIN ref_units_list sv ON sv.unit_code = h.sector_supervisor
WHERE h.status <> '{withdrawn}'
{order}
"""

SUMMARY_SQL = """
WITH l AS ({ledger})
SELECT {key} AS "{key_zh}", {name} AS "名称",
       count(*) AS "发现隐患", count(*) FILTER (WHERE status <> '已销号') AS "未销号",
       count(*) FILTER (WHERE status <> '已销号' AND hazard_grade = '重大') AS "未销号重大隐患",
       count(*) FILTER (WHERE status <> '已销号' AND hazard_grade = '一般') AS "未销号一般隐患",
       count(*) FILTER (WHERE status <> '已销号' AND risk_level = 'red') AS "红色风险对象隐患",
       count(*) FILTER (WHERE status <> '已销号' AND risk_level = 'orange') AS "橙色风险对象隐患",
       count(*) FILTER (WHERE status <> '已销号' AND risk_level = 'yellow') AS "黄色风险对象隐患",
       count(*) FILTER (WHERE status <> '已销号' AND risk_level = 'blue') AS "蓝色风险对象隐患",
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


SUMMARY_KEYS = {"town": ("town_code", "乡镇代码", "town_name"),
                "unit": ("responsible_unit", "责任单位代码", "unit_name"),
                "supervisor": ("sector_supervisor", "监管部门代码", "supervisor_name")}  # fmt: skip
# 督办状态 as shown: a notice whose hazard is accepted (已销号) waits for its issuer's 核销 (待核销)
SUPERVISE_STATE_SQL = (
    f"CASE WHEN h.supervise_status = '{SUPERVISING}' AND h.status = '{CLOSED_STATUS}' THEN '{SUPERVISE_AWAITING_CLOSE}' "
    "ELSE h.supervise_status END"
)


def ledger_sql(table: str = "hazards", ordered: bool = True) -> str:
    """The ledger with display names, rectification kind, next review and overdue days as of `$as_of`.
    Overdue (overdue_kind tells which, overdue_days counts from that date): 待整改/整改中 past the control deadline
    of an immediate measure without 管控措施已落实 (管控逾期); else past the deadline or extension (整改逾期); 管控中
    past its next review (复核逾期). `ordered`: by kind, town and number (what the exports write)."""
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in RECTIFICATION_ZH.items())
    return LEDGER_SQL.format(overdue=str(OVERDUE_STATUSES), table=table, withdrawn=WITHDRAWN,
                             rect_cases=cases, review_days=DEFAULT_REVIEW_DAYS,
                             risk_label=risk_label_sql("h"), kind_control=OVERDUE_KINDS["control"],
                             kind_rect=OVERDUE_KINDS["rectification"], kind_review=OVERDUE_KINDS["review"],
                             supervise_state=SUPERVISE_STATE_SQL,
                             order="ORDER BY h.kind, h.town_code, h.hazard_no" if ordered else "")  # fmt: skip


def query_ledger(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    select: str = "SELECT * FROM l",
    table: str = "hazards",
    ordered: bool = True,
) -> pd.DataFrame:
    """`select` over `l`, the ledger with display names and overdue days as of `as_of` (from `hazards` or a
    rebuilt copy; withdrawn hazards left out). The charts ask it for counts, not a million rows, and not
    `ordered` (sorting a million hazards is most of such a query's time)."""
    register_reference(con)
    return con.execute(f"WITH l AS ({ledger_sql(table, ordered)}) {select}", {"as_of": as_of}).df()


def ledger_rows(con: duckdb.DuckDBPyConnection, as_of: dt.date, table: str = "hazards") -> pd.DataFrame:
    """Every hazard of the ledger as of `as_of`."""
    return query_ledger(con, as_of, table=table)


def summary(
    con: duckdb.DuckDBPyConnection, by: str, as_of: dt.date, period_start: dt.date, table: str = "hazards"
) -> pd.DataFrame:
    """Per town (`by="town"`), per responsible unit (`by="unit"`) or per supervising department
    (`by="supervisor"`: who accepts and decides extensions, by sector)."""
    register_reference(con)
    key, key_zh, name = SUMMARY_KEYS[by]
    ledger = ledger_sql(table)
    sql = SUMMARY_SQL.format(ledger=ledger, key=key, key_zh=key_zh, name=name)
    return con.execute(sql, {"as_of": as_of, "period_start": period_start}).df()


@dataclass
class LedgerExport:
    hazards: int
    overdue: int
    by_town: pd.DataFrame
    files: list[Path]  # 隐患台账.xlsx, .csv, .parquet, 乡镇汇总.csv, 责任单位汇总.csv, 监管部门汇总.csv, then the
    # town and unit files
    written: list[Path] = field(default_factory=list)  # town and unit files written by this export
    skipped: list[Path] = field(default_factory=list)  # … and those left as they were (nothing they show changed)
    proposals: list[Path] = field(default_factory=list)  # 督办建议清单.csv and .xlsx
    proposed: int = 0  # hazards the 督办建议清单 lists
    proposals_written: bool = True  # … and whether its files were written now (False: nothing it shows changed)
    rows_rendered: int = 0  # hazards whose sheet rows were rendered for the town and unit workbooks written
    rows_computed: int = 0  # hazards whose row of the ledger as of the date was computed (kept: only the changed)
    csv_fragments_written: int = 0  # fragments of the CSV written (the others copied as they were)
    parquet_fragments_written: int = 0  # … and of the Parquet


@dataclass(frozen=True)
class Part:
    """One town's or one responsible unit's workbook."""

    by: str  # "town" or "unit"
    key: str  # town or unit code; '' for the hazards of no town (unit) in the reference tables
    label: str  # 金积镇, T100（金积镇人民政府）
    rel: str  # its path under the parts folder: 乡镇/隐患台账_金积镇.xlsx
    hazards: int
    fingerprint: str


def export_ledger(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    out_dir: Path,
    suffix: str = "",
    table: str = "hazards",
    period_days: int = 30,
    cache_dir: Path | None = None,
) -> LedgerExport:
    """隐患台账.xlsx (summaries and 目录), .csv and .parquet (every hazard), the summaries per town and per unit
    (new/closed over the last `period_days`) and one workbook per town and per unit, as of `as_of`, named
    隐患台账{suffix}.xlsx etc. The town and unit workbooks are in 乡镇/ and 责任单位/ under `out_dir`, or under
    `out_dir`/隐患台账{suffix}/ when a suffix is given (an as-of export keeps its own set). The CSV's
    fragments are kept in `cache_dir` for the next export (none given: a temporary folder, nothing kept).
    The one export both the Dagster asset and the CLI use."""
    period_start = as_of - dt.timedelta(days=period_days)
    as_of_text, max_rows = as_of_label(as_of), EXCEL_MAX_ROWS
    paths = [out_dir / f"{name}{suffix}{ext}" for name, ext in EXPORT_FILES]  # atomic_path clears stale temps
    parts_dir = out_dir / f"隐患台账{suffix}" if suffix else out_dir
    with contextlib.ExitStack() as stack:
        if cache_dir is None or table != "hazards":  # nothing kept: the table in memory, fragments in a temp folder
            cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ledger_export_")))
            stack.enter_context(export_table.attached(con, None))
        else:
            stack.enter_context(export_table.attached(con, cache_dir))
        try:
            kept = _bring_up_to_date(con, as_of, table)
            ((hazards, overdue),) = con.execute(f"SELECT count(*), count(overdue_days) FROM {EXPORT_TABLE}").fetchall()
            by_town, by_unit, by_supervisor = (_exported_summary(con, by, period_start) for by in SUMMARY_KEYS)
            fragments_written = write_ledger_csv(con, paths[1], cache_dir)
            parquet_written = write_ledger_parquet(con, paths[2], cache_dir / PARQUET_CACHE)
            write_summary_csv(by_town, paths[3])
            write_summary_csv(by_unit, paths[4])
            write_summary_csv(by_supervisor, paths[5])
            parts, with_kinds = ledger_parts(con, as_of_text, max_rows), hazards <= SMALL_LEDGER_ROWS
            written, skipped, rendered = write_parts(con, parts, parts_dir, as_of_text, max_rows, render_all=with_kinds)
            catalogue = [(p, (parts_dir / p.rel).relative_to(out_dir).as_posix()) for p in parts]
            write_district_workbook(con, paths[0], by_town, by_unit, catalogue, as_of_text, max_rows, with_kinds)
            proposed, proposal_files, proposals_written = write_proposals(
                con, as_of, out_dir, suffix, table, as_of_text, parts_dir / MANIFEST_NAME
            )
        finally:
            con.execute(f"DROP TABLE IF EXISTS {ROWS_XML_TABLE}")
            con.execute(f"DROP TABLE IF EXISTS {PROPOSALS_TABLE}")
        files = paths + [parts_dir / p.rel for p in parts]
        return LedgerExport(int(hazards), int(overdue), by_town, files, written, skipped, proposal_files, proposed,
                            proposals_written, rendered, kept.rows_written, fragments_written,
                            parquet_written)  # fmt: skip


def _exported_summary(con: duckdb.DuckDBPyConnection, by: str, period_start: dt.date) -> pd.DataFrame:
    """`summary` read from EXPORT_TABLE (the ledger as of the date, computed once) instead of computing the
    ledger again for each of the three summaries."""
    key, key_zh, name = SUMMARY_KEYS[by]
    sql = SUMMARY_SQL.format(ledger=f"SELECT * FROM {EXPORT_TABLE}", key=key, key_zh=key_zh, name=name)
    return con.execute(sql, {"period_start": period_start}).df()


def _bring_up_to_date(con: duckdb.DuckDBPyConnection, as_of: dt.date, table: str) -> export_table.KeptUpdate:
    """EXPORT_TABLE, the ledger as of `as_of` kept by hazard (export_table.py): the file keys (town_part,
    unit_part), the level, the summaries' keys, the displayed columns and `row_hash` (of what the row shows:
    the files' fingerprints add it up). Its base: the date, the names of towns, units and kinds, this code."""
    register_reference(con)
    columns = f"""kind, town_code, risk_level,
        CASE WHEN town_name IS NOT NULL THEN town_code ELSE '' END AS town_part,
        CASE WHEN unit_name IS NOT NULL AND regexp_full_match(responsible_unit, '{FILE_CODE}')
             THEN responsible_unit ELSE '' END AS unit_part,
        responsible_unit, sector_supervisor, rectification,  -- the summaries' keys and counts
        {", ".join(LEDGER_COLUMNS)},
        hash(risk_level, {", ".join(LEDGER_COLUMNS)}) AS row_hash,  -- what a row shows (level: its fill)
        source_hash"""
    base = export_table.base_of(as_of, table, towns(), units(), KIND_ZH, writer_version(),
                                stage_inputs.code_version("pipeline/ledger"))  # fmt: skip
    return export_table.bring_up_to_date(
        con, lambda source: f"SELECT {columns} FROM ({ledger_sql(source, ordered=False)}) l", {"as_of": as_of},
        table, base,
    )  # fmt: skip


# --- the whole ledger as CSV and Parquet, by DuckDB COPY -------------------------------------------------


def _displayed_columns(con: duckdb.DuckDBPyConnection, neutralised: bool) -> str:
    """The SELECT list of the ledger's columns under their Chinese names; with `neutralised`, every text
    column through excel_safe_text (the SQL form of safe_cell)."""
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {EXPORT_TABLE})").fetchall())
    shown = []
    for column, header in LEDGER_COLUMNS.items():
        value = f"excel_safe_text({column})" if neutralised and types[column] == "VARCHAR" else column
        shown.append(f'{value} AS "{header}"')
    return ", ".join(shown)


def write_ledger_csv(con: duckdb.DuckDBPyConnection, path: Path, cache_dir: Path | None = None) -> int:
    """Every hazard as CSV, written by DuckDB COPY: UTF-8 with BOM (Excel opens it as Chinese), the Chinese
    headers, every text cell neutralised, dates as 2023-05-11, numbers as numbers.

    The file is the header and one fragment per asset kind and town, in the ledger's order. The fragments
    are kept in `cache_dir` (outside the folder people read) with a fingerprint of their rows: only those
    whose rows changed are written again, the others are copied as they are (at 1 M buildings a new file
    in one town rewrites one fragment of 13, not 560,000 rows). Without a `cache_dir` they are written to
    a temporary folder. Written to a temporary file and renamed; the fault point `ledger_exports:mid` is
    after the first half of the fragments. Returns the fragments written."""
    with contextlib.ExitStack() as stack:
        if cache_dir is None:
            cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ledger_csv_")))
        return _assemble_csv(con, path, Path(cache_dir))


def _assemble_csv(con: duckdb.DuckDBPyConnection, path: Path, cache: Path) -> int:
    install_excel_safe(con)
    columns = _displayed_columns(con, neutralised=True)
    fragments = [Fragment(rel, f"SELECT {columns} FROM {EXPORT_TABLE} WHERE {where}{_in_order(con)}",
                          fingerprint) for rel, where, fingerprint in _csv_fragments(con)]  # fmt: skip
    return assemble_csv(con, path, cache, f"SELECT {columns} FROM {EXPORT_TABLE} WHERE false", fragments,
                        fault_point("ledger_exports:mid"))  # fmt: skip


def _csv_fragments(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(file name, SQL test of its rows, fingerprint of the rows) of each asset kind's town in the ledger's
    order (kind, town, number). The fingerprint covers what the CSV shows."""
    groups = con.execute(
        f"""SELECT kind, town_code, {ROWS_FINGERPRINT_SQL} FROM {EXPORT_TABLE}
            GROUP BY kind, town_code ORDER BY kind, town_code"""
    ).fetchall()
    shown = [writer_version(), list(LEDGER_COLUMNS.values())]
    return [(f"{kind}_{stage_inputs.fingerprint(town)[:16]}.csv", _group_test(kind, town),
             stage_inputs.fingerprint(*shown, n, hash_sum, hash_xor)) for kind, town, n, hash_sum, hash_xor
            in groups]  # fmt: skip


def _in_order(con: duckdb.DuckDBPyConnection) -> str:
    """'' when DuckDB keeps the insertion order (its default): EXPORT_TABLE stores each group in order, a scan
    reads it so; else an ORDER BY."""
    in_order = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    return "" if in_order else " ORDER BY hazard_no"


def _group_test(kind: str, town: str | None) -> str:
    """SQL true for the rows of EXPORT_TABLE of this kind and town (none: the hazards of no town)."""
    in_town = "town_code IS NULL" if town is None else f"town_code = {sql_text(town)}"
    return f"kind = {sql_text(kind)} AND {in_town}"


def write_ledger_parquet(con: duckdb.DuckDBPyConnection, path: Path, cache: Path) -> int:
    """Every hazard as Parquet for analysts: the CSV's columns and Chinese headers, typed (dates, numbers)
    and as recorded (not neutralised: Parquet is read by programs, which run no formulas), in the ledger's order.

    Assembled like the CSV from one fragment per asset kind and town kept in `cache` (pipeline/formats/
    parquet_fragments.py): only the fragments whose rows changed are encoded again, the file is their row
    groups' bytes under one footer. Returns the fragments written."""
    columns = _displayed_columns(con, neutralised=False)
    fragments = [Fragment(rel.replace(".csv", ".parquet"), f"SELECT {columns} FROM {EXPORT_TABLE} WHERE {where}"
                          f"{_in_order(con)}", fingerprint) for rel, where, fingerprint in _csv_fragments(con)]  # fmt: skip
    if fragments:
        return assemble_parquet(con, path, cache, fragments, PARQUET_OPTIONS)
    with atomic_path(path) as tmp:  # no hazard: the columns alone
        con.execute(f"COPY (SELECT {columns} FROM {EXPORT_TABLE}) TO {sql_text(str(tmp))} ({PARQUET_OPTIONS})")
    return 0


# --- one workbook per town and per responsible unit ---------------------------------------------------


def ledger_parts(con: duckdb.DuckDBPyConnection, as_of_text: str, max_rows: int) -> list[Part]:
    """The town and unit workbooks with hazards, named from the reference tables (a town's name, a unit's
    code), each with a fingerprint of what it shows: its displayed rows (overdue days included, so as of the
    date), their levels, the as-of label, the sheet size and the layout."""
    town_names, unit_names = towns(), {c: u["unit_name"] for c, u in units().items()}
    parts = []
    for by, key_column in PART_KEYS.items():
        groups = con.execute(
            f"SELECT {key_column}, {ROWS_FINGERPRINT_SQL} FROM {EXPORT_TABLE} GROUP BY ALL ORDER BY 1"
        ).fetchall()
        for key, n, hash_sum, hash_xor in groups:
            if not key:
                label = name = UNKNOWN_PARTS[by]
            elif by == "town":
                label = name = town_names[key]
            else:
                label, name = f"{key}（{unit_names[key]}）", key
            if NOT_IN_FILE_NAMES.search(name):
                raise ValueError(f"参考表中的名称不能作文件名：{name!r}")
            shown = [
                writer_version(),
                list(SHEET_COLUMNS.values()),
                max_rows,
                as_of_text,
                label,
                n,
                hash_sum,
                hash_xor,
            ]
            fingerprint = stage_inputs.fingerprint(*shown)
            parts.append(Part(by, key, label, f"{PART_FOLDERS[by]}/隐患台账_{name}.xlsx", int(n), fingerprint))
    return parts


def write_parts(
    con: duckdb.DuckDBPyConnection,
    parts: list[Part],
    parts_dir: Path,
    as_of_text: str,
    max_rows: int,
    render_all: bool = False,
) -> tuple[list[Path], list[Path], int]:
    """Writes the town and unit workbooks whose fingerprint changed (or whose file is missing or was changed
    by hand), removes those of towns and units that no longer have hazards, and records the fingerprints.
    Their hazards' sheet rows are rendered once (a hazard is in its town's and its unit's workbook), every
    hazard's with `render_all` (the district workbook shows them too). Returns (written, skipped, rows
    rendered)."""
    manifest = Manifest.load(parts_dir / MANIFEST_NAME)
    stale = [p for p in parts if not manifest.is_current(p.rel, p.fingerprint)]
    rendered = render_rows(con, "true" if render_all else _parts_filter(stale))
    for part in stale:
        write_part_workbook(con, part, parts_dir / part.rel, as_of_text, max_rows)
        manifest.record(part.rel, part.fingerprint)
    made_here = {rel for rel in manifest.entries if rel.split("/")[0] in PART_FOLDERS.values()}
    for rel in made_here - {p.rel for p in parts}:  # only the town and unit files this export wrote before
        (parts_dir / rel).unlink(missing_ok=True)
        manifest.forget(rel)
    manifest.save()
    return [parts_dir / p.rel for p in stale], [parts_dir / p.rel for p in parts if p not in stale], rendered


def _parts_filter(parts: list[Part]) -> str:
    """SQL true for the rows of EXPORT_TABLE in any of `parts` (their keys are codes from the reference
    tables or '', quoted here)."""
    keys = {by: [p.key for p in parts if p.by == by] for by in PART_KEYS}
    tests = [f"{PART_KEYS[by]} IN ({', '.join(sql_text(k) for k in ks)})" for by, ks in keys.items() if ks]
    return " OR ".join(tests) or "false"


def render_rows(con: duckdb.DuckDBPyConnection, where: str) -> int:
    """ROWS_XML_TABLE: the sheet row (<row> element in SHEET_COLUMNS' order, the level's fill on the coloured
    columns, every text neutralised) of each hazard of EXPORT_TABLE that matches `where`, with its town, number, kind,
    file keys and whether it is closed (the sheets list those after the open ones). Returns the rows rendered."""
    columns = f"SELECT risk_level, {', '.join(SHEET_COLUMNS)} FROM {EXPORT_TABLE}"
    coloured = [c for c, h in SHEET_COLUMNS.items() if h in COLOURED_COLUMNS]
    row = row_xml_sql(con, columns, level_column="risk_level", coloured=coloured)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {ROWS_XML_TABLE} AS
                    SELECT town_code, hazard_no, kind, town_part, unit_part, status = '{CLOSED_STATUS}' AS closed,
                           {row} AS xml
                    FROM {EXPORT_TABLE} WHERE {where}""")
    return con.execute(f"SELECT count(*) FROM {ROWS_XML_TABLE}").fetchall()[0][0]


def write_part_workbook(con: duckdb.DuckDBPyConnection, part: Part, path: Path, as_of_text: str, max_rows: int) -> Path:
    """One town's or unit's hazards: a sheet per asset kind (split at `max_rows`), then 说明."""
    with streamed_workbook(path, f"利通区地震风险隐患台账 {part.label}（{as_of_text}）") as wb:
        write_kind_sheets(wb, con, f"{PART_KEYS[part.by]} = ?", [part.key], max_rows)
        scope = PART_FOLDERS[part.by]
        write_notes_sheet(wb, as_of_text, [["范围", f"{scope}：{part.label}"], ["隐患数", part.hazards]])
    return path


def write_kind_sheets(
    wb: StreamedWorkbook, con: duckdb.DuckDBPyConnection, where: str, params: list, max_rows: int
) -> None:
    """One sheet per asset kind of the rows of ROWS_XML_TABLE that match `where`, the open hazards first and
    the closed ones after them (each in the ledger's order), streamed a chunk at a time. A kind with more rows than a sheet holds (`max_rows` with the header:
    Excel's is 1,048,576) is split into 房屋建筑(1), 房屋建筑(2) …"""
    counts = dict(
        con.execute(f"SELECT kind, count(*) FROM {ROWS_XML_TABLE} WHERE {where} GROUP BY kind", params).fetchall()
    )
    per_sheet = max_rows - 1
    for kind, kind_zh in KIND_ZH.items():
        n = counts.get(kind, 0)
        n_sheets = max(1, -(-n // per_sheet))
        for i in range(n_sheets):
            rows = fetch_xml(con, f"""SELECT xml FROM {ROWS_XML_TABLE} WHERE {where} AND kind = ?
                                      ORDER BY closed, town_code, hazard_no LIMIT {per_sheet} OFFSET {i * per_sheet}""",
                             [*params, kind])  # fmt: skip
            title = kind_zh if n_sheets == 1 else f"{kind_zh}({i + 1})"
            wb.add_sheet(title, list(SHEET_COLUMNS.values()), rows, n_rows=min(per_sheet, n - i * per_sheet))


# --- the district workbook ----------------------------------------------------------------------------


def write_district_workbook(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    by_town: pd.DataFrame,
    by_unit: pd.DataFrame,
    catalogue: list[tuple[Part, str]],
    as_of_text: str,
    max_rows: int,
    with_kinds: bool,
) -> Path:
    """汇总 (per town, 整改率 a percent cell), 责任单位汇总, 目录 (a row and a working link per town and unit
    workbook, `catalogue` pairs each with its path relative to this workbook), the per-kind sheets when
    `with_kinds` (a small ledger), then 说明."""
    with streamed_workbook(path, f"利通区地震风险隐患台账（{as_of_text}）") as wb:
        for title, df in (("汇总", by_town), ("责任单位汇总", by_unit)):
            formats = {i: PERCENT_FORMAT for i, c in enumerate(df.columns) if c == RATE_COLUMN}
            write_sheet(wb, title, list(df.columns), df.astype(object).where(df.notna(), None).values.tolist(),
                        formats=formats)  # fmt: skip
        entries = [[PART_FOLDERS[p.by], p.key or None, p.label, p.hazards, rel] for p, rel in catalogue]
        write_sheet(wb, "目录", ["类别", "代码", "名称", "隐患数", "文件"], entries, links={4})
        if with_kinds:
            write_kind_sheets(wb, con, "true", [], max_rows)
        details = "本工作簿含各类别明细" if with_kinds else f"隐患超过{SMALL_LEDGER_ROWS:,}项，本工作簿不含明细"
        write_notes_sheet(wb, as_of_text, [["明细", f"{details}；各乡镇、各责任单位的明细见“目录”所列文件，"
                                                   "全区明细见同目录的隐患台账.csv和隐患台账.parquet"]])  # fmt: skip
    return path


def write_notes_sheet(wb, as_of_text: str, more: list[list] | None = None) -> None:
    """说明: the date the ledger stands at (样例数据，截至… on the sample), how overdue is counted, the source."""
    rows = [["台账日期", as_of_text], ["逾期计算", f"按{as_of_text}计"], ["逾期类型", OVERDUE_KINDS_ZH],
            ["排列", SHEET_ORDER_ZH],
            ["隐患等级与风险等级", GRADE_AND_COLOUR_ZH],
            ["数据来源", "各部门、乡镇、企业报送的地震风险隐患调查表及整改反馈"], *(more or [])]  # fmt: skip
    write_sheet(wb, "说明", ["项目", "内容"], rows)


def _summary_display(df: pd.DataFrame) -> pd.DataFrame:
    """A summary as the CSV shows it: 整改率 as a percentage (12.5%)."""
    out = df.astype(object).where(df.notna(), None)
    if RATE_COLUMN in out.columns:
        out[RATE_COLUMN] = [None if v is None else f"{v:{RATE_FORMAT}}" for v in df[RATE_COLUMN]]
    return out


def write_summary_csv(df: pd.DataFrame, path: Path) -> Path:
    """A summary per town or unit as an Excel-safe CSV, 整改率 as a percentage."""
    return write_safe_csv(_summary_display(df), path)


# --- 督办建议清单 (issue 26 §3) -----------------------------------------------------------------------------


def proposals(
    con: duckdb.DuckDBPyConnection, as_of: dt.date, table: str = "hazards", ledger: str | None = None
) -> pd.DataFrame:
    """The 督办建议清单 as of `as_of` (pipeline/ledger/duban.py's rules): one row per proposed hazard, every ledger
    column plus `proposed_by` and `basis` (the rules that propose it). `ledger`: the SELECT of the ledger as of
    that date when it is at hand (the export's table), else ledger_sql over `table`."""
    register_reference(con)
    return con.execute(proposals_sql(ledger or ledger_sql(table)), {"as_of": as_of}).df()


def _export_proposals(con: duckdb.DuckDBPyConnection, as_of: dt.date, table: str) -> int:
    """PROPOSALS_TABLE: the proposals' shown columns and level in the list's order, read from EXPORT_TABLE
    (the ledger as of the date, made once) instead of computing the ledger again, and only those columns
    (every ledger column of 30,000 proposals made into a DataFrame took 2 s at 1 M buildings). Returns its
    rows. From the ledger query when a rule of reference/duban.yaml names a column the table does
    not keep (its rules are data: a predicate over any ledger column)."""
    register_reference(con)
    columns = ", ".join([*PROPOSAL_COLUMNS, "risk_level"])

    def make(ledger: str) -> None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {PROPOSALS_TABLE} AS "
                    f"SELECT {columns} FROM ({proposals_sql(ledger)}) {PROPOSALS_ORDER}", {"as_of": as_of})  # fmt: skip

    try:
        make(f"SELECT * FROM {EXPORT_TABLE}")
    except duckdb.BinderException:
        make(ledger_sql(table))
    return con.execute(f"SELECT count(*) FROM {PROPOSALS_TABLE}").fetchall()[0][0]


def _proposals_digest(con: duckdb.DuckDBPyConnection) -> list:
    """What PROPOSALS_TABLE shows, order-free (its order follows from its values: the number is unique): the
    rows' count and two sums of their hashes, as the town and unit files are fingerprinted."""
    columns = ", ".join([*PROPOSAL_COLUMNS, "risk_level"])
    return list(con.execute(f"SELECT count(*), sum(h::HUGEINT)::VARCHAR, bit_xor(h)::VARCHAR "
                            f"FROM (SELECT hash({columns}) AS h FROM {PROPOSALS_TABLE})").fetchall()[0])  # fmt: skip


def write_proposals(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    out_dir: Path,
    suffix: str,
    table: str,
    as_of_text: str,
    manifest_path: Path | None = None,
) -> tuple[int, list[Path], bool]:
    """督办建议清单{suffix}.csv and .xlsx beside 隐患台账: the hazards reference/duban.yaml's rules propose for
    挂牌督办 as of `as_of` (read from EXPORT_TABLE), with the rules that propose each (a proposal for the
    government, not a 督办). Both through the neutraliser, written under a temporary name and renamed. With a
    `manifest_path` (the export's manifest) they are written only when what they show changed (the rows as
    shown, the rules, the date, the code) or a file is missing or was changed by hand: at 1 M buildings the
    list holds 30,000 hazards. Returns (hazards, files, whether written now)."""
    proposed = _export_proposals(con, as_of, table)
    paths = [out_dir / f"{PROPOSALS_NAME}{suffix}{ext}" for ext in (".csv", ".xlsx")]
    rules = [[f"规则{r.id}", f"{r.title_zh}：{r.basis_zh}"] for r in proposal_rules()]
    manifest = Manifest.load(manifest_path) if manifest_path else None
    rels = [Path(os.path.relpath(p, manifest_path.parent)).as_posix() for p in paths] if manifest_path else []
    shown_as = [writer_version(), as_of_text, rules, list(PROPOSAL_COLUMNS.values()), _proposals_digest(con)]
    fingerprint = stage_inputs.fingerprint(*shown_as)
    if manifest and all(manifest.is_current(rel, fingerprint) for rel in rels):
        return proposed, paths, False
    df = con.execute(f"SELECT * FROM {PROPOSALS_TABLE} {PROPOSALS_ORDER}").df()
    shown = df[list(PROPOSAL_COLUMNS)].astype(object).where(df[list(PROPOSAL_COLUMNS)].notna(), None)
    shown["overdue_days"] = [None if v is None else int(v) for v in shown["overdue_days"]]
    for column in ("found_date", "deadline", "extend_to"):
        shown[column] = [None if v is None else pd.Timestamp(v).date() for v in shown[column]]
    shown = shown.rename(columns=PROPOSAL_COLUMNS)
    write_safe_csv(shown, paths[0])
    with streamed_workbook(paths[1], f"利通区重大隐患{PROPOSALS_NAME}（{as_of_text}）") as wb:
        _proposals_sheet(wb, con, list(shown.columns))
        write_notes_sheet(wb, as_of_text, [["清单性质", "台账按规则提出的挂牌督办建议，供区人民政府（安委会办公室）决定；"
                                                       "不是督办。督办以区人民政府下达的督办通知书为准"],
                                           ["范围", "未销号、尚未挂牌督办的隐患"], *rules])  # fmt: skip
    if manifest:
        for rel in rels:
            manifest.record(rel, fingerprint)
        manifest.save()
    return proposed, paths, True


def _proposals_sheet(wb: StreamedWorkbook, con: duckdb.DuckDBPyConnection, header: list[str]) -> None:
    """The list's sheet, its rows rendered by DuckDB from PROPOSALS_TABLE like the ledger's (the same cells
    as write_sheet gives from Python values, a tenth of the time)."""
    coloured = [c for c, h in PROPOSAL_COLUMNS.items() if h in COLOURED_COLUMNS]
    query = f"SELECT * FROM {PROPOSALS_TABLE}"
    row = row_xml_sql(con, query, level_column="risk_level", coloured=coloured)
    n = con.execute(f"SELECT count(*) FROM {PROPOSALS_TABLE}").fetchall()[0][0]
    rows = fetch_xml(con, f"SELECT {row} FROM {PROPOSALS_TABLE} {PROPOSALS_ORDER}")
    wb.add_sheet(PROPOSALS_NAME, header, rows, n_rows=n)


# --- sheets of Python values ---------------------------------------------------------------------------


def write_sheet(
    wb: StreamedWorkbook,
    title: str,
    header: list[str],
    rows: Sequence[Sequence],
    levels: Sequence[str | None] | None = None,
    formats: dict[int, str] | None = None,
    links: set[int] | None = None,
) -> None:
    """One sheet of `rows` (a summary, 目录, notes, a report): each row's level in `levels` colours the
    coloured columns, `formats` (column index -> number format), the text of the `links` columns a link
    to that relative path."""
    coloured = [i for i, h in enumerate(header) if h in COLOURED_COLUMNS]
    xml, hyperlinks = python_rows(rows, levels, coloured, formats, links or ())
    wb.add_sheet(title, header, xml, len(rows), hyperlinks)
