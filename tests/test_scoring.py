"""Scoring: every rule's own examples, hand-computed derived quantities, the engine, the loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from pipeline.platform.paths import RULES_DIR
from pipeline.platform.store import ensure_schema
from pipeline.scoring.engine import score_kind
from pipeline.scoring.ruleset import RuleSetError, _insert, _verify_rule, load_ruleset, parse_rules
from tests.conftest import rules_scratch

RULESET = parse_rules()


@pytest.fixture(scope="module")
def scratch():
    with rules_scratch() as con:
        yield con


def test_the_shipped_rule_set_is_accepted_and_versioned():
    assert RULESET.problems == []
    ruleset = load_ruleset()
    assert len(ruleset.version) == 16 and ruleset.version == load_ruleset().version
    assert {r.kind for r in ruleset.rules} == {
        "buildings",
        "bridges",
        "hazchem_sites",
        "pipelines",
        "geohazards",
        "shelters",
        "shelter_capacity",
        "reservoirs",
        "water_supply",
    }


@pytest.mark.parametrize("rule", RULESET.rules, ids=[r.id for r in RULESET.rules])
def test_rule_examples(scratch, rule):
    """Each rule fires on its `fires` examples and stays silent on its `silent` ones."""
    assert _verify_rule(scratch, RULESET.kinds[rule.kind], rule) == []


def _view_row(con, table: str, view: str, record: dict, columns: str):
    con.execute(f"DELETE FROM {table}")
    _insert(con, table, {"survey_round": "2023-1", "survey_date": "2023-06-01", **record})
    return con.execute(f"SELECT {columns} FROM {view}").fetchall()[0]


def _site(con, population: int, inventory: list[dict], declared: str | None = None):
    con.execute("DELETE FROM stg_hazchem_inventory")
    for inv in inventory:
        _insert(con, "stg_hazchem_inventory", {"site_id": "S1", "survey_round": "2023-1", **inv})
    return _view_row(
        con, "stg_hazchem_sites", "v_hazchem_sites",
        {"site_id": "S1", "population_500m": population, "declared_grade": declared},
        "gb18218_s, gb18218_r, is_major_source, computed_grade, declared_rank, computed_rank",
    )  # fmt: skip


def test_gb18218_several_chemicals_named_and_category_based(scratch):
    inventory = [
        # storage unit: ammonia 40 t (named, Q 10, beta 2) -> 4; methanol 500 t (named in Table 1: Q 500, beta 1,
        # whatever category is typed) -> 1
        {"unit_name": "罐区", "unit_kind": "储存单元", "chemical": "液氨", "max_quantity_t": 40},
        {"unit_name": "罐区", "unit_kind": "储存单元", "chemical": "甲醇", "category": "W5.3", "max_quantity_t": 500},
        # production unit: chlorine 2 t (Q 5, beta 4) -> 0.4: not a major hazard source on its own
        {"unit_name": "车间", "unit_kind": "生产单元", "chemical": "氯气", "max_quantity_t": 2},
    ]
    s, r, major, grade, declared, computed = _site(scratch, 60, inventory, declared="四级")
    assert s == pytest.approx(5.0)
    assert r == pytest.approx(1.5 * (2 * 4 + 1 * 1))  # alpha 1.5 for 50-99 people: 13.5
    assert (major, grade, declared, computed) == (True, "三级", 4, 3)  # declared lower than computed


def test_gb18218_declared_critical_quantity_and_first_grade(scratch):
    inventory = [{"unit_name": "仓库", "unit_kind": "储存单元", "chemical": "光气", "max_quantity_t": 0.9}]
    s, r, major, grade, *_ = _site(scratch, 150, inventory)
    assert (s, r, major, grade) == (pytest.approx(3.0), pytest.approx(2.0 * 20 * 3.0), True, "一级")
    inventory = [{"unit_name": "仓库", "unit_kind": "储存单元", "chemical": "某溶剂", "category": "W5.4",
                  "max_quantity_t": 100, "critical_quantity_t": 200}]  # fmt: skip
    s, r, major, grade, *_ = _site(scratch, 10, inventory)  # the declared Q never replaces the category's 5000 t
    assert (s, major, grade) == (pytest.approx(0.02), False, "非重大危险源")


@pytest.mark.parametrize(("people", "alpha"), [(0, 0.5), (1, 1.0), (29, 1.0), (30, 1.2), (49, 1.2), (50, 1.5),
                                               (99, 1.5), (100, 2.0), (5000, 2.0)])  # fmt: skip
def test_gb18218_alpha_bands(scratch, people, alpha):
    inventory = [{"unit_name": "U", "unit_kind": "储存单元", "chemical": "液氨", "max_quantity_t": 10}]  # q/Q 1, beta 2
    _, r, *_ = _site(scratch, people, inventory)
    assert r == pytest.approx(alpha * 2)


def _copy_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    return rules


HARD_RULE = """
kind: buildings
rules:
  - id: T01
    title_zh: 测试硬性规则
    title_en: Test hard rule
    when: "building_id = 'LOW'"
    points: 5
    hard: true
    source: {ref: test, confidence: J}
    examples:
      fires: [{building_id: LOW}]
      silent: [{building_id: OTHER}]
"""


def test_a_hard_rule_forces_red_over_a_low_sum(tmp_path):
    rules = _copy_rules(tmp_path)
    (rules / "test_hard.yaml").write_text(HARD_RULE, encoding="utf-8")
    ruleset = load_ruleset(rules)
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    ensure_schema(con)
    base = {"survey_round": "2023-1", "survey_date": "2023-06-01", "structure_type": "剪力墙", "year_built": 2015,
            "seismic_design": "是", "town_code": "640302100"}  # fmt: skip
    _insert(con, "stg_buildings", {"building_id": "LOW", **base})
    _insert(con, "stg_buildings", {"building_id": "OTHER", **base})
    result = score_kind(con, ruleset, "buildings")
    rows = con.execute("SELECT asset_id, score, level, hard_rule FROM scores ORDER BY asset_id").fetchall()
    assert rows == [("LOW", 5.0, "red", "T01"), ("OTHER", 0.0, "blue", None)]
    assert result.ruleset_version == ruleset.version
    runs = con.execute("SELECT ruleset_version, assets, findings FROM scoring_runs").fetchall()
    assert runs == [(ruleset.version, 2, 1)]
    score_kind(con, ruleset, "buildings")  # re-scoring replaces, never adds
    assert con.execute("SELECT count(*) FROM scores").fetchall() == [(2,)]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (HARD_RULE.replace("building_id = 'LOW'", "no_such_column > 1"),
         "rules/broken.yaml: rule T01: condition or evidence does not compile"),
        (HARD_RULE.replace("silent: [{building_id: OTHER}]", "silent: [{building_id: LOW}]"),
         "rules/broken.yaml: rule T01: example {'building_id': 'LOW'} should stay silent but fires"),
        (HARD_RULE.replace("id: T01", "id: B01"), "rule B01: id already used in rules/broken.yaml"),
        (HARD_RULE.replace("    points: 5\n", ""), "rules/broken.yaml: rule T01: missing or wrong type: points"),
        (HARD_RULE.replace("confidence: J", "confidence: maybe"), "source needs ref and confidence"),
        ("kind: ships\nrules: []\n", "rules/broken.yaml: needs 'kind'"),
    ],
)  # fmt: skip
def test_a_broken_rule_file_is_refused_with_its_name(tmp_path, text, problem):
    rules = _copy_rules(tmp_path)
    (rules / "broken.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleSetError) as err:
        load_ruleset(rules)
    assert problem in str(err.value)


def test_scores_from_each_assets_hits_equal_the_findings_grouped(tmp_path):
    """The store computes each score from its asset's own hits (one streaming pass, issue 30): the same rows,
    value for value, as the portable SQL that groups the run's findings by asset (what Spark runs)."""
    from pipeline.scoring import engine

    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    ensure_schema(con)
    structures, grades = ["砖混", "框架", "土木", "剪力墙"], ["A", "B", "C", "D", None]
    for i in range(40):
        _insert(con, "stg_buildings", {
            "building_id": f"B{i:02d}", "survey_round": "2023-1", "survey_date": "2023-06-01",
            "structure_type": structures[i % 4], "year_built": 1960 + i, "seismic_design": "是" if i % 3 else "否",
            "appraisal_grade": grades[i % 5], "floors_above": 1 + i % 9, "town_code": "640302100"})  # fmt: skip
    result = score_kind(con, RULESET, "buildings")
    grouped = engine.scores_sql(RULESET, "buildings", result.run_id, engine.level_scale(con, "buildings"))
    columns = ("asset_id, asset_name, town_code, lon, lat, responsible_unit, survey_round, survey_date, raw_points, "
               "score, level, level_zh, colour, hard_rule, n_findings, n_hazards, top_reasons, source_file, sector")  # fmt: skip
    stored = con.execute(f"SELECT {columns} FROM scores ORDER BY asset_id").fetchall()
    assert con.execute(f"SELECT {columns} FROM ({grouped}) ORDER BY asset_id").fetchall() == stored
    assert len(stored) == 40 and len({row[10] for row in stored}) >= 3 and sum(row[14] for row in stored) > 40
    assert any(row[13] for row in stored) and any("；" in (row[16] or "") for row in stored)


def test_the_samples_scores_of_every_kind_equal_its_findings_grouped(sample, tmp_path):
    """On the bundled sample, every kind's stored scores (computed from each asset's hits) are the rows the
    portable SQL gives by grouping that scoring's findings by asset: the same reasons, points, levels."""
    from pipeline.scoring import engine
    from pipeline.scoring.ruleset import install

    deployment, result = sample
    assert result.success
    shutil.copy(deployment.db, tmp_path / "s.duckdb")  # the sample is shared: read a copy
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    install(con)
    columns = "asset_id, raw_points, score, level, level_zh, hard_rule, n_findings, n_hazards, top_reasons, sector"
    kinds = [k for (k,) in con.execute("SELECT DISTINCT kind FROM scores ORDER BY 1").fetchall()]
    assert len(kinds) >= 8
    for kind in kinds:
        (run_id,) = con.execute("SELECT DISTINCT run_id FROM scores WHERE kind = ?", [kind]).fetchone()
        con.execute(engine.input_sql(RULESET, kind))
        grouped = engine.scores_sql(RULESET, kind, run_id, engine.level_scale(con, kind))
        stored = con.execute(f"SELECT {columns} FROM scores WHERE kind = ? ORDER BY asset_id", [kind]).fetchall()
        assert con.execute(f"SELECT {columns} FROM ({grouped}) ORDER BY asset_id").fetchall() == stored, kind
        assert stored and any(row[8] for row in stored), kind
