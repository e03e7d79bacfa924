"""Lifeline rules (issue 10 §3): pipeline fault crossings judged by GB/T 50470-2017 design or verification, with
the offset as evidence; bridges in the JTG/T 2231-01-2020 design era; every pipelines and bridges rule can fire on
values the templates allow; the generated sample carries the new field and fires the rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.platform.paths import PROJECT_ROOT
from pipeline.platform.store import ensure_schema
from pipeline.registries.templates import load_template
from pipeline.scoring.engine import score_kind
from pipeline.scoring.ruleset import _insert, _verify_rule, parse_rules
from sample.generate import FAULT_CROSSINGS, generate
from tests.conftest import Deployment, csv_bytes, example_row, rules_scratch

RULESET = parse_rules()
LIFELINE_RULES = [r for r in RULESET.rules if r.kind in ("pipelines", "bridges")]
SURVEY = {"survey_round": "2023-1", "survey_date": "2023-06-01"}
DESIGN_HEADER = "断层段是否按GB/T 50470-2017抗震设计或校核"


@pytest.fixture
def con():
    with rules_scratch() as c:
        yield c


def _segment(segment_id: str, **fields) -> dict:
    base = {"segment_id": segment_id, "medium": "原油", "material": "钢管(螺旋焊)", "joint_type": "焊接",
            "diameter_mm": 355.6, "length_km": 8.0, "year_built": 2003, "town_codes": "640302100",
            "hca_grade": "无", "operator_code": "91640000MA7F8XFT5G"}  # fmt: skip
    return {**SURVEY, **base, **fields}


def _findings(con, kind: str) -> dict[tuple[str, str], dict]:
    score_kind(con, RULESET, kind)
    rows = con.execute("SELECT asset_id, rule_id, evidence FROM findings WHERE kind = ?", [kind]).fetchall()
    return {(a, r): json.loads(e) for a, r, e in rows}


# --- Pipelines: the fault crossing ---------------------------------------------------------------------------
def test_the_template_asks_whether_the_crossing_was_designed_to_gb50470():
    t = load_template("pipelines")
    f = t.field("fault_seismic_design")
    assert f.header == DESIGN_HEADER and f.values == ("是", "否", "不详") and not f.required
    assert f.example in f.values and "GB/T 50470-2017" in f.note and "不详" in f.note
    assert t.keys.index("fault_seismic_design") == t.keys.index("fault_offset_m") + 1
    offset = t.field("fault_offset_m")
    assert "(米)" in offset.header and "米" in offset.note and "5.1.7" in offset.note
    # the example row is coherent: a crossing, its offset and its design status
    assert (t.field("fault_crossing").example, offset.example, f.example) == ("是", "1.5", "是")


def test_p03_p04_fire_on_a_crossing_not_designed_or_unknown_and_carry_the_offset(con):
    records = {
        "DESIGNED": _segment("DESIGNED", fault_crossing=True, fault_offset_m=3.2, fault_seismic_design="是"),
        "NOT": _segment("NOT", fault_crossing=True, fault_offset_m=1.8, fault_seismic_design="否"),
        "UNKNOWN": _segment("UNKNOWN", fault_crossing=True, fault_offset_m=0.6, fault_seismic_design="不详"),
        "BLANK": _segment("BLANK", fault_crossing=True, fault_offset_m=2.4),
        "NO_FAULT": _segment("NO_FAULT", fault_crossing=False, fault_seismic_design="否"),
    }
    for record in records.values():
        _insert(con, "stg_pipelines", record)
    found = _findings(con, "pipelines")
    fired = {rule: sorted(a for a, r in found if r == rule) for rule in ("P01", "P03", "P04")}
    assert fired == {"P01": ["BLANK", "DESIGNED", "NOT", "UNKNOWN"], "P03": ["NOT"], "P04": ["BLANK", "UNKNOWN"]}
    # the offset in metres is evidence, never a trigger
    assert found[("NOT", "P03")]["fault_offset_m"] == pytest.approx(1.8)
    assert found[("NOT", "P03")]["fault_seismic_design"] == "否"
    assert found[("UNKNOWN", "P04")]["fault_offset_m"] == pytest.approx(0.6)
    assert found[("BLANK", "P04")]["fault_offset_m"] == pytest.approx(2.4)
    assert found[("BLANK", "P04")]["fault_seismic_design"] is None  # blank as surveyed; the view counts it 不详
    assert found[("DESIGNED", "P01")]["fault_design_status"] == "是"
    assert found[("BLANK", "P01")]["fault_design_status"] == "不详"


@pytest.mark.parametrize("offset", [0.1, 0.12, 0.5, 12, 24, 30, 50])
def test_no_offset_makes_a_designed_crossing_a_hazard_nor_spares_an_unverified_one(con, offset):
    _insert(con, "stg_pipelines", _segment("A", fault_crossing=True, fault_offset_m=offset, fault_seismic_design="是"))
    _insert(con, "stg_pipelines", _segment("B", fault_crossing=True, fault_offset_m=offset, fault_seismic_design="否"))
    found = _findings(con, "pipelines")
    assert {a for a, r in found if r in ("P03", "P04")} == {"B"}


def test_p03_p04_are_hazards_that_cite_gb50470_and_replace_the_offset_bins():
    rules = {r.id: r for r in RULESET.rules}
    for rid in ("P03", "P04"):
        r = rules[rid]
        assert r.kind == "pipelines" and r.hazard and "GB/T 50470-2017" in r.source_ref
        assert "fault_offset_m" in r.evidence and "fault_seismic_design" in r.evidence
        assert "fault_offset_m" not in r.when
        assert r.confidence in ("J", "S", "V")
    assert "§1.0.3" in rules["P03"].source_ref
    assert rules["P03"].points == rules["P04"].points  # 不详 never scores lower than 否
    assert not any("fault_no_failure_prob" in r.when or "fault_no_failure_prob" in r.evidence for r in RULESET.rules)


def test_a_gas_line_in_an_hca_iii_crossing_a_fault_is_red_even_when_designed(con):
    _insert(con, "stg_pipelines", _segment("G", medium="天然气", hca_grade="III", fault_crossing=True,
                                           fault_offset_m=3.2, fault_seismic_design="是"))  # fmt: skip
    score_kind(con, RULESET, "pipelines")
    assert con.execute("SELECT level, hard_rule FROM scores WHERE asset_id = 'G'").fetchall() == [("red", "P02")]


# --- Bridges: the design eras ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("year", "era", "code"),
    [(1985, "1990年前", "JTJ 004-89之前"), (1990, "1990–2007", "JTJ 004-89"), (2007, "1990–2007", "JTJ 004-89"),
     (2008, "2008–2019", "JTG/T B02-01-2008"), (2019, "2008–2019", "JTG/T B02-01-2008"),
     (2020, "2020年后", "JTG/T 2231-01-2020"), (2021, "2020年后", "JTG/T 2231-01-2020")],
)  # fmt: skip
def test_bridge_design_era_and_code(con, year, era, code):
    _insert(con, "stg_bridges", {**SURVEY, "bridge_id": "Q1", "year_built": year, "town_code": "640302100"})
    assert con.execute("SELECT design_era, design_code FROM v_bridges").fetchall() == [(era, code)]


def test_the_bridge_rules_cite_the_current_code_jtgt_2231_01_2020(con):
    r11 = next(r for r in RULESET.rules if r.id == "R11")
    assert "JTG/T 2231-01-2020" in r11.source_ref and "design_code" in r11.evidence
    assert not any(re.search(r"current code JTG/T B02-01-2008", r.source_ref) for r in LIFELINE_RULES)
    _insert(con, "stg_bridges", {**SURVEY, "bridge_id": "OLD", "year_built": 1982, "design_intensity": "不设防"})
    found = _findings(con, "bridges")
    assert found[("OLD", "R11")]["design_code"] == "JTJ 004-89之前"


# --- Every lifeline rule can fire on values the templates allow ------------------------------------------------
DERIVED_VALUES = {"fault_design_status": ("是", "否", "不详")}  # v_pipelines


def _allowed(kind: str) -> dict[str, tuple[str, ...]]:
    t = load_template(kind)
    return {f.key: f.allowed_values() for f in t.fields if f.type == "enum"} | DERIVED_VALUES


@pytest.mark.parametrize("rule", LIFELINE_RULES, ids=[r.id for r in LIFELINE_RULES])
def test_every_literal_a_condition_compares_with_is_a_template_value(rule):
    """A condition comparing an enum column with a value the template cannot produce would never fire."""
    allowed = _allowed(rule.kind)
    compared = re.findall(r"(\w+)\s*=\s*'([^']*)'", rule.when)
    for col, values in re.findall(r"(?:coalesce\()?(\w+)(?:,\s*'[^']*'\))?\s+IN\s*\(([^)]*)\)", rule.when):
        compared += [(col, v) for v in re.findall(r"'([^']*)'", values)]
    for col, value in compared:
        assert col in allowed, f"{rule.id}: {col} is not an enum column of {rule.kind}"
        assert value in allowed[col], f"{rule.id}: {col} = {value!r}, the template allows {allowed[col]}"


@pytest.mark.parametrize("rule", LIFELINE_RULES, ids=[r.id for r in LIFELINE_RULES])
def test_every_lifeline_rule_fires_on_its_examples(con, rule):
    assert rule.fires
    assert _verify_rule(con, RULESET.kinds[rule.kind], rule) == []


def test_cli_rules_succeeds(tmp_path):
    env = {**os.environ, "LITONG_DB": str(tmp_path / "none.duckdb"), "LITONG_OUTPUT": str(tmp_path / "out"),
           "LITONG_DATA_RAW": str(tmp_path / "raw")}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "rules"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"P03\s+pipelines.*GB/T 50470-2017", done.stdout)
    assert re.search(r"P04\s+pipelines", done.stdout)


# --- Intake and the generated sample ----------------------------------------------------------------------------
def test_the_template_example_row_goes_through_intake(deployment: Deployment):
    rows = [example_row("pipelines", segment_id="E1"),
            example_row("pipelines", segment_id="E2", fault_seismic_design="N"),
            example_row("pipelines", segment_id="E3", fault_seismic_design="未知", fault_offset_m=""),
            example_row("pipelines", segment_id="E4", fault_crossing="否", fault_offset_m="", fault_seismic_design="")]  # fmt: skip
    deployment.drop("pipelines", "p.csv", csv_bytes("pipelines", rows), unit="FGJ")
    deployment.intake("pipelines")
    got = deployment.query("SELECT segment_id, fault_crossing, fault_offset_m, fault_seismic_design "
                           "FROM stg_pipelines ORDER BY segment_id")  # fmt: skip
    assert [(s, c, None if o is None else float(o), d) for s, c, o, d in got] == [
        ("E1", True, 1.5, "是"), ("E2", True, 1.5, "否"), ("E3", True, None, "不详"), ("E4", False, None, None)]  # fmt: skip


@pytest.fixture(scope="module")
def sample_pipelines(tmp_path_factory) -> tuple[Deployment, dict]:
    root = tmp_path_factory.mktemp("lifelines")
    summary = generate(root / "gen", buildings=0, bridges=0, sites=0, pipelines=15, seed=2023)
    (root / "d").mkdir()
    deployment = Deployment(root / "d")
    (path,) = [f for f in summary["files"] if f.startswith("pipelines/")]
    deployment.drop("pipelines", Path(path).name, (root / "gen" / path).read_bytes(), unit="FGJ")
    deployment.intake("pipelines")
    return deployment, summary


def test_the_sample_carries_the_design_field_with_a_realistic_mix(sample_pipelines):
    deployment, summary = sample_pipelines
    planted = summary["planted"]["pipelines"]
    assert planted["fault_crossings"] == len(FAULT_CROSSINGS) == 3
    assert planted["fault_crossings_not_verified"] == planted["fault_crossings_design_unknown"] == 1
    crossings = deployment.query("SELECT fault_seismic_design, count(*) FROM stg_pipelines WHERE fault_crossing "
                                 "GROUP BY ALL ORDER BY 1")  # fmt: skip
    assert crossings == [("不详", 1), ("否", 1), ("是", 1)]  # every planted crossing passed intake
    assert deployment.query("SELECT count(*) FROM stg_pipelines WHERE NOT fault_crossing "
                            "AND fault_seismic_design IS NOT NULL") == [(0,)]  # fmt: skip
    assert summary["defects_by_kind"]["pipelines"]  # defect injection still at work


def test_p03_and_p04_fire_on_the_sample(sample_pipelines):
    deployment, _ = sample_pipelines
    with duckdb.connect(str(deployment.db)) as con:
        ensure_schema(con)
        found = _findings(con, "pipelines")
    by_rule = {rule: [ev for (_, r), ev in found.items() if r == rule] for rule in ("P01", "P02", "P03", "P04")}
    assert [len(by_rule[r]) for r in ("P01", "P02", "P03", "P04")] == [3, 1, 1, 1]
    assert by_rule["P03"][0]["fault_offset_m"] == pytest.approx(1.8)
    assert by_rule["P04"][0]["fault_seismic_design"] == "不详"
    assert by_rule["P02"][0]["fault_design_status"] == "是"
