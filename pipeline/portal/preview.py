"""What the pipeline would make of one upload, before anything is committed: run in a worker process.

The preview runs the pipeline's own intake, validation (the Great Expectations suites) and feedback logic on
a throw-away DuckDB store that holds only this file, laid out in a throw-away `data_raw/` exactly where it
would land (with the unit's 列映射.csv), and looks up what the file is checked against in the published
snapshot, read-only: the enterprises of the registry, the staged rows a cross-kind check requires (an
inventory's sites), the hazards a feedback file names, and the other files' rows that share an id with
this one. It never touches the live database, so it never waits behind (or blocks) a pipeline run; in a
worker process, a 10,000-row preview never holds up other people's pages.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from pipeline.formats.excel_safe import sql_text
from pipeline.intake.headers import MAPPING_FILE, quoted
from pipeline.intake.normalize import norm_table
from pipeline.intake.validate import validate_kind
from pipeline.platform import clock, store
from pipeline.registries import units as registry
from pipeline.registries.templates import KINDS, load_template

TOO_LARGE = "文件展开后过大"  # the words the intake's reader uses too, for a file refused for its size
TOO_LARGE_ZH = (f"{TOO_LARGE}：读取它需要的内存超过预览的上限，无法预览，也不能提交。"
                "请拆分为几个较小的文件（例如按乡镇），或另存为CSV UTF-8后重新上传")  # fmt: skip
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
SNAPSHOT = "snap"
LOCAL = "preview"  # the preview's own store (preview.duckdb in its temp folder)
log = logging.getLogger(__name__)


@dataclass
class Request:
    staged_file: str
    kind: str  # the folder kind: a survey kind, feedback or quake_feedback
    unit: str  # the account's unit
    folder: str  # survey round, feedback batch or event id
    data_raw: str
    snapshot: str | None
    rows_shown: int = 500


@dataclass
class Part:
    """One kind of records the file holds (a hazchem workbook may hold sites and inventory)."""

    kind: str
    title: str
    readable: bool
    problem: str | None
    rows: int
    accepted: int
    refused: int
    notes: list[str] = field(default_factory=list)
    refusals: list[dict] = field(default_factory=list)  # row, record id, column, value, problem
    conflicts: list[dict] = field(default_factory=list)  # ids another current file gives differently
    found_headers: str = ""  # an unreadable file: the columns it has, as its receipt lists them


@dataclass
class Result:
    parts: list[Part]
    feedback: dict | None = None  # will_apply, will_refuse, rows (for feedback files)
    error: str | None = None
    too_large: bool = False  # the worker ran out of its memory bound (or died) reading the file

    @property
    def refused_for_size(self) -> bool:
        """The file is not taken for its size: never offered for confirmation (the run would refuse it too)."""
        return self.too_large or any(TOO_LARGE in (p.problem or "") for p in self.parts)

    @property
    def accepted(self) -> int:
        return sum(p.accepted for p in self.parts)

    @property
    def refused(self) -> int:
        return sum(p.refused for p in self.parts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, default=str)

    @classmethod
    def from_json(cls, text: str) -> Result:
        raw = json.loads(text)
        return cls([Part(**p) for p in raw["parts"]], raw.get("feedback"), raw.get("error"),
                   bool(raw.get("too_large")))  # fmt: skip

    def summary_zh(self) -> str:
        if self.error:
            return self.error
        text = "；".join(
            f"{p.title}：{'无法读取：' + (p.problem or '') if not p.readable else f'接收{p.accepted}行，退回{p.refused}行'}"
            for p in self.parts
        )
        if self.feedback:
            verb = "受理" if self.feedback.get("taken_label") else "更新"
            text += f"；{self.feedback['will_apply']} 条将{verb}，{self.feedback['will_refuse']} 条将退回"
            if self.feedback.get("applied_before"):
                text += f"，{self.feedback['applied_before']} 条此前已执行"
        return text


def init_worker(parent_pid: int) -> None:
    """A preview worker ends when the portal that started it is gone, however it went (killed too). Its small
    batches are checked without GE's per-expectation cost (validate.allow_small_path: the same results; the run
    that follows a confirmation validates with GE)."""
    from pipeline.engines.duckdb import allow_small_path

    allow_small_path()
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="preview-parent-watch", daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1)
    os._exit(0)


def resident_bytes(pid: int) -> int:
    """A process's resident memory (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def warm_up() -> bool:
    """Import what a preview needs (Great Expectations takes seconds) before the first clerk waits for it."""
    from pipeline.engines.expectations import _context

    _context()
    return True


def run(req: Request) -> Result:
    """The preview of one staged file (any error becomes the result's message, never a traceback)."""
    clock.use_data_raw(Path(req.data_raw))  # the deployment's date (the sample's as-of date on the sample)
    with tempfile.TemporaryDirectory(prefix="litong-preview-") as tmp:
        try:
            result = _run(req, Path(tmp))
        except (MemoryError, duckdb.OutOfMemoryException):
            log.warning("preview of %s: past the worker's memory bound", req.staged_file)
            return Result([], error=TOO_LARGE_ZH, too_large=True)
        except Exception as e:  # the page says so; the file is not landed; the log has the traceback
            log.exception("preview of %s failed", req.staged_file)
            return Result([], error=f"预览时出错（{type(e).__name__}）：请检查文件后重试，或联系区应急管理局（地震局）")
    if any("MemoryError" in (p.problem or "") for p in result.parts):  # a reader that met the bound and said so
        log.warning("preview of %s: past the worker's memory bound while reading", req.staged_file)
        return Result([], error=TOO_LARGE_ZH, too_large=True)
    return result


def _layout(req: Request, tmp: Path) -> Path:
    """A data_raw/ with only this file where it would land, the unit's mappings and the declared events."""
    raw = tmp / "data_raw"
    source, real = Path(req.staged_file), Path(req.data_raw)
    target = raw / req.kind / req.unit / req.folder / source.name
    target.parent.mkdir(parents=True)
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)
    for kind in {req.kind, *KINDS}:
        mapping = real / kind / req.unit / MAPPING_FILE
        if mapping.is_file():
            (raw / kind / req.unit).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mapping, raw / kind / req.unit / MAPPING_FILE)
    if (real / "earthquakes").is_dir():
        (raw / "earthquakes").symlink_to((real / "earthquakes").resolve())
    return raw


def _run(req: Request, tmp: Path) -> Result:
    raw = _layout(req, tmp)
    con = duckdb.connect(str(tmp / "preview.duckdb"), config={"memory_limit": "1GB"})
    try:
        store.ensure_schema(con)
        snap = bool(req.snapshot) and Path(req.snapshot).exists()
        if snap:  # attached only while copying: the pipeline's code looks tables up by name
            with _attached(con, req.snapshot):
                _copy_context(con, req.kind)
        registry.load_enterprises(con)
        from pipeline.intake.ingest import ingest_kind
        from pipeline.registries.uploads import PORTAL_PREVIEW

        ingest_kind(con, raw, req.kind, PORTAL_PREVIEW)  # it will land with the account's record
        kinds = [r[0] for r in con.execute(
            "SELECT DISTINCT kind FROM intake_files ORDER BY kind <> ?, kind", [req.kind]).fetchall()]  # fmt: skip
        today = clock.district_today()
        validated = []  # an unreadable file (wrong headers …) has no rows to check: its part says why
        for kind in kinds:
            readable = con.execute(
                "SELECT bool_and(status = 'ingested') FROM intake_files WHERE kind = ?", [kind]
            ).fetchall()[0][0]
            if readable:
                validate_kind(con, load_template(kind), today)
                validated.append(kind)
        conflicts: dict[str, list[dict]] = {}
        if snap:
            with _attached(con, req.snapshot):
                conflicts = {k: _conflicts(con, k, req.rows_shown) for k in validated if k in KINDS}
                if req.kind == "feedback":
                    _copy_hazards(con)
                if req.kind == "quake_feedback":
                    _copy_quake_objects(con)
        parts = [_part(con, kind, req.rows_shown, conflicts.get(kind, [])) for kind in kinds]
        readable = bool(parts) and parts[0].readable
        feedback = _feedback(con) if req.kind == "feedback" and readable else None
        if req.kind == "quake_feedback" and readable:
            feedback = _quake_feedback(con, req, raw)
        return Result(parts, feedback)
    finally:
        con.close()


@contextmanager
def _attached(con: duckdb.DuckDBPyConnection, path: str) -> Iterator[None]:
    con.execute(f"ATTACH {sql_text(str(path))} AS {SNAPSHOT} (READ_ONLY)")
    try:
        yield
    finally:
        con.execute(f"DETACH {SNAPSHOT}")


def _snap_has(con: duckdb.DuckDBPyConnection, table: str, database: str = SNAPSHOT) -> bool:
    """Whether `database` (the attached snapshot, or the preview's own store) has the table."""
    return bool(
        con.execute(
            "SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND table_name = ?", [database, table]
        ).fetchall()
    )


def _copy_context(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    """The registry's enterprises, and the staged rows the kind's cross-kind checks look up."""
    if _snap_has(con, "enterprise_units"):
        con.execute(f"INSERT INTO enterprise_units SELECT * FROM {SNAPSHOT}.enterprise_units")
    kinds = KINDS if kind in KINDS else (kind,)
    for k in kinds:
        for check in load_template(k).cross_kind:
            table = f"stg_{check.requires}"
            if _snap_has(con, table) and not con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]:
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {SNAPSHOT}.{table}")


def _part(con: duckdb.DuckDBPyConnection, kind: str, rows_shown: int, conflicts: list[dict]) -> Part:
    template = load_template(kind)
    file_id, status, problem, rows_read, notes, found = con.execute(
        "SELECT file_id, status, problem_zh, rows_read, notes_zh, found_headers FROM intake_files "
        "WHERE kind = ? AND is_latest",
        [kind],
    ).fetchall()[0]
    if status != "ingested":
        return Part(kind, template.title, False, problem, 0, 0, 0, list(notes or []),
                    found_headers=quoted(found or []) or "（未找到表头）")  # fmt: skip
    accepted = con.execute(f"SELECT count(*) FROM stg_{kind} WHERE file_id = ?", [file_id]).fetchall()[0][0]
    refused = con.execute("SELECT count(*) FROM quarantine WHERE file_id = ?", [file_id]).fetchall()[0][0]
    cur = con.execute(
        "SELECT row_no, record_id, headers_zh, values_raw, problem_zh FROM validation_failures WHERE file_id = ? "
        "ORDER BY row_no, check_id <> 'read_problem', check_id LIMIT ?",
        [file_id, rows_shown],
    )
    refusals = [dict(zip(("row", "record", "column", "value", "problem"), r, strict=True)) for r in cur.fetchall()]
    return Part(kind, template.title, True, None, rows_read or 0, accepted, refused, list(notes or []), refusals,
                conflicts)  # fmt: skip


def _conflicts(con: duckdb.DuckDBPyConnection, kind: str, limit: int) -> list[dict]:
    """Accepted rows whose id another current file of the district gives with different content: the run will
    refuse both (编码重复), unless the other is an older version of this very file, which this one replaces."""
    norm = norm_table(kind)
    if not _snap_has(con, norm):
        return []
    rel = con.execute("SELECT rel_path FROM intake_files WHERE kind = ? AND is_latest", [kind]).fetchall()[0][0]
    rows = con.execute(
        f"""
        SELECT n.row_no, n._record_id, min(s.source_file || ' 第' || s.row_no || '行') AS other
        FROM {norm} n JOIN {SNAPSHOT}.{norm} s
          ON n._id_complete AND s._id_complete AND n._scope = s._scope AND n._record_id = s._record_id
         AND n._content <> s._content
        WHERE s.file_id IN (SELECT file_id FROM {SNAPSHOT}.intake_files
                            WHERE kind = ? AND is_current AND status = 'ingested' AND rel_path <> ?)
          AND EXISTS (SELECT 1 FROM stg_{kind} g WHERE g.file_id = n.file_id AND g.row_no = n.row_no)
        GROUP BY ALL ORDER BY n.row_no LIMIT ?
        """,
        [kind, rel, limit],
    ).fetchall()
    return [{"row": r, "record": rec, "other": other} for r, rec, other in rows]


def _copy_hazards(con: duckdb.DuckDBPyConnection) -> None:
    """The hazards a feedback file names, as the snapshot holds them, and the rows already applied to them (a
    row sent again is shown as applied before, not as refused)."""
    from pipeline.ledger.model import ensure_ledger_schema

    ensure_ledger_schema(con)
    if _snap_has(con, "hazards"):
        con.execute(
            f"INSERT INTO hazards BY NAME SELECT * FROM {SNAPSHOT}.hazards "
            "WHERE hazard_no IN (SELECT hazard_no FROM stg_feedback)"
        )
    if _snap_has(con, "feedback_results") and _snap_has(con, "feedback_applied"):
        con.execute(f"INSERT INTO feedback_results BY NAME SELECT * FROM {SNAPSHOT}.feedback_results "
                    "WHERE hazard_no IN (SELECT hazard_no FROM stg_feedback) AND outcome = '已执行'")  # fmt: skip
        con.execute(f"INSERT INTO feedback_applied BY NAME SELECT * FROM {SNAPSHOT}.feedback_applied "
                    "WHERE file_id IN (SELECT file_id FROM feedback_results)")  # fmt: skip


def _copy_quake_objects(con: duckdb.DuckDBPyConnection) -> None:
    """The scored objects and hazards a 灾情反馈 file names (by id or by hazard number), as published."""
    from pipeline.ledger.model import ensure_ledger_schema

    ensure_ledger_schema(con)
    if _snap_has(con, "hazards"):
        con.execute(f"INSERT INTO hazards BY NAME SELECT * FROM {SNAPSHOT}.hazards "
                    "WHERE hazard_no IN (SELECT hazard_no FROM stg_quake_feedback)")  # fmt: skip
    if _snap_has(con, "scores"):
        con.execute(f"CREATE TABLE scores AS SELECT * FROM {SNAPSHOT}.scores WHERE asset_id IN "
                    "(SELECT object_id FROM stg_quake_feedback UNION SELECT asset_id FROM hazards)")  # fmt: skip


def _quake_feedback(con: duckdb.DuckDBPyConnection, req: Request, raw: Path) -> dict:
    """Each row of a 灾情反馈 file as the run would take or return it (the object checks, not the ledger's changes)."""
    from pipeline.ledger.quake_damage import TAKEN, preview_rows
    from pipeline.registries.events import declared_events

    if not _snap_has(con, "scores", LOCAL):
        return {"will_apply": 0, "will_refuse": 0, "rows": [], "taken_label": "将受理"}
    file_id = con.execute("SELECT file_id FROM intake_files WHERE kind = 'quake_feedback' AND is_latest").fetchall()[0][
        0
    ]
    rows = preview_rows(con, file_id, req.unit, declared_events(raw).get(req.folder))
    shown = [{"row": r["row_no"], "hazard_no": r["asset_id"], "outcome": "将受理" if r["outcome"] == TAKEN else r["outcome"],
              "from": None, "to": None, "reason": r["reason_zh"]} for r in rows]  # fmt: skip
    taken = sum(r["outcome"] == TAKEN for r in rows)
    return {"will_apply": taken, "will_refuse": len(rows) - taken, "rows": shown, "taken_label": "将受理"}


def _feedback(con: duckdb.DuckDBPyConnection) -> dict:
    """Each valid row against its hazard's state in the snapshot, as the ledger would apply it (rolled back)."""
    from pipeline.ledger.feedback import preview

    file_id = con.execute("SELECT file_id FROM intake_files WHERE kind = 'feedback' AND is_latest").fetchall()[0][0]
    result = preview(con, file_id)
    rows = [
        {"row": r.row_no, "hazard_no": r.hazard_no, "outcome": r.outcome, "from": r.from_status, "to": r.to_status,
         "reason": r.reason_zh}
        for r in result.rows
    ]  # fmt: skip
    return {"will_apply": result.applied, "will_refuse": result.refused, "applied_before": result.repeated,
            "rows": rows}  # fmt: skip
