"""Authority comes from where a file came from (its unit's folder; the CLI's --unit must agree), never
from a value typed in it. Every forgery is refused with a Chinese reason and changes nothing."""

from __future__ import annotations

import shutil

import pytest

from pipeline.cli import main
from pipeline.platform.paths import PROJECT_ROOT
from tests.conftest import csv_bytes
from tests.test_ledger import A_DAMAGE, building, fb, feedback, round_one, statuses, survey, update_buildings


def ledger_state(deployment) -> tuple[list, list]:
    """Every column of every hazard and every event, in a fixed order."""
    return (
        deployment.query("SELECT * FROM hazards ORDER BY hazard_no"),
        deployment.query("SELECT * FROM hazard_events ORDER BY seq"),
    )


def ready_for_acceptance(deployment) -> None:
    round_one(deployment)
    feedback(deployment, "进展.csv", [fb(A_DAMAGE, "整改中"), fb(A_DAMAGE, "已整改待验收", report_date="2023-08-20")])
    assert statuses(deployment)[A_DAMAGE] == "已整改待验收"


def test_a_unit_cannot_accept_its_own_work_by_typing_its_supervisor(deployment):
    ready_for_acceptance(deployment)
    before = ledger_state(deployment)
    accept = dict(acceptor="张", accept_date="2023-09-01", accept_result="通过", report_date="2023-09-01")
    (result,) = feedback(deployment, "验收.csv", [fb(A_DAMAGE, "已销号", unit="YJJ", **accept)], unit="T100",
                         batch="2023-09")  # fmt: skip
    (row,) = result.rows
    assert row.outcome == "退回" and row.unit == "T100"
    assert row.reason_zh.startswith("填报单位YJJ（利通区应急管理局（地震局））与报送单位T100（金积镇人民政府）不一致")
    assert ledger_state(deployment) == before


def test_a_unit_cannot_change_another_units_hazard_by_typing_its_code(deployment):
    survey(deployment, "2023-1", [building("JZ-S", falling_hazard="是", responsible_unit="T107")])
    (hazard,) = [h for (h,) in deployment.query("SELECT hazard_no FROM hazards WHERE responsible_unit = 'T107'")]
    before = ledger_state(deployment)
    (typed,) = feedback(deployment, "冒充.csv", [fb(hazard, "整改中", unit="T107")], unit="T100")
    assert typed.rows[0].outcome == "退回" and "与报送单位T100（金积镇人民政府）不一致" in typed.rows[0].reason_zh
    (honest,) = feedback(deployment, "代报.csv", [fb(hazard, "整改中", unit="")], unit="T100", batch="2023-09")
    assert honest.rows[0].reason_zh == "不是本单位负责的隐患（责任单位为T107（胜利镇人民政府））"
    assert ledger_state(deployment) == before


def test_an_empty_unit_is_the_folders_unit_and_events_record_the_acting_unit_and_file(deployment):
    round_one(deployment)
    (result,) = feedback(deployment, "进展.csv", [fb(A_DAMAGE, "整改中", unit="")], unit="T100", batch="2023-08")
    assert result.applied == 1
    events = deployment.query(
        "SELECT unit, source_file FROM hazard_events WHERE hazard_no = ? ORDER BY seq", [A_DAMAGE]
    )
    assert events == [("ZJJ", "buildings/ZJJ/2023-1/2023-1.csv"), ("T100", "feedback/T100/2023-08/进展.csv")]


def test_the_supervisor_accepts_only_from_its_own_folder(deployment):
    ready_for_acceptance(deployment)
    accept = dict(acceptor="张", accept_date="2023-09-01", accept_result="通过", report_date="2023-09-01", unit="")
    (other,) = feedback(deployment, "验收.csv", [fb(A_DAMAGE, "已销号", **accept)], unit="YJJ", batch="2023-09")
    assert (
        other.rows[0].reason_zh
        == "验收销号须由该隐患的行业监管部门ZJJ（利通区住房城乡建设和交通局）报送（按区行业监管分工）"
    )
    (zjj,) = feedback(deployment, "验收.csv", [fb(A_DAMAGE, "已销号", **accept)], unit="ZJJ", batch="2023-09")
    assert zjj.applied == 1 and statuses(deployment)[A_DAMAGE] == "已销号"
    assert deployment.query("SELECT unit FROM hazard_events WHERE to_status = '已销号'") == [("ZJJ",)]


@pytest.fixture
def cli_env(deployment, monkeypatch):
    home = deployment.root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("LITONG_DATA_RAW", str(deployment.data_raw))
    monkeypatch.setenv("LITONG_OUTPUT", str(deployment.output))
    monkeypatch.setenv("LITONG_DB", str(deployment.db))
    return deployment


def test_the_cli_unit_is_the_acting_unit(cli_env, tmp_path, capsys):
    deployment = cli_env
    survey(deployment, "2023-1", [building("JZ-S", falling_hazard="是", responsible_unit="T107")])
    (hazard,) = [h for (h,) in deployment.query("SELECT hazard_no FROM hazards")]
    before = ledger_state(deployment)
    upload = tmp_path / "反馈.csv"
    upload.write_bytes(csv_bytes("feedback", [fb(hazard, "整改中", unit="T107")]))
    assert main(["feedback", str(upload), "--unit", "T100", "--apply", "--yes"]) == 0  # the refresh still runs
    out = capsys.readouterr().out
    assert "执行 0 行，退回 1 行" in out and "与报送单位T100（金积镇人民政府）不一致" in out
    assert (deployment.data_raw / "feedback" / "T100").is_dir() and not (
        deployment.data_raw / "feedback" / "T107"
    ).exists()
    # a file in T100's folder cannot be sent as T107
    placed = next((deployment.data_raw / "feedback" / "T100").rglob("反馈.csv"))
    assert main(["feedback", str(placed), "--unit", "T107"]) == 1
    err = capsys.readouterr().err
    assert "与文件所在文件夹的单位 T100（金积镇人民政府） 不一致" in err and "Traceback" not in err
    assert ledger_state(deployment)[0] == before[0]
    assert main(["status"]) == 0  # the refused row is counted as refused, though it passed validation
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.split()[:1] == ["隐患整改进展反馈"]]
    assert line.split()[-2:] == ["0", "1"]


def test_an_unknown_round_or_a_unit_outside_the_template_cannot_resurvey(deployment):
    round_one(deployment)
    before = ledger_state(deployment)
    clean = [building("JZ-A"), building("JZ-B")]  # the hazards are gone in these "surveys"
    deployment.drop("buildings", "新.csv", csv_bytes("buildings", clean), unit="ZJJ", rnd="9999")
    deployment.drop("buildings", "越权.csv", csv_bytes("buildings", clean), unit="YJJ", rnd="2023-2")
    update_buildings(deployment)
    assert ledger_state(deployment) == before
    problems = dict(deployment.query("SELECT rel_path, problem_zh FROM intake_files WHERE status <> 'ingested'"))
    assert "不是区里确定的调查轮次" in problems["buildings/ZJJ/9999/新.csv"]
    assert "YJJ" in problems["buildings/YJJ/2023-2/越权.csv"]
    # a town may survey its village houses
    deployment.drop("buildings", "村.csv", csv_bytes("buildings", [building("JZ-T")]), unit="T100", rnd="2023-2")
    update_buildings(deployment)
    assert deployment.query("SELECT department FROM stg_buildings WHERE building_id = 'JZ-T'") == [("T100",)]


def test_every_unit_has_a_supervisor_up_to_the_district_government():
    """So every hazard can be accepted by someone other than its own unit (the bureau's by the government)."""
    from pipeline.registries import units as registry

    units = registry.units()
    for code in units:
        seen = [code]
        while units[seen[-1]].supervisor is not None:
            assert units[seen[-1]].supervisor in units, seen
            seen.append(units[seen[-1]].supervisor)
            assert len(seen) < 10, f"supervision loop: {seen}"
        assert seen[-1] == registry.TOP_UNIT, seen
    assert registry.supervisor_of("YJJ") == "QZF"
