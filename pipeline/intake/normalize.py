"""Normalise raw survey text into typed columns, as DuckDB queries generated per kind.

Everything here is generated from the template definitions. `normalize_sql` reads the rows of the file
versions to (re)do (file_versions.py) from `raw_<kind>` and appends them to `norm_<kind>`, which holds for
every field
  * `<key>`       the normalised, typed value (NULL when empty or unknown),
  * `<key>__txt`  for numbers, years and dates: the cleaned text the type is read from
                  (dates: the ISO form when the text is a real date, else marked as not one),
one boolean `_chk_<id>` per cross-field check within the row (NULL when an input is missing), the record
id, a content hash and `_scope` (where ids must be unique). `cross_sql` computes the checks across rows,
files and kinds for the rows a change touched. Great Expectations then validates both (see validate.py).
"""

from __future__ import annotations

import duckdb

from pipeline.intake.credit_code import CHARSET, WEIGHTS
from pipeline.platform.store import quote, raw_table, staging_table
from pipeline.registries.templates import UNKNOWN_MARKERS, Field, Template, towns

FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000\u00a0"
HALF_WIDTH = "".join(chr(c) for c in range(0x21, 0x7F)) + "  "
DELETED = "\ufeff\u200b"  # in FROM with no counterpart in TO: removed
NEEDS_TRANSLATE = "[\uff01-\uff5e\u3000\u00a0\ufeff\u200b]"
ZERO_WIDTH = "\ufeff\u200b\u200c\u200d\u2060"
EDGE_SPACE = " \t\r\n\u3000\u00a0"
FREE_TEXT_SPECIAL = "[" + ZERO_WIDTH + EDGE_SPACE[1:] + "]"  # plain trim() is enough without these
NUMBER_UNITS = "平方米|㎡|m2|千米|km|毫米|mm|MPa|mpa|米|m|吨|t|%|‰|度|°|辆|人|层|万元"


def lit(value: str) -> str:
    """A SQL string literal for our own definition data (never for uploaded values)."""
    return "'" + str(value).replace("'", "''") + "'"


def lit_list(values) -> str:
    return "(" + ", ".join(lit(v) for v in values) + ")"


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Text cleaning and the GB 32100 check digit as DuckDB macros (one place each)."""
    con.execute(
        # translate() is slow in DuckDB (~7 µs a call): only call it on text that needs it.
        f"CREATE OR REPLACE TEMP MACRO clean_text(s) AS nullif(trim(CASE WHEN regexp_matches(s, {lit(NEEDS_TRANSLATE)}) "
        f"THEN translate(s, {lit(FULL_WIDTH + DELETED)}, {lit(HALF_WIDTH)}) ELSE s END), '')"
    )
    # Free text (addresses, measures, names) is kept as typed, full-width "，" included: only the
    # edges are trimmed and zero-width characters dropped.
    con.execute(
        f"CREATE OR REPLACE TEMP MACRO clean_free_text(s) AS nullif(CASE WHEN regexp_matches(s, {lit(FREE_TEXT_SPECIAL)}) "
        f"THEN trim(translate(s, {lit(ZERO_WIDTH)}, ''), {lit(EDGE_SPACE)}) ELSE trim(s) END, '')"
    )
    con.execute(
        "CREATE OR REPLACE TEMP MACRO clean_number(s) AS nullif(regexp_replace("
        f"replace(replace(s, ',', ''), ' ', ''), '({NUMBER_UNITS})$', ''), '')"
    )
    weights = "[" + ", ".join(str(w) for w in WEIGHTS) + "]"
    con.execute(
        "CREATE OR REPLACE TEMP MACRO gb32100_ok(code) AS "
        f"CASE WHEN NOT regexp_full_match(code, '[{CHARSET}]{{18}}') THEN false ELSE "
        f"substr({lit(CHARSET)}, ((31 - list_sum(list_transform(range(17), lambda i: "
        f"({weights})[i + 1] * (instr({lit(CHARSET)}, substr(code, i + 1, 1)) - 1))) % 31) % 31)::BIGINT + 1, 1)"
        " = substr(code, 18, 1) END"
    )


def _not_unknown(expr: str, f: Field) -> str:
    markers = [m for m in UNKNOWN_MARKERS if m not in f.spelling_map()]
    return f"CASE WHEN {expr} IN {lit_list(markers)} THEN NULL ELSE {expr} END"


def _town_code_of(expr: str) -> str:
    """Town code from a code or a town name."""
    cases = " ".join(f"WHEN {lit(n)} THEN {lit(c)}" for c, n in towns().items())
    return f"CASE {expr} {cases} ELSE {expr} END"


def _town_name_of(expr: str) -> str:
    cases = " ".join(f"WHEN {lit(c)} THEN {lit(n)}" for c, n in towns().items())
    return f"CASE {expr} {cases} END"


def field_columns(f: Field, town_name: bool = True) -> list[str]:
    """SQL select items for one field, reading the cleaned column `c."<key>"` as `prepared` left it (`town_name`:
    the template has a 乡镇 column, which stands in for a missing town code)."""
    c = f"c.{quote(f.key)}"
    k = quote(f.key)
    txt = quote(f.key + "__txt")
    if f.type in ("text", "unit_code", "credit_code"):
        expr = _not_unknown(c, f)
        if f.type != "text":
            expr = f"upper(replace({expr}, ' ', ''))"
        return [f"{expr} AS {k}"]
    if f.type in ("enum", "bool"):
        cases = " ".join(f"WHEN {lit(a)} THEN {lit(v)}" for a, v in f.spelling_map().items())
        return [f"CASE {c} {cases} ELSE {_not_unknown(c, f)} END AS {k}"]
    if f.type == "town_code":
        name = "c.town_name" if f.key == "town_code" and town_name else "NULL"
        return [f"coalesce({_town_code_of(_not_unknown(c, f))}, {_town_code_of(name)}) AS {k}"]
    if f.type == "town_list":
        parts = f"list_filter(string_split_regex({_not_unknown(c, f)}, '[;；、,，\\s]+'), lambda x: x <> '')"
        mapped = f"list_transform({parts}, lambda x: {_town_code_of('x')})"
        codes = lit_list(towns())
        return [
            f"nullif(array_to_string({mapped}, ';'), '') AS {k}",
            f"nullif(array_to_string(list_filter({parts}, lambda x: {_town_code_of('x')} NOT IN {codes}), '、'), '') "
            f"AS {quote(f.key + '__bad')}",
        ]
    if f.type in ("integer", "decimal"):
        t = c  # clean_number(_not_unknown(...)), once (`prepared`)
        sql_type = "BIGINT" if f.type == "integer" else "DOUBLE"
        pattern = r"[-+]?\d+(\.0+)?" if f.type == "integer" else r"[-+]?(\d+\.?\d*|\.\d+)"
        typed = (
            f"CASE WHEN regexp_full_match({t}, '{pattern}') THEN TRY_CAST(TRY_CAST({t} AS DOUBLE) AS {sql_type}) END"
        )
        return [f"{t} AS {txt}", f"{typed} AS {k}"]
    if f.type == "year":
        t = c  # _not_unknown(...), once (`prepared`)
        canon = f"CASE WHEN regexp_full_match({t}, '\\d{{4}}(年.*|[-/.]\\d{{1,2}}.*)?') THEN left({t}, 4) ELSE {t} END"
        return [
            f"{canon} AS {txt}",
            f"TRY_CAST(CASE WHEN regexp_full_match({canon}, '\\d{{4}}') THEN {canon} END AS INTEGER) AS {k}",
        ]
    if f.type == "date":
        t = c  # _not_unknown(...), once (`prepared`)
        parsed = f"c.{quote(f.key + '__date')}"
        return [
            f"CASE WHEN {parsed} IS NOT NULL THEN strftime({parsed}, '%Y-%m-%d') ELSE {t} || ' (not a date)' END AS {txt}",
            f"{parsed} AS {k}",
        ]
    raise ValueError(f"unhandled field type {f.type}")


def prepared(f: Field) -> list[str]:
    """The select items that prepare a field's cleaned text for `field_columns`, reading `c."<key>"`: what its typed
    columns use several times is computed once, in a projection of its own (DuckDB evaluated a number's
    unit-stripping four times, a date's parsing three times: issue 30)."""
    c, k = f"c.{quote(f.key)}", quote(f.key)
    if f.type in ("integer", "decimal"):
        return [f"clean_number({_not_unknown(c, f)}) AS {k}"]
    if f.type in ("year", "date"):
        return [f"{_not_unknown(c, f)} AS {k}"]
    return []


def parsed_dates(f: Field) -> list[str]:
    """A date field's parsed date (NULL when its text is not one), read by `field_columns` from `c."<key>__date"`."""
    if f.type != "date":
        return []
    t = f"p.{quote(f.key)}"
    unified = (
        f"regexp_replace(replace(replace(replace(replace(split_part({t}, ' ', 1), '年', '-'), '月', '-'), '日', ''), "
        f"'/', '-'), '\\.', '-', 'g')"
    )
    parsed = (
        f"coalesce(try_strptime({unified}, '%Y-%m-%d'), "
        f"CASE WHEN regexp_full_match({t}, '\\d{{8}}') THEN try_strptime({t}, '%Y%m%d') END)::DATE"
    )
    return [f"{parsed} AS {quote(f.key + '__date')}"]


def builtin_checks(t: Template) -> list[str]:
    """Checks every template of this shape gets: town code/name agreement, credit-code digit."""
    out = []
    if t.has("town_code") and t.has("town_name"):
        names = lit_list(towns().values())
        out.append(
            f"CASE WHEN t.town_name IS NULL OR t._town_code_given IS NULL THEN NULL "
            f"WHEN t.town_name NOT IN {names} THEN false "
            f"ELSE {_town_name_of('t.town_code')} IS NOT DISTINCT FROM t.town_name END AS _chk_town_agree"
        )
    for f in t.fields:
        if f.type == "credit_code":
            out.append(f"gb32100_ok(t.{quote(f.key)}) AS {quote('_chk_' + f.key + '_checksum')}")
    return out


def is_free_text(f: Field, t: Template) -> bool:
    """Text typed by people (not an id key, not a code with a pattern): kept as typed."""
    return f.type == "text" and f.key not in t.id_keys and not f.pattern


def norm_table(kind: str) -> str:
    return f"norm_{kind}"


def id_complete_sql(t: Template, alias: str) -> str:
    return " AND ".join(f"{alias}.{quote(i)} IS NOT NULL" for i in t.id_keys)


def normalize_sql(t: Template) -> str:
    """The normalised rows of the file versions listed in the temp table `__pending(file_id)`: typed values,
    the checks within a row, the record id, a content hash and `_scope` (where ids must be unique: the survey
    round, or the file). Checks across rows and files are `cross_sql`'s."""
    clean = ", ".join(
        f"{'clean_free_text' if is_free_text(f, t) else 'clean_text'}(r.{quote(f.key)}) AS {quote(f.key)}"
        for f in t.fields
    )
    typed = ", ".join(item for f in t.fields for item in field_columns(f, t.has("town_name")))
    items = [item for f in t.fields for item in prepared(f)]
    replace = f" REPLACE ({', '.join(items)})" if items else ""
    dates = "".join(", " + item for f in t.fields for item in parsed_dates(f))
    checks = [f"({chk.sql}) AS {quote('_chk_' + chk.id)}" for chk in t.checks]
    checks += builtin_checks(t)
    scope = "f.file_id" if t.unique_within == "file" else "f.survey_round"
    given = ", c.town_code AS _town_code_given" if t.has("town_code") else ""
    id_expr = "concat_ws('|', " + ", ".join(f"t.{quote(k)}::VARCHAR" for k in t.id_keys) + ")"
    content = "md5(concat_ws('\x1f', " + ", ".join(f"coalesce(t.{quote(k)}::VARCHAR, '\x00')" for k in t.keys) + "))"
    return f"""
    WITH files AS (
        SELECT file_id, rel_path, sha256, uploaded_at, department, survey_round
        FROM intake_files WHERE kind = {lit(t.kind)} AND file_id IN (SELECT file_id FROM __pending)
    ),
    c AS (
        SELECT r.file_id, r.row_no, {clean}
        FROM {raw_table(t.kind)} r JOIN files USING (file_id)
    ),
    p AS (
        SELECT c.*{replace} FROM c
    ),
    d AS (
        SELECT p.*{dates} FROM p
    ),
    t AS (
        SELECT c.file_id, c.row_no, {typed}{given} FROM d AS c
    ),
    k AS (
        SELECT t.*, {", ".join(checks) + "," if checks else ""}
            {id_expr} AS _record_id, {content} AS _content, ({id_complete_sql(t, "t")}) AS _id_complete
        FROM t
    )
    SELECT
        x._row_key,
        k.*,
        f.rel_path AS source_file, f.sha256 AS file_sha256, f.uploaded_at, f.department, f.survey_round,
        {scope} AS _scope
    FROM k JOIN files f USING (file_id) JOIN __row_keys x ON x.file_id = k.file_id AND x.row_no = k.row_no
    """


def row_keys_sql(t: Template, first_key: int) -> str:
    """`_row_key` of the rows of the versions in `__pending`: after `first_key`, in (file path, row) order. Numbered
    on these three narrow columns and joined to the normalised rows: a window over the whole wide rows sorted
    them all (~30 s of a 1 M-row kind's 45 s normalisation, issue 30)."""
    return f"""
    SELECT r.file_id, r.row_no, {int(first_key)} + row_number() OVER (ORDER BY f.rel_path, r.row_no) AS _row_key
    FROM {raw_table(t.kind)} r JOIN intake_files f USING (file_id)
    WHERE f.kind = {lit(t.kind)} AND f.file_id IN (SELECT file_id FROM __pending)
    """


def insert_normalized(con: duckdb.DuckDBPyConnection, t: Template) -> None:
    """Append the normalised rows of the versions in `__pending` to norm_<kind> (created on first use)."""
    install_macros(con)
    table = norm_table(t.kind)
    con.execute("CREATE OR REPLACE TEMP TABLE __row_keys (file_id VARCHAR, row_no INTEGER, _row_key BIGINT)")
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM ({normalize_sql(t)}) LIMIT 0")
    first = con.execute(f"SELECT coalesce(max(_row_key), 0) FROM {table}").fetchone()[0]
    con.execute(f"INSERT INTO __row_keys {row_keys_sql(t, first)}")
    con.execute(f"INSERT INTO {table} BY NAME {normalize_sql(t)}")
    con.execute("DROP TABLE __row_keys")


def cross_sql(t: Template) -> str:
    """The checks across rows, files and kinds for the rows of norm_<kind> listed in `__affected(_row_key)`:
    an id given twice with different content, an exact repeat, where else the id appears, and each
    cross-kind lookup. `__affected` holds every row of each id it touches, so each window sees them all.

    The windows run only on the rows of an id given more than once (`shared`): a row alone with its id (its
    content is hashed with its id, so it is alone with its content too) is unique and no repeat, whatever the
    windows would say, and partitioning a whole 1 M-row kind twice cost ~10 s (issue 30)."""
    checks = []
    for chk in t.cross_kind:
        cols = ", ".join(f"a.{quote(col)}" for col in chk.columns)
        ref = ", ".join(quote(col) for col in chk.columns)
        checks.append(
            f"CASE WHEN {' OR '.join(f'a.{quote(col)} IS NULL' for col in chk.columns)} THEN NULL "
            f"ELSE ({cols}) IN (SELECT ({ref}) FROM {staging_table(chk.requires)}) END AS {quote('_chk_' + chk.id)}"
        )
    return f"""
    WITH {_affected_and_shared(t)},
    w AS (
        SELECT m._row_key,
            count(DISTINCT m._content) OVER w = 1 AS _id_unique,
            row_number() OVER (PARTITION BY m._scope, m._content ORDER BY m.source_file, m.row_no) = 1 AS _not_repeat,
            list(m.source_file || '第' || m.row_no || '行') OVER (w ORDER BY m.source_file, m.row_no
                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS _dup_where
        FROM ({shared_rows_sql()}) m
        WINDOW w AS (PARTITION BY m._scope, m._record_id)
    )
    SELECT a._row_key, a.file_id, a.row_no,
        CASE WHEN a._id_complete THEN coalesce(w._id_unique, true) END AS _chk_id_unique,
        CASE WHEN a._id_complete THEN coalesce(w._not_repeat, true) END AS _chk_not_repeat,
        CASE WHEN a._id_complete THEN w._dup_where END AS _dup_where
        {"".join(", " + c for c in checks)}
    FROM a LEFT JOIN w USING (_row_key)
    """


def _affected_and_shared(t: Template) -> str:
    """CTEs `a`: the affected rows (the columns the checks read), `shared`: the ids given more than once among them."""
    looked_up = "".join(f", n.{quote(col)}" for col in dict.fromkeys(c for chk in t.cross_kind for c in chk.columns))
    return f"""a AS (
        SELECT n._row_key, n.file_id, n.row_no, n.source_file, n._scope, n._record_id, n._content,
               n._id_complete{looked_up}
        FROM {norm_table(t.kind)} n
        WHERE n._row_key IN (SELECT _row_key FROM __affected)
    ),
    shared AS (
        SELECT _scope, _record_id FROM a GROUP BY ALL HAVING count(*) > 1 AND bool_or(_id_complete)
    )"""


def shared_rows_sql() -> str:
    """The rows the windows of `cross_sql` run on, over its CTEs `a` and `shared`."""
    return (
        "SELECT a.* FROM a SEMI JOIN shared s ON a._scope IS NOT DISTINCT FROM s._scope AND a._record_id = s._record_id"
    )


def shared_rows_count_sql(t: Template) -> str:
    """How many affected rows the windows of `cross_sql` see (what its work grows with)."""
    return f"WITH {_affected_and_shared(t)} SELECT count(*) FROM ({shared_rows_sql()})"
