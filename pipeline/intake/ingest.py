"""Ingest: every survey file under `data_raw/<kind>/<unit>/<round>/` into `raw_<kind>`.

Each file version is registered in `intake_files` with its provenance. A file already
registered (same path, same bytes) adds nothing; changed bytes at the same path are a
new version and the old one stops being current. Files that cannot be read are
registered as `unreadable` with a Chinese reason, and the others still go through.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipeline.intake.headers import MAPPING_FILE, load_mapping, match_headers
from pipeline.intake.readers import UnreadableFile, read_csv, read_xlsx
from pipeline.intake.schema import Template, load_template, units
from pipeline.store import quote, raw_table

SURVEY_SUFFIXES = {".csv", ".xlsx"}
IGNORED_NAMES = {MAPPING_FILE, "README.md", ".gitkeep"}
UPLOAD_TABLE = "__upload"


@dataclass(frozen=True)
class Upload:
    path: Path
    rel_path: str
    kind: str
    department: str | None
    survey_round: str | None
    sha256: str
    layout_problem: str | None = None

    @property
    def file_id(self) -> str:
        return hashlib.sha256(f"{self.kind}\0{self.rel_path}\0{self.sha256}".encode()).hexdigest()[:20]


@dataclass
class IngestSummary:
    kind: str
    new_files: list[str] = field(default_factory=list)
    unchanged_files: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    rows_added: int = 0


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def discover(data_raw: Path, kind: str) -> list[Upload]:
    """Every survey file of `kind`, with the department and round its folder names."""
    base = data_raw / kind
    if not base.is_dir():
        return []
    uploads = []
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        if path.name in IGNORED_NAMES or path.name.startswith((".", "~$")):
            continue
        rel = path.relative_to(data_raw).as_posix()
        parts = path.relative_to(base).parts
        dept = parts[0] if len(parts) == 3 else None
        rnd = parts[1] if len(parts) == 3 else None
        uploads.append(Upload(path, rel, kind, dept, rnd, sha256_of(path), _layout_problem(path, parts, kind)))
    return uploads


def _layout_problem(path: Path, parts: tuple[str, ...], kind: str) -> str | None:
    if len(parts) != 3:
        return f"文件位置不对：应放在 data_raw/{kind}/<单位代码>/<调查轮次>/ 文件夹下"
    if parts[0] not in units():
        return f"文件夹“{parts[0]}”不是责任单位代码（见责任单位名录），无法确定报送单位"
    if path.suffix.lower() == ".xls":
        return "不支持旧版.xls格式：请在Excel中另存为.xlsx或CSV UTF-8后重新上传"
    if path.suffix.lower() not in SURVEY_SUFFIXES:
        return f"不支持的文件类型“{path.suffix}”：只接受.csv和.xlsx"
    return None


def ingest_kind(con: duckdb.DuckDBPyConnection, data_raw: Path, kind: str) -> IngestSummary:
    """Register and load every new file version of `kind`; mark what is current."""
    template = load_template(kind)
    summary = IngestSummary(kind)
    uploads = discover(data_raw, kind)
    known = {r[0] for r in con.execute("SELECT file_id FROM intake_files WHERE kind = ?", [kind]).fetchall()}
    for up in uploads:
        if up.file_id in known:
            summary.unchanged_files.append(up.rel_path)
            continue
        summary.new_files.append(up.rel_path)
        rows, problem = _load_one(con, up, template)
        summary.rows_added += rows
        if problem:
            summary.unreadable[up.rel_path] = problem
    _mark_current(con, kind, [u.file_id for u in uploads])
    for rel, problem in con.execute(
        "SELECT rel_path, problem_zh FROM intake_files WHERE kind = ? AND is_current AND status = 'unreadable'",
        [kind],
    ).fetchall():
        summary.unreadable[rel] = problem
    return summary


def _mark_current(con: duckdb.DuckDBPyConnection, kind: str, current_ids: list[str]) -> None:
    con.execute(
        "UPDATE intake_files SET is_current = list_contains(?::VARCHAR[], file_id) WHERE kind = ?",
        [current_ids, kind],
    )


def _load_one(con: duckdb.DuckDBPyConnection, up: Upload, template: Template) -> tuple[int, str | None]:
    """Load one file version; returns (rows loaded, problem or None). Registers it either way.

    The file is read into a temp table first; its rows and its registry entry are then
    written in one transaction, so a crash leaves the file either fully in or not at all."""
    version = con.execute(
        "SELECT count(*) + 1 FROM intake_files WHERE kind = ? AND rel_path = ?",
        [up.kind, up.rel_path],
    ).fetchall()[0][0]
    record = {
        "file_id": up.file_id, "kind": up.kind, "rel_path": up.rel_path, "department": up.department,
        "survey_round": up.survey_round, "sha256": up.sha256, "size_bytes": up.path.stat().st_size,
        "file_format": up.path.suffix.lower().lstrip("."), "encoding": None,
        "uploaded_at": dt.datetime.now().replace(microsecond=0), "status": "unreadable",
        "problem_zh": up.layout_problem, "rows_read": 0, "blank_rows": 0,
        "unknown_headers": [], "header_map": None, "is_current": True, "version": version,
    }  # fmt: skip
    insert_rows = None
    if up.layout_problem is None:
        try:
            insert_rows = _stage_upload(con, up, template, record)
            record["status"] = "ingested"
        except UnreadableFile as e:
            record["problem_zh"] = str(e)
    cols = list(record)
    con.execute("BEGIN TRANSACTION")
    try:
        if insert_rows:
            con.execute(insert_rows, [up.file_id])
        con.execute(
            f"INSERT INTO intake_files ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [record[c] for c in cols],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS {UPLOAD_TABLE}")
    return record["rows_read"], record["problem_zh"]


def _stage_upload(con: duckdb.DuckDBPyConnection, up: Upload, template: Template, record: dict) -> str:
    """Read the file into the temp table, match its headers, count its rows.

    Returns the INSERT statement (file_id as its one parameter) that copies it to raw."""
    mapping, mapping_problems = load_mapping(up.path.parent.parent / MAPPING_FILE, template)
    if mapping_problems:
        raise UnreadableFile("；".join(mapping_problems))
    if up.path.suffix.lower() == ".xlsx":
        record["encoding"] = read_xlsx(con, up.path, UPLOAD_TABLE)
        row_no_sql = "__excel_row"
    else:
        record["encoding"] = read_csv(con, up.path, UPLOAD_TABLE)
        row_no_sql = "rowid + 2"  # Excel numbering: the header is row 1
    source_cols = [r[0] for r in con.execute(f"DESCRIBE {UPLOAD_TABLE}").fetchall() if r[0] != "__excel_row"]
    match = match_headers(source_cols, template, mapping)
    if match.problems:
        raise UnreadableFile("；".join(match.problems))
    record["unknown_headers"] = match.unknown
    record["header_map"] = json.dumps({src: key for key, src in match.columns.items()}, ensure_ascii=False)
    select = [quote(match.columns[k]) if k in match.columns else "NULL" for k in template.keys]
    blank = " AND ".join(f"nullif(trim({quote(c)}), '') IS NULL" for c in match.columns.values())
    record["blank_rows"], total = con.execute(
        f"SELECT count(*) FILTER (WHERE {blank}), count(*) FROM {UPLOAD_TABLE}"
    ).fetchall()[0]
    record["rows_read"] = total - record["blank_rows"]
    keys = ", ".join(quote(k) for k in template.keys)
    return (
        f"INSERT INTO {raw_table(up.kind)} (file_id, row_no, {keys}) "
        f"SELECT ?, {row_no_sql}, {', '.join(select)} FROM {UPLOAD_TABLE} WHERE NOT ({blank})"
    )
