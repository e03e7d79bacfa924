"""Ingest: every survey file under `data_raw/<kind>/<unit>/<round>/` into `raw_<kind>`.

Each file version is registered in `intake_files` with its provenance, once per kind of records
it holds (a hazchem workbook with a sites sheet and an inventory sheet is two registrations). A
file already registered (same path, same bytes, same 列映射.csv) adds nothing; changed bytes or a
changed mapping are a new version. Any error while reading one file is that file's refusal, with
a Chinese reason; the other files still go through.

Two flags say which versions count (per kind and path):
  * `is_latest`  the version now at the path (what the unit sent last);
  * `is_current` the versions in effect: the latest one, and, while the latest cannot be read, the
                 newest readable one before it, which stays in use until a readable version
                 replaces it. So `is_current AND status = 'ingested'` are the rows in use, and
                 `is_current AND status <> 'ingested'` the refused files to show.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import duckdb

from pipeline.intake.headers import (
    MAPPING_FILE,
    Mapping,
    header_score,
    load_mapping,
    mapping_sha256,
    match_headers,
)
from pipeline.intake.readers import (
    FLAGGED,
    Sheet,
    UnreadableFile,
    head_rows,
    open_xlsx,
    read_csv,
    read_sheet,
    sheet_names,
    skip_footer_rows,
)
from pipeline.platform import faults
from pipeline.platform.clock import beijing_now
from pipeline.platform.failures import rollback
from pipeline.platform.store import quote, raw_table
from pipeline.registries.events import event_problem
from pipeline.registries.templates import KINDS, Template, load_template
from pipeline.registries.units import round_problem, unit_label, units
from pipeline.registries.uploads import Audit, load_audit

SURVEY_SUFFIXES = {".csv", ".xlsx"}
# What the second folder level names, per kind (surveys: the survey round).
FOLDER_ZH = {"feedback": "批次", "quake_feedback": "地震事件编号"}
IGNORED_NAMES = {MAPPING_FILE, "README.md", ".gitkeep"}
UPLOAD_VIEW = "__upload"
TOO_BIG_ZH = (
    "文件太大，服务器内存不足以处理：请把文件拆分为几个较小的文件（例如按乡镇各存一个文件）后重新上传，"
    "或联系区应急管理局（地震局）"
)


def fingerprint(kind: str, rel_path: str, sha256: str, mapping_sha: str | None) -> str:
    """The file_id of one version: kind, path, bytes, and the mapping it is read with (if any)."""
    text = f"{kind}\0{rel_path}\0{sha256}" + (f"\0{mapping_sha}" if mapping_sha else "")
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Upload:
    path: Path
    rel_path: str
    kind: str  # the kind its folder names
    department: str | None
    survey_round: str | None
    sha256: str
    layout_problem: str | None = None
    mapping_sha: str | None = None
    uploaded_by: str | None = None  # the portal account, from the upload audit

    @property
    def file_id(self) -> str:
        return fingerprint(self.kind, self.rel_path, self.sha256, self.mapping_sha)


@dataclass
class IngestSummary:
    kind: str
    new_files: list[str] = field(default_factory=list)
    unchanged_files: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    rows_added: int = 0


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def mapping_path(data_raw: Path, kind: str, unit: str | None) -> Path:
    return data_raw / kind / (unit or "_") / MAPPING_FILE


def discover(data_raw: Path, kind: str, audit: Audit | None = None) -> list[Upload]:
    """Every survey file of `kind`, with the department and round its folder names, checked against the
    upload audit (`audit`, else the deployment's). Hidden names (the temp names files land under,
    pipeline/platform/atomic.py) and Excel's lock files are never read."""
    base = data_raw / kind
    if not base.is_dir():
        return []
    uploads = []
    audit = load_audit() if audit is None else audit
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        if path.name in IGNORED_NAMES or path.name.startswith((".", "~$")):
            continue
        rel = path.relative_to(data_raw).as_posix()
        parts = path.relative_to(base).parts
        dept = parts[0] if len(parts) == 3 else None
        rnd = parts[1] if len(parts) == 3 else None
        sha = sha256_of(path)
        record = audit.record(rel, sha)
        problem = _layout_problem(path, parts, kind) or audit.problem(rel, sha, parts[0])
        uploads.append(
            Upload(path, rel, kind, dept, rnd, sha, problem,
                   mapping_sha256(mapping_path(data_raw, kind, dept)), record.username if record else None)
        )  # fmt: skip
    return uploads


def authority_problem(unit: str, kind: str) -> str | None:
    """A unit uploads only the kinds whose template lists it (an empty list: any registered unit)."""
    t = load_template(kind)
    if not t.departments or unit in t.departments:
        return None
    allowed = "、".join(unit_label(c) for c in t.departments)
    return (
        f"{unit_label(unit)}不是“{t.title}”调查的填报单位，不能报送此类文件（可报送的单位：{allowed}）。"
        "如本单位确实承担此项调查，请联系区应急管理局（地震局）登记"
    )


def _layout_problem(path: Path, parts: tuple[str, ...], kind: str) -> str | None:
    if len(parts) != 3:
        return f"文件位置不对：应放在 data_raw/{kind}/<单位代码>/<{FOLDER_ZH.get(kind, '调查轮次')}>/ 文件夹下"
    unit, folder = parts[0], parts[1]
    if unit not in units():
        return f"文件夹“{unit}”不是责任单位代码（见责任单位名录），无法确定报送单位"
    if problem := authority_problem(unit, kind):
        return problem
    if kind in KINDS and (problem := round_problem(folder)):  # feedback batches are free names
        return problem
    if kind == "quake_feedback" and (problem := event_problem(path.parents[3], folder)):  # open events only
        return problem
    if path.suffix.lower() == ".xls":
        return "不支持旧版.xls格式：请在Excel中另存为.xlsx或CSV UTF-8后重新上传"
    if path.suffix.lower() not in SURVEY_SUFFIXES:
        return f"不支持的文件类型“{path.suffix}”：只接受.csv和.xlsx"
    return None


def reason_of(e: Exception) -> str:
    """Any error while reading a file, as the Chinese reason its receipt gives."""
    if isinstance(e, UnreadableFile):
        return str(e)
    if isinstance(e, MemoryError | duckdb.OutOfMemoryException):
        return TOO_BIG_ZH
    return (
        f"读取文件时出错（{type(e).__name__}）：文件可能已损坏或格式不符。请在Excel中打开检查，"
        "另存为XLSX或CSV UTF-8后重新上传；如仍有问题请联系区应急管理局（地震局）"
    )


# --- one run over a kind -------------------------------------------------------------------


def ingest_kind(con: duckdb.DuckDBPyConnection, data_raw: Path, kind: str, audit: Audit | None = None) -> IngestSummary:
    """Register and load every new file version of `kind`; mark what is latest and current. `audit`: what
    the files are checked against (default: the deployment's upload audit; a portal preview passes
    upload_audit.PORTAL_PREVIEW)."""
    summary = IngestSummary(kind)
    uploads = discover(data_raw, kind, audit)
    known = {r[0] for r in con.execute("SELECT file_id FROM intake_files").fetchall()}
    # every kind read from this folder's files (sheets of other kinds): a removed or changed
    # workbook changes what is latest for them too
    touched = {kind} | {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT kind FROM intake_files WHERE starts_with(rel_path, ?)", [kind + "/"]
        ).fetchall()
    }
    for up in uploads:
        if not _needs_reading(con, data_raw, up, known):
            summary.unchanged_files.append(up.rel_path)
            continue
        summary.new_files.append(up.rel_path)
        for reg_kind, file_id, rows in FileIntake(con, data_raw, up, known).run():
            known.add(file_id)
            touched.add(reg_kind)
            summary.rows_added += rows if reg_kind == kind else 0
        faults.point(f"ingest_{kind}:after_one_file")  # crash tests: a file registered, the others not yet
    for k in sorted(touched):
        refresh_latest(con, data_raw, k, uploads if k == kind else None)
    summary.unreadable = dict(
        con.execute(
            "SELECT rel_path, problem_zh FROM intake_files WHERE kind = ? AND is_latest AND status <> 'ingested' "
            "ORDER BY rel_path",
            [kind],
        ).fetchall()
    )
    return summary


def _needs_reading(con: duckdb.DuckDBPyConnection, data_raw: Path, up: Upload, known: set[str]) -> bool:
    """New bytes, or a changed 列映射.csv for one of the kinds the file was read as."""
    if up.file_id not in known:
        return True
    for (other,) in con.execute(
        "SELECT DISTINCT kind FROM intake_files WHERE rel_path = ? AND sha256 = ? AND kind <> ?",
        [up.rel_path, up.sha256, up.kind],
    ).fetchall():
        other_map = mapping_sha256(mapping_path(data_raw, other, up.department))
        if fingerprint(other, up.rel_path, up.sha256, other_map) not in known:
            return True
    return False


def refresh_latest(con: duckdb.DuckDBPyConnection, data_raw: Path, kind: str, own: list[Upload] | None = None) -> None:
    """is_latest: the versions now on disk (this kind's folder, and sheets of this kind in other
    kinds' workbooks); then is_current."""
    own = discover(data_raw, kind) if own is None else own
    ids = [u.file_id for u in own]
    for (rel,) in con.execute(
        "SELECT DISTINCT rel_path FROM intake_files WHERE kind = ? AND NOT starts_with(rel_path, ?)",
        [kind, kind + "/"],
    ).fetchall():
        path = data_raw / rel
        if path.is_file():
            unit = PurePosixPath(rel).parts[1] if len(PurePosixPath(rel).parts) > 1 else None
            ids.append(fingerprint(kind, rel, sha256_of(path), mapping_sha256(mapping_path(data_raw, kind, unit))))
    con.execute("UPDATE intake_files SET is_latest = list_contains(?::VARCHAR[], file_id) WHERE kind = ?", [ids, kind])
    refresh_current(con, kind)


def refresh_current(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    """is_current = latest, or the newest readable version of a path whose latest cannot be read."""
    con.execute(
        """
        UPDATE intake_files SET is_current = coalesce(is_latest, false) OR file_id IN (
            SELECT arg_max(file_id, version) FROM intake_files
            WHERE kind = $kind AND status = 'ingested' AND rel_path IN (
                SELECT rel_path FROM intake_files WHERE kind = $kind AND is_latest AND status <> 'ingested')
            GROUP BY rel_path)
        WHERE kind = $kind
        """,
        {"kind": kind},
    )


# --- one file ------------------------------------------------------------------------------


class FileIntake:
    """Read one uploaded file and register each kind of records it holds."""

    def __init__(self, con: duckdb.DuckDBPyConnection, data_raw: Path, up: Upload, known: set[str]):
        self.con, self.data_raw, self.up, self.known = con, data_raw, up, known
        self._mappings: dict[str, Mapping] = {}
        self.notes: list[str] = []

    def mapping(self, kind: str) -> Mapping:
        if kind not in self._mappings:
            path = mapping_path(self.data_raw, kind, self.up.department)
            self._mappings[kind] = load_mapping(path, load_template(kind))
        return self._mappings[kind]

    def file_id(self, kind: str) -> str:
        return fingerprint(kind, self.up.rel_path, self.up.sha256, self.mapping(kind).sha256)

    def run(self) -> list[tuple[str, str, int]]:
        """(kind, file_id, rows loaded) of every registration made."""
        up = self.up
        if up.layout_problem:
            return [self.register(up.kind, None, up.layout_problem)]
        try:
            if up.path.stat().st_size == 0:
                raise UnreadableFile("文件为空（0字节）：请在Excel中重新保存后上传")
            tables = self.read()
        except Exception as e:  # any error while reading is this file's refusal; others go on
            return [self.register(k, None, reason_of(e)) for k in self._kinds_read_before()]
        return [self.register(kind, sheet, None) for kind, sheet in tables]

    def _kinds_read_before(self) -> list[str]:
        """The folder's kind and any other kind this path was read as: each gets the refusal, so
        each kind's previous readable version stays in use."""
        rows = self.con.execute(
            "SELECT DISTINCT kind FROM intake_files WHERE rel_path = ? AND kind <> ? ORDER BY kind",
            [self.up.rel_path, self.up.kind],
        ).fetchall()
        return [self.up.kind, *(r[0] for r in rows)]

    def read(self) -> list[tuple[str, Sheet]]:
        if self.up.path.suffix.lower() == ".csv":
            candidates = [(load_template(self.up.kind), self.mapping(self.up.kind))]
            return [(self.up.kind, read_csv(self.up.path, lambda rows: best_header_row(rows, candidates)))]
        with open_xlsx(self.up.path) as wb:
            return self._read_workbook(wb)

    def _read_workbook(self, wb) -> list[tuple[str, Sheet]]:
        """Sheet by sheet: each sheet is the kind whose template its header matches best; one sheet
        per kind; sheets matching no template are named in the notes."""
        own = self.up.kind
        kinds = KINDS if own in KINDS else (own,)
        fits: dict[str, dict[str, tuple[int, int, bool]]] = {}  # sheet -> kind -> (row, score, complete)
        for name in sheet_names(wb):
            head = head_rows(wb, name)
            if any(c not in (None, "") for row in head for c in row):
                fits[name] = {k: self._fit(head, k) for k in kinds}
        if not fits:
            raise UnreadableFile("文件为空：XLSX文件中没有填写内容的工作表")
        chosen: dict[str, tuple[str, int]] = {}  # kind -> (sheet, header index)
        for name, by_kind in fits.items():
            kind = max(by_kind, key=lambda k: (by_kind[k][2], by_kind[k][1], k == own))
            row, _, complete = by_kind[kind]
            if not complete:
                continue
            if kind in chosen:
                self.notes.append(f"工作表“{name}”也是{load_template(kind).title}表：每个文件每类只读取一个工作表"
                                  f"（已读取“{chosen[kind][0]}”），此表未读取，请另存为单独的文件上传")  # fmt: skip
                continue
            chosen[kind] = (name, row)
        if own not in chosen:  # refused below with the missing columns of the closest sheet
            name = max(fits, key=lambda n: fits[n][own][1])
            chosen[own] = (name, fits[name][own][0])
        used = {name for name, _ in chosen.values()}
        for name, by_kind in fits.items():
            if name not in used and not any(complete for _, _, complete in by_kind.values()):
                self.notes.append(f"工作表“{name}”的表头与任何调查模板都不符，未读取")
        for kind, (name, _) in chosen.items():
            if kind != own:
                self.notes.append(f"工作表“{name}”按“{load_template(kind).title}”读取，见该类别的回执")
        return [(kind, read_sheet(wb, name, row, self._chooser(kind))) for kind, (name, row) in chosen.items()]

    def _chooser(self, kind: str):
        """The header chooser of `kind` (a header over two rows is read as one: readers.read_sheet)."""
        return lambda rows: best_header_row(rows, [(load_template(kind), self.mapping(kind))])

    def _fit(self, head: list[list[str | None]], kind: str) -> tuple[int, int, bool]:
        t, m = load_template(kind), self.mapping(kind)
        row = best_header_row(head, [(t, m)])
        cells = [str(c) for c in head[row] if c not in (None, "")]
        return row, header_score(head[row], t, m), not match_headers(cells, t, m).missing

    # --- registration ---

    def register(self, kind: str, sheet: Sheet | None, problem: str | None) -> tuple[str, str, int]:
        """Register one kind of records of this file (loading its rows), or its refusal."""
        file_id = self.file_id(kind)
        if file_id in self.known:
            return kind, file_id, 0
        record = self._record(kind, file_id, sheet)
        if problem is None and kind != self.up.kind:
            problem = authority_problem(self.up.department or "", kind)
        if problem is None and self.mapping(kind).problems:
            problem = "；".join(self.mapping(kind).problems)
        if problem is None and sheet is not None:
            try:
                self._load(kind, sheet, record)
                return kind, file_id, record["rows_read"]
            except UnreadableFile as e:
                problem = str(e)
            except Exception as e:  # a DuckDB error, out of memory, …: this file's refusal
                problem = reason_of(e)
        record.update(status="unreadable", problem_zh=problem, rows_read=0, blank_rows=0)
        self._insert_record(record)
        return kind, file_id, 0

    def _record(self, kind: str, file_id: str, sheet: Sheet | None) -> dict:
        up = self.up
        version = self.con.execute(
            "SELECT count(*) + 1 FROM intake_files WHERE kind = ? AND rel_path = ?", [kind, up.rel_path]
        ).fetchall()[0][0]
        notes = (
            self.notes
            if kind == up.kind
            else [f"本类记录来自文件{up.rel_path}" + (f"的工作表“{sheet.sheet_name}”" if sheet else "")]
        )
        return {
            "file_id": file_id, "kind": kind, "rel_path": up.rel_path, "department": up.department,
            "survey_round": up.survey_round, "sha256": up.sha256, "size_bytes": up.path.stat().st_size,
            "file_format": up.path.suffix.lower().lstrip("."), "encoding": sheet.encoding if sheet else None,
            "uploaded_at": beijing_now(), "status": "ingested",
            "problem_zh": None, "rows_read": 0, "blank_rows": 0, "unknown_headers": [], "header_map": None,
            "is_current": True, "version": version, "is_latest": True,
            "sheet_name": sheet.sheet_name if sheet else None, "header_row": sheet.header_row if sheet else None,
            "found_headers": sheet.found_headers if sheet else [], "notes_zh": list(notes),
            "mapping_sha256": self.mapping(kind).sha256, "uploaded_by": up.uploaded_by,
        }  # fmt: skip

    def _insert_record(self, record: dict) -> None:
        cols = list(record)
        self.con.execute(
            f"INSERT INTO intake_files ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [record[c] for c in cols],
        )

    def _load(self, kind: str, sheet: Sheet, record: dict) -> None:
        """Match the headers, then write the rows, the row problems and the registration in one
        transaction: a crash leaves the file either fully in or not at all."""
        template, mapping = load_template(kind), self.mapping(kind)
        match = match_headers(sheet.header, template, mapping)
        if match.problems:
            raise UnreadableFile("；".join(match.problems))
        record["unknown_headers"] = match.unknown
        id_columns = [match.columns[k] for k in template.id_keys if k in match.columns]
        record["notes_zh"] += skip_footer_rows(sheet, list(match.columns.values()), id_columns)
        record["header_map"] = json.dumps({src: key for key, src in match.columns.items()}, ensure_ascii=False)
        key_of = {src: key for key, src in match.columns.items()}
        con = self.con
        con.register(UPLOAD_VIEW, sheet.data)
        try:
            insert, blank = _insert_sql(template, match.columns, sheet.streamed)
            sheet.loaded_columns = set(key_of)  # problems elsewhere are not the template's
            if not sheet.streamed:  # a streamed sheet is read once: counted after it was loaded
                flagged = sorted({p.row_no for p in sheet.problems if p.column is None or p.column in key_of})
                total = con.execute(f"SELECT count(*) FROM {UPLOAD_VIEW}").fetchall()[0][0]
                skipped = _skipped_rows(con, template, match.columns, blank, flagged)
                if skipped:
                    record["notes_zh"].append(f"未填写{skipped}行：只有预填的{_prefilled_zh(template)}、其余各列都未填写的行"
                                              "视为本次未报送，已忽略（不退回）")  # fmt: skip
            con.execute("BEGIN TRANSACTION")
            try:
                ((loaded,),) = con.execute(
                    insert, {"file_id": record["file_id"]} | ({} if sheet.streamed else {"flagged": flagged})
                ).fetchall()
                if not sheet.streamed:  # the rows not loaded are the blank ones
                    record["rows_read"], record["blank_rows"] = loaded, total - loaded
                else:
                    record["rows_read"] = con.execute(
                        f"SELECT count(*) FROM {raw_table(kind)} WHERE file_id = ?", [record["file_id"]]
                    ).fetchall()[0][0]
                    record["blank_rows"] = sheet.streamed_rows - record["rows_read"]
                problems = [(p.row_no, key_of.get(p.column), p.problem_zh) for p in sheet.problems
                            if p.column is None or p.column in key_of]  # fmt: skip
                if problems:
                    con.executemany(
                        "INSERT INTO intake_row_problems VALUES (?, ?, ?, ?)",
                        [(record["file_id"], *p) for p in problems],
                    )
                self._insert_record(record)
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        finally:
            con.unregister(UPLOAD_VIEW)


def _skipped_rows(
    con: duckdb.DuckDBPyConnection, template: Template, columns: dict[str, str], blank: str, flagged: list[int]
) -> int:
    """The blank rows of a pre-filled file that have a pre-filled column filled (left as downloaded). Counted only
    for a template with pre-filled columns: the blank rows are the rows the insert leaves out, and one more pass
    over a 1 M-row upload to count them cost ~2 s (issue 30)."""
    if not template.prefilled:
        return 0
    untouched = _untouched_sql(template, columns)
    return con.execute(
        f"SELECT count(*) FILTER (WHERE {blank} AND {untouched}) FROM {UPLOAD_VIEW}", {"flagged": flagged}
    ).fetchall()[0][0]


def _untouched_sql(template: Template, columns: dict[str, str]) -> str:
    """The SQL condition of a row that has a pre-filled column filled (so it is not simply empty)."""
    cells = [f"coalesce(trim({quote(c)}), '') <> ''" for k, c in columns.items() if k in template.prefilled]
    return f"({' OR '.join(cells)})" if cells else "false"


def _prefilled_zh(template: Template) -> str:
    return "、".join(template.field(k).header for k in template.prefilled)


def _insert_sql(template: Template, columns: dict[str, str], streamed: bool = False) -> tuple[str, str]:
    """(INSERT copying the upload's rows to raw, the SQL condition of a blank row). Parameters:
    $file_id, and $flagged, the rows with a reading problem: never blank, they must reach the quarantine (a
    streamed sheet marks them in its FLAGGED column instead)."""
    empty = " AND ".join(f"coalesce(trim({quote(c)}), '') = ''" for c in columns.values()) or "true"
    if template.prefilled:  # a row of a pre-filled file left as it came is blank too (issue 27 §1)
        filled = [c for k, c in columns.items() if k not in template.prefilled]
        empty = " AND ".join(f"coalesce(trim({quote(c)}), '') = ''" for c in filled) or "true"
    flagged = FLAGGED if streamed else "list_contains($flagged::INTEGER[], __row_no)"
    blank = f"({empty}) AND NOT {flagged}"
    select = [f"nullif({quote(columns[k])}, '')" if k in columns else "NULL" for k in template.keys]
    keys = ", ".join(quote(k) for k in template.keys)
    insert = (
        f"INSERT INTO {raw_table(template.kind)} (file_id, row_no, {keys}) "
        f"SELECT $file_id, __row_no, {', '.join(select)} FROM {UPLOAD_VIEW} WHERE NOT ({blank})"
    )
    return insert, blank


def best_header_row(rows: list[list[str | None]], candidates: list[tuple[Template, Mapping]]) -> int:
    """The row (of the first ones) naming most template columns; the first non-empty row if none does."""
    best, best_score = None, 0
    for i, row in enumerate(rows):
        score = max(header_score(row, t, m) for t, m in candidates)
        if score > best_score:
            best, best_score = i, score
    if best is not None:
        return best
    return next(i for i, row in enumerate(rows) if any(c not in (None, "") and str(c).strip() for c in row))
