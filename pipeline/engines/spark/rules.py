"""The rule set on Spark: its tables and views in a Spark session, and the checks that it runs there as it
does in DuckDB.

`check` refuses a rule set whose conditions or views do not translate to Spark SQL (or that Spark does not
accept), naming each rule and view and why; `examples_on_spark` runs every rule's own examples through the
transpiled view and condition, so a rule that fires differently on Spark is caught by name (tests/test_spark.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from pipeline.engines.base import (
    RuleSetError,
    RuleSetLike,  # the rule set installs itself (its methods)
)
from pipeline.engines.spark import transpile
from pipeline.engines.spark.frames import duckdb_to_spark, read_path
from pipeline.platform.store import ensure_schema, quote, table_columns

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


_CHECKED: set[tuple[int, str, str]] = set()


def view_file(ruleset: RuleSetLike, kind: str) -> Path:
    return ruleset.rules_dir / "views" / f"{kind}.sql"


def translation_problems(ruleset: RuleSetLike, kind: str) -> list[str]:
    """Each rule condition and view statement of the kind that sqlglot cannot translate, with why."""
    problems = []
    path = view_file(ruleset, kind)
    try:
        transpile.statement(path.read_text(encoding="utf-8"))
    except transpile.SparkTranspileError as e:
        problems.append(f"rules/views/{path.name}: does not translate to Spark SQL: {e}")
    for r in ruleset.for_kind(kind):
        try:
            transpile.expression(r.when)
        except transpile.SparkTranspileError as e:
            problems.append(f"{r.file}: rule {r.id}: condition does not translate to Spark SQL: {e}")
    return problems


def check(spark: SparkSession, ruleset: RuleSetLike, kind: str) -> None:
    """Refuse the kind's rules for Spark when one does not translate or does not compile there (once per
    session and rule set version)."""
    key = (id(spark), ruleset.version, kind)
    if key in _CHECKED:
        return
    problems = translation_problems(ruleset, kind)
    if not problems:
        scratch = _scratch_spark(spark)
        with _example_store(ruleset) as ex:
            _push_staging(scratch, ex)
            register_reference(scratch, ex, ruleset)
            create_views(scratch, ruleset, kind)
            problems = compile_problems(scratch, ruleset, kind)
    if problems:
        raise RuleSetError("rule set refused for Spark:\n  " + "\n  ".join(problems))
    _CHECKED.add(key)


def compile_problems(spark: SparkSession, ruleset: RuleSetLike, kind: str) -> list[str]:
    """Every condition and its evidence analysed by Spark: all in one query, then one at a time only when that
    fails (for the message that names the rule)."""
    spec = ruleset.kinds[kind]
    rules = ruleset.for_kind(kind)
    together = ", ".join(
        ", ".join([f"coalesce(({r.when}), false) AS {quote('r_' + r.id)}", *(quote(c) for c in r.evidence)])
        for r in rules
    )
    try:
        spark.sql(transpile.query(f"SELECT {together or '1'} FROM {spec.view} LIMIT 0")).schema  # noqa: B018
        return []
    except Exception:
        pass
    problems = []
    for r in rules:
        cols = ", ".join(quote(c) for c in r.evidence) or "1"
        sql = f"SELECT {cols} FROM {spec.view} WHERE coalesce(({r.when}), false) LIMIT 0"
        try:
            spark.sql(transpile.query(sql)).schema  # noqa: B018 - analysing the plan is the check
        except Exception as e:  # pyspark's AnalysisException and friends
            problems.append(f"{r.file}: rule {r.id}: Spark does not accept the condition or evidence: {_first(e)}")
    return problems


def register_parquet(spark: SparkSession, con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> None:
    """A staging table published as Parquet (staging.py), as the Spark table of the same name."""
    if not any(folder.glob("town_code=*/*.parquet")):
        duckdb_to_spark(spark, con, f"SELECT * FROM {table} WHERE false", table)
        return
    df = spark.read.option("basePath", read_path(folder)).parquet(read_path(folder))
    df.select(*table_columns(con, table)).createOrReplaceTempView(table)  # the store's columns, in its order


def register_reference(spark: SparkSession, con: duckdb.DuckDBPyConnection, ruleset: RuleSetLike) -> None:
    """The reference tables as installed in the store (ref_*), and the rule titles of this version (`rules`)."""
    refs = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND table_name LIKE 'ref\\_%' ESCAPE '\\'"
    ).fetchall()
    for (name,) in refs:
        duckdb_to_spark(spark, con, f"SELECT * FROM {name}", name)
    rows = [(ruleset.version, r.id, r.title_zh) for r in ruleset.rules]
    spark.createDataFrame(rows, "ruleset_version string, rule_id string, title_zh string").createOrReplaceTempView(
        "rules"
    )


def create_views(spark: SparkSession, ruleset: RuleSetLike, kind: str, _made: set[str] | None = None) -> None:
    """The kind's view, after the views of other kinds it reads (v_shelter_capacity reads v_shelters)."""
    made = set() if _made is None else _made
    made.add(kind)
    path = view_file(ruleset, kind)
    text = path.read_text(encoding="utf-8")
    for other, spec in ruleset.kinds.items():
        if (
            other not in made
            and re.search(rf"\b{re.escape(spec.view)}\b", text)
            and view_file(ruleset, other).is_file()
        ):
            create_views(spark, ruleset, other, made)
    for statement in transpile.statement(text):
        try:
            spark.sql(statement)
        except Exception as e:
            raise RuleSetError(f"rules/views/{path.name}: Spark does not accept it: {_first(e)}") from e


def examples_on_spark(spark: SparkSession, ruleset: RuleSetLike, kind: str) -> dict[str, list[tuple[dict, bool, bool]]]:
    """For each rule of the kind: (example, should fire, fires on Spark), every example loaded at once through
    the transpiled view and condition (a rule whose examples name the asset id runs them one at a time)."""
    spec = ruleset.kinds[kind]
    scratch = _scratch_spark(spark)
    out: dict[str, list[tuple[dict, bool, bool]]] = {}
    rules = ruleset.for_kind(kind)
    batched = [r for r in rules if not any(spec.id in ex for ex in (*r.fires, *r.silent))]
    with _example_store(ruleset) as ex:
        register_reference(scratch, ex, ruleset)
        cases: dict[str, list[tuple[str, dict, bool]]] = {}
        for r in batched:
            all_cases = [(e, True) for e in r.fires] + [(e, False) for e in r.silent]
            cases[r.id] = [(f"EX-{r.id}-{n}", e, want) for n, (e, want) in enumerate(all_cases)]
            for asset, example, _ in cases[r.id]:
                ruleset.load_example(ex, spec, {**example, spec.id: asset})
        _push_examples(scratch, ex, ruleset, spec)
        fired = _fired_together(scratch, spec.view, spec.id, batched)
        for r in batched:
            out[r.id] = [(e, want, asset in fired[r.id]) for asset, e, want in cases[r.id]]
        ruleset.clear_examples(ex, spec)
        for r in (r for r in rules if r not in batched):
            out[r.id] = []
            for example, want in [(e, True) for e in r.fires] + [(e, False) for e in r.silent]:
                ruleset.load_example(ex, spec, {spec.id: "EXAMPLE-1", **example})
                _push_examples(scratch, ex, ruleset, spec)
                out[r.id].append((example, want, bool(_fired(scratch, spec.view, spec.id, r.when))))
                ruleset.clear_examples(ex, spec)
    return out


def _fired_together(spark: SparkSession, view: str, id_column: str, rules: list) -> dict[str, set[str]]:
    """The assets each rule fires on, every condition in one pass over the view."""
    if not rules:
        return {}
    flags = ", ".join(f"coalesce(({r.when}), false) AS {quote('r_' + r.id)}" for r in rules)
    rows = spark.sql(transpile.query(f"SELECT {quote(id_column)} AS asset, {flags} FROM {view}")).collect()
    return {r.id: {row["asset"] for row in rows if row["r_" + r.id]} for r in rules}


def _fired(spark: SparkSession, view: str, id_column: str, when: str) -> set[str]:
    sql = transpile.query(f"SELECT {quote(id_column)} FROM {view} WHERE coalesce(({when}), false)")
    return {row[0] for row in spark.sql(sql).collect()}


class _example_store:
    """A scratch DuckDB with the store's tables and the rule set's reference tables and views (as verify uses)."""

    def __init__(self, ruleset: RuleSetLike):
        self.ruleset = ruleset

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con = duckdb.connect()
        ensure_schema(self.con)
        self.ruleset.install(self.con)
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def _push_examples(spark: SparkSession, con: duckdb.DuckDBPyConnection, ruleset: RuleSetLike, spec) -> None:
    """The loaded examples to Spark: through the staging tables and the transpiled view, or, for a kind whose
    examples are rows of its view (`examples: view`), as that view itself."""
    if spec.examples == "view":
        duckdb_to_spark(spark, con, f"SELECT * FROM {ruleset.example_source(con, spec)}", spec.view)
        return
    _push_staging(spark, con)
    create_views(spark, ruleset, spec.kind)


def _push_staging(spark: SparkSession, con: duckdb.DuckDBPyConnection) -> None:
    for (table,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'stg\\_%' ESCAPE '\\'"
    ).fetchall():
        duckdb_to_spark(spark, con, f"SELECT * FROM {table}", table)


def _scratch_spark(spark: SparkSession) -> SparkSession:
    """A session of the same Spark context with its own temporary views (the examples never meet the data)."""
    from pipeline.engines.spark.session import configure

    return configure(spark.newSession())


def _first(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
