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

Within a class the lowest S comes first (then more occupants); the order (序号) is each town's own, so a
town's list changes only with its own buildings. The screening score is the priority; it opens no hazard
(issue 10). Kept as the DuckDB table `appraisal_worklist` (issue 30: only the buildings scored again since
the last update are taken out and put back, from the log `worklist_rescored` the scoring writes) and, for
people, output/worklists/乡镇/待鉴定清单_<town>.xlsx per town (rows rendered by DuckDB, sheets split at
Excel's row limit, only the towns whose rows changed written again), 待鉴定清单.csv (every town's rows, by
DuckDB COPY from fragments kept per town) and 待鉴定清单.xlsx (the towns' counts and files; the whole list
too when it is small). Every text cell through the formula neutraliser, every file written atomically.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.formats.csv_fragments import MANIFEST_NAME as FRAGMENTS_MANIFEST
from pipeline.formats.csv_fragments import ROWS_FINGERPRINT_SQL, Fragment, assemble_csv
from pipeline.formats.excel_safe import install_excel_safe, sql_text
from pipeline.formats.xlsx_stream import fetch_xml, python_rows, row_xml_sql, streamed_workbook
from pipeline.platform import stage_inputs
from pipeline.platform.manifest import Manifest
from pipeline.platform.paths import PROJECT_ROOT
from pipeline.registries.templates import towns, units

WORKLIST_TABLE = "appraisal_worklist"
WORKLIST_LOG = "worklist_rescored"  # buildings scored since the table was last brought up to date
REF_TOWNS, REF_UNITS = "worklist_ref_towns", "worklist_ref_units"
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

# What a row of the list is, for one building of v_buildings (or of `{source}`, a cut of it)
ROWS_SQL = f"""
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
    FROM {{source}}
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
    worklist_class,
    worklist_class = 1 AND NOT is_key_fortification AS crowded_only,
    CASE worklist_class WHEN 1 THEN '一类：依法应当鉴定（人员密集场所）' ELSE '二类：初步筛查得分低' END AS class_zh,
    building_id, name, town_code, t.town_name, village, address, "use", structure_type, fema_type, year_built,
    floors_above, seismic_design, design_intensity, coalesce(appraisal_grade, '未鉴定') AS appraisal_grade,
    screening_score,
    CASE worklist_class
        WHEN 1 THEN "use" || '（' || CASE WHEN is_class_b THEN '重点设防类'
                                                  WHEN is_key_fortification THEN '地震应急重点对象'
                                                  ELSE '人员密集场所' END
                    || '），' || shortfall || '，尚未进行抗震性能鉴定'
        ELSE '初步筛查得分S=' || printf('%.1f', screening_score) || '，低于' || printf('%.1f', {S_CUTOFF})
             || '（' || structure_type || '，按' || fema_type || '类评分），尚未进行抗震性能鉴定'
    END AS reason_zh,
    CASE worklist_class WHEN 1 THEN '{LEGAL_BASIS}' ELSE '{LOW_S_BASIS}' END AS legal_basis_zh,
    responsible_unit, u.unit_name, owner, occupants, survey_round, survey_date,
    CASE WHEN t.town_name IS NOT NULL THEN town_code ELSE '' END AS town_part
FROM listed
LEFT JOIN {REF_TOWNS} t USING (town_code)
LEFT JOIN {REF_UNITS} u ON u.unit_code = listed.responsible_unit
WHERE worklist_class IS NOT NULL
"""
ORDER_SQL = "worklist_class, crowded_only, screening_score NULLS LAST, occupants DESC NULLS LAST, building_id"

COLUMNS_ZH = {
    "priority": "序号", "class_zh": "清单类别", "building_id": "房屋编码", "name": "建筑名称", "town_name": "乡镇",
    "village": "村(社区)", "address": "详细地址", "use": "房屋用途", "structure_type": "结构类型",
    "year_built": "建成年份", "floors_above": "地上层数", "seismic_design": "是否抗震设防",
    "appraisal_grade": "房屋安全鉴定等级", "screening_score": "初步筛查得分S（越低越优先）", "reason_zh": "列入原因",
    "legal_basis_zh": "依据", "unit_name": "责任单位", "owner": "产权人/使用单位", "occupants": "常住(使用)人数",
    "survey_date": "调查日期",
}  # fmt: skip


SHOWN_HASH = "hash(priority, " + ", ".join(f'"{c}"' for c in COLUMNS_ZH) + ")"  # what a row shows
TOWN_FOLDER = "乡镇"
UNKNOWN_TOWN = "乡镇不明"
EXCEL_MAX_ROWS = 1_048_576  # rows of an Excel sheet, the header included: a bigger town takes several sheets
SMALL_WORKLIST_ROWS = 100_000  # up to this many rows the district workbook holds the whole list too
MANIFEST_NAME = "worklist_manifest.json"
SCOPE_AS_LIST = 100_000  # rescored buildings cut from the view by a list of ids (measured at 1 M: 100 k, 1.4 s)
WRITER_FILES = ("pipeline/scoring/worklist.py", "pipeline/formats/xlsx_stream.py", "pipeline/formats/excel_safe.py",
                "pipeline/formats/csv_fragments.py")  # fmt: skip
ORDER_NOTE = ("序号为乡镇内的鉴定顺序：先列依法应当鉴定的（学校、幼儿园、医院、养老机构在前，其他人员密集场所在后），"
              "再列初步筛查得分低的；同类按得分S从低到高、使用人数从多到少排列。全区CSV按乡镇依次排列")  # fmt: skip


@dataclass
class WorklistResult:
    rows: int
    legal: int
    low_score: int
    files: list[Path]  # 待鉴定清单.xlsx and .csv
    written: list[Path] = field(default_factory=list)  # town workbooks written now
    skipped: list[Path] = field(default_factory=list)  # … and those left as they were
    table_rows_written: int = 0  # rows of appraisal_worklist inserted now
    file_rows_written: int = 0  # rows written into town workbooks and CSV fragments now


@dataclass(frozen=True)
class TownPart:
    key: str  # town code; '' for the buildings of a town not in the reference table
    label: str  # 金积镇
    rows: int
    legal: int
    fingerprint: str

    @property
    def rel(self) -> str:
        return f"{TOWN_FOLDER}/{WORKLIST_NAME}_{self.label}.xlsx"


@functools.cache
def writer_version() -> str:
    """The code that writes the files and DuckDB's version (how COPY writes numbers and dates)."""
    return stage_inputs.fingerprint(stage_inputs.files_version(*(PROJECT_ROOT / f for f in WRITER_FILES)),
                                    duckdb.__version__)  # fmt: skip


def _register_reference(con: duckdb.DuckDBPyConnection) -> None:
    con.register(REF_TOWNS, pd.DataFrame({"town_code": list(towns()), "town_name": list(towns().values())}))
    con.register(REF_UNITS, pd.DataFrame({"unit_code": list(units()),
                                          "unit_name": [u["unit_name"] for u in units().values()]}))  # fmt: skip


def _ranked(source: str) -> str:
    """The rows of the table `source` (ROWS_SQL's columns, one per building) with their place in their town and
    the hash of what they show. The places are numbered over the rows' sort keys alone and joined back: a
    window over the whole rows sorted every row with its reason and legal basis (about 1 KB each: 3 GB at 5 M
    buildings, past DuckDB's memory limit)."""
    return (f"SELECT p.priority, s.*, {SHOWN_HASH} AS row_hash FROM {source} s JOIN (SELECT building_id, "
            f"row_number() OVER (PARTITION BY town_part ORDER BY {ORDER_SQL}) AS priority FROM {source}) p "
            "USING (building_id)")  # fmt: skip


def has_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary",
                            [WORKLIST_TABLE]).fetchone()[0])  # fmt: skip


def update_worklist(con: duckdb.DuckDBPyConnection, whole: bool) -> int:
    """Bring the table `appraisal_worklist` up to date (v_buildings must be installed) and empty the log of
    rescored buildings (pipeline/scoring/engine.py RESCORED_LOGS). `whole`, or the log saying a whole kind
    was scored, or no table yet: rebuilt from every building. Otherwise only the buildings scored again
    since: their rows are taken out and put back as they are now, and the towns they were or are in are
    ranked again (a town's 序号 is its own, so no other town changes). Returns the rows inserted."""
    _register_reference(con)
    ensure_log(con)
    whole = whole or not has_table(con) or bool(
        con.execute(f"SELECT count(*) FROM {WORKLIST_LOG} WHERE asset_id IS NULL AND kind = 'buildings'").fetchone()[0]
    )  # fmt: skip
    con.execute("BEGIN TRANSACTION")
    try:
        if whole:  # the rows once, then numbered (not sorted whole: each town's file is read in its order)
            con.execute(f"CREATE OR REPLACE TEMP TABLE __wl_rows AS {ROWS_SQL.format(source='v_buildings')}")
            con.execute(f"CREATE OR REPLACE TABLE {WORKLIST_TABLE} AS {_ranked('__wl_rows')}")
            con.execute("DROP TABLE __wl_rows")
            inserted = con.execute(f"SELECT count(*) FROM {WORKLIST_TABLE}").fetchone()[0]
        else:
            inserted = _update_rescored(con)
        con.execute(f"DELETE FROM {WORKLIST_LOG}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(inserted)


def _update_rescored(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(f"""CREATE OR REPLACE TEMP TABLE __wl_scope AS SELECT DISTINCT asset_id AS building_id
                    FROM {WORKLIST_LOG} WHERE kind = 'buildings'""")  # fmt: skip
    if not con.execute("SELECT count(*) FROM __wl_scope").fetchone()[0]:
        return 0
    _cut_view(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE __wl_new AS {ROWS_SQL.format(source='__wl_buildings')}")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE __wl_towns AS
                    SELECT town_part FROM {WORKLIST_TABLE} WHERE building_id IN (SELECT building_id FROM __wl_scope)
                    UNION SELECT town_part FROM __wl_new""")  # fmt: skip
    con.execute(f"""CREATE OR REPLACE TEMP TABLE __wl_rows AS
                    SELECT * EXCLUDE (priority, row_hash) FROM {WORKLIST_TABLE}
                    WHERE town_part IN (SELECT town_part FROM __wl_towns)
                      AND building_id NOT IN (SELECT building_id FROM __wl_scope)
                    UNION ALL BY NAME SELECT * FROM __wl_new""")  # fmt: skip
    con.execute(f"DELETE FROM {WORKLIST_TABLE} WHERE town_part IN (SELECT town_part FROM __wl_towns)")
    con.execute(f"INSERT INTO {WORKLIST_TABLE} BY NAME {_ranked('__wl_rows')}")
    inserted = con.execute("SELECT count(*) FROM __wl_rows").fetchone()[0]
    for t in ("__wl_scope", "__wl_buildings", "__wl_new", "__wl_towns", "__wl_rows"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return int(inserted)


def _cut_view(con: duckdb.DuckDBPyConnection) -> None:
    """__wl_buildings: the rows of v_buildings of the buildings in __wl_scope. The view picks each building's
    latest survey with a window over every staged row; DuckDB pushes a filter below that window only when it
    is a plain expression of the building's id (a list of ids, not a join with a table): 10 k buildings of a
    1 M district are cut in 0.2 s instead of the whole view's 2 s. The list is searched row by row, so past
    SCOPE_AS_LIST ids the view computed whole and joined is the faster."""
    ids = [r[0] for r in con.execute("SELECT building_id FROM __wl_scope").fetchall()]
    if len(ids) <= SCOPE_AS_LIST:
        con.execute("CREATE OR REPLACE TEMP TABLE __wl_buildings AS SELECT * FROM v_buildings "
                    "WHERE list_contains(?, building_id)", [ids])  # fmt: skip
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE __wl_buildings AS SELECT * FROM v_buildings "
                    "WHERE building_id IN (SELECT building_id FROM __wl_scope)")  # fmt: skip


def ensure_log(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {WORKLIST_LOG} (kind VARCHAR, asset_id VARCHAR)")


def town_parts(con: duckdb.DuckDBPyConnection, max_rows: int) -> list[TownPart]:
    """The towns with buildings on the list, each with a fingerprint of what its file shows."""
    names = towns()
    groups = con.execute(
        f"""SELECT town_part, count(*) FILTER (WHERE worklist_class = 1), {ROWS_FINGERPRINT_SQL}
            FROM {WORKLIST_TABLE} GROUP BY town_part ORDER BY town_part = '', town_part"""
    ).fetchall()
    parts = []
    for key, legal, n, hash_sum, hash_xor in groups:
        label = names[key] if key else UNKNOWN_TOWN
        fingerprint = stage_inputs.fingerprint(writer_version(), list(COLUMNS_ZH.values()), max_rows, label, n,
                                               hash_sum, hash_xor)  # fmt: skip
        parts.append(TownPart(key, label, int(n), int(legal), fingerprint))
    return parts


def write_worklist_files(
    con: duckdb.DuckDBPyConnection, out_dir: Path, cache_dir: Path | None = None, max_rows: int = EXCEL_MAX_ROWS
) -> WorklistResult:
    """待鉴定清单.csv (every town's rows, town after town, by DuckDB COPY from fragments kept in `cache_dir`),
    one workbook per town under 乡镇/ (sheets split at `max_rows`), and 待鉴定清单.xlsx (the towns' counts
    with a link to each file; the whole list too when it is small). Only the towns whose rows changed are
    written again (fingerprints in worklist_manifest.json and the fragments' manifest)."""
    out_dir = Path(out_dir)
    parts = town_parts(con, max_rows)
    manifest = Manifest.load(out_dir / MANIFEST_NAME)
    stale = [p for p in parts if not manifest.is_current(p.rel, p.fingerprint)]
    row = row_xml_sql(con, f"SELECT {_columns()} FROM {WORKLIST_TABLE}")
    for part in stale:
        _write_town_workbook(con, part, out_dir / part.rel, row, max_rows)
        manifest.record(part.rel, part.fingerprint)
    for rel in set(manifest.entries) - {p.rel for p in parts} - {f"{WORKLIST_NAME}.xlsx"}:
        (out_dir / rel).unlink(missing_ok=True)
        manifest.forget(rel)
    csv_path, xlsx_path = out_dir / f"{WORKLIST_NAME}.csv", out_dir / f"{WORKLIST_NAME}.xlsx"
    with contextlib.ExitStack() as stack:
        if cache_dir is None:
            cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="worklist_csv_")))
        fragments_written = _write_csv(con, csv_path, Path(cache_dir), parts)
    total = sum(p.rows for p in parts)
    district = stage_inputs.fingerprint(*(p.fingerprint for p in parts), total <= SMALL_WORKLIST_ROWS)
    if not manifest.is_current(xlsx_path.name, district):
        _write_district_workbook(con, xlsx_path, parts, row, max_rows, with_rows=total <= SMALL_WORKLIST_ROWS)
        manifest.record(xlsx_path.name, district)
    manifest.save()
    legal = sum(p.legal for p in parts)
    return WorklistResult(total, legal, total - legal, [xlsx_path, csv_path],
                          [out_dir / p.rel for p in stale], [out_dir / p.rel for p in parts if p not in stale], 0,
                          sum(p.rows for p in stale) + fragments_written)  # fmt: skip


def write_worklist(
    con: duckdb.DuckDBPyConnection, out_dir: Path, cache_dir: Path | None = None, whole: bool = True
) -> WorklistResult:
    """Bring the table up to date (rebuilt whole unless `whole` is False: then the rescored buildings only)
    and write the files that changed under `out_dir`."""
    inserted = update_worklist(con, whole)
    result = write_worklist_files(con, out_dir, cache_dir)
    result.table_rows_written = inserted
    return result


def _columns(con: duckdb.DuckDBPyConnection | None = None) -> str:
    """The shown columns in COLUMNS_ZH's order: English names (rendered into sheet rows), or with
    `con` (to read the types) under their Chinese names, every text through excel_safe_text (the CSV)."""
    if con is None:
        return ", ".join(f'"{c}"' for c in COLUMNS_ZH)
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {WORKLIST_TABLE})").fetchall())
    text_columns = {c for c, t in types.items() if t == "VARCHAR"}
    return ", ".join(f'{f"excel_safe_text({q})" if c in text_columns else q} AS "{h}"'
                     for c, h in COLUMNS_ZH.items() for q in [f'"{c}"'])  # fmt: skip


def _write_csv(con: duckdb.DuckDBPyConnection, path: Path, cache: Path, parts: list[TownPart]) -> int:
    """The CSV from one fragment per town; returns the rows of the fragments written now."""
    install_excel_safe(con)
    columns = _columns(con)
    fragments = [Fragment(f"{stage_inputs.fingerprint(p.key)[:16]}.csv",
                          f"SELECT {columns} FROM {WORKLIST_TABLE} WHERE town_part = {sql_text(p.key)} ORDER BY priority",
                          stage_inputs.fingerprint(p.fingerprint, "csv")) for p in parts]  # fmt: skip
    before = Manifest.load(cache / FRAGMENTS_MANIFEST)
    assemble_csv(con, path, cache, f"SELECT {columns} FROM {WORKLIST_TABLE} WHERE false", fragments)
    return sum(p.rows for p, f in zip(parts, fragments, strict=True) if not before.is_current(f.rel, f.fingerprint))


def _write_town_workbook(con: duckdb.DuckDBPyConnection, part: TownPart, path: Path, row: str, max_rows: int) -> None:
    with streamed_workbook(path, f"利通区{WORKLIST_NAME} {part.label}") as wb:
        _list_sheets(wb, con, "town_part = ?", [part.key], part.rows, row, max_rows)
        _notes(wb, [["范围", f"乡镇：{part.label}"], ["房屋数", part.rows]])


def _list_sheets(wb, con, where: str, params: list, n: int, row: str, max_rows: int) -> None:
    """The list's rows that match `where` in the towns' order and each town's 序号, a sheet of at most
    `max_rows` (the header included) at a time: 待鉴定清单, or 待鉴定清单(1), 待鉴定清单(2) …"""
    per_sheet = max_rows - 1
    n_sheets = max(1, -(-n // per_sheet))
    for i in range(n_sheets):
        rows = fetch_xml(con, f"""SELECT {row} FROM {WORKLIST_TABLE} WHERE {where} ORDER BY town_part = '',
                                  town_part, priority LIMIT {per_sheet} OFFSET {i * per_sheet}""", params)  # fmt: skip
        title = WORKLIST_NAME if n_sheets == 1 else f"{WORKLIST_NAME}({i + 1})"
        wb.add_sheet(title, list(COLUMNS_ZH.values()), rows, n_rows=min(per_sheet, n - i * per_sheet))


def _write_district_workbook(
    con: duckdb.DuckDBPyConnection, path: Path, parts: list[TownPart], row: str, max_rows: int, with_rows: bool
) -> None:
    with streamed_workbook(path, f"利通区{WORKLIST_NAME}") as wb:
        if with_rows:
            _list_sheets(wb, con, "true", [], sum(p.rows for p in parts), row, max_rows)
        entries = [[p.label, p.legal, p.rows - p.legal, p.rows, p.rel] for p in parts]
        rows, links = python_rows(entries, links={4}, first_row=2)
        wb.add_sheet(
            "乡镇汇总",
            ["乡镇", "一类：依法应当鉴定", "二类：初步筛查得分低", "合计", "文件"],
            rows,
            len(entries),
            links,
        )
        details = "本工作簿含全区清单" if with_rows else f"清单超过{SMALL_WORKLIST_ROWS:,}栋，本工作簿不含明细"
        _notes(wb, [["明细", f"{details}；各乡镇的清单见“乡镇汇总”所列文件，全区清单见同目录的{WORKLIST_NAME}.csv"]])


def _notes(wb, more: list[list]) -> None:
    rows = [["清单", f"{WORKLIST_NAME}：需进行抗震性能鉴定的房屋建筑"], ["排列", ORDER_NOTE],
            ["一类依据", LEGAL_BASIS], ["二类依据", LOW_S_BASIS], *more]  # fmt: skip
    xml, _ = python_rows(rows)
    wb.add_sheet("说明", ["项目", "内容"], xml, len(rows))
