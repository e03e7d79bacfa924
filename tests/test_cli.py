"""The command line end to end in a temporary folder: run, status, explain, feedback (preview, then
apply), export (today and as of a past date), refresh; errors are messages, not tracebacks."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from pipeline.cli import main
from pipeline.platform.paths import PROJECT_ROOT
from sample import generate as sample_data
from tests.conftest import built_once, csv_bytes
from tests.test_ledger import fb


@contextlib.contextmanager
def home_environment(root: Path) -> Iterator[Path]:
    """The environment `cli` reads, pointed at the deployment in `root`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LITONG_DATA_RAW", str(root / "data_raw"))
        mp.setenv("LITONG_OUTPUT", str(root / "output"))
        mp.setenv("LITONG_DB", str(root / "litong.duckdb"))
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        mp.delenv("LITONG_UNAUDITED_FILES", raising=False)
        yield root


def _run_generated_district(root: Path) -> None:
    """A small generated district in `root`, run once through `cli run` (its screen kept in run_output.txt)."""
    (root / "dagster_home").mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", root / "dagster_home" / "dagster.yaml")
    sample_data.generate(root / "data_raw", buildings=200, bridges=20, sites=6, pipelines=4, formats="csv")
    printed = io.StringIO()
    with home_environment(root), contextlib.redirect_stdout(printed):
        assert main(["run"]) == 0
    (root / "run_output.txt").write_text(printed.getvalue())


@contextlib.contextmanager
def generated_home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A writable copy, in a folder of its own, of the small generated district that went through `cli run`
    once this session (the deployment moved: the next run must work where it now is), its environment set."""
    built = built_once(tmp_path_factory, "cli_district", _run_generated_district)
    root = tmp_path_factory.mktemp(name)
    shutil.copytree(built, root, symlinks=True, dirs_exist_ok=True)  # copy2: the files keep their mtimes
    with home_environment(root):
        yield root


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A small generated district in its own folder, run once through `cli run`."""
    with generated_home(tmp_path_factory, "cli") as root:
        yield root


def _query(root, sql: str, params: list | None = None) -> list[tuple]:
    from pipeline.platform import store

    with store.connect(root / "litong.duckdb") as con:
        return con.execute(sql, params or []).fetchall()


def test_run_shows_progress_and_writes_every_output(home):
    out = (home / "run_output.txt").read_text()
    assert "[ 1/42]" in out and "[42/42]" in out and "完成 校验：房屋建筑" in out and "接收 " in out and "简报：" in out
    assert (home / "output" / "briefing" / "简报.pdf").exists()
    assert len(list((home / "output" / "charts").glob("*.png"))) == 7
    assert (home / "output" / "ledger" / "隐患台账.xlsx").exists()


def test_status_shows_last_run_counts_and_failing_checks(home, capsys):
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "最近一次运行：" in out and "SUCCESS" in out and "未通过的检查：" in out
    (found,) = _query(home, "SELECT count(*) FROM hazards")[0]
    assert f"隐患 {found:,}：" in out and "房屋建筑" in out  # the kind by its title, not its folder name


def test_status_counts_overdue_without_sorting_the_ledger(home, capsys, monkeypatch):
    """The summary's overdue figure is the ledger's own count (as the summaries count it), read without ordering
    every hazard: a count needs no order, and at 1 M buildings the sort was most of the summary's time."""
    import pipeline.ledger.exports as exports
    from pipeline.platform import store
    from pipeline.platform.clock import district_today

    with store.connect(home / "litong.duckdb") as con:
        expected = int(exports.query_ledger(con, district_today(), "SELECT count(overdue_days) AS n FROM l")["n"][0])
    asked, query_ledger = [], exports.query_ledger
    monkeypatch.setattr(
        exports, "query_ledger", lambda *a, **k: asked.append(k.get("ordered", True)) or query_ledger(*a, **k)
    )
    assert main(["status"]) == 0
    assert f"逾期 {expected:,}（" in capsys.readouterr().out
    assert asked == [False]


def test_explain_an_asset(home, capsys):
    (asset_id,) = _query(home, "SELECT asset_id FROM scores ORDER BY score DESC, asset_id LIMIT 1")[0]
    assert main(["explain", asset_id]) == 0
    assert asset_id in capsys.readouterr().out


def test_feedback_preview_changes_nothing_then_apply_changes_the_ledger(home, tmp_path, capsys):
    hazard_no, unit = _query(
        home, "SELECT hazard_no, responsible_unit FROM hazards WHERE status = '待整改' ORDER BY hazard_no LIMIT 1"
    )[0]
    upload = tmp_path / "整改反馈.csv"
    upload.write_bytes(csv_bytes("feedback", [fb(hazard_no, "整改中", unit=unit, report_date="2024-03-01")]))

    assert main(["feedback", str(upload), "--unit", unit]) == 0
    out = capsys.readouterr().out
    assert "将执行 1 行，退回 0 行" in out and "仅预览" in out and "已执行" not in out  # nothing applied yet
    assert _query(home, "SELECT status FROM hazards WHERE hazard_no = ?", [hazard_no]) == [("待整改",)]

    assert main(["feedback", str(upload), "--unit", unit, "--apply", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "已执行 1 行" in out and "[ 1/10]" in out and "[10/10]" in out and "完成 发布数据" in out  # the refresh
    assert _query(home, "SELECT status FROM hazards WHERE hazard_no = ?", [hazard_no]) == [("整改中",)]
    assert list((home / "output" / "receipts" / unit / "feedback").rglob("*_回执.xlsx"))

    assert main(["feedback", str(upload), "--unit", unit, "--apply", "--yes"]) == 0
    assert "不再重复执行" in capsys.readouterr().out


def test_export_today_and_as_of_a_past_date(home, capsys):
    assert main(["export"]) == 0
    assert main(["export", "--as-of", "2023-01-01"]) == 0
    out = capsys.readouterr().out
    (found,) = _query(home, "SELECT count(*) FROM hazards")[0]
    assert f"{found:,} 项隐患" in out and "2023-01-01 的台账：0 项隐患" in out
    assert (home / "output" / "ledger" / "隐患台账_2023-01-01.xlsx").exists()
    today = _query(home, "SELECT max(event_date) FROM hazard_events")[0][0] + dt.timedelta(days=1)
    assert main(["export", "--as-of", today.isoformat()]) == 0  # rebuilt from the history alone
    assert f"{today} 的台账：{found:,} 项隐患" in capsys.readouterr().out
    assert (home / "output" / "ledger" / f"责任单位汇总_{today}.csv").exists()


def test_errors_are_messages_not_tracebacks(home, tmp_path, capsys, monkeypatch):
    assert main(["export", "--as-of", "2023-13-45"]) == 1
    assert main(["feedback", str(tmp_path / "nope.csv")]) == 1
    stray = tmp_path / "f.csv"
    stray.write_text("x")
    assert main(["feedback", str(stray)]) == 1
    err = capsys.readouterr().err
    assert "日期格式" in err and "找不到文件" in err and "--unit" in err and "Traceback" not in err

    monkeypatch.setenv("LITONG_DB", str(tmp_path / "none.duckdb"))
    monkeypatch.setenv("LITONG_OUTPUT", str(tmp_path / "no_output"))  # no published snapshot either
    assert main(["explain", "X"]) == 1
    assert "尚未运行" in capsys.readouterr().err


def test_a_second_writer_waits_then_refuses_clearly_and_changes_nothing(home, capsys, monkeypatch):
    """Another process holds the writer lock (as a long run would): `run` and `feedback` wait a bounded
    time, say so, then refuse with the holder named; nothing was written."""
    events = _query(home, "SELECT count(*) FROM hazard_events")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(home / "litong.duckdb")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        monkeypatch.setenv("LITONG_WRITER_WAIT", "1")
        assert main(["status"]) == 0 and main(["explain", "NO-SUCH-ID"]) == 0  # readers read the snapshot
        capsys.readouterr()
        assert main(["run"]) == 1
        captured = capsys.readouterr()
        assert "等待其结束（最多 1 秒）" in captured.out
        assert "正被另一个运行写入" in captured.err and "测试中的长运行" in captured.err
        assert "Traceback" not in captured.err
    finally:
        holder.kill()
        holder.wait()
    assert _query(home, "SELECT count(*) FROM hazard_events") == events
    assert main(["refresh"]) == 0  # the holder died: its lock went with it


HOLD_LOCK = """
import sys, time
from pathlib import Path
import duckdb
from pipeline.platform.writer_lock import writer_lock
with writer_lock(Path(sys.argv[1]), "测试中的长运行"):
    con = duckdb.connect(sys.argv[1])  # a writer has the live database open (DuckDB locks the file)
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_run_whose_process_died_is_marked_failed_and_blocks_nothing(home, capsys):
    from pipeline.platform.writer_lock import runs_dir

    instance = dg.DagsterInstance.get()
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="main_job", run_id=run_id, status=dg.DagsterRunStatus.STARTED,
                                   tags={"litong/database": "write"}))  # fmt: skip
    dead_lock = runs_dir(home / "litong.duckdb") / f"{run_id}.lock"
    dead_lock.parent.mkdir(exist_ok=True)
    dead_lock.touch()  # its process held this until it died; nobody holds it now
    try:
        assert main(["refresh"]) == 0
        assert f"运行 {run_id[:8]} 的进程已不存在" in capsys.readouterr().out
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    finally:
        instance.delete_run(run_id)


def test_rules_and_templates(home, capsys):
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    assert "全部示例通过" in out and "B01" in out and "H01" in out
    fired = _query(home, "SELECT count(DISTINCT asset_id) FROM findings WHERE rule_id = 'B09'")[0][0]
    assets = _query(home, "SELECT count(*) FROM scores WHERE kind = 'buildings'")[0][0]
    (b09,) = [line for line in out.splitlines() if line.strip().startswith("B09")]
    assert f"触发 {fired:,}/{assets:,}（{fired / assets:.1%}）" in b09  # how often it fires on the current data
    assert main(["templates"]) == 0
    assert len(list((home / "output" / "templates").glob("*模板.xlsx"))) == 11  # nine surveys, two feedbacks


def test_a_run_that_fails_says_its_figures_are_not_from_this_run(home, capsys, monkeypatch):
    import pipeline.publish.snapshot as snapshot

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(snapshot, "publish_snapshot", broken)
    assert main(["run"]) == 1
    out = capsys.readouterr().out
    assert "运行未成功完成" in out and "注意：本次运行未完成发布，以下数字不是本次运行的结果" in out
