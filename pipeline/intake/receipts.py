"""Receipts (回执): one XLSX per uploaded file and kind of records, for the department that sent it.

`output/receipts/<unit>/<kind>/<round>/<file name>_回执.xlsx` (the full file name, extension
included, so `a.csv` and `a.xlsx`, or one name in two rounds, never share a receipt) says how many
rows were accepted and refused, lists every refused row with every reason (row, column, value,
what was expected) and every hint (提示: accepted, but worth a look). A file that could not be
read gets a receipt that says why and which columns it did find; when an older version of it is
still in use, the receipt says which, with its accepted rows.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import duckdb

from pipeline.formats.excel_safe import xlsx_cell
from pipeline.intake.headers import MAPPING_FILE, quoted, renamed_by_mapping
from pipeline.platform.atomic import atomic_path
from pipeline.platform.clock import beijing_now
from pipeline.platform.failures import rollback
from pipeline.platform.store import has_table, quote
from pipeline.registries.templates import Template, load_template
from pipeline.registries.units import unit_label, units

# How the ledger's event begins when a resurvey no longer shows a hazard but leaves the field that caused it blank
# or 不详 (pipeline/ledger/survey_update.py writes it): the receipt of that survey file lists those hazards.
RESURVEY_KEPT_OPEN = "复查未再发现该隐患，但"

RECEIPT_SUFFIX = "_回执.xlsx"
UNKNOWN_UNIT = "_未识别单位"
UNKNOWN_ROUND = "_未识别轮次"


def receipt_path(receipts_dir: Path, rel_path: str, department: str | None, kind: str | None = None) -> Path:
    """`<receipts>/<unit>/<kind>/<round or batch>/<file name>_回执.xlsx`.

    `rel_path` is the file's path under data_raw (`<folder kind>/<unit>/<round>/<name>`); `kind` is the
    kind of the records (a hazchem workbook gets one receipt per kind), the folder's by default."""
    p = PurePosixPath(rel_path)
    unit = department if department in units() else UNKNOWN_UNIT
    rnd = "/".join(p.parts[2:-1]) or UNKNOWN_ROUND
    return receipts_dir / unit / (kind or p.parts[0]) / rnd / f"{p.name}{RECEIPT_SUFFIX}"


def _unit_name(code: str | None) -> str:
    return units()[code].name if code in units() else unit_label(code)


def _verdict(f: dict, refused: int, in_use: tuple[int, int] | None) -> str:
    if f["status"] != "ingested":
        if in_use:
            return f"本版本无法读取，未接收；第{in_use[0]}版（接收{in_use[1]}行）仍在使用，请修改后重新上传"
        return "文件无法读取，全部未接收，请修改后重新上传"
    if refused == 0:
        return "全部接收"
    return f"部分退回：{refused}行未通过校验，请按“退回明细”修改后重新上传整个文件"


def _summary_rows(f: dict, accepted: int, refused: int, in_use: tuple[int, int] | None) -> list[tuple[str, object]]:
    template = load_template(f["kind"])
    rows = [
        ("文件", f["rel_path"]),
        ("工作表", f["sheet_name"] or ""),
        ("调查类别", template.title),
        ("报送单位", _unit_name(f["department"])),
        ("上传账号", f.get("uploaded_by") or "（直接放入文件夹，无网页上传记录）"),
        ("调查轮次", f["survey_round"] or ""),
        ("文件版本", f["version"]),
        ("文件指纹(SHA-256)", f["sha256"]),
        ("接收时间", str(f["uploaded_at"])),
        ("回执生成时间", f"{beijing_now():%Y-%m-%d %H:%M:%S}"),
        ("处理结果", _verdict(f, refused, in_use)),
        ("数据行数", f["rows_read"] or 0),
        ("接收行数", accepted),
        ("退回行数", refused),
        ("空行(已忽略)", f["blank_rows"] or 0),
        ("表头所在行", f["header_row"] or ""),
        ("未识别的列(已忽略)", quoted(f["unknown_headers"] or []) or "无"),
        ("文件问题", f["problem_zh"] or "无"),
    ]
    if f["status"] != "ingested":
        rows.append(("文件中找到的列", quoted(f["found_headers"] or []) or "（未找到表头）"))
    if f["header_map"] and f["mapping_sha256"]:
        renamed = renamed_by_mapping(json.loads(f["header_map"]), template)
        shown = "，".join(f"“{src}”→“{header}”" for src, header in renamed)
        rows.append((f"按{MAPPING_FILE}改名的列", shown or "无"))
    if in_use:
        rows.append(("仍在使用的版本", f"第{in_use[0]}版，接收{in_use[1]}行；直到本文件可以读取的新版本替换它"))
    for note in f["notes_zh"] or []:
        rows.append(("说明", note))
    return rows


def _kept_open(con: duckdb.DuckDBPyConnection, f: dict) -> list[tuple[str, object]]:
    """The hazards this survey file did not clear because it left their field blank or 不详 (ledger events)."""
    if not has_table(con, "hazard_events"):
        return []
    rows = con.execute(
        "SELECT hazard_no, note FROM hazard_events WHERE source_file = ? AND starts_with(note, ?) "
        "QUALIFY row_number() OVER (PARTITION BY hazard_no ORDER BY seq DESC) = 1 ORDER BY hazard_no",
        [f["rel_path"], RESURVEY_KEPT_OPEN],
    ).fetchall()
    return [("复查保留的隐患", f"{no}：{note}") for no, note in rows]


def _warnings(con: duckdb.DuckDBPyConnection, f: dict, template: Template) -> list[tuple]:
    """Hints on accepted rows (提示): valid, but unusual enough for the unit to check."""
    out = []
    id_expr = "concat_ws('|', " + ", ".join(f"{quote(k)}::VARCHAR" for k in template.id_keys) + ")"
    for fld in template.fields:
        for op, bound in (("<", fld.warn_below), (">", fld.warn_above)):
            if bound is None:
                continue
            out += con.execute(
                f"SELECT row_no, {id_expr}, ?, {quote(fld.key)}::VARCHAR, ? FROM stg_{template.kind} "
                f"WHERE file_id = ? AND {quote(fld.key)} {op} ? ORDER BY row_no",
                [fld.header, fld.warn_message, f["file_id"], bound],
            ).fetchall()
    return sorted(out)


NO_CRITICAL_QUANTITY = (
    "无法确定临界量：不在《危险化学品重大危险源辨识》（GB 18218-2018）表1，且未填危险性类别（表2）或临界量；"
    "该单位的重大危险源辨识不完整，台账登记一般隐患“危险化学品临界量无法确定”，请补填危险性类别或临界量"
)
INVENTORY_VIEW = "v_hazchem_inventory"  # the scoring stage's view of the inventories with each chemical's Q


def _no_critical_quantity(con: duckdb.DuckDBPyConnection, f: dict) -> list[tuple]:
    """An inventory file's chemicals whose critical quantity (Q) cannot be determined (rule H20): accepted, but
    named as 提示. Read from the scoring stage's view, so the receipt has them once the sites were scored (the
    hazchem scoring rewrites the receipts of such files: inventory_files_without_q)."""
    if f["kind"] != "hazchem_inventory" or not _has_view(con, INVENTORY_VIEW):
        return []
    return con.execute(
        f"SELECT row_no, concat_ws('|', site_id, unit_name, chemical), '化学品名称', chemical, ? FROM {INVENTORY_VIEW} "
        "WHERE file_id = ? AND critical_t IS NULL ORDER BY row_no",
        [NO_CRITICAL_QUANTITY, f["file_id"]],
    ).fetchall()


def _has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = ? AND NOT temporary", [name]).fetchall())


def inventory_files_without_q(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The inventory files (rel_path) that hold a chemical whose Q cannot be determined (their receipts say so)."""
    if not _has_view(con, INVENTORY_VIEW):
        return set()
    rows = con.execute(
        f"SELECT DISTINCT f.rel_path FROM {INVENTORY_VIEW} v JOIN intake_files f USING (file_id) WHERE v.critical_t IS NULL"
    ).fetchall()
    return {r[0] for r in rows}


def write_receipt(con: duckdb.DuckDBPyConnection, f: dict, path: Path, in_use: tuple[int, int] | None = None) -> dict:
    """Write one file's receipt (atomically); returns its counts. `in_use`: (version, accepted rows) of
    an older version still in use while this one cannot be read."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    template = load_template(f["kind"])
    accepted = con.execute(f"SELECT count(*) FROM stg_{f['kind']} WHERE file_id = ?", [f["file_id"]]).fetchall()[0][0]
    refused_rows = con.execute(
        "SELECT row_no, record_id, n_reasons, reasons_zh FROM quarantine WHERE file_id = ? ORDER BY row_no",
        [f["file_id"]],
    ).fetchall()
    problems = con.execute(
        "SELECT row_no, record_id, headers_zh, values_raw, problem_zh FROM validation_failures "
        "WHERE file_id = ? ORDER BY row_no, check_id <> 'read_problem', check_id",
        [f["file_id"]],
    ).fetchall()
    no_q = _no_critical_quantity(con, f)
    no_q_line = [("提示", f"{len(no_q)}种化学品无法确定临界量（见“提示”表），请补填危险性类别或临界量")] if no_q else []
    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    sheets = [
        (
            "回执",
            ("项目", "内容"),
            _summary_rows(f, accepted, len(refused_rows), in_use) + _kept_open(con, f) + no_q_line,
        ),
        ("退回明细", ("行号", "记录编码", "问题数", "退回原因"), refused_rows),
        ("问题明细", ("行号", "记录编码", "列", "填写值", "问题"), problems),
        ("提示", ("行号", "记录编码", "列", "填写值", "提示(已接收)"), sorted(_warnings(con, f, template) + no_q)),
    ]
    for title, header, rows in sheets:
        ws = wb.create_sheet(title)
        ws.freeze_panes = "A2"
        ws.append([_bold(ws, h, bold) for h in header])
        for row in rows:
            ws.append([xlsx_cell(v) for v in row])
    with atomic_path(path) as tmp:
        wb.save(tmp)
    return {"accepted": accepted, "refused": len(refused_rows), "path": str(path)}


def _bold(ws, value: str, font):
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws, value=value)
    cell.font = font
    return cell


def write_receipts(
    con: duckdb.DuckDBPyConnection,
    receipts_dir: Path,
    kind: str,
    only_missing: bool = False,
    only_files: set[str] | None = None,
) -> list[dict]:
    """A receipt for the latest version of every file of `kind` (one per path). A receipt that cannot be written
    is listed with its `error` (the old one, if any, stays whole: written atomically); the others are written.
    `only_missing`: only the receipts not on disk (one that could not be written last time, or was deleted);
    `only_files`: only these files (rel_path; the ledger rewrites the receipts its update has a line for)."""
    cur = con.execute("SELECT * FROM intake_files WHERE kind = ? AND is_latest ORDER BY rel_path", [kind])
    names = [d[0] for d in cur.description]
    files = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    in_use = _versions_in_use(con, kind)
    out = []
    for f in files:
        path = receipt_path(receipts_dir, f["rel_path"], f["department"], kind)
        if (only_missing and path.is_file()) or (only_files is not None and f["rel_path"] not in only_files):
            continue
        try:
            out.append({"file": f["rel_path"], **write_receipt(con, f, path, in_use.get(f["rel_path"]))})
        except Exception as e:  # one receipt that cannot be written costs neither the others nor the step
            out.append({"file": f["rel_path"], "path": str(path), "error": f"{type(e).__name__}: {e}"})
    return out


def _versions_in_use(con: duckdb.DuckDBPyConnection, kind: str) -> dict[str, tuple[int, int]]:
    """rel_path → (version, accepted rows) of an older version still in use because the latest cannot be read."""
    rows = con.execute(
        f"""
        SELECT f.rel_path, f.version, (SELECT count(*) FROM stg_{kind} s WHERE s.file_id = f.file_id)
        FROM intake_files f
        WHERE f.kind = ? AND f.is_current AND NOT coalesce(f.is_latest, false) AND f.status = 'ingested'
        """,
        [kind],
    ).fetchall()
    return {rel: (version, accepted) for rel, version, accepted in rows}


RECEIPTS_DDL = [
    # the files whose receipts a validation changed (pipeline/intake/validate.py), until their receipts are written
    "CREATE TABLE IF NOT EXISTS receipts_due (kind VARCHAR, rel_path VARCHAR)",
    # the file version each file's receipt was last written for
    "CREATE TABLE IF NOT EXISTS receipts_written (kind VARCHAR, rel_path VARCHAR, file_id VARCHAR)",
]


def ensure_receipt_tables(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in RECEIPTS_DDL:
        con.execute(ddl)


def write_due_receipts(con: duckdb.DuckDBPyConnection, receipts_dir: Path, kind: str) -> list[dict]:
    """The receipts of `kind` that are out of date: of the files whose rows a validation rewrote (`receipts_due`),
    of file versions not given one yet (a new upload, readable or not), and those missing on disk; each written is
    no longer due. The others stand: what they say did not change (issue 30: every receipt of the kind was
    rewritten whenever one file of it changed)."""
    ensure_receipt_tables(con)
    rows = con.execute(
        """
        SELECT f.rel_path, f.department,
               f.rel_path IN (SELECT rel_path FROM receipts_due WHERE kind = $kind)
               OR f.file_id NOT IN (SELECT file_id FROM receipts_written WHERE kind = $kind AND rel_path = f.rel_path)
        FROM intake_files f WHERE f.kind = $kind AND f.is_latest
        """,
        {"kind": kind},
    ).fetchall()
    due = {rel for rel, unit, stale in rows if stale or not receipt_path(receipts_dir, rel, unit, kind).is_file()}
    if not due:
        return []
    written = write_receipts(con, receipts_dir, kind, only_files=due)
    done = [r["file"] for r in written if "error" not in r]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM receipts_due WHERE kind = ? AND list_contains(?, rel_path)", [kind, done])
        con.execute("DELETE FROM receipts_written WHERE kind = ? AND list_contains(?, rel_path)", [kind, done])
        con.execute(
            "INSERT INTO receipts_written SELECT kind, rel_path, file_id FROM intake_files "
            "WHERE kind = ? AND is_latest AND list_contains(?, rel_path)",
            [kind, done],
        )
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # never masks the error
        raise
    return written
