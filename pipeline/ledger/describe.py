"""隐患描述 in Chinese: the evidence a rule fired on, told with the template's column headers and values.

`findings.evidence` is JSON (`{"visible_damage":true,"tilt_permille":1.5}`); the ledger shows it as
`是否有明显裂缝、变形、倾斜为“是”，倾斜率(‰)为1.5`. A key that is a template field takes its header from
schemas/<kind>.yaml; a key the rule views derive (screening_score, computed_grade …) takes its label from
rules/reference/evidence_labels.csv (key, label_zh, source); a key in neither is shown as it is.
Values: booleans 是/否, text in “”, dates as 2021-09-06, numbers without a trailing .0 (two decimals from 1
up, two significant digits below: 0.15, 0.92), lists joined with 、, an empty value as 未填报 (a template
field) or 无.

All of it is SQL: `install(con)` creates a temporary label table and the macro `evidence_zh(kind, evidence)`,
so the ledger update describes a million hazards in one statement, and the
same evidence always reads the same (the description is part of the hazard's recorded state).
"""

from __future__ import annotations

import csv
from functools import cache

import duckdb

from pipeline.platform.paths import RULES_DIR
from pipeline.registries.templates import KINDS, load_template
from pipeline.scoring.ruleset import load_kinds

LABELS_CSV = RULES_DIR / "reference" / "evidence_labels.csv"
BLANK_FIELD, BLANK_DERIVED = "未填报", "无"


@cache
def derived_labels() -> dict[str, str]:
    """Labels of the evidence columns the rule views derive (not template fields)."""
    with open(LABELS_CSV, encoding="utf-8") as f:
        return {r["key"]: r["label_zh"] for r in csv.DictReader(f)}


@cache
def evidence_labels() -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, key) -> (label, what an empty value reads as): template headers first, then the derived labels
    (the same for every kind)."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for kind in dict.fromkeys((*KINDS, *load_kinds())):  # a scored kind without a template (a view that aggregates)
        for field in load_template(kind).fields if kind in KINDS else ():
            out[(kind, field.key)] = (field.header, BLANK_FIELD)
        for key, label in derived_labels().items():
            out.setdefault((kind, key), (label, BLANK_DERIVED))
    return out


def macro_sql() -> str:
    """The macros: evidence_zh(kind, evidence JSON) -> the Chinese sentence part (no final 。). The labels are
    the temporary table `litong_evidence_labels`, joined once per statement (a subquery, which DuckDB turns
    into a join: a million hazards in well under a second; a lambda per key is ten times slower)."""
    return f"""
    CREATE OR REPLACE TEMP MACRO litong_number_zh(x) AS
        CASE WHEN abs(x) >= 1 THEN rtrim(rtrim(printf('%.2f', x), '0'), '.') ELSE printf('%.2g', x) END;
    CREATE OR REPLACE TEMP MACRO litong_value_zh(v) AS
        CASE json_type(v)
            WHEN 'BOOLEAN' THEN CASE WHEN v::VARCHAR = 'true' THEN '“是”' ELSE '“否”' END
            WHEN 'VARCHAR' THEN CASE WHEN regexp_full_match(json_extract_string(v, '$'), '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')
                                     THEN json_extract_string(v, '$')  -- a date: 2021-09-06
                                     ELSE '“' || json_extract_string(v, '$') || '”' END
            WHEN 'DOUBLE' THEN litong_number_zh(v::DOUBLE)
            WHEN 'ARRAY' THEN '“' || array_to_string(list_transform(json_extract(v, '$[*]'),
                lambda e: CASE json_type(e) WHEN 'DOUBLE' THEN litong_number_zh(e::DOUBLE)
                                             WHEN 'BOOLEAN' THEN CASE WHEN e::VARCHAR = 'true' THEN '是' ELSE '否' END
                                             ELSE json_extract_string(e, '$') END), '、') || '”'
            ELSE v::VARCHAR END;
    CREATE OR REPLACE TEMP MACRO evidence_zh(p_kind, p_evidence) AS (
        SELECT string_agg(coalesce(l.label, e.key)
                          || CASE WHEN e.v IS NULL OR json_type(e.v) = 'NULL' THEN coalesce(l.blank, '{BLANK_DERIVED}')
                                  ELSE '为' || litong_value_zh(e.v) END, '，' ORDER BY e.pos)
        FROM (SELECT key, pos, json_extract(p_evidence, '$."' || key || '"') AS v
              FROM (SELECT unnest(json_keys(p_evidence)) AS key, generate_subscripts(json_keys(p_evidence), 1) AS pos)) e
        LEFT JOIN litong_evidence_labels l ON l.kind = p_kind AND l.key = e.key);
    """


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Create the label table and the macros on `con`, temporary (before a statement that describes hazards)."""
    con.execute("CREATE OR REPLACE TEMP TABLE litong_evidence_labels (kind VARCHAR, key VARCHAR, label VARCHAR, "
                "blank VARCHAR)")  # fmt: skip
    rows = [(kind, key, label, blank) for (kind, key), (label, blank) in sorted(evidence_labels().items())]
    con.executemany("INSERT INTO litong_evidence_labels VALUES (?, ?, ?, ?)", rows)
    con.execute(macro_sql())


def describe_evidence(con: duckdb.DuckDBPyConnection, kind: str, evidence: str) -> str:
    """One evidence JSON in Chinese (for tests and tools; the ledger calls the macro in SQL)."""
    install(con)
    return con.execute("SELECT evidence_zh(?, ?::JSON)", [kind, evidence]).fetchone()[0]
