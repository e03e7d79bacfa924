"""The damage estimate and the people exposed (issue 28 §1): the macroseismic method as rule data, per town and
in total as ranges, the 首报 on one A4 page with its annex, names never codes, the 续报 confirmed vs estimated."""

from __future__ import annotations

import csv
import math
import re

import duckdb
import numpy as np
import pypdf
import pytest
import yaml
from scipy import stats

from pipeline.platform.paths import RULES_DIR
from pipeline.quake import damage, followup
from pipeline.quake.damage import STATES, Area, Estimate
from pipeline.quake.event import declare, event_from
from pipeline.quake.exposure import quake_db_path
from pipeline.quake.reports import (
    FirstReport,
    KeyObject,
    first_report_annex_text,
    first_report_text,
    write_report,
)
from pipeline.quake.respond import event_dir, first_report
from tests.conftest import Deployment, csv_bytes, example_row, run_all
from tests.test_enterprises import credit_code
from tests.test_ledger import building
from tests.test_quake_feedback import drop_batch, report, take

EVENT = {"time": "2025-06-30 14:23:05", "lon": 106.19, "lat": 37.93, "depth_km": 10, "magnitude": 6.5, "strike": 30}
SITE = credit_code(7)
CREDIT_CODE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}")


# --- the method, by hand ---------------------------------------------------------------------------------------
def test_the_mean_damage_grade_is_the_formula_computed_by_hand():
    """μD = 2.5 [1 + tanh((I + 6.25 V − 13.1) / 2.3)]: for class B (V = 0.74) at Ⅷ,
    (8 + 4.625 − 13.1) / 2.3 = −0.206522, tanh = −0.203634, μD = 2.5 × 0.796366 = 1.99091."""
    assert float(damage.mean_damage(8, 0.74)) == pytest.approx(1.99091, abs=1e-4)
    assert float(damage.mean_damage(13.1 - 6.25 * 0.58, 0.58)) == pytest.approx(2.5)  # tanh(0) = 0
    # more vulnerable (larger V) or stronger shaking: more damage
    assert damage.mean_damage(8, 0.90) > damage.mean_damage(8, 0.74) > damage.mean_damage(7, 0.74)


def test_the_grade_distribution_sums_to_one_and_matches_an_independent_beta():
    mu = np.linspace(0.05, 4.95, 50)
    p = damage.grade_probabilities(mu)
    assert p.shape == (50, 6) and np.allclose(p.sum(axis=1), 1.0) and (p >= 0).all()
    # the mean grade follows μD (the beta on [0, 6] binned into unit grades: within 0.15 of μD)
    assert np.abs((p * np.arange(6)).sum(axis=1) - mu).max() < 0.15
    # the same by scipy.stats.beta, written out: r = 8 (0.007 μ³ − 0.0525 μ² + 0.2875 μ), F on [0, 6]
    m = 1.99091
    r = 8 * (0.007 * m**3 - 0.0525 * m**2 + 0.2875 * m)
    cdf = stats.beta(r, 8 - r, scale=6).cdf(np.arange(7))
    assert damage.grade_probabilities(m)[0] == pytest.approx(np.diff(cdf), abs=1e-9)
    states = damage.state_probabilities(damage.grade_probabilities(m))[0]
    assert states[0] == pytest.approx(np.diff(cdf)[0] + np.diff(cdf)[1])  # D0 + D1 → 基本完好 (rule file, J)
    assert states[3] == pytest.approx(np.diff(cdf)[4]) and states[4] == pytest.approx(np.diff(cdf)[5])


def test_the_rule_data_is_sourced_marked_and_complete():
    with open(RULES_DIR / "reference" / "quake_vulnerability.csv", encoding="utf-8") as f:
        vuln = {r["ems98_class"]: r for r in csv.DictReader(f)}
    assert list(vuln) == ["A", "B", "C", "D", "E", "F"]
    for r in vuln.values():
        assert float(r["v_min"]) < float(r["v_likely"]) < float(r["v_max"]) and r["source"]
        assert r["confidence"] in {"S", "J", "U"}
    assert (vuln["B"]["v_min"], vuln["B"]["v_likely"], vuln["B"]["v_max"]) == ("0.62", "0.74", "0.86")
    assert vuln["D"]["confidence"] == "U"  # 0.40 breaks the spacing: unverified
    with open(RULES_DIR / "reference" / "quake_structure_class.csv", encoding="utf-8") as f:
        classes = list(csv.DictReader(f))
    for r in classes:  # the weaker class is one step toward A (or A itself), a judgement
        assert r["ems98_class"] in vuln and ord(r["ems98_class"]) - ord(r["ems98_weaker"]) == (r["ems98_class"] != "A")
        assert r["ems98_confidence"] == "J"
    with open(RULES_DIR / "quake" / "damage_estimate.yaml", encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    assert set(rules["grades_to_states"]) == {f"D{k}" for k in range(6)}
    assert set(rules["grades_to_states"].values()) == set(STATES)


# --- on an event -------------------------------------------------------------------------------------------------
# (id, town, structure, appraisal, occupants, use, lon, lat): around the epicentre under 金积镇
HOUSES = [
    ("H-1", "640302100", "土木(生土)", "B", "6", "住宅", "106.190", "37.931"),
    ("H-2", "640302100", "砖木", "C", "4", "住宅", "106.195", "37.935"),
    ("H-3", "640302100", "砖混", "A", "120", "学校", "106.185", "37.925"),
    ("H-4", "640302101", "框架", "A", "300", "医院", "106.250", "37.980"),
    ("H-5", "640302105", "砖混", "D", "40", "养老机构", "106.150", "37.850"),
    ("H-6", "640302103", "钢结构", "A", "15", "住宅", "106.160", "37.760"),
]


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> tuple[Deployment, object]:
    d = Deployment(tmp_path_factory.mktemp("quake_damage"))
    rows = [building(bid, town_code=t, town_name="", structure_type=s, appraisal_grade=g, occupants=n, use=u,
                     lon=x, lat=y, responsible_unit="T100", name=f"{bid}号楼") for bid, t, s, g, n, u, x, y in HOUSES]  # fmt: skip
    d.drop("buildings", "b.csv", csv_bytes("buildings", rows), unit="ZJJ")
    site = example_row("hazchem_sites", site_id=SITE, name="宁夏丙化工有限公司", lon="106.200", lat="37.940",
                       town_code="640302100", town_name="金积镇", emergency_plan_filed="否")  # fmt: skip
    d.drop("hazchem_sites", "h.csv", csv_bytes("hazchem_sites", [site]), unit="YJJ")
    assert run_all(d, publish=False).success
    event = event_from(EVENT)
    declare(event, d.data_raw)
    response = first_report(event, d.db, d.db, d.output)
    return d, event, response


def independent_probabilities(structure: str, weaker: bool, degree: int, variant: str) -> np.ndarray:
    """P(state) of one building, from the CSVs and scipy.stats.beta, not through pipeline/quake/damage.py."""
    with open(RULES_DIR / "reference" / "quake_structure_class.csv", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["structure_type"] == structure)
    with open(RULES_DIR / "reference" / "quake_vulnerability.csv", encoding="utf-8") as f:
        v = float(next(r for r in csv.DictReader(f) if r["ems98_class"] == row["ems98_weaker" if weaker else "ems98_class"])[variant])  # fmt: skip
    mu = 2.5 * (1 + math.tanh((degree + 6.25 * v - 13.1) / 2.3))
    r = 8 * (0.007 * mu**3 - 0.0525 * mu**2 + 0.2875 * mu)
    g = np.diff(stats.beta(r, 8 - r, scale=6).cdf(np.arange(7)))
    return np.array([g[0] + g[1], g[2], g[3], g[4], g[5]])


def exposure_rows(d: Deployment, eid: str) -> list[tuple]:
    con = duckdb.connect(str(quake_db_path(d.output)), read_only=True)
    try:
        return con.execute("SELECT asset_id, town_code, structure_type, damage_class_weaker, degree, occupants "
                           "FROM quake_exposure WHERE event_id = ? AND kind = 'buildings' AND degree >= 6",
                           [eid]).fetchall()  # fmt: skip
    finally:
        con.close()


def test_the_estimate_is_ranges_per_town_and_people_are_recomputed_independently(district):
    d, event, response = district
    est = response.report.damage
    assert est is not None and est.banded and est.total is not None and len(est.towns) >= 3
    for a in [*est.towns, est.total]:
        assert (
            a.severe[0] <= a.severe[1] <= a.severe[2] and a.people_severe[0] <= a.people_severe[1] <= a.people_severe[2]
        )
        for low, likely, high in a.states.values():
            assert low <= likely <= high
        assert sum(b[1] for b in a.states.values()) == pytest.approx(a.buildings)  # most likely: every building once
    rows = exposure_rows(d, event.event_id)
    assert est.total.buildings == len(rows) == len(HOUSES) and est.total.people == sum(r[5] for r in rows)
    for k, variant in enumerate(("v_min", "v_likely", "v_max")):
        people = sum(n * independent_probabilities(s, w, deg, variant)[3:].sum() for _, _, s, w, deg, n in rows)
        buildings = sum(independent_probabilities(s, w, deg, variant)[3:].sum() for _, _, s, w, deg, n in rows)
        assert est.total.people_severe[k] == pytest.approx(people, rel=1e-6)
        assert est.total.severe[k] == pytest.approx(buildings, rel=1e-6)
    jinji = next(a for a in est.towns if a.name == "金积镇")
    mine = [r for r in rows if r[1] == "640302100"]
    assert jinji.buildings == len(mine) == 3
    assert jinji.people_severe[1] == pytest.approx(
        sum(n * independent_probabilities(s, w, deg, "v_likely")[3:].sum() for _, _, s, w, deg, n in mine)
    )


def test_each_building_keeps_its_estimate_in_the_quake_store(district):
    d, event, _ = district
    con = duckdb.connect(str(quake_db_path(d.output)), read_only=True)
    try:
        got = {a: (c, s, p) for a, c, s, p in con.execute(
            "SELECT e.asset_id, d.damage_class, d.likely_state, d.p_severe FROM quake_damage d JOIN quake_exposure e "
            "USING (event_id, priority) WHERE event_id = ? AND e.kind = 'buildings'",
            [event.event_id]).fetchall()}  # fmt: skip
    finally:
        con.close()
    rows = {r[0]: r for r in exposure_rows(d, event.event_id)}
    assert set(got) == set(rows)
    assert got["H-1"][0] == "A" and got["H-2"][0] == "A" and got["H-3"][0] == "C" and got["H-6"][0] == "E"
    assert got["H-5"][0] == "B"  # appraised D: one class weaker than 砖混 (C)
    for a, (_, state, p) in got.items():
        _, _, s, w, deg, _ = rows[a]
        probs = independent_probabilities(s, w, deg, "v_likely")
        assert state == STATES[int(np.argmax(probs))] and p == pytest.approx(probs[3:].sum())


def test_the_first_report_names_units_and_methods_in_words(district):
    d, event, _ = district
    folder = event_dir(d.output, event)
    page = (folder / "首报.txt").read_text(encoding="utf-8")
    annex = (folder / "首报附件.txt").read_text(encoding="utf-8")
    for text in (page, annex):
        assert not CREDIT_CODE.search(text) and SITE not in text
        assert "GB18306_2015" not in text and "data_raw" not in text and "<单位代码>" not in text
        assert "T100" not in text and "“T" not in text  # no unit code, quoted or not
    assert "按《中国地震动参数区划图》（GB 18306-2015）编图所用烈度衰减关系估计" in page
    assert "欧洲宏观地震烈度易损性方法（Lagomarsino & Giovinazzi 2006，RISK-UE）" in page and "估计" in page
    assert "按与欧洲地震烈度表（EMS-98）等同处理" in page and "本报不估计人员伤亡" in page
    assert "通过利通区地震隐患平台上传" in page
    assert "宁夏丙化工有限公司" in annex  # the enterprise by its name
    assert "金积镇人民政府" in annex and "H-3号楼（金积镇，" in annex  # units and towns by name


# --- one page ------------------------------------------------------------------------------------------------------
def big_report() -> FirstReport:
    """A strong event over the whole district: 16 towns, 300 objects in each of 6 key groups, 500 major hazards
    and 59 units to check: what the bundled sample gives for an M6.5 under 金积镇, and more."""
    event = event_from(EVENT)
    band = (120.0, 480.0, 1500.0)
    towns = [Area(f"第{i}镇", 9 - i % 3, 2000, 60000.0, dict.fromkeys(STATES, band), band, (800.0, 3000.0, 9000.0))
             for i in range(16)]  # fmt: skip
    est = Estimate("欧洲宏观地震烈度易损性方法（Lagomarsino & Giovinazzi 2006，RISK-UE）", True,
                   "我国地震烈度表（GB/T 17742）按与欧洲地震烈度表（EMS-98）等同处理，未经本地校准", "严重破坏",
                   towns, Area("全区", 9, 32000, 960000.0, dict.fromkeys(STATES, band), band, band))  # fmt: skip
    groups = [
        "学校、幼儿园",
        "医院",
        "养老机构",
        "危险化学品重大危险源",
        "救灾生命线通道桥梁",
        "穿越活动断层的油气管道",
    ]
    key = {g: [KeyObject(g, f"{g}对象第{i}号楼", "金积镇", 8, "利通区教育局", 2, 1, "中等破坏" if i % 2 else None, 0.2)
               for i in range(300)] for g in groups}  # fmt: skip
    return FirstReport(
        event, 9.4, True, towns=[(t.name, t.degree, 3000) for t in towns], kinds={"buildings": 32000},
        damage=est, major_hazards=500, major_list=[(f"对象{i}", "金积镇", 8, "利通区教育局", 1) for i in range(300)],
        key_objects=key, key_counts={g: 1000 for g in groups}, check_now=[(f"单位{i}", 100) for i in range(59)],
        checklists=[(f"单位{i}", 300, 100) for i in range(59)], method="GB18306_2015_QZ / GB18306_2015_EAST（取大值）", max_degree=9,
    )  # fmt: skip


def pdf_text(path) -> tuple[int, str]:
    reader = pypdf.PdfReader(str(path))
    return len(reader.pages), "".join(p.extract_text() for p in reader.pages)


def test_the_first_report_fits_one_a4_page_and_the_annex_holds_the_long_lists(tmp_path):
    r = big_report()
    page, annex = first_report_text(r), first_report_annex_text(r)
    # what write_report fits on one A4 page: 61 lines of 58 characters at 8.5 pt (its own arithmetic)
    wrapped = sum(max(1, math.ceil(len(line) / 56)) for line in page.splitlines()[1:])
    assert wrapped <= 61 and len(page) <= 61 * 56
    txt, pdf = write_report(page, tmp_path, "首报")
    pages, drawn = pdf_text(pdf)
    squeeze = re.sub(r"\s", "", drawn)
    assert pages == 1 and "其余" not in drawn  # nothing cut
    assert "利通区应急管理局（地震局）" in squeeze and "五、正在开展" in squeeze
    # the annex: every key object listed, every major hazard, every unit to check, every town's estimate
    for g, rows in r.key_objects.items():
        assert f"  {g}：1,000处" in annex and all(f"{k.name}（" in annex for k in rows)
        assert "……其余700处见各单位排查清单" in annex
    assert all(f"  单位{i}：300处，其中须立即排查100处" in annex for i in range(59)) and all(
        f"  对象{i}（" in annex for i in range(300)
    )
    assert all(f"  第{i}镇（最高" in annex for i in range(16))
    assert "对象第7号楼" not in page  # the page names the first of each group only
    assert page.count("第0号楼") == 6


# --- 续报 --------------------------------------------------------------------------------------------------------
def test_the_follow_up_sets_confirmed_against_estimated(district):
    d, event, _ = district
    eid = event.event_id
    drop_batch(d, "T100", "t100.csv", [report("H-1", damage_state="毁坏", usable="否"),
                                        report("H-3", damage_state="中等破坏", usable="否")], eid)  # fmt: skip
    (batch,) = take(d)
    assert batch.taken == 2
    files = followup.follow_up(event, d.output / "published" / "litong.duckdb", d.db, d.output)
    assert [p.name for p in files] == ["续报1.txt", "续报1.pdf"]
    text = files[0].read_text(encoding="utf-8")
    rows = {r[0]: r for r in exposure_rows(d, eid)}
    expected = {v: sum(independent_probabilities(rows[a][2], rows[a][3], rows[a][4], v) for a in ("H-1", "H-3"))
                for v in ("v_min", "v_likely", "v_max")}  # fmt: skip
    line = next(x for x in text.splitlines() if x.startswith("  已排查的2栋房屋"))
    for i, s in enumerate(STATES):
        confirmed = {"毁坏": 1, "中等破坏": 1}.get(s, 0)
        band = (min(expected[v][i] for v in expected), expected["v_likely"][i], max(expected[v][i] for v in expected))
        low, likely, high = (f"{x:.1f}" for x in band)  # a few buildings: one decimal
        want = f"约{likely}栋" if low == high else f"约{low}–{high}栋（最可能{likely}栋）"
        assert f"{s}确认{confirmed}栋、估计{want}" in line
    assert "  金积镇：" in text and "首报估计（欧洲宏观地震烈度易损性方法" in text
    assert "金积镇人民政府报送" in text and "T100" not in text


def test_a_filled_chinese_damage_matrix_replaces_the_method_by_data_alone(tmp_path, monkeypatch):
    """quake_damage_matrix.csv, once every row holds a probability, is the estimate: no V band, its method named."""
    import shutil

    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR / "quake", rules / "quake")
    shutil.copytree(RULES_DIR / "reference", rules / "reference")
    path = rules / "reference" / "quake_damage_matrix.csv"
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["probability"] == "" for r in rows)  # today: an empty template
    for r in rows:  # an invented matrix, for the test only: 砖混 at Ⅷ half 中等破坏, half 严重破坏
        r["probability"] = "0.5" if r["damage_state"] in ("中等破坏", "严重破坏") else "0"
        r["source"] = "test"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    monkeypatch.setattr(damage, "RULES_DIR", rules)
    damage.model.cache_clear()
    try:
        m = damage.model()
        assert not m.banded and m.method_zh.startswith("震害矩阵")
        assert set(m.classes["damage_class"]) <= {"钢结构", "钢筋混凝土", "砖混", "砖木", "土木", "窑洞"}
        row = m.table[(m.table["damage_class"] == "砖混") & (m.table["degree"] == 8)]
        assert len(row) == 3 and (row["s2"] == 0.5).all() and (row["s3"] == 0.5).all()
        assert (m.table[(m.table["damage_class"] == "砖混") & (m.table["degree"] == 12)]["s3"] == 0.5).all()
    finally:
        damage.model.cache_clear()


def test_the_final_report_sets_confirmed_against_estimated_and_names_units(district):
    d, event, _ = district
    files = followup.close(event, d.data_raw, d.output / "published" / "litong.duckdb", d.db, d.output, "值班员王五")
    text = next(p for p in files if p.name == "终报.txt").read_text(encoding="utf-8")
    assert "已排查的2栋房屋，现场确认与首报对这些房屋的估计：" in text and "毁坏确认1栋、估计约" in text
    assert "房屋破坏（已排查房屋，现场确认与估计）：" in text and "  金积镇：基本完好确认0栋" in text
    assert "  金积镇人民政府：" in text and "T100" not in text and not CREDIT_CODE.search(text)
