"""Validate `norm_<kind>` with a Great Expectations suite built from the template, and
split it into the typed staging table and the quarantine, with every reason in Chinese.

The suite is generated from `schemas/<kind>.yaml` (required, type, range, allowed values,
pattern, towns, units, cross-field checks, unique ids). Each expectation carries in its
`meta` the check id, the columns and the Chinese problem text that goes on the receipt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import duckdb
import pandas as pd

from pipeline.clock import district_today
from pipeline.intake.ingest import TOO_BIG_ZH, refresh_current
from pipeline.intake.normalize import install_macros, lit, normalize
from pipeline.intake.schema import TYPE_LABELS_ZH, Field, Template, towns, units
from pipeline.store import PROVENANCE_COLUMNS, quote, raw_table, staging_table

TYPE_REGEX = {
    "integer": r"^[-+]?\d+(?:\.0+)?$",
    "decimal": r"^[-+]?(?:\d+\.?\d*|\.\d+)$",
    "year": r"^\d{4}$",
    "date": r"^\d{4}-\d{2}-\d{2}$",
}
CREDIT_CODE_REGEX = r"^[0-9A-HJ-NPQRTUWXY]{18}$"
DATE_MIN = dt.datetime(1950, 1, 1)


@dataclass(frozen=True)
class Expectation:
    """One expectation of the suite, in our words (turned into a GE object in `run_suite`)."""

    ge_type: str  # class name in great_expectations.expectations
    column: str
    kwargs: dict
    check_id: str
    columns: tuple[str, ...]
    problem_zh: str


@dataclass
class ValidationResult:
    kind: str
    rows: int
    valid: int
    quarantined: int
    failures_by_check: dict[str, int] = field(default_factory=dict)
    ge_success: bool = True


def _field_expectations(f: Field, today: dt.date) -> list[Expectation]:
    k, cols = f.key, (f.key,)
    txt = f"{k}__txt" if f.type in TYPE_REGEX else k
    out = []
    if f.required:
        out.append(Expectation("ExpectColumnValuesToNotBeNull", txt, {}, f"{k}:required", cols,
                               "必填项为空，或填写了无、/、不详、未知，须填写实际值"))  # fmt: skip
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
                               f"{k}:known_town", (k, "town_name") if k == "town_code" else cols,
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


def build_expectations(t: Template, today: dt.date) -> list[Expectation]:
    out = [e for f in t.fields for e in _field_expectations(f, today)]
    for chk in (*t.checks, *t.cross_kind):
        out.append(_flag(f"_chk_{chk.id}", chk.id, chk.columns, chk.message))
    if t.has("town_code") and t.has("town_name"):
        out.append(_flag("_chk_town_agree", "town_agree", ("town_code", "town_name"),
                         "乡镇代码与乡镇名称不一致"))  # fmt: skip
    out.append(_flag("_chk_id_unique", "id_conflict", t.id_keys,
                     "编码在本轮调查中重复出现且内容不同，请核实后只保留正确的一条"))  # fmt: skip
    out.append(_flag("_chk_not_repeat", "exact_repeat", t.id_keys,
                     "与前面一行内容完全相同的重复行，已忽略"))  # fmt: skip
    return out


@cache
def _context():
    """One ephemeral GE context per process (it writes nothing to disk), progress bars off."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


_SUITES: dict[tuple[str, str], tuple] = {}


def _suite_for(kind: str, expectations: list[Expectation]):
    """The batch definition and suite of one template's expectations, built once per process.

    The suite is created with all its expectations at once: adding them one by one makes GE
    re-serialise the whole suite each time (quadratic; seconds per validation)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    key = (kind, repr(expectations))
    if key in _SUITES:
        return _SUITES[key]
    context = _context()
    name = f"survey_{kind}_{len(_SUITES)}"
    batch_def = (
        context.data_sources.add_pandas(name).add_dataframe_asset(f"norm_{kind}")
        .add_batch_definition_whole_dataframe("current_files")
    )  # fmt: skip
    ge_expectations = [
        getattr(gxe, e.ge_type)(column=e.column, **e.kwargs, meta={"index": i, "check_id": e.check_id})
        for i, e in enumerate(expectations)
    ]
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=ge_expectations))
    _SUITES[key] = (batch_def, suite)
    return _SUITES[key]


def run_suite(
    load_column: Callable[[str], pd.DataFrame], t: Template, expectations: list[Expectation]
) -> tuple[pd.DataFrame, bool]:
    """Run the suite with Great Expectations; returns one row per (row key, failed check).

    The expectations of each column are validated on a one-column frame, loaded just for
    them: GE filters the whole batch frame for every metric (one wide frame costs columns x
    expectations), and one column at a time keeps memory to one column."""
    frames, success = [], True
    by_column: dict[str, list[Expectation]] = {}
    for e in expectations:
        by_column.setdefault(e.column, []).append(e)
    for column, group in by_column.items():
        batch_def, suite = _suite_for(t.kind, group)
        batch = batch_def.get_batch(batch_parameters={"dataframe": load_column(column)})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        success = success and bool(result.success)
        for r in result.results:
            e = group[r.expectation_config.meta["index"]]
            if r.exception_info.get("raised_exception"):
                raise RuntimeError(f"expectation {e.check_id} on {e.column} raised: {r.exception_info}")
            keys = r.result.get("unexpected_index_list") or []
            if keys:
                frames.append(pd.DataFrame({"row_key": pd.array(keys, dtype="int64"), "check_id": e.check_id,
                                            "columns": ",".join(e.columns), "problem_zh": e.problem_zh}))  # fmt: skip
    empty = pd.DataFrame(
        {"row_key": pd.Series([], dtype="int64")}
        | {c: pd.Series([], dtype="str") for c in ("check_id", "columns", "problem_zh")}
    )
    return (pd.concat(frames, ignore_index=True) if frames else empty), success


def column_loader(con: duckdb.DuckDBPyConnection, t: Template) -> Callable[[str], pd.DataFrame]:
    """Loads one column of norm_<kind> via Arrow (much faster than `.df()`), indexed by row key."""

    def load(column: str) -> pd.DataFrame:
        table = con.sql(f"SELECT _row_key, {quote(column)} FROM norm_{t.kind}").to_arrow_table()
        df = table.to_pandas(date_as_object=False).set_index("_row_key")
        df.index.name = None  # GE then reports plain index values
        return df

    return load


def validate(con: duckdb.DuckDBPyConnection, t: Template, today: dt.date | None = None) -> ValidationResult:
    """Validate the normalised rows of one kind and rewrite its staging and quarantine rows."""
    expectations = build_expectations(t, today or district_today())
    rows = con.execute(f"SELECT count(*) FROM norm_{t.kind}").fetchall()[0][0]
    failures, success = run_suite(column_loader(con, t), t, expectations)
    failures = pd.concat([failures, _reading_problems(con, t)], ignore_index=True)
    con.register("__failures", failures)
    try:
        _write_results(con, t)
    finally:
        con.unregister("__failures")
    by_check = dict(failures.groupby("check_id").size().sort_values(ascending=False).items()) if len(failures) else {}
    n_bad = failures["row_key"].nunique() if len(failures) else 0
    return ValidationResult(t.kind, rows, rows - n_bad, n_bad, {k: int(v) for k, v in by_check.items()}, success)


def _reading_problems(con: duckdb.DuckDBPyConnection, t: Template) -> pd.DataFrame:
    """Rows refused while the file was read (values right of the header, a cell too long), as failures
    of the check `read_problem`, each with its own reason."""
    df = con.execute(f"""
        SELECT n._row_key AS row_key, 'read_problem' AS check_id, coalesce(p.column_key, '') AS columns,
               p.problem_zh
        FROM norm_{t.kind} n JOIN intake_row_problems p USING (file_id, row_no)
        ORDER BY n._row_key
    """).df()
    return df.astype({"row_key": "int64", "check_id": "str", "columns": "str", "problem_zh": "str"})


def validate_kind(con: duckdb.DuckDBPyConnection, t: Template, today: dt.date | None = None) -> ValidationResult:
    """Normalise and validate one kind. When DuckDB runs out of memory, the largest current file of the
    kind is refused (too large for this server) and the rest is tried again: one file never costs the
    other files their rows."""
    while True:
        try:
            normalize(con, t)
            return validate(con, t, today)
        except duckdb.OutOfMemoryException:
            largest = con.execute(
                "SELECT file_id FROM intake_files WHERE kind = ? AND is_current AND status = 'ingested' "
                "ORDER BY rows_read DESC, size_bytes DESC LIMIT 1",
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


def _write_results(con: duckdb.DuckDBPyConnection, t: Template) -> None:
    """Failures with file, row, header and raw value; then quarantine and staging. One transaction."""
    headers = pd.DataFrame({"col": t.keys, "header": [f.header for f in t.fields]})
    con.register("__headers", headers)
    kind = t.kind
    raw_cols = ", ".join(quote(k) for k in t.keys)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM validation_failures WHERE kind = ?", [kind])
        con.execute("DELETE FROM quarantine WHERE kind = ?", [kind])
        con.execute(f"DELETE FROM {staging_table(kind)}")
        con.execute(f"""
            INSERT INTO validation_failures
            WITH f AS (
                SELECT f.row_key, f.check_id, f.columns, f.problem_zh, n.file_id, n.row_no,
                       n.source_file, n._record_id, n._dup_where
                FROM __failures f JOIN norm_{kind} n ON n._row_key = f.row_key
            ),
            raw AS (
                UNPIVOT (SELECT file_id, row_no, {raw_cols} FROM raw_{kind}
                         WHERE (file_id, row_no) IN (SELECT (file_id, row_no) FROM f))
                ON {raw_cols} INTO NAME col VALUE raw_value
            ),
            cells AS (
                SELECT f.row_key, f.check_id, c.col, c.pos
                FROM f, unnest(string_split(f.columns, ',')) WITH ORDINALITY AS c(col, pos)
            ),
            described AS (
                SELECT c.row_key, c.check_id,
                       string_agg(h.header, '、' ORDER BY c.pos) AS headers_zh,
                       string_agg('“' || h.header || '”' || coalesce('为“' || raw.raw_value || '”', '为空'), '，'
                                  ORDER BY c.pos) AS values_raw
                FROM cells c
                JOIN f USING (row_key, check_id)
                JOIN __headers h ON h.col = c.col
                LEFT JOIN raw ON raw.file_id = f.file_id AND raw.row_no = f.row_no AND raw.col = c.col
                GROUP BY c.row_key, c.check_id
            )
            SELECT '{kind}', f.file_id, f.source_file, f.row_no, f._record_id, f.check_id, f.columns,
                   d.headers_zh, d.values_raw, f.problem_zh,
                   '第' || f.row_no || '行：' || coalesce(d.values_raw || '，', '') || f.problem_zh ||
                   CASE WHEN f.check_id IN ('id_conflict', 'exact_repeat')
                        THEN '（同一编码出现在：' || array_to_string(f._dup_where, '、') || '）' ELSE '' END
            FROM f LEFT JOIN described d USING (row_key, check_id)  -- a whole-row problem names no cell
            ORDER BY f.source_file, f.row_no, f.check_id
        """)
        con.execute(f"""
            INSERT INTO quarantine
            SELECT '{kind}', n.file_id, n.source_file, n.row_no, n.department, n.survey_round,
                   n._record_id, count(*), string_agg(v.message_zh, '；' ORDER BY v.check_id <> 'read_problem', v.check_id),
                   any_value(to_json(r))
            FROM validation_failures v
            JOIN norm_{kind} n ON n.file_id = v.file_id AND n.row_no = v.row_no
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
            FROM norm_{kind} n
            WHERE n._row_key NOT IN (SELECT row_key FROM __failures)
        """)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("__headers")


# --- only when the inputs changed ---------------------------------------------------------------------------


def validation_inputs(con: duckdb.DuckDBPyConnection, t: Template, today: dt.date | None = None) -> str:
    """Everything the kind's staging and quarantine depend on: its file versions in use (bytes and column
    mapping are in the file id), the template, the unit/town/round registries and the enterprises its rows name, the date
    (no date after today), the intake's code, and the kinds its cross-kind checks look up."""
    from pipeline import stage_inputs
    from pipeline.paths import SCHEMAS_DIR

    files = con.execute(
        "SELECT coalesce(list(file_id || ':' || status ORDER BY file_id), []) FROM intake_files "
        "WHERE kind = ? AND is_current",
        [t.kind],
    ).fetchone()[0]
    enterprises = _enterprises_named(con, t)
    return stage_inputs.fingerprint(
        files,
        stage_inputs.files_version(SCHEMAS_DIR / f"{t.kind}.yaml"),
        stage_inputs.reference_version("units.csv", "towns.csv", "survey_rounds.csv"),
        enterprises,
        today or district_today(),
        stage_inputs.code_version("pipeline/intake"),
        [stage_inputs.recorded(con, f"validate:{c.requires}") for c in t.cross_kind],
    )


def _enterprises_named(con: duckdb.DuckDBPyConnection, t: Template) -> list[str]:
    """The enterprises found by the scoring that the kind's unit-code columns name. A unit code is valid when
    it is a district unit or one of those enterprises, so a new enterprise revalidates a kind only when its
    rows name it (the scoring that finds enterprises runs after validation: fingerprinting them all would
    revalidate every kind naming units once more after every hazchem or pipeline change)."""
    columns = [f.key for f in t.fields if f.type == "unit_code"]
    if not columns or not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'enterprise_units'").fetchall():
        return []
    install_macros(con)
    used = " UNION ".join(
        f"SELECT upper(replace(clean_text(r.{quote(c)}), ' ', '')) FROM {raw_table(t.kind)} r "
        f"JOIN intake_files f USING (file_id) WHERE f.kind = {lit(t.kind)} AND f.is_current AND f.status = 'ingested'"
        for c in columns
    )
    return [c for (c,) in con.execute(
        f"SELECT unit_code FROM enterprise_units WHERE unit_code IN ({used}) ORDER BY unit_code").fetchall()]  # fmt: skip


def current_result(con: duckdb.DuckDBPyConnection, t: Template) -> ValidationResult:
    """The kind's validation as its tables hold it (a step that found its inputs unchanged)."""
    valid = con.execute(f"SELECT count(*) FROM {staging_table(t.kind)}").fetchone()[0]
    bad = con.execute("SELECT count(*) FROM quarantine WHERE kind = ?", [t.kind]).fetchone()[0]
    by_check = dict(con.execute(
        "SELECT check_id, count(*) FROM validation_failures WHERE kind = ? GROUP BY ALL ORDER BY 2 DESC", [t.kind]
    ).fetchall())  # fmt: skip
    return ValidationResult(t.kind, valid + bad, valid, bad, by_check)


def validate_if_changed(
    con: duckdb.DuckDBPyConnection, t: Template, today: dt.date | None = None
) -> tuple[ValidationResult, bool]:
    """(result, whether it was computed now): normalise and validate the kind only when its inputs changed
    since the last validation (pipeline/stage_inputs.py)."""
    from pipeline import stage_inputs

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
    from pipeline import stage_inputs

    valid = con.execute(
        f"SELECT coalesce(list((file_id, n) ORDER BY file_id), []) FROM "
        f"(SELECT file_id, count(*) AS n FROM {staging_table(t.kind)} GROUP BY file_id)"
    ).fetchone()[0]
    refused = con.execute(
        "SELECT md5(coalesce(string_agg(file_id || ':' || row_no, ',' ORDER BY file_id, row_no), '')) "
        "FROM quarantine WHERE kind = ?",
        [t.kind],
    ).fetchone()[0]
    return stage_inputs.fingerprint(valid, refused)
