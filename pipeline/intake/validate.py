"""Validate `norm_<kind>` with Great Expectations suites built from the template, and split it into the
typed staging table and the quarantine, with every reason in Chinese.

The suites are generated from `schemas/<kind>.yaml` (required, type, range, allowed values, pattern, towns,
units, cross-field checks; and, across rows, unique ids and cross-kind lookups). Each expectation carries in
its `meta` the check id, the columns and the Chinese problem text that goes on the receipt. The row suite
runs once per file version (on its new rows), the cross-row suite on the rows whose ids a change touched;
only those rows' staging, quarantine and failures are rewritten (file_versions.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from pipeline.engines.expectations import Expectation
from pipeline.engines.seam import current
from pipeline.intake import file_versions, receipts
from pipeline.intake.ingest import TOO_BIG_ZH, refresh_current
from pipeline.intake.normalize import cross_sql, lit, norm_table
from pipeline.platform import stage_inputs
from pipeline.platform.clock import district_today
from pipeline.platform.failures import rollback
from pipeline.platform.paths import SCHEMAS_DIR
from pipeline.platform.store import PROVENANCE_COLUMNS, quote, staging_table
from pipeline.registries.templates import KINDS, TYPE_LABELS_ZH, Field, Template, load_template, towns, units

log = logging.getLogger(__name__)

TYPE_REGEX = {
    "integer": r"^[-+]?\d+(?:\.0+)?$",
    "decimal": r"^[-+]?(?:\d+\.?\d*|\.\d+)$",
    "year": r"^\d{4}$",
    "date": r"^\d{4}-\d{2}-\d{2}$",
}
CREDIT_CODE_REGEX = r"^[0-9A-HJ-NPQRTUWXY]{18}$"
# A cell whose formula failed shows Excel's error value, not what was meant (a number column refuses it as not a
# number; a text column must too).
EXCEL_ERROR_REGEX = (
    r"^#(?:N/A|REF!|VALUE!|DIV/0!|NAME\?|NUM!|NULL!|SPILL!|CALC!|FIELD!|BLOCKED!|CONNECT!|BUSY!|UNKNOWN!|GETTING_DATA)$"
)
DATE_MIN = dt.datetime(1950, 1, 1)


@dataclass
class ValidationResult:
    kind: str
    rows: int
    valid: int
    quarantined: int
    failures_by_check: dict[str, int] = field(default_factory=dict)
    ge_success: bool = True


def _field_expectations(f: Field, today: dt.date, town_name: bool = True) -> list[Expectation]:
    k, cols = f.key, (f.key,)
    txt = f"{k}__txt" if f.type in TYPE_REGEX else k
    out = []
    if f.required:
        out.append(Expectation("ExpectColumnValuesToNotBeNull", txt, {}, f"{k}:required", cols,
                               "必填项为空，或填写了无、/、不详、未知，须填写实际值"))  # fmt: skip
    if f.type == "text":
        out.append(Expectation("ExpectColumnValuesToNotMatchRegex", k, {"regex": EXCEL_ERROR_REGEX},
                               f"{k}:excel_error", cols,
                               "是Excel的错误值（公式出错），不是实际内容：请检查该单元格的公式，改为实际值后重新上传"))  # fmt: skip
    if f.type in TYPE_REGEX:
        out.append(Expectation("ExpectColumnValuesToMatchRegex", txt, {"regex": TYPE_REGEX[f.type]},
                               f"{k}:type", cols, f"格式不正确，应为{TYPE_LABELS_ZH[f.type]}"))  # fmt: skip
    if f.min is not None or f.max is not None:
        out.append(Expectation("ExpectColumnValuesToBeBetween", k,
                               {"min_value": f.min, "max_value": f.max}, f"{k}:range", cols,
                               f"超出允许范围，应为{f.expected_zh()}"))  # fmt: skip
    if f.type == "date":
        latest = dt.datetime(2100, 1, 1) if f.allow_future else dt.datetime.combine(today, dt.time())
        problem = "日期不合理：应在1950年之后" + ("" if f.allow_future else "且不晚于今天")
        out.append(Expectation("ExpectColumnValuesToBeBetween", k, {"min_value": DATE_MIN, "max_value": latest},
                               f"{k}:date_range", cols, problem))  # fmt: skip
    if f.allowed_values():
        out.append(Expectation("ExpectColumnValuesToBeInSet", k, {"value_set": list(f.allowed_values())},
                               f"{k}:allowed", cols, f"不是允许的取值，应为：{'、'.join(f.allowed_values())}"))  # fmt: skip
    if f.pattern:
        out.append(Expectation("ExpectColumnValuesToMatchRegex", k, {"regex": f.pattern}, f"{k}:pattern",
                               cols, f"格式不正确，应形如{f.example}"))  # fmt: skip
    if f.type == "town_code":
        out.append(Expectation("ExpectColumnValuesToBeInSet", k, {"value_set": list(towns())},
                               f"{k}:known_town", (k, "town_name") if k == "town_code" and town_name else cols,
                               "乡镇代码或名称不存在，应为利通区13个乡镇之一（见模板“代码表”）"))  # fmt: skip
    if f.type == "town_list":
        out.append(Expectation("ExpectColumnValuesToBeNull", f"{k}__bad", {}, f"{k}:known_town", cols,
                               "含有不存在的乡镇，应为利通区乡镇代码或名称，用;分隔"))  # fmt: skip
    if f.type == "unit_code":
        out.append(Expectation("ExpectColumnValuesToBeInSet", k, {"value_set": list(units())},
                               f"{k}:known_unit", cols, "责任单位代码不存在（见模板“代码表”中的责任单位名录）"))  # fmt: skip
    if f.type == "credit_code":
        out.append(Expectation("ExpectColumnValuesToMatchRegex", k, {"regex": CREDIT_CODE_REGEX},
                               f"{k}:pattern", cols, "应为18位统一社会信用代码（数字和大写字母，不含I、O、S、V、Z）"))  # fmt: skip
        out.append(_flag(f"_chk_{k}_checksum", f"{k}:checksum", cols,
                         "统一社会信用代码校验位错误（GB 32100），请核对是否抄错"))  # fmt: skip
    return out


def _flag(column: str, check_id: str, columns: tuple[str, ...], problem: str) -> Expectation:
    """A boolean check column computed in SQL must not be false (NULL = not applicable)."""
    return Expectation("ExpectColumnValuesToNotBeInSet", column, {"value_set": [False]}, check_id,
                       columns, problem)  # fmt: skip


CROSS_CHECKS = ("id_conflict", "exact_repeat")  # plus each cross-kind check: they look beyond one row


def row_expectations(t: Template, today: dt.date) -> list[Expectation]:
    """The checks of one row alone (a file version's rows are checked once: file_versions.py)."""
    out = [e for f in t.fields for e in _field_expectations(f, today, t.has("town_name"))]
    for chk in t.checks:
        out.append(_flag(f"_chk_{chk.id}", chk.id, chk.columns, chk.message))
    if t.has("town_code") and t.has("town_name"):
        out.append(_flag("_chk_town_agree", "town_agree", ("town_code", "town_name"),
                         "乡镇代码与乡镇名称不一致"))  # fmt: skip
    return out


def cross_expectations(t: Template) -> list[Expectation]:
    """The checks across rows, files and kinds (computed by normalize.cross_sql)."""
    out = [_flag(f"_chk_{chk.id}", chk.id, chk.columns, chk.message) for chk in t.cross_kind]
    out.append(_flag("_chk_id_unique", "id_conflict", t.id_keys,
                     "编码在本轮调查中重复出现且内容不同，请核实后只保留正确的一条"))  # fmt: skip
    out.append(_flag("_chk_not_repeat", "exact_repeat", t.id_keys,
                     "与前面一行内容完全相同的重复行，已忽略"))  # fmt: skip
    return out


def normalize(con: duckdb.DuckDBPyConnection, t: Template, today: dt.date | None = None) -> int:
    """Normalise the kind's new file versions (and forget the gone or stale ones); returns the rows in use."""
    file_versions.sync(con, t, today or district_today())
    return con.execute(f"SELECT count(*) FROM {norm_table(t.kind)}").fetchall()[0][0]


def validate(con: duckdb.DuckDBPyConnection, t: Template, today: dt.date | None = None) -> ValidationResult:
    """Check the rows of the newly normalised versions, then the checks across rows and files on every row
    whose id a change touched, and rewrite those rows' staging, quarantine and failures (one transaction).
    Returns the whole kind's figures."""
    today = today or district_today()
    kind, norm = t.kind, norm_table(t.kind)
    pending = f"SELECT file_id FROM norm_versions WHERE kind = {lit(kind)} AND NOT validated"
    con.execute(f"CREATE OR REPLACE TEMP VIEW __new_rows AS SELECT * FROM {norm} WHERE file_id IN ({pending})")
    row_failures, row_ok = current().validate_rows(con, "__new_rows", t, row_expectations(t, today))
    row_failures = pd.concat([row_failures, _reading_problems(con, t)], ignore_index=True)
    cross_reference = _cross_reference(con, t)
    _select_affected(con, t, everything=stage_inputs.recorded(con, f"cross_ref:{kind}") != cross_reference)
    con.execute(f"CREATE OR REPLACE TEMP TABLE __cross AS {cross_sql(t)}")
    cross_failures, cross_ok = current().validate_rows(con, "__cross", t, cross_expectations(t))
    con.register("__row_failures", row_failures)
    con.register("__cross_failures", cross_failures)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"INSERT INTO row_failures SELECT {lit(kind)}, n.file_id, n.row_no, f.check_id, f.columns, f.problem_zh "
            f"FROM __row_failures f JOIN {norm} n ON n._row_key = f.row_key"
        )
        if kind in KINDS:
            _mark_receipts_due(con, t, pending)
        _record_windows(con, t, pending, today)
        _write_results(con, t)
        con.execute("DELETE FROM norm_touched WHERE kind = ?", [kind])
        stage_inputs.record(con, f"cross_ref:{kind}", cross_reference)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # never masks the error (a failed COMMIT leaves no transaction)
        raise
    finally:
        con.unregister("__row_failures")
        con.unregister("__cross_failures")
    result = current_result(con, t)
    result.ge_success = row_ok and cross_ok
    return result


def _cross_reference(con: duckdb.DuckDBPyConnection, t: Template) -> str:
    """What the cross-kind checks look up: the staged rows of the kinds they require."""
    return stage_inputs.fingerprint([staged_version(con, load_template(c.requires)) for c in t.cross_kind])


def _select_affected(con: duckdb.DuckDBPyConnection, t: Template, everything: bool) -> None:
    """`__affected`: the rows whose checks across rows and files must be (re)computed — the new versions'
    rows and every row sharing an id with them or with a version gone; every row when the kinds the
    cross-kind checks look up changed (`everything`)."""
    kind, norm = t.kind, norm_table(t.kind)
    if everything and t.cross_kind:
        con.execute(f"CREATE OR REPLACE TEMP TABLE __affected AS SELECT _row_key, file_id, row_no FROM {norm}")
        return
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __affected AS
        WITH new_rows AS (SELECT * FROM __new_rows),
        keys AS (
            SELECT DISTINCT _scope, _record_id FROM new_rows WHERE _id_complete
            UNION SELECT _scope, _record_id FROM norm_touched WHERE kind = {lit(kind)}
        )
        SELECT _row_key, file_id, row_no FROM new_rows
        UNION
        SELECT n._row_key, n.file_id, n.row_no FROM {norm} n SEMI JOIN keys k
            ON n._id_complete AND n._scope = k._scope AND n._record_id = k._record_id
    """)  # fmt: skip


def _mark_receipts_due(con: duckdb.DuckDBPyConnection, t: Template, pending: str) -> None:
    """The files whose receipts this validation changes: the new versions and those whose rows it rechecks
    (written by the step, pipeline/intake/receipts.py write_due_receipts)."""
    receipts.ensure_receipt_tables(con)
    con.execute(f"""
        INSERT INTO receipts_due SELECT DISTINCT kind, rel_path FROM intake_files
        WHERE kind = {lit(t.kind)} AND file_id IN (SELECT file_id FROM __affected UNION ALL {pending})
    """)  # fmt: skip


def _record_windows(con: duckdb.DuckDBPyConnection, t: Template, pending: str, today: dt.date) -> None:
    """Mark the new versions checked, with the days their date checks hold for and the enterprises they name."""
    norm = norm_table(t.kind)
    dates = [quote(f.key) for f in t.fields if f.type == "date" and not f.allow_future]
    if dates:
        values = " UNION ALL ".join(f"SELECT file_id, {d} AS d FROM {norm} WHERE file_id IN ({pending})" for d in dates)
        window = (f"SELECT file_id, max(d) FILTER (WHERE d <= $today) AS date_from, "
                  f"min(d) FILTER (WHERE d > $today) AS date_until FROM ({values}) GROUP BY file_id")  # fmt: skip
    else:
        window = "SELECT NULL::VARCHAR AS file_id, NULL::DATE AS date_from, NULL::DATE AS date_until WHERE false"
    con.execute(f"""
        UPDATE norm_versions v SET validated = true, date_from = w.date_from, date_until = w.date_until,
                                   enterprises = coalesce(e.enterprises, '')
        FROM ({pending}) p
        LEFT JOIN ({window}) w USING (file_id)
        LEFT JOIN ({file_versions.enterprises_sql(t, pending)}) e USING (file_id)
        WHERE v.kind = {lit(t.kind)} AND v.file_id = p.file_id
    """, {"today": today} if dates else {})  # fmt: skip


def _reading_problems(con: duckdb.DuckDBPyConnection, t: Template) -> pd.DataFrame:
    """Rows of the new versions refused while the file was read (values right of the header, a cell too long),
    as failures of the check `read_problem`, each with its own reason."""
    df = con.execute("""
        SELECT n._row_key AS row_key, 'read_problem' AS check_id, coalesce(p.column_key, '') AS columns,
               p.problem_zh
        FROM __new_rows n JOIN intake_row_problems p USING (file_id, row_no)
        ORDER BY n._row_key
    """).df()
    return df.astype({"row_key": "int64", "check_id": "str", "columns": "str", "problem_zh": "str"})


def validate_kind(con: duckdb.DuckDBPyConnection, t: Template, today: dt.date | None = None) -> ValidationResult:
    """Normalise and validate one kind. When DuckDB runs out of memory, the largest current file of the
    kind is refused (too large for this server) and the rest is tried again: one file never costs the
    other files their rows."""
    while True:
        try:
            normalize(con, t, today)
            return validate(con, t, today)
        except duckdb.OutOfMemoryException:
            largest = con.execute(
                "SELECT file_id FROM intake_files WHERE kind = ? AND is_current AND status = 'ingested' "
                "ORDER BY file_id IN (SELECT file_id FROM norm_versions WHERE validated), "  # a new file first
                "rows_read DESC, size_bytes DESC LIMIT 1",
                [t.kind],
            ).fetchall()
            if not largest:
                raise
            refuse_file(con, largest[0][0], TOO_BIG_ZH)


def refuse_file(con: duckdb.DuckDBPyConnection, file_id: str, problem_zh: str) -> None:
    """Refuse a registered file version after the fact; its previous readable version, if any, is in use again."""
    kind = con.execute(
        "UPDATE intake_files SET status = 'unreadable', problem_zh = ? WHERE file_id = ? RETURNING kind",
        [problem_zh, file_id],
    ).fetchall()[0][0]
    refresh_current(con, kind)


def _log_removed(con: duckdb.DuckDBPyConnection, t: Template, checked: str) -> int | None:
    """Log the ids of the staged rows about to be removed for the scoring; returns the log entry's number for
    the rows staged next, or None when this rewrite is most of the kind (logged as "everything changed")."""
    stg = staging_table(t.kind)
    seq = file_versions.next_change(con)
    removed = f"""SELECT x.* FROM {stg} x WHERE x.file_id NOT IN ({checked})
                  UNION ALL SELECT x.* FROM {stg} x SEMI JOIN __affected a ON a.file_id = x.file_id AND a.row_no = x.row_no"""
    staged, rewritten = con.execute(
        f"SELECT (SELECT count(*) FROM {stg}), (SELECT count(*) FROM ({removed})) + (SELECT count(*) FROM __affected)"
    ).fetchall()[0]
    if rewritten > max(file_versions.REWRITE_SHARE * staged, file_versions.REWRITE_MIN_ROWS):
        con.execute("INSERT INTO staged_changes VALUES (?, ?, NULL)", [seq, t.kind])
        return None
    file_versions.log_staged_changes(con, t, seq, removed)
    return seq


def _write_results(con: duckdb.DuckDBPyConnection, t: Template) -> None:
    """Rewrite the failures (with file, row, header and raw value), quarantine and staging rows of the
    `__affected` rows, and drop those of versions no longer checked. Runs inside validate's transaction."""
    headers = pd.DataFrame({"col": t.keys, "header": [f.header for f in t.fields]})
    con.register("__headers", headers)
    kind, norm = t.kind, norm_table(t.kind)
    raw_cols = ", ".join(quote(k) for k in t.keys)
    checked = f"SELECT file_id FROM norm_versions WHERE kind = {lit(kind)} AND validated"
    logged = _log_removed(con, t, checked) if kind in KINDS else None
    try:
        for table, of_kind in (("validation_failures", True), ("quarantine", True), (staging_table(kind), False)):
            where = f"kind = {lit(kind)} AND " if of_kind else ""
            con.execute(f"DELETE FROM {table} WHERE {where}file_id NOT IN ({checked})")
            con.execute(f"DELETE FROM {table} x USING __affected a WHERE {where}x.file_id = a.file_id "
                        f"AND x.row_no = a.row_no")  # fmt: skip
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE __failures AS
            SELECT r.file_id, r.row_no, r.check_id, r.columns, r.problem_zh, NULL::VARCHAR[] AS dup_where
            FROM row_failures r JOIN __affected a USING (file_id, row_no) WHERE r.kind = {lit(kind)}
            UNION ALL
            SELECT c.file_id, c.row_no, f.check_id, f.columns, f.problem_zh, c._dup_where
            FROM __cross_failures f JOIN __cross c ON c._row_key = f.row_key
        """)
        con.execute(f"""
            INSERT INTO validation_failures
            WITH f AS (
                SELECT f.*, n.source_file, n._record_id
                FROM __failures f JOIN {norm} n USING (file_id, row_no)
            ),
            raw AS (
                UNPIVOT (SELECT r.file_id, r.row_no, {", ".join("r." + quote(k) for k in t.keys)}
                         FROM raw_{kind} r SEMI JOIN f ON f.file_id = r.file_id AND f.row_no = r.row_no)
                ON {raw_cols} INTO NAME col VALUE raw_value
            ),
            cells AS (
                SELECT f.file_id, f.row_no, f.check_id, c.col, c.pos
                FROM f, unnest(string_split(f.columns, ',')) WITH ORDINALITY AS c(col, pos)
            ),
            described AS (
                SELECT c.file_id, c.row_no, c.check_id,
                       CASE WHEN count(*) = 1 THEN any_value(h.header)  -- headers hold 、: a list is quoted
                            ELSE string_agg('“' || h.header || '”', '，' ORDER BY c.pos) END AS headers_zh,
                       string_agg('“' || h.header || '”' || coalesce('为“' || raw.raw_value || '”', '为空'), '，'
                                  ORDER BY c.pos) AS values_raw
                FROM cells c
                JOIN __headers h ON h.col = c.col
                LEFT JOIN raw ON raw.file_id = c.file_id AND raw.row_no = c.row_no AND raw.col = c.col
                GROUP BY c.file_id, c.row_no, c.check_id
            )
            SELECT '{kind}', f.file_id, f.source_file, f.row_no, f._record_id, f.check_id, f.columns,
                   d.headers_zh, d.values_raw, f.problem_zh,
                   '第' || f.row_no || '行：' || coalesce(d.values_raw || '，', '') || f.problem_zh ||
                   CASE WHEN f.check_id IN ('id_conflict', 'exact_repeat')
                        THEN '（同一编码出现在：' || array_to_string(f.dup_where, '、') || '）' ELSE '' END
            FROM f LEFT JOIN described d USING (file_id, row_no, check_id)  -- a whole-row problem names no cell
            ORDER BY f.source_file, f.row_no, f.check_id
        """)
        con.execute(f"""
            INSERT INTO quarantine
            SELECT '{kind}', n.file_id, n.source_file, n.row_no, n.department, n.survey_round,
                   n._record_id, count(*), string_agg(v.message_zh, '；' ORDER BY v.check_id <> 'read_problem', v.check_id),
                   any_value(to_json(r))
            FROM validation_failures v
            SEMI JOIN __affected a ON a.file_id = v.file_id AND a.row_no = v.row_no
            JOIN {norm} n ON n.file_id = v.file_id AND n.row_no = v.row_no
            JOIN raw_{kind} r ON r.file_id = v.file_id AND r.row_no = v.row_no
            WHERE v.kind = '{kind}'
            GROUP BY ALL
        """)
        typed = ", ".join(
            f"(n.{quote(f.key)} = '是') AS {quote(f.key)}" if f.type == "bool" else f"n.{quote(f.key)}"
            for f in t.fields
        )
        prov = ", ".join(c.split()[0] for c in PROVENANCE_COLUMNS.replace("\n", " ").split(",") if c.strip())
        con.execute(f"""
            INSERT INTO {staging_table(kind)} BY NAME
            SELECT {typed}, {", ".join("n." + c for c in prov.split(", "))}
            FROM {norm} n
            SEMI JOIN __affected a ON a._row_key = n._row_key
            ANTI JOIN __failures f ON f.file_id = n.file_id AND f.row_no = n.row_no
            ORDER BY n._row_key
        """)
        if logged is not None:  # the rows staged now
            file_versions.log_staged_changes(con, t, logged, f"""
                SELECT n.* FROM {norm} n SEMI JOIN __affected a ON a._row_key = n._row_key
                ANTI JOIN __failures f ON f.file_id = n.file_id AND f.row_no = n.row_no""")  # fmt: skip
    finally:
        con.unregister("__headers")


# --- only when the inputs changed ---------------------------------------------------------------------------


def validation_inputs(con: duckdb.DuckDBPyConnection, t: Template, today: dt.date | None = None) -> str:
    """Everything the kind's staging and quarantine depend on: its file versions in use (bytes and column
    mapping are in the file id), the template, the unit/town/round registries and the enterprises its rows name, the date
    (no date after today), the intake's code, and the kinds its cross-kind checks look up."""

    files = con.execute(
        "SELECT coalesce(list(file_id || ':' || status ORDER BY file_id), []) FROM intake_files "
        "WHERE kind = ? AND is_current",
        [t.kind],
    ).fetchall()[0][0]
    enterprises = _enterprises_named(con, t)
    return stage_inputs.fingerprint(
        files,
        stage_inputs.files_version(SCHEMAS_DIR / f"{t.kind}.yaml"),
        stage_inputs.reference_version("units.csv", "towns.csv", "survey_rounds.csv"),
        enterprises,
        today or district_today(),
        stage_inputs.code_version("pipeline/intake", "pipeline/engines"),
        [stage_inputs.recorded(con, f"validate:{c.requires}") for c in t.cross_kind],
    )


def _enterprises_named(con: duckdb.DuckDBPyConnection, t: Template) -> list:
    """The registry's enterprises (found by the scoring) that the rows of each normalised version in use name.
    A unit code is valid when it is a district unit or one of those enterprises, so a new enterprise
    revalidates a kind only when its rows name it (a new version changes the file list in any case)."""
    if not file_versions.norm_exists(con, t):
        return []
    in_use = (f"SELECT file_id FROM intake_files WHERE kind = {lit(t.kind)} AND is_current "
              "AND status = 'ingested'")  # fmt: skip
    return con.execute(f"SELECT file_id, enterprises FROM ({file_versions.enterprises_sql(t, in_use)}) "
                       "ORDER BY file_id").fetchall()  # fmt: skip


def current_result(con: duckdb.DuckDBPyConnection, t: Template) -> ValidationResult:
    """The kind's validation as its tables hold it (a step that found its inputs unchanged)."""
    valid = con.execute(f"SELECT count(*) FROM {staging_table(t.kind)}").fetchall()[0][0]
    bad = con.execute("SELECT count(*) FROM quarantine WHERE kind = ?", [t.kind]).fetchall()[0][0]
    by_check = dict(con.execute(
        "SELECT check_id, count(*) FROM validation_failures WHERE kind = ? GROUP BY ALL ORDER BY 2 DESC", [t.kind]
    ).fetchall())  # fmt: skip
    return ValidationResult(t.kind, valid + bad, valid, bad, by_check)


def validate_if_changed(
    con: duckdb.DuckDBPyConnection, t: Template, today: dt.date | None = None
) -> tuple[ValidationResult, bool]:
    """(result, whether it was computed now): normalise and validate the kind only when its inputs changed
    since the last validation (pipeline/platform/stage_inputs.py)."""
    step = f"validate:{t.kind}"
    if stage_inputs.recorded(con, step) == validation_inputs(con, t, today):
        return current_result(con, t), False
    result = validate_kind(con, t, today)
    stage_inputs.record(con, step, validation_inputs(con, t, today))  # after: validation may refuse a file
    stage_inputs.record(con, f"staged:{t.kind}", staged_version(con, t))
    return result, True


def staged_version(con: duckdb.DuckDBPyConnection, t: Template) -> str:
    """What validation gave the next stage: the valid rows per file version and the rows refused (a new day
    that validates the same rows the same way gives the same version, and scoring is not redone)."""
    valid = con.execute(
        f"SELECT coalesce(list((file_id, n) ORDER BY file_id), []) FROM "
        f"(SELECT file_id, count(*) AS n FROM {staging_table(t.kind)} GROUP BY file_id)"
    ).fetchall()[0][0]
    refused = con.execute(
        "SELECT md5(coalesce(string_agg(file_id || ':' || row_no, ',' ORDER BY file_id, row_no), '')) "
        "FROM quarantine WHERE kind = ?",
        [t.kind],
    ).fetchall()[0][0]
    return stage_inputs.fingerprint(valid, refused)
