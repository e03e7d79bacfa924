"""After a felt earthquake (issue 13): 灾情反馈 from the units, 续报 and 终报, damage onto the ledger."""

from __future__ import annotations

import datetime as dt
import re

import openpyxl
import pytest

from pipeline.ledger import quake_damage
from pipeline.platform import clock, store
from pipeline.quake import followup
from pipeline.quake.event import declare, event_from, find_event
from pipeline.quake.respond import event_dir, first_report
from tests.conftest import Deployment, csv_bytes, example_row, run_all
from tests.test_ledger import building

EVENT = {"time": "2025-06-30 14:23:05", "lon": 106.19, "lat": 37.93, "depth_km": 10, "magnitude": 6.5}
SCHOOL, HOUSE_C, HOUSE, OTHER_TOWN = "SCH-0001", "H-0001", "H-0002", "H-0003"


def report(object_id: str = "", **overrides) -> dict:
    row = example_row("quake_feedback", object_id=object_id, object_kind="", hazard_no="", inspected="是",
                      damage_state="轻微破坏", deaths="0", injuries="0", usable="是", measures="已疏散人员",
                      report_date="2025-07-01", person="马建国")  # fmt: skip
    row.update(overrides)
    return row


def drop_batch(d: Deployment, unit: str, name: str, rows: list[dict], event_id: str) -> None:
    d.drop("quake_feedback", name, csv_bytes("quake_feedback", rows), unit=unit, rnd=event_id)


def take(d: Deployment) -> list[quake_damage.BatchResult]:
    clock.use_data_raw(d.data_raw)  # the district's date is today's (not the bundled sample's as-of date)
    with store.connect(d.db) as con:
        quake_damage.validate_quake_feedback(con, d.data_raw)
        return quake_damage.apply_pending(con, d.data_raw)


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> tuple[Deployment, str]:
    """Four buildings near the epicentre: a school of the education bureau (JYJ), two houses of 金积镇 (T100),
    one of them appraised C (an open 一般 hazard), and a house of 金银滩镇 (T101); an M 6.5 event."""
    d = Deployment(tmp_path_factory.mktemp("quake_feedback"))
    rows = [
        building(SCHOOL, town_code="640302100", use="学校", responsible_unit="JYJ", lon="106.19", lat="37.94"),
        building(HOUSE_C, town_code="640302100", appraisal_grade="C", responsible_unit="T100", lon="106.20", lat="37.93"),
        building(HOUSE, town_code="640302100", responsible_unit="T100", lon="106.18", lat="37.92"),
        building(OTHER_TOWN, town_code="640302101", town_name="金银滩镇", responsible_unit="T101", lon="106.25", lat="37.98"),
    ]  # fmt: skip
    d.drop("buildings", "b.csv", csv_bytes("buildings", rows), unit="ZJJ")
    assert run_all(d, publish=False).success
    event = event_from(EVENT)
    declare(event, d.data_raw)
    first_report(event, d.db, d.db, d.output)
    return d, event.event_id


def test_a_unit_reports_only_on_its_own_objects(district):
    d, eid = district
    drop_batch(d, "T100", "t100_1.csv", [report(HOUSE, damage_state="中等破坏", usable="否"),
                                          report(OTHER_TOWN, damage_state="严重破坏", usable="否")], eid)  # fmt: skip
    (batch,) = take(d)
    outcome = {r["asset_id"]: (r["outcome"], r["reason_zh"]) for r in batch.rows}
    assert outcome[HOUSE] == ("已受理", "")
    assert outcome[OTHER_TOWN][0] == "退回" and "不是本单位负责的对象（责任单位为T101" in outcome[OTHER_TOWN][1]
    assert batch.event_id == eid and batch.batch_seq == 1
    assert d.query("SELECT count(*) FROM hazards WHERE asset_id = ? AND rule_id = 'ZSB'", [OTHER_TOWN]) == [(0,)]
    with store.connect(d.db) as con:
        (path,) = [p for p in quake_damage.write_quake_feedback_receipts(con, d.output / "receipts")
                   if "t100_1" in p.name]  # fmt: skip
    rows = list(openpyxl.load_workbook(path)["逐行结果"].iter_rows(values_only=True))
    assert rows[0][:5] == ("行号", "对象编码", "对象名称", "隐患编号", "结果")
    assert any(r[1] == OTHER_TOWN and r[4] == "退回" and "T101" in r[-1] for r in rows[1:])


def test_a_destroyed_school_opens_a_major_hazard_with_the_event_on_its_history(district):
    d, eid = district
    drop_batch(d, "JYJ", "jyj_1.csv", [report(SCHOOL, damage_state="毁坏", usable="否", deaths="0", injuries="3")], eid)
    (batch,) = take(d)
    assert batch.taken == 1 and batch.rows[0]["opened_hazard"] == f"JZ-{SCHOOL}-ZSB"
    grade, status, origin, unit, supervised = d.query(
        "SELECT hazard_grade, status, origin_event, responsible_unit, supervise_no FROM hazards WHERE hazard_no = ?",
        [f"JZ-{SCHOOL}-ZSB"],
    )[0]
    assert (grade, status, origin, unit) == ("重大", "待整改", eid, "JYJ") and supervised is None  # 督办: a decision
    # 立即停止使用、疏散人员: the control is due the day after the report (rules/quake/damage.yaml control_days: 1)
    assert d.query("SELECT control_deadline, control_done_on FROM hazards WHERE hazard_no = ?",
                   [f"JZ-{SCHOOL}-ZSB"]) == [(dt.date(2025, 7, 2), None)]  # fmt: skip
    notes = [n for (n,) in d.query("SELECT note FROM hazard_events WHERE hazard_no = ? ORDER BY seq",
                                   [f"JZ-{SCHOOL}-ZSB"])]  # fmt: skip
    assert notes == [f"地震事件{eid}后现场排查为毁坏，登记震损隐患（重大）"]


def test_severe_damage_raises_the_objects_open_hazards_to_major(district):
    d, eid = district
    before = d.query("SELECT hazard_no, hazard_grade FROM hazards WHERE asset_id = ? AND status = '待整改'", [HOUSE_C])
    assert before and all(g == "一般" for _, g in before)
    drop_batch(d, "T100", "t100_2.csv", [report(HOUSE_C, damage_state="严重破坏", usable="否")], eid)
    (batch,) = take(d)
    assert batch.batch_seq == 3 and batch.rows[0]["raised_hazards"] == "、".join(sorted(h for h, _ in before))
    grades = dict(d.query("SELECT rule_id, hazard_grade FROM hazards WHERE asset_id = ?", [HOUSE_C]))
    assert grades.pop("ZSB") == "一般"  # a house found 严重破坏: a 一般 震损 hazard (毁坏 or a school: 重大)
    assert set(grades.values()) == {"重大"}
    notes = [n for (n,) in d.query("SELECT note FROM hazard_events WHERE hazard_no = ? ORDER BY seq", [before[0][0]])]
    assert notes[-1] == f"地震事件{eid}后现场排查为严重破坏，隐患由一般升为重大"  # and no automatic 挂牌督办


def test_bad_rows_and_unknown_objects_are_returned_and_every_row_is_accounted_for(district):
    d, eid = district
    rows = [
        report("NO-SUCH"),
        report(HOUSE, inspected="否", damage_state=""),
        report("", hazard_no=""),
        report("X-1", damage_state="毁坏", usable="是"),
        report(HOUSE_C, report_date="2025-06-01"),
    ]
    drop_batch(d, "T100", "t100_3.csv", rows, eid)
    (batch,) = take(d)
    reasons = {r["row_no"]: (r["outcome"], r["reason_zh"]) for r in batch.rows}
    assert len(reasons) == len(rows) and batch.taken == 1  # only the 未排查 row of HOUSE
    assert "对象编码“NO-SUCH”" in reasons[2][1]
    assert reasons[3] == ("已受理", "")
    assert "对象编码和隐患编号至少填写一项" in reasons[4][1]
    assert "严重破坏或毁坏的对象不能填写为可正常使用" in reasons[5][1]
    assert "早于地震发生日期2025-06-30" in reasons[6][1]


def confirmed_sql(d: Deployment, eid: str, k: int) -> dict[str, int]:
    """Damage states through batch k, counted straight from the taken rows (latest inspection per object)."""
    return dict(d.query(
        "SELECT damage_state, count(*) FROM (SELECT * FROM quake_feedback_rows WHERE event_id = ? AND outcome = '已受理' "
        "AND batch_seq <= ? QUALIFY row_number() OVER (PARTITION BY kind, asset_id ORDER BY inspected DESC, batch_seq DESC) = 1) "
        "WHERE inspected GROUP BY ALL", [eid, k]))  # fmt: skip


def confirmed_in(text: str) -> dict[str, int]:
    line = next(x for x in text.splitlines() if "现场确认：" in x)
    return {s: int(re.search(f"{s}([0-9,]+)处", line).group(1).replace(",", "")) for s in followup.STATES}


def test_each_batch_gives_a_follow_up_report_whose_counts_are_sql_counts(district):
    d, eid = district
    event = find_event(d.data_raw, eid)
    files = followup.follow_up(event, d.output / "published" / "litong.duckdb", d.db, d.output)
    batches = d.query("SELECT count(*) FROM quake_feedback_applied WHERE event_id = ?", [eid])[0][0]
    assert batches >= 2 and [p.name for p in files] == [
        f"续报{n}.{x}" for n in range(1, batches + 1) for x in ("txt", "pdf")
    ]
    for k in range(1, batches + 1):
        text = (event_dir(d.output, event) / f"续报{k}.txt").read_text(encoding="utf-8")
        assert text.startswith(f"利通区地震灾情续报（第{k}报，{eid}）") and f"截至第{k}批灾情反馈" in text
        assert {s: n for s, n in confirmed_in(text).items() if n} == confirmed_sql(d, eid, k)
    second = (event_dir(d.output, event) / "续报2.txt").read_text(encoding="utf-8")
    assert f"登记（或更新）震损隐患1项：JZ-{SCHOOL}-ZSB" in second and "毁坏+1" in second and "受伤人数+3人" in second
    assert followup.follow_up(event, d.output / "published" / "litong.duckdb", d.db, d.output) == []  # once each


def test_closing_writes_the_final_report_and_later_batches_are_refused(district):
    d, eid = district
    event = find_event(d.data_raw, eid)
    files = followup.close(event, d.data_raw, d.output / "published" / "litong.duckdb", d.db, d.output, "值班人员张三")
    assert [p.name for p in files[-3:]] == ["终报.txt", "终报.pdf", "终报_未排查对象.xlsx"]
    text = (event_dir(d.output, event) / "终报.txt").read_text(encoding="utf-8")
    assert "五、本次地震登记的震损隐患：2项" in text and f"JZ-{SCHOOL}-ZSB" in text and f"JZ-{HOUSE_C}-ZSB" in text
    inspected = {a for (a,) in d.query("SELECT DISTINCT asset_id FROM quake_feedback_rows WHERE event_id = ? "
                                       "AND outcome = '已受理' AND inspected", [eid])}  # fmt: skip
    rows = list(openpyxl.load_workbook(files[-1])["未排查对象"].iter_rows(values_only=True))
    assert {r[3] for r in rows[1:]} == {SCHOOL, HOUSE_C, HOUSE, OTHER_TOWN} - inspected == {OTHER_TOWN}
    assert "仍未报告现场排查的对象：1处" in text and "值班人员张三" in text
    drop_batch(d, "T101", "late.csv", [report(OTHER_TOWN)], eid)
    assert take(d) == []
    problem = d.query("SELECT problem_zh FROM intake_files WHERE rel_path LIKE '%late.csv'")[0][0]
    assert problem.startswith(f"地震事件“{eid}”已于") and "结束（终报已发出），不再受理该事件的灾情反馈" in problem


def test_a_batch_for_an_unknown_event_is_refused_with_a_reason(district):
    d, _ = district
    drop_batch(d, "T100", "wrong.csv", [report(HOUSE)], "20250101T000000-M3.0")
    assert take(d) == []
    problem = d.query("SELECT problem_zh FROM intake_files WHERE rel_path LIKE '%wrong.csv'")[0][0]
    assert problem.startswith("地震事件“20250101T000000-M3.0”未登记")


# --- through Dagster and the command line ---------------------------------------------------------------------


@pytest.fixture
def published_district(tmp_path) -> tuple[Deployment, str]:
    """A school and a house, an event with its 首报, and one 灾情反馈 batch dropped by the education bureau."""
    d = Deployment(tmp_path)
    rows = [building(SCHOOL, town_code="640302100", use="学校", responsible_unit="JYJ", lon="106.19", lat="37.94"),
            building(HOUSE, town_code="640302100", responsible_unit="T100", lon="106.18", lat="37.92")]  # fmt: skip
    d.drop("buildings", "b.csv", csv_bytes("buildings", rows), unit="ZJJ")
    event = event_from({**EVENT, "magnitude": 5.9})
    declare(event, d.data_raw)
    drop_batch(d, "JYJ", "jyj.xlsx.csv", [report(SCHOOL, damage_state="毁坏", usable="否")], event.event_id)
    assert run_all(d, publish=False).success
    from pipeline.publish.snapshot import publish_snapshot

    publish_snapshot(d.db, d.output / "published" / "litong.duckdb", "run-1", "main_job")
    first_report(event, d.output / "published" / "litong.duckdb", d.db, d.output)
    return d, event.event_id


def test_the_sensor_starts_a_follow_up_once_per_new_batch_and_the_ui_closes_the_event(published_district):
    import datetime as dt
    import os

    import dagster as dg

    from pipeline.wiring.definitions import defs
    from pipeline.wiring.sensors import earthquake_sensor, what_to_run

    d, eid = published_district
    job, selection = what_to_run([f"quake_feedback/JYJ/{eid}/jyj.xlsx.csv"])
    assert job == "main_job" and dg.AssetKey("ledger_quake_damage") in selection
    assert dg.AssetKey("raw_buildings") not in selection and dg.AssetKey("published_snapshot") in selection
    old = dt.datetime.now().timestamp() - 60
    for p in (d.data_raw / "earthquakes").rglob("*.yaml"):
        os.utime(p, (old, old))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("quake_events", [eid])
        with dg.build_sensor_context(instance=instance, resources={"store": d.resource()}, definitions=defs) as ctx:
            first = earthquake_sensor(ctx)  # the event file itself: quake_job (whose follow-up asset runs too)
            cursor = ctx.cursor
        assert [(r.job_name, r.partition_key) for r in first.run_requests] == [("quake_job", eid)]
        with dg.build_sensor_context(instance=instance, resources={"store": d.resource()}, definitions=defs,
                                     cursor=cursor) as ctx:  # fmt: skip
            result = earthquake_sensor(ctx)
            cursor = ctx.cursor
        assert [(r.job_name, r.partition_key, r.run_key) for r in result.run_requests] == [
            ("quake_followup_job", eid, f"followup:{eid}:1")]  # fmt: skip
        run = defs.resolve_job_def("quake_followup_job").execute_in_process(
            instance=instance, partition_key=eid, resources={"store": d.resource()})  # fmt: skip
        assert run.success
        meta = run.asset_materializations_for_node("quake_follow_up")[0].metadata
        assert meta["reports_written"].value == ["续报1"] and "毁坏1处" in meta["latest"].value
        with dg.build_sensor_context(instance=instance, resources={"store": d.resource()}, definitions=defs,
                                     cursor=cursor) as ctx:  # fmt: skip
            again = earthquake_sensor(ctx)
        assert isinstance(again, dg.SkipReason)  # 续报1 written: nothing more to start
        closed = defs.resolve_job_def("close_earthquake_job").execute_in_process(
            instance=instance, resources={"store": d.resource()},
            run_config={"ops": {"close_earthquake": {"config": {"event_id": eid, "closed_by": "值班员李四"}}}})  # fmt: skip
        assert closed.success
    text = (d.output / "quake" / eid / "终报.txt").read_text(encoding="utf-8")
    assert "值班员李四" in text and f"JZ-{SCHOOL}-ZSB（" in text and "仍未报告现场排查的对象：1处" in text


def test_cli_closes_an_event_and_refuses_an_unknown_one(published_district, tmp_path):
    import os
    import subprocess
    import sys

    from pipeline.platform.paths import PROJECT_ROOT

    d, eid = published_district
    (tmp_path / "dh").mkdir()
    env = {**os.environ, "LITONG_DATA_RAW": str(d.data_raw), "LITONG_OUTPUT": str(d.output),
           "LITONG_DB": str(d.db), "DAGSTER_HOME": str(tmp_path / "dh")}  # fmt: skip
    cli = [sys.executable, "-m", "pipeline.cli", "quake"]
    done = subprocess.run([*cli, "close", eid, "--by", "值班员王五"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"利通区地震灾情终报（{eid}）" in done.stdout and (d.output / "quake" / eid / "续报1.pdf").exists()
    bad = subprocess.run([*cli, "close", "20990101T000000-M5.0"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert (
        bad.returncode == 1
        and "没有编号为 20990101T000000-M5.0 的地震事件" in bad.stderr
        and "Traceback" not in bad.stderr
    )
