"""Issue 29 §1: adding a survey kind touches no Python. A fourth kind (a toy: 通信铁塔, the 通信 of work point 6)
is defined only in files — its template, rules, view, numbering and supervisor in a copy of schemas/, rules/ and
reference/ — and goes end to end through `cli run` (ingest → validate → score → ledger → exports, charts,
briefing), with its blank template and the portal's upload kinds; nothing in pipeline/ names it."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

from pipeline.platform.paths import PROJECT_ROOT, REFERENCE_DIR, RULES_DIR, SCHEMAS_DIR

TOWERS_SCHEMA = """\
kind: towers
title: 通信铁塔
title_en: Telecom towers
order: 90
departments: [GXJ]
id_keys: [tower_id]
fields:
  - {key: tower_id, header: 铁塔编码, type: text, required: true, example: TT-640302100-01}
  - {key: name, header: 铁塔名称, type: text, required: true, example: 金积基站铁塔}
  - {key: town_code, header: 乡镇代码, type: town_code, required: true, example: "640302100"}
  - {key: lon, header: 经度, type: decimal, required: true, min: 105.9, max: 106.6, example: "106.18"}
  - {key: lat, header: 纬度, type: decimal, required: true, min: 37.6, max: 38.1, example: "37.93"}
  - {key: tilted, header: 塔身是否倾斜, type: bool, example: 否}
  - {key: responsible_unit, header: 责任单位, type: unit_code, required: true, example: GXJ}
  - {key: survey_date, header: 调查日期, type: date, required: true, example: "2023-06-01"}
  - {key: surveyor, header: 调查人, type: text, required: true, example: 张三}
checks: []
"""
TOWERS_RULES = """\
kind: towers
rules:
  - id: T01
    title_zh: 铁塔塔身倾斜
    title_en: Tower leaning
    when: "tilted = true"
    evidence: [tilted]
    points: 40
    hazard: true
    hazard_grade: 一般
    rectification: project
    deadline_days: 90
    measure_zh: 委托检测，纠偏或加固
    source: {ref: "toy rule of the framework test (J)", confidence: J, doc: tests, zh: 测试用规则}
    examples:
      fires: [{tilted: true}]
      silent: [{tilted: false}, {}]
"""
TOWERS_VIEW = """\
CREATE OR REPLACE VIEW v_towers AS
SELECT * FROM stg_towers
QUALIFY row_number() OVER (PARTITION BY tower_id ORDER BY survey_round DESC, survey_date DESC, row_no DESC) = 1;
"""
TOWERS_KIND = """
towers:
  title: 通信铁塔
  prefix: TT
  harm: 地震时可能倒塌，中断通信
  view: v_towers
  id: tower_id
  name: name
  town: town_code
  lon: lon
  lat: lat
"""
TOWERS_FILE = """\
铁塔编码,铁塔名称,乡镇代码,经度,纬度,塔身是否倾斜,责任单位,调查日期,调查人
TT-640302100-01,金积基站铁塔,640302100,106.18,37.93,是,GXJ,2023-06-01,张三
TT-640302107-01,胜利基站铁塔,640302107,106.20,37.99,否,GXJ,2023-06-02,张三
"""


def test_a_kind_defined_only_in_files_goes_end_to_end(tmp_path):
    schemas, rules, reference = tmp_path / "schemas", tmp_path / "rules", tmp_path / "reference"
    shutil.copytree(SCHEMAS_DIR, schemas)
    shutil.copytree(RULES_DIR, rules)
    shutil.copytree(REFERENCE_DIR, reference)
    (schemas / "towers.yaml").write_text(TOWERS_SCHEMA, encoding="utf-8")
    (rules / "towers.yaml").write_text(TOWERS_RULES, encoding="utf-8")
    (rules / "views" / "towers.sql").write_text(TOWERS_VIEW, encoding="utf-8")
    with open(rules / "kinds.yaml", "a", encoding="utf-8") as f:
        f.write(TOWERS_KIND)
    with open(reference / "supervision.csv", "a", encoding="utf-8") as f:
        f.write("towers,*,GXJ,通信铁塔,测试：工业信息化部门\n")
    upload = tmp_path / "data_raw" / "towers" / "GXJ" / "2023-1" / "铁塔调查.csv"
    upload.parent.mkdir(parents=True)
    upload.write_text(TOWERS_FILE, encoding="utf-8")
    (tmp_path / "dagster_home").mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    env = {**os.environ, "LITONG_SCHEMAS": str(schemas), "LITONG_RULES": str(rules),
           "LITONG_REFERENCE": str(reference), "LITONG_DATA_RAW": str(tmp_path / "data_raw"),
           "LITONG_OUTPUT": str(tmp_path / "output"), "LITONG_DB": str(tmp_path / "litong.duckdb"),
           "DAGSTER_HOME": str(tmp_path / "dagster_home"), "PYTHONPATH": str(PROJECT_ROOT)}  # fmt: skip
    env.pop("LITONG_UNAUDITED_FILES", None)
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "run"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "完成 校验：通信铁塔" in done.stdout and "完成 评分：通信铁塔" in done.stdout  # by its title, from its files

    import duckdb

    con = duckdb.connect(str(tmp_path / "litong.duckdb"), read_only=True)
    try:
        hazards = con.execute("SELECT hazard_no, responsible_unit FROM hazards").fetchall()
        staged = con.execute("SELECT count(*) FROM stg_towers").fetchone()[0]
        supervisor = con.execute("SELECT count(*) FROM hazards WHERE kind = 'towers'").fetchone()[0]
    finally:
        con.close()
    assert staged == 2
    assert [h[0] for h in hazards] == ["TT-640302100-01-T01"] and hazards[0][1] == "GXJ"
    assert supervisor == 1
    out = tmp_path / "output"
    assert list((out / "receipts" / "GXJ" / "towers").rglob("*回执*"))
    with open(out / "ledger" / "隐患台账.csv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [(r["隐患编号"], r["资产类别"]) for r in rows] == [("TT-640302100-01-T01", "通信铁塔")]
    with open(out / "charts" / "levels_by_town.csv", encoding="utf-8-sig") as f:
        assert {r["资产类别"] for r in csv.DictReader(f)} == {"通信铁塔"}
    assert (out / "briefing" / "简报.pdf").stat().st_size > 0
    published = out / "published" / "litong.duckdb"
    con = duckdb.connect(str(published), read_only=True)
    try:
        assert (
            con.execute("SELECT count(*) FROM asset_register WHERE kind = 'towers' AND lon IS NOT NULL").fetchone()[0]
            == 2
        )
    finally:
        con.close()

    # the blank template and the portal's upload kinds, from the same files
    probe = ("from pipeline.intake.blank_templates import write_blank_templates; import sys; "
             "print([p.name for p in write_blank_templates(__import__('pathlib').Path(sys.argv[1]))]); "
             "from pipeline.portal.app import KIND_ZH; print(KIND_ZH['towers'])")  # fmt: skip
    shown = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "templates")], cwd=PROJECT_ROOT, env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "通信铁塔" in shown.stdout and any("通信铁塔" in p.name for p in (tmp_path / "templates").iterdir())
    assert "towers" not in "".join(p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "pipeline").rglob("*.py"))
