"""The command line shows each step by what people call it (reference/step_titles.csv), never by its code."""

from __future__ import annotations

import io
import logging
import re

from pipeline.platform.progress import ProgressHandler
from pipeline.publish.charts import CHARTS
from pipeline.registries.templates import load_template
from pipeline.wiring.definitions import defs
from pipeline.wiring.step_titles import _rows, step_title

CODE = re.compile(r"^[a-z_0-9]+$")


def test_every_step_of_every_job_has_a_chinese_title():
    for job in defs.resolve_all_job_defs():
        for node in job.graph.node_defs:
            title = step_title(node.name)
            assert not CODE.match(title) and re.search(r"[\u4e00-\u9fff]", title), (job.name, node.name, title)


def test_a_kind_s_steps_carry_its_title_and_the_charts_their_own():
    assert step_title("stg_buildings") == "校验：" + load_template("buildings").title == "校验：房屋建筑"
    assert step_title("raw_hazchem_inventory") == "读取上传文件：危险化学品储存明细"
    assert step_title("scores_shelter_capacity").startswith("评分：") and "避难场所" in step_title(
        "scores_shelter_capacity"
    )
    assert step_title("a_step_added_later") == "a_step_added_later"  # shown by its code, never dropped
    for chart in CHARTS:
        assert _rows()[f"chart_{chart.name}"] == f"图表：{chart.title_zh}", chart.name


def test_the_progress_lines_show_the_title():
    import dagster as dg

    out = io.StringIO()
    handler = ProgressHandler(2, stream=out, titles={"stg_buildings": "校验：房屋建筑"})

    class Event:
        event_type = dg.DagsterEventType.STEP_START

    record = logging.LogRecord("x", logging.DEBUG, "", 0, "", None, None)
    record.dagster_meta = {"dagster_event": Event(), "step_key": "stg_buildings"}
    handler.emit(record)
    assert "校验：房屋建筑 …" in out.getvalue() and "stg_buildings" not in out.getvalue()
