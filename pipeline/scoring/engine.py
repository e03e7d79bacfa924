"""Score one asset kind: every rule as set-based SQL over its view, in DuckDB.

Writes, for the kind, `findings` (asset, rule, points, evidence values) and `scores`
(asset, total, level, hard rule, top reasons), and records the run in `scoring_runs` with
the rule set's version, so a score can be reproduced. One transaction per kind.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from pipeline.engines.base import SCORING_INPUT, Engine, ScoringJob
from pipeline.engines.seam import current
from pipeline.formats.excel_safe import sql_text
from pipeline.intake.file_versions import context_version
from pipeline.platform.clock import beijing_now
from pipeline.platform.failures import rollback
from pipeline.platform.store import quote
from pipeline.registries.templates import load_template
from pipeline.scoring.ruleset import RuleSet, install

SCORING_DDL = [
    """CREATE TABLE IF NOT EXISTS rules (
        ruleset_version VARCHAR, rule_id VARCHAR, kind VARCHAR, file VARCHAR, title_zh VARCHAR, title_en VARCHAR,
        condition_sql VARCHAR, points DOUBLE, hard BOOLEAN, hazard BOOLEAN, hazard_grade VARCHAR,
        rectification VARCHAR, deadline_days INTEGER, measure_zh VARCHAR, responsible VARCHAR,
        source_ref VARCHAR, confidence VARCHAR, source_doc VARCHAR,
        PRIMARY KEY (ruleset_version, rule_id))""",
    "ALTER TABLE rules ADD COLUMN IF NOT EXISTS review_days INTEGER",
    "ALTER TABLE rules ADD COLUMN IF NOT EXISTS grade_basis VARCHAR",
    "ALTER TABLE rules ADD COLUMN IF NOT EXISTS source_zh VARCHAR",
    # an immediate measure's control deadline in days (rules' control_days), beside deadline_days
    "ALTER TABLE rules ADD COLUMN IF NOT EXISTS control_days INTEGER",
    """CREATE TABLE IF NOT EXISTS findings (
        run_id VARCHAR, ruleset_version VARCHAR, kind VARCHAR, asset_id VARCHAR, rule_id VARCHAR,
        points DOUBLE, hard BOOLEAN, hazard BOOLEAN, evidence JSON, survey_round VARCHAR, survey_date DATE)""",
    """CREATE TABLE IF NOT EXISTS scores (
        run_id VARCHAR, ruleset_version VARCHAR, kind VARCHAR, asset_id VARCHAR, asset_name VARCHAR,
        town_code VARCHAR, lon DOUBLE, lat DOUBLE, responsible_unit VARCHAR, survey_round VARCHAR,
        survey_date DATE, raw_points DOUBLE, score DOUBLE, level VARCHAR, level_zh VARCHAR, colour VARCHAR,
        hard_rule VARCHAR, n_findings INTEGER, n_hazards INTEGER, top_reasons VARCHAR, source_file VARCHAR,
        department VARCHAR)""",
    # the file and unit the latest record came from (the ledger's survey events record them)
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS source_file VARCHAR",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS department VARCHAR",
    # the asset's sector (rules/kinds.yaml `sector`): who supervises its hazards (reference/supervision.csv)
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS sector VARCHAR",
    # the assets each scoring wrote (asset_id NULL: the whole kind), read and dropped by the ledger update
    "CREATE TABLE IF NOT EXISTS rescored_assets (kind VARCHAR, asset_id VARCHAR)",
    # … and the same for the 待鉴定清单, read and dropped by its update (pipeline/scoring/worklist.py)
    "CREATE TABLE IF NOT EXISTS worklist_rescored (kind VARCHAR, asset_id VARCHAR)",
    # … and for the asset register, read and dropped when it is published (pipeline/publish/asset_register.py)
    "CREATE TABLE IF NOT EXISTS register_rescored (kind VARCHAR, asset_id VARCHAR)",
    """CREATE TABLE IF NOT EXISTS scoring_runs (
        run_id VARCHAR, ruleset_version VARCHAR, kind VARCHAR, scored_at TIMESTAMP, assets INTEGER,
        findings INTEGER, seconds DOUBLE)""",
]


REGISTER_LOG = "register_rescored"
RESCORED_LOGS = ("rescored_assets", "worklist_rescored", REGISTER_LOG)  # each read and emptied by its one reader


@dataclass
class ScoringResult:
    kind: str
    run_id: str
    ruleset_version: str
    assets: int
    findings: int
    levels: dict[str, int]
    seconds: float


def ensure_scoring_schema(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in SCORING_DDL:
        con.execute(ddl)


def record_rules(con: duckdb.DuckDBPyConnection, ruleset: RuleSet) -> None:
    """Keep every rule of this version, so an old score can be explained with the rule it used."""
    rows = [
        (ruleset.version, r.id, r.kind, r.file, r.title_zh, r.title_en, r.when, r.points, r.hard, r.hazard,
         r.hazard_grade, r.rectification, r.deadline_days, r.measure_zh, r.responsible, r.source_ref,
         r.confidence, r.source_doc, r.review_days, r.grade_basis, r.source_zh or None, r.control_days)
        for r in ruleset.rules
    ]  # fmt: skip
    con.executemany("INSERT OR REPLACE INTO rules VALUES (" + ", ".join("?" * 22) + ")", rows)


def input_select(ruleset: RuleSet, kind: str, source: str | None = None) -> str:
    """One scan of the kind's view (or of `source`, its rows for some assets): the asset's identity and the
    list of rules that fire on it.

    Every condition is evaluated in the same pass (like a hand-written CASE per rule); the
    evidence JSON is built only where the rule fires."""
    spec = ruleset.kinds[kind]
    hits = []
    for r in ruleset.for_kind(kind):
        evidence = ", ".join(f"{quote(c)}: {quote(c)}" for c in r.evidence)
        hits.append(
            f"CASE WHEN coalesce(({r.when}), false) THEN {{'rule_id': '{r.id}', 'points': {r.points}::DOUBLE, "
            f"'hard': {str(r.hard).lower()}, 'hazard': {str(r.hazard).lower()}, "
            f"'evidence': to_json({{{evidence}}})}} END"
        )
    hit_list = f"list_filter([{', '.join(hits)}], lambda h: h IS NOT NULL)" if hits else "[]"
    responsible = f"({spec.owner_code})::VARCHAR" if spec.owner_code else "responsible_unit"
    owner_name = f"({spec.owner_name})::VARCHAR" if spec.owner_name else "NULL::VARCHAR"
    sector = f"({spec.sector})::VARCHAR" if spec.sector else "NULL::VARCHAR"
    return f"""
    SELECT {quote(spec.id)}::VARCHAR AS asset_id, ({spec.name}) AS asset_name, ({spec.town}) AS town_code,
           ({spec.lon}) AS lon, ({spec.lat}) AS lat, {responsible} AS responsible_unit, {owner_name} AS owner_name,
           survey_round, survey_date, source_file, department, {sector} AS sector, {hit_list} AS hits
    FROM {source or spec.view}
    """


def input_sql(ruleset: RuleSet, kind: str, source: str | None = None) -> str:
    return f"CREATE OR REPLACE TEMP TABLE {SCORING_INPUT} AS {input_select(ruleset, kind, source)}"


# The enterprises that own a kind's assets, from its latest surveys: one row per enterprise and kind,
# supervised by the department whose folder its latest survey came from (never a value in the file).
ENTERPRISES_SQL = f"""
INSERT INTO enterprise_units
SELECT responsible_unit, arg_max(owner_name, (survey_round, survey_date, source_file)), 'enterprise',
       arg_max(department, (survey_round, survey_date, source_file)), ?,
       arg_max(source_file, (survey_round, survey_date, source_file)), max(survey_round)
FROM {SCORING_INPUT}
WHERE responsible_unit IS NOT NULL AND department IS NOT NULL
GROUP BY responsible_unit
"""


FINDINGS_SQL = f"""
SELECT asset_id, h.rule_id, h.points, h.hard, h.hazard, h.evidence, survey_round, survey_date
FROM (SELECT asset_id, survey_round, survey_date, unnest(hits) AS h FROM {SCORING_INPUT})
"""


@dataclass(frozen=True)
class LevelScale:
    """The rows of rules/reference/level_thresholds.csv a kind uses: its own (`kind`), else those of every
    kind ('*'); (level, min_score) highest first."""

    kind: str
    thresholds: list[tuple[str, float]]


def level_scale(con: duckdb.DuckDBPyConnection, kind: str) -> LevelScale:
    ((own,),) = con.execute("SELECT count(*) FROM ref_level_thresholds WHERE kind = ?", [kind]).fetchall()
    used = kind if own else "*"
    rows = con.execute(
        "SELECT level, min_score::DOUBLE FROM ref_level_thresholds WHERE kind = ? ORDER BY min_score DESC", [used]
    ).fetchall()
    return LevelScale(used, [(level, float(min_score)) for level, min_score in rows])


def scores_sql(ruleset: RuleSet, kind: str, run_id: str, scale: LevelScale) -> str:
    """The scores of the kind's assets from this run's findings. Portable SQL (Spark runs it, transpiled): the
    level is a CASE over the thresholds, highest first; a hard rule makes it red. The store computes the same
    values from each asset's own hits instead (`scores_from_hits_sql`)."""
    v = ruleset.version
    return f"""
    WITH totals AS (
        SELECT f.asset_id, sum(f.points) AS raw_points, count(*) AS n_findings,
               count(*) FILTER (WHERE f.hazard) AS n_hazards,
               min(f.rule_id) FILTER (WHERE f.hard) AS hard_rule,
               string_agg(f.rule_id || ' ' || r.title_zh || '（' || CAST(round(f.points) AS INTEGER) || '分）', '；'
                          ORDER BY f.points DESC, f.rule_id) AS reasons
        FROM findings f JOIN rules r ON r.rule_id = f.rule_id AND r.ruleset_version = '{v}'
        WHERE f.run_id = '{run_id}'
        GROUP BY f.asset_id
    ),
    assets AS (
        SELECT asset_id, asset_name, town_code, lon, lat, responsible_unit, survey_round, survey_date,
               source_file, department, sector
        FROM {SCORING_INPUT}
    ),
    scored AS (
        SELECT a.*, coalesce(t.raw_points, 0) AS raw_points, t.hard_rule, coalesce(t.n_findings, 0) AS n_findings,
               coalesce(t.n_hazards, 0) AS n_hazards, t.reasons
        FROM assets a LEFT JOIN totals t ON t.asset_id = a.asset_id
    )
    {_scores_select(run_id, v, kind, scale)}
    """


def scores_from_hits_sql(ruleset: RuleSet, kind: str, run_id: str, scale: LevelScale) -> str:
    """The same scores as `scores_sql`, each computed from its own asset's row of SCORING_INPUT (the list of the
    rules that fire on it, `hits`): one streaming pass, nothing joined, grouped or sorted across assets. Reading
    the findings back and grouping them by asset (an ordered string_agg per asset) went past DuckDB's memory
    limit at 5 M buildings, and writing it in slices of assets scanned every finding once per slice (issue 30:
    scores_buildings 7x slower at 5x the buildings). Every rule's points are whole numbers, so the sums are
    those of `scores_sql` in any order; the reasons are in its order (points high to low, then rule id), which
    the rules alone fix: each rule's text is a constant, kept where the asset's hits name it."""
    ordered = sorted(ruleset.for_kind(kind), key=lambda r: (-r.points, r.id))  # as string_agg orders them
    reasons = ", ".join(f"CASE WHEN list_contains(ids, {sql_text(r.id)}) THEN {sql_text(_reason(r.id, r.title_zh, r.points))} END"
                        for r in ordered if r.title_zh is not None)  # fmt: skip
    return f"""
    WITH scored AS (
        SELECT asset_id, asset_name, town_code, lon, lat, responsible_unit, survey_round, survey_date,
               source_file, department, sector,
               coalesce(list_sum(list_transform(hits, lambda h: h.points)), 0)::DOUBLE AS raw_points,
               list_min(list_transform(list_filter(hits, lambda h: h.hard), lambda h: h.rule_id)) AS hard_rule,
               len(hits) AS n_findings, len(list_filter(hits, lambda h: h.hazard)) AS n_hazards,
               {f"nullif(concat_ws('；', {reasons}), '')" if reasons else "NULL::VARCHAR"} AS reasons
        FROM (SELECT *, list_transform(hits, lambda h: h.rule_id) AS ids FROM {SCORING_INPUT})
    )
    {_scores_select(run_id, ruleset.version, kind, scale)}
    """


def _reason(rule_id: str, title: str, points: float) -> str:
    """`B07 标题（30分）`: a rule's part of an asset's reasons, its points rounded as DuckDB rounds (half away
    from zero)."""
    return f"{rule_id} {title}（{int(math.copysign(math.floor(abs(points) + 0.5), points))}分）"


def _scores_select(run_id: str, version: str, kind: str, scale: LevelScale) -> str:
    """The score rows from `scored` (an asset's identity, raw points, hard rule, counts and reasons)."""
    whens = " ".join(f"WHEN s.score >= {m!r} THEN {sql_text(level)}" for level, m in scale.thresholds)
    level = f"CASE WHEN s.hard_rule IS NOT NULL THEN 'red' {whens} END"
    return f"""
    SELECT '{run_id}' AS run_id, '{version}' AS ruleset_version, '{kind}' AS kind, s.asset_id, s.asset_name,
           s.town_code, s.lon, s.lat, s.responsible_unit, s.survey_round, s.survey_date, s.raw_points, s.score,
           l.level, l.level_zh, l.colour, s.hard_rule, s.n_findings, s.n_hazards, s.reasons AS top_reasons,
           s.source_file, s.department, s.sector
    FROM (SELECT *, least(100, raw_points) AS score FROM scored) s
    JOIN ref_level_thresholds l ON l.level = {level} AND l.kind = {sql_text(scale.kind)}
    """


def score_kind(
    con: duckdb.DuckDBPyConnection,
    ruleset: RuleSet,
    kind: str,
    assets: str | None = None,
    in_transaction: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    engine: Engine | None = None,
    tables: tuple[str, ...] | None = None,
) -> ScoringResult:
    """Score the kind: replace its findings and scores with a fresh, versioned scoring — of every asset, or of
    the assets listed in the table `assets` (asset_id). An asset kind whose assets name an enterprise is always
    scored whole (the enterprises are its latest surveys' owners). `in_transaction` runs in the transaction
    that writes the scores (the caller's own bookkeeping). The SQL is computed by `engine` (default: the one
    this deployment asks for, pipeline/engines/seam.py): in the store (DuckDB), or on Spark, whose findings and
    scores of every asset are loaded in the same transaction. `tables`: the staging tables the kind's view
    reads (default: its rules/kinds.yaml `staging`)."""
    started = time.perf_counter()
    engine = engine or current()
    ensure_scoring_schema(con)
    install(con, ruleset.rules_dir)
    spec = ruleset.kinds[kind]
    if spec.owner_code or engine.scores_whole_kinds():
        assets = None
    job = scoring_job(con, ruleset, kind, uuid.uuid4().hex[:12], assets, tuple(tables or spec.deps))
    engine.score_input(con, job)
    run_id = job.run_id
    only = f" AND asset_id IN (SELECT asset_id FROM {assets})" if assets else ""
    con.execute("BEGIN TRANSACTION")
    try:
        record_rules(con, ruleset)
        con.execute(f"DELETE FROM findings WHERE kind = ?{only}", [kind])
        con.execute(f"DELETE FROM scores WHERE kind = ?{only}", [kind])
        engine.insert_results(con, job)
        if not assets:
            con.execute("DELETE FROM enterprise_units WHERE survey_kind = ?", [kind])
        if spec.owner_code:
            con.execute(ENTERPRISES_SQL, [kind])
        for log in RESCORED_LOGS:
            con.execute(
                f"INSERT INTO {log} SELECT ?, asset_id FROM {assets}" if assets
                else f"INSERT INTO {log} VALUES (?, NULL)", [kind],
            )  # fmt: skip
        if in_transaction:
            in_transaction(con)
        assets_n, n_findings = con.execute(
            "SELECT (SELECT count(*) FROM scores WHERE kind = ?), (SELECT count(*) FROM findings WHERE kind = ?)",
            [kind, kind],
        ).fetchall()[0]
        seconds = time.perf_counter() - started
        con.execute(
            "INSERT INTO scoring_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
            [run_id, ruleset.version, kind, beijing_now(), assets_n, n_findings, seconds],
        )
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # never masks the error (a failed COMMIT leaves no transaction)
        raise
    engine.finish(job)
    levels = dict(con.execute("SELECT level, count(*) FROM scores WHERE kind = ? GROUP BY level", [kind]).fetchall())
    return ScoringResult(kind, run_id, ruleset.version, assets_n, n_findings, levels, seconds)


def scoring_job(
    con: duckdb.DuckDBPyConnection,
    ruleset: RuleSet,
    kind: str,
    run_id: str,
    assets: str | None,
    tables: tuple[str, ...],
) -> ScoringJob:
    """What the engine computes for one scoring of the kind: the SQL of the scan, the findings and the scores."""
    spec = ruleset.kinds[kind]
    statements = (input_sql(ruleset, kind, None),)
    if assets:  # the view with its filter is still computed whole by DuckDB: cut it down first
        scoped = scoped_view(con, spec.view, spec.id, tables, assets)
        statements = (*scoped, input_sql(ruleset, kind, SCOPED_VIEW)) if scoped else (
            f"CREATE OR REPLACE TEMP TABLE __scoring_scope AS SELECT * FROM {spec.view} "
            f"WHERE {quote(spec.id)} IN (SELECT asset_id FROM {assets})",
            input_sql(ruleset, kind, "__scoring_scope"),
        )  # fmt: skip
    scale = level_scale(con, kind)
    return ScoringJob(
        ruleset=ruleset,
        kind=kind,
        run_id=run_id,
        input_select=input_select(ruleset, kind),
        input_sql=statements,
        findings_select=FINDINGS_SQL,
        scores_sql=scores_sql(ruleset, kind, run_id, scale),
        scores_from_hits=scores_from_hits_sql(ruleset, kind, run_id, scale),
        tables=tables,
        staging_context=staging_context,
    )


SCOPED_VIEW = "__scoped_view"  # temp view: the kind's view over the staged rows of the assets to score


def scoped_view(
    con: duckdb.DuckDBPyConnection, view: str, id_column: str, tables: tuple[str, ...], assets: str
) -> tuple[str, ...] | None:
    """The statements that make SCOPED_VIEW: the kind's view read from copies of its staging tables holding only
    the rows of the assets in `assets`, so its work grows with them, not with the district (DuckDB computes the
    view's latest-survey window over every staged row before a filter on its result: 3 s for 10 k of 1 M
    buildings). The same rows as the view's, filtered: an asset's row of the view is computed from the staged
    rows naming it (the views pick each asset's latest survey; rules/views/*.sql). None when the view reads
    another view (its tables could not all be cut) or does not read each table by name."""
    ((sql,),) = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ? AND NOT temporary", [view]).fetchall()
    others = [v for (v,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal AND view_name <> ?",
                                        [view]).fetchall()]  # fmt: skip
    words = set(re.findall(r"\w+", sql))
    if any(v in words for v in others) or not all(t in words for t in tables):
        return None
    statements = [
        f"CREATE OR REPLACE TEMP TABLE __scope_{t} AS SELECT * FROM {t} WHERE {quote(id_column)} IN "
        f"(SELECT asset_id FROM {assets})"
        for t in tables
    ]
    body = re.sub(rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+{re.escape(view)}\s+AS\s", "", sql, flags=re.I)
    body = re.sub(r"\b(" + "|".join(map(re.escape, tables)) + r")\b", r"__scope_\1", body)
    return (*statements, f"CREATE OR REPLACE TEMP VIEW {SCOPED_VIEW} AS {body.rstrip().rstrip(';')}")


def staging_context(table: str) -> str:
    """What the staged rows of `table` were normalised with (the Spark engine publishes them again on a change)."""
    return context_version(load_template(table.removeprefix("stg_")))
