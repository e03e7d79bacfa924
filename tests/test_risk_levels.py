"""The risk levels' words come from the rule reference alone, and every reader shows the same ones."""

from __future__ import annotations

import csv

from pipeline.ledger.model import RISK_COLOUR_ZH
from pipeline.publish.style import LEVEL_ZH, LEVELS
from pipeline.registries.risk_levels import THRESHOLDS_FILE, risk_levels
from pipeline.scoring.assets import levels_zh


def test_levels_read_from_the_rule_reference():
    with THRESHOLDS_FILE.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "*"]
    assert [lv.key for lv in risk_levels()] == ["red", "orange", "yellow", "blue"]
    assert {lv.key: (lv.colour_zh, lv.name_zh) for lv in risk_levels()} == {
        r["level"]: (r["colour"] + "色", r["level_zh"]) for r in rows
    }


def test_every_reader_shows_the_same_words():
    assert LEVELS == ["red", "orange", "yellow", "blue"]
    assert LEVEL_ZH == {"red": "红色（重大风险）", "orange": "橙色（较大风险）", "yellow": "黄色（一般风险）",
                        "blue": "蓝色（低风险）"}  # fmt: skip
    assert RISK_COLOUR_ZH == {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"}
    assert levels_zh({"red": 3, "blue": 1200}) == "红色 3 橙色 0 黄色 0 蓝色 1,200"
    assert [lv.short_label_zh for lv in risk_levels()] == ["红色（重大）", "橙色（较大）", "黄色（一般）", "蓝色（低）"]
