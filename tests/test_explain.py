"""`explain <id>` on a real DuckDB file: a scored asset, an id whose rows are all in quarantine (said so,
with file, row and reasons, and what to do), and an id that is nowhere."""

from __future__ import annotations

from pipeline.cli import main
from pipeline.platform import store
from pipeline.scoring.explain import explain
from tests.conftest import csv_bytes
from tests.test_ledger import building, survey


def _explain(deployment, asset_id: str) -> str:
    with store.connect_read(deployment.root / "no-snapshot.duckdb", deployment.db) as con:  # as the CLI reads
        return explain(con, asset_id)


def test_an_id_whose_rows_are_all_in_quarantine_says_where_and_why(deployment):
    rows = [building("JZ-OK"), building("JZ-Q", lon="200", year_built="公元")]
    deployment.drop("buildings", "镇甲.csv", csv_bytes("buildings", rows), unit="ZJJ", rnd="2023-1")
    deployment.intake("buildings")  # validated, never scored: there is no scores table at all
    (reasons,) = deployment.query("SELECT reasons_zh FROM quarantine WHERE record_id = 'JZ-Q'")[0]
    text = _explain(deployment, "JZ-Q")
    lines = text.splitlines()
    assert lines[0] == "编码为“JZ-Q”的记录未通过校验（已隔离），因此没有评分："
    assert lines[1] == "  房屋建筑（buildings）：文件 buildings/ZJJ/2023-1/镇甲.csv 第3行（单位 ZJJ，调查轮次 2023-1）"
    assert lines[2] == f"      原因：{reasons}" and "经度" in reasons and "建成年份" in reasons
    assert "改正" in lines[3] and "重新上传" in lines[3]
    assert "请先运行评分" not in text


def test_an_unknown_id_is_not_found(deployment):
    deployment.drop("buildings", "镇甲.csv", csv_bytes("buildings", [building("JZ-OK")]))
    deployment.intake("buildings")
    text = _explain(deployment, "JZ-NOPE")
    assert text.startswith("没有找到编码为“JZ-NOPE”的资产：它没有评分，也不在未通过校验的记录中。")


def test_a_scored_asset_also_names_its_quarantined_rows(deployment):
    survey(deployment, "2023-1", [building("JZ-A", appraisal_grade="D")])
    resurvey = building("JZ-A", lat="99", survey_date="2023-10-10")
    deployment.drop("buildings", "复查.csv", csv_bytes("buildings", [resurvey]), rnd="2023-2")
    deployment.intake("buildings")  # the resurvey's row is refused; the scores are the first round's
    text = _explain(deployment, "JZ-A")
    assert text.startswith("JZ-A 金积镇中心小学教学楼（buildings，调查轮次 2023-1）：60分，重大风险")
    assert "  B01 房屋安全鉴定为D级（整幢危房）  +60分（硬性，隐患）" in text
    assert "另有 1 行同一编码的记录未通过校验，未参与评分：" in text
    assert "  房屋建筑（buildings）：文件 buildings/ZJJ/2023-2/复查.csv 第2行（单位 ZJJ，调查轮次 2023-2）" in text
    assert "“纬度”为“99”" in text


def test_the_cli_explains_a_quarantined_id(deployment, monkeypatch, capsys):
    deployment.drop("buildings", "镇甲.csv", csv_bytes("buildings", [building("JZ-Q", lon="200")]))
    deployment.intake("buildings")
    monkeypatch.setenv("LITONG_DB", str(deployment.db))
    monkeypatch.setenv("LITONG_OUTPUT", str(deployment.output))
    monkeypatch.setenv("LITONG_DATA_RAW", str(deployment.data_raw))
    assert main(["explain", "JZ-Q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("编码为“JZ-Q”的记录未通过校验（已隔离）") and "镇甲.csv 第2行" in out
