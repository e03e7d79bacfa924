"""DuckDB SQL → Spark SQL, with sqlglot, for the rule set's views, conditions and scoring queries.

The rules are written once, in DuckDB SQL. sqlglot translates most of it; what it leaves wrong for our rules is
mended here on the syntax tree, each for a reason measured on Spark 4.3:

* `CREATE OR REPLACE VIEW` over temporary views must itself be a TEMPORARY view in Spark.
* QUALIFY becomes a subquery with a `_w` window column; under `SELECT *` it would leak into the view, so the
  outer star drops it (`* EXCEPT (_w)`, which Spark 4 reads).
* `/` is always a DOUBLE division in DuckDB; in Spark an integer over a decimal literal (`days / 365.25`) is a
  DECIMAL. The dividend is cast to DOUBLE.
* `regexp_full_match(s, p)` has no Spark twin: `s RLIKE '^(?:p)$'`.
* `printf('%g', x)`: Java's %g keeps trailing zeros (5.00000) where C's drops them (5); the zeros are dropped.

Whatever still does not translate raises `SparkTranspileError` naming what (the caller names the rule or view).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp, transforms
from sqlglot.dialects.spark import Spark
from sqlglot.errors import SqlglotError

# DuckDB functions sqlglot passes through by name that Spark does not have (what a rule author might reach for)
NOT_IN_SPARK = {"LIST_SUM", "TRY_STRPTIME", "STRPTIME", "NEXTVAL", "LIST_AGGREGATE", "REGEXP_MATCHES",
                "JSON_EXTRACT_STRING", "STRFTIME_TZ", "ARRAY_TO_STRING", "LIST_SORT", "LIST_DISTINCT"}  # fmt: skip


class SparkTranspileError(ValueError):
    """A DuckDB construct with no Spark translation; the message says which."""


class LitongSpark(Spark):
    """Spark SQL as sqlglot writes it, plus `* EXCEPT (…)` (Spark 4)."""

    class Generator(Spark.Generator):
        STAR_EXCEPT = "EXCEPT"


def statement(sql: str) -> list[str]:
    """Every statement of a DuckDB script (a view file), as Spark SQL."""
    try:
        trees = [t for t in sqlglot.parse(sql, read="duckdb") if t is not None]
    except SqlglotError as e:
        raise SparkTranspileError(f"sqlglot cannot read it: {_first_line(e)}") from e
    return [_generate(_mend(tree)) for tree in trees]


def expression(sql: str) -> str:
    """One DuckDB expression (a rule's condition), as Spark SQL."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except SqlglotError as e:
        raise SparkTranspileError(f"sqlglot cannot read it: {_first_line(e)}") from e
    return _generate(_mend(tree))


def query(sql: str) -> str:
    """One DuckDB query, as Spark SQL."""
    (out,) = statement(sql)
    return out


def _generate(tree: exp.Expression) -> str:
    try:
        return tree.sql(dialect=LitongSpark, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except SqlglotError as e:
        raise SparkTranspileError(f"no Spark translation: {_first_line(e)}") from e


def _mend(tree: exp.Expression) -> exp.Expression:
    tree = tree.transform(_temporary_view)
    tree = tree.transform(_qualify_without_leak)
    tree = tree.transform(_double_division)
    tree = tree.transform(_full_match)
    tree = tree.transform(_c_style_g)
    for fn in tree.find_all(exp.Anonymous):
        if str(fn.this).upper() in NOT_IN_SPARK:
            raise SparkTranspileError(f"{fn.this}() is DuckDB's own and has no Spark translation")
    return tree


def _temporary_view(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Create) and str(node.args.get("kind", "")).upper() == "VIEW":
        props = node.args.get("properties") or exp.Properties(expressions=[])
        if not any(isinstance(p, exp.TemporaryProperty) for p in props.expressions):
            props.append("expressions", exp.TemporaryProperty())
        node.set("properties", props)
    return node


def _qualify_without_leak(node: exp.Expression) -> exp.Expression:
    if not (isinstance(node, exp.Select) and node.args.get("qualify")):
        return node
    star_only = len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Star)
    out = transforms.eliminate_qualify(node)
    if star_only and isinstance(out, exp.Select) and isinstance(out.expressions[0], exp.Star):
        window_aliases = [
            e.alias for e in out.find(exp.Subquery).this.expressions if isinstance(e, exp.Alias) and e.alias == "_w"
        ]
        if window_aliases:
            out.expressions[0].set("except_", [exp.column(a) for a in window_aliases])
    return out


def _double_division(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Div) and not isinstance(node.this, exp.Cast):
        node.set("this", exp.cast(node.this, exp.DataType.build("DOUBLE")))
    return node


def _full_match(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.RegexpFullMatch):
        subject, pattern = node.this, node.expression
        if not isinstance(pattern, exp.Literal):
            raise SparkTranspileError("regexp_full_match() needs a literal pattern to be translated")
        return exp.RegexpLike(this=subject, expression=exp.Literal.string(f"^(?:{pattern.this})$"))
    return node


def _c_style_g(node: exp.Expression) -> exp.Expression:
    """printf('%g', x) as C prints it: Java's %.6g, then the trailing zeros of the mantissa dropped."""
    if not (isinstance(node, exp.Anonymous) and str(node.this).upper() == "PRINTF"):
        return node
    fmt, *args = node.expressions
    if not (isinstance(fmt, exp.Literal) and fmt.this == "%g" and len(args) == 1):
        return node
    java = exp.Anonymous(this="FORMAT_STRING", expressions=[exp.Literal.string("%.6g"), args[0]])
    no_zeros = exp.Anonymous(
        this="REGEXP_REPLACE",
        expressions=[java, exp.Literal.string(r"(\.[0-9]*?)0+(e|$)"), exp.Literal.string("$1$2")],
    )
    return exp.Anonymous(
        this="REGEXP_REPLACE", expressions=[no_zeros, exp.Literal.string(r"\.(e|$)"), exp.Literal.string("$1")]
    )


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
