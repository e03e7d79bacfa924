"""Spark as the second engine (issue 16): the transpiled rule set runs on Spark as it does in DuckDB.

Every Spark test is in this file, so one pytest worker runs them all and they share the process's one Spark
session (pipeline/engines/spark/session.py; local[2]).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.engines import settings as engine
from pipeline.engines.duckdb import column_loader, run_suite
from pipeline.engines.spark import rules as spark_rules
from pipeline.engines.spark import staging as staging_parquet
from pipeline.engines.spark import transpile
from pipeline.intake.validate import row_expectations
from pipeline.platform.paths import PROJECT_ROOT
from pipeline.registries.templates import load_template
from pipeline.scoring.ruleset import RuleSetError, load_ruleset, parse_rules
from tests.conftest import Deployment, run_all

pytest.importorskip("pyspark")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

RULESET = parse_rules()


@pytest.fixture(scope="module")
def spark():
    from pipeline.engines.spark.session import get_spark

    return get_spark("local[2]")


# --- the transpiler: no Spark needed ---------------------------------------------------------------------


def test_qualify_over_a_star_does_not_leak_its_window_column():
    sql = transpile.query("SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY a ORDER BY b DESC) = 1")
    assert sql.startswith("SELECT * EXCEPT (_w) FROM (SELECT *, ROW_NUMBER() OVER")
    assert sql.endswith("WHERE _w = 1")


def test_views_become_temporary_and_division_stays_double():
    (view,) = transpile.statement("CREATE OR REPLACE VIEW v AS SELECT date_diff('day', a, b) / 365.25 AS y FROM t")
    assert view.startswith("CREATE OR REPLACE TEMPORARY VIEW v AS")
    assert "CAST(DATEDIFF(DAY, a, b) AS DOUBLE) / 365.25" in view


def test_duckdb_only_functions_are_translated_or_refused_by_name():
    assert "RLIKE '^(?:\\\\d{2,7}-\\\\d{2}-\\\\d)$'" in transpile.expression(
        r"regexp_full_match(cas, '\d{2,7}-\d{2}-\d')"
    )
    for duckdb_only in ("list_sum(xs) > 1", "try_strptime(s, '%Y') IS NULL", "nextval('seq') > 0"):
        with pytest.raises(transpile.SparkTranspileError, match="no Spark translation"):
            transpile.expression(duckdb_only)


def test_a_rule_that_does_not_translate_is_named_with_its_reason(tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    text = (rules / "buildings.yaml").read_text(encoding="utf-8")
    (rules / "buildings.yaml").write_text(
        text.replace(
            "when: \"appraisal_grade = 'D'\"", "when: \"list_sum([floors_above, 1]) > 0 AND appraisal_grade = 'D'\""
        ),
        encoding="utf-8",
    )
    problems = spark_rules.translation_problems(parse_rules(rules), "buildings")
    assert problems == [
        "rules/buildings.yaml: rule B01: condition does not translate to Spark SQL: "
        "list_sum() is DuckDB's own and has no Spark translation"
    ]
    load_ruleset(rules)  # DuckDB runs it: the default engine takes the rule set
    monkeypatch.setenv("LITONG_ENGINE", "spark")
    with pytest.raises(RuleSetError, match="rule B01: condition does not translate to Spark SQL: list_sum"):
        load_ruleset(rules)  # the rule loader on the Spark engine refuses it, by name


def test_the_engine_is_chosen_in_one_place(monkeypatch):
    monkeypatch.delenv("LITONG_ENGINE", raising=False)
    assert engine.engine() == "duckdb"
    monkeypatch.setenv("LITONG_ENGINE", " Spark ")
    assert engine.engine() == "spark"
    monkeypatch.setenv("LITONG_ENGINE", "hadoop")
    with pytest.raises(engine.EngineError, match="LITONG_ENGINE='hadoop': must be one of duckdb, spark"):
        engine.engine()


def test_the_duckdb_engine_never_imports_pyspark_or_starts_a_jvm(tmp_path):
    """A DuckDB scoring in a fresh process: pyspark is not imported by our code and no java process is
    started (Great Expectations itself may import pyspark when it is installed, which starts no JVM)."""
    script = """
import os, sys
from pathlib import Path
from pipeline.platform import store
from pipeline.scoring.engine import score_kind
from pipeline.scoring.ruleset import load_ruleset
with store.connect(Path(sys.argv[1])) as con:
    score_kind(con, load_ruleset(), "buildings")
children = [p for p in os.listdir("/proc") if p.isdigit() and
            open(f"/proc/{p}/stat").read().split()[3] == str(os.getpid())]
print(len(children), "pipeline.engines.spark.session" in sys.modules, "pyspark.sql.session" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if k != "LITONG_ENGINE"}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.duckdb")], capture_output=True,
                         text=True, cwd=PROJECT_ROOT, env=env, check=True)  # fmt: skip
    assert out.stdout.split() == ["0", "False", "False"]


# --- every rule on Spark, by its own examples -----------------------------------------------------------


@pytest.fixture(scope="module")
def spark_examples(spark):
    ruleset = load_ruleset()
    return {kind: spark_rules.examples_on_spark(spark, ruleset, kind) for kind in ruleset.kinds}


@pytest.mark.parametrize("rule", RULESET.rules, ids=[r.id for r in RULESET.rules])
def test_every_rule_fires_on_spark_on_its_own_examples(rule, spark_examples):
    results = spark_examples[rule.kind][rule.id]
    assert len(results) == len(rule.fires) + len(rule.silent) > 1
    wrong = [(example, want) for example, want, fired in results if fired != want]
    assert not wrong, f"{rule.id} on Spark: {wrong}"


def test_the_rule_set_compiles_on_spark_and_a_bad_condition_is_named(spark, tmp_path):
    ruleset = load_ruleset()
    for kind in ruleset.kinds:
        spark_rules.check(spark, ruleset, kind)
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    text = (rules / "bridges.yaml").read_text(encoding="utf-8")
    (rules / "bridges.yaml").write_text(text.replace("when: \"condition_class = '5'\"", "when: \"no_such_column > 1\""),
                                        encoding="utf-8")  # fmt: skip
    broken = parse_rules(rules)  # parsed, not verified: DuckDB's verify would refuse it first
    assert broken.version != ruleset.version
    with pytest.raises(RuleSetError, match=r"rules/bridges.yaml: rule R01: Spark does not accept the condition"):
        spark_rules.check(spark, broken, "bridges")


# --- the sample on both engines ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def both_engines(sample, spark, tmp_path_factory):
    """The bundled sample through every asset on DuckDB (the shared `sample` run) and, in a second deployment,
    on Spark (validation and scoring), without the charts and briefing."""
    duck, duck_result = sample
    assert duck_result.success
    on_spark = Deployment(tmp_path_factory.mktemp("spark_sample"))
    shutil.rmtree(on_spark.data_raw)
    shutil.copytree(PROJECT_ROOT / "data_raw", on_spark.data_raw)
    mp = pytest.MonkeyPatch()
    mp.setenv("LITONG_ENGINE", "spark")
    try:
        result = run_all(on_spark, publish=False)
    finally:
        mp.undo()
    assert result.success
    return duck, on_spark


def _rows(d: Deployment, sql: str) -> list[tuple]:
    with duckdb.connect(str(d.db), read_only=True) as con:
        return sorted(con.execute(sql).fetchall(), key=repr)


def test_the_sample_gives_identical_findings_on_both_engines(both_engines):
    duck, spark_run = both_engines
    sql = "SELECT kind, asset_id, rule_id, points, hard, hazard, evidence, survey_round, survey_date FROM findings"
    a, b = _rows(duck, sql), _rows(spark_run, sql)
    assert len(a) > 50_000
    assert [r[:6] + r[7:] for r in a] == [r[:6] + r[7:] for r in b]
    assert [json.loads(r[6]) for r in a] == [json.loads(r[6]) for r in b]


def test_the_sample_gives_identical_levels_and_scores_on_both_engines(both_engines):
    duck, spark_run = both_engines
    sql = ("SELECT kind, asset_id, asset_name, town_code, responsible_unit, level, level_zh, colour, hard_rule, "
           "n_findings, n_hazards, top_reasons, source_file, department, score, raw_points FROM scores")  # fmt: skip
    a, b = _rows(duck, sql), _rows(spark_run, sql)
    assert len(a) == len(b) > 19_000
    assert [r[:-2] for r in a] == [r[:-2] for r in b]
    assert max(abs(x[-2] - y[-2]) + abs(x[-1] - y[-1]) for x, y in zip(a, b, strict=True)) <= 1e-9
    levels = {lv for (_, _, _, _, _, lv, *_) in a}
    assert levels == {"red", "orange", "yellow", "blue"}


def test_the_sample_gives_the_same_hazard_numbers_on_both_engines(both_engines):
    _assert_same_rows(
        both_engines,
        "SELECT hazard_no, kind, asset_id, rule_id, hazard_grade, responsible_unit, status, deadline FROM hazards",
        at_least=1000,
    )


def test_the_spark_run_validated_on_spark_with_the_same_quarantine(both_engines):
    _assert_same_rows(both_engines, "SELECT file_id, row_no, check_id, problem_zh FROM row_failures", at_least=10)


def _assert_same_rows(both_engines, sql: str, at_least: int) -> None:
    duck, spark_run = both_engines
    a, b = _rows(duck, sql), _rows(spark_run, sql)
    assert len(a) > at_least
    assert a == b


def test_the_suite_on_a_spark_dataframe_gives_the_pandas_reasons(both_engines, spark):
    """The row suite over the sample's normalised buildings and bridges (the first 3,000 rows of each), by GE on
    pandas and by GE on a Spark DataFrame: the same (row, check, reason) triples. (Every kind, all rows, the row
    and the cross-row suites are compared through the pipeline by the quarantine test above; GE on Spark costs
    ~8 s a kind here.)"""
    import datetime as dt

    from pipeline.engines.spark.validate import rows_on_spark, run_suite_on_spark
    from pipeline.intake.normalize import norm_table

    duck, _ = both_engines
    failing = {}
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{duck.db}' AS sample (READ_ONLY)")
        for kind in ("buildings", "bridges"):
            t, rows = load_template(kind), norm_table(kind)
            con.execute(f"CREATE TABLE {rows} AS SELECT * FROM sample.{rows} ORDER BY _row_key LIMIT 3000")
            expectations = row_expectations(t, dt.date(2023, 12, 31))
            hi = con.execute(f"SELECT coalesce(max(_row_key), 0) FROM {rows}").fetchall()[0][0]
            pandas_failures, _ = run_suite(column_loader(con, rows, 0, hi), t, expectations)
            spark_failures, _ = run_suite_on_spark(rows_on_spark(spark, con, rows, expectations), t, expectations)
            as_set = lambda df: set(map(tuple, df[["row_key", "check_id", "problem_zh"]].to_numpy().tolist()))  # noqa: E731
            assert as_set(pandas_failures) == as_set(spark_failures), kind
            failing[kind] = len(pandas_failures)
    assert failing["buildings"] > 20 and failing["bridges"] > 0


def test_the_staging_parquet_is_published_by_town_and_only_changed_towns_are_written(both_engines, tmp_path):
    _, spark_run = both_engines
    staging = tmp_path / "staging"
    db = tmp_path / "copy.duckdb"
    shutil.copy(spark_run.db, db)
    with duckdb.connect(str(db)) as con:
        towns = con.execute("SELECT count(DISTINCT town_code) FROM stg_buildings").fetchall()[0][0]
        folder, first = staging_parquet.publish(con, "stg_buildings", staging)
        assert first == {"written": towns, "kept": 0, "removed": 0}
        again = staging_parquet.publish(con, "stg_buildings", staging)[1]
        assert again == {"written": 0, "kept": towns, "removed": 0}
        one_town, other = con.execute("SELECT DISTINCT town_code FROM stg_buildings ORDER BY 1 LIMIT 2").fetchall()
        con.execute("DELETE FROM stg_buildings WHERE town_code = ? AND row_no % 2 = 0", [one_town[0]])
        con.execute("DELETE FROM stg_buildings WHERE town_code = ?", [other[0]])
        changed = staging_parquet.publish(con, "stg_buildings", staging)[1]
        assert changed == {"written": 1, "kept": towns - 2, "removed": 1}
        on_disk = con.execute(
            f"SELECT count(*), count(DISTINCT town_code) FROM read_parquet('{folder}/*/*.parquet', hive_partitioning = true)"
        ).fetchall()[0]
        assert on_disk == con.execute("SELECT count(*), count(DISTINCT town_code) FROM stg_buildings").fetchall()[0]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no half-written town left behind


def test_the_spark_scoring_wrote_its_results_as_parquet(both_engines):
    _, spark_run = both_engines
    warehouse = spark_run.output / "spark"
    for kind in ("buildings", "bridges", "hazchem_sites", "pipelines"):
        (run,) = list((warehouse / "scoring" / kind).glob("run=*"))  # earlier runs are removed
        with duckdb.connect() as con:
            n = con.execute(f"SELECT count(*) FROM read_parquet('{run}/scores/*.parquet')").fetchall()[0][0]
        assert n == _rows(spark_run, f"SELECT count(*) FROM scores WHERE kind = '{kind}'")[0][0] > 0
        assert Path(warehouse / "staging").is_dir()
