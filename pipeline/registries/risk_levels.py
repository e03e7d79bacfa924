"""The four risk levels (风险分级) as people read them, from `rules/reference/level_thresholds.csv`.

The colour (红/橙/黄/蓝) and the name (重大风险 …) of each level are the rule reference's, read once: the progress
line, the ledger's 风险等级 column, the charts and the leaders' page all show the same words. An asset's colour is
another axis than a hazard's grade (一般/重大), so a level is shown colour first: 红色（重大风险）.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache

from pipeline.platform.paths import RULES_DIR

THRESHOLDS_FILE = RULES_DIR / "reference" / "level_thresholds.csv"


@dataclass(frozen=True)
class RiskLevel:
    key: str  # red / orange / yellow / blue (the scores' `level`)
    colour_zh: str  # 红色
    name_zh: str  # 重大风险

    @property
    def label_zh(self) -> str:
        """红色（重大风险）."""
        return f"{self.colour_zh}（{self.name_zh}）"

    @property
    def short_label_zh(self) -> str:
        """红色（重大）: where space is short (the leaders' page)."""
        return f"{self.colour_zh}（{self.name_zh.removesuffix('风险')}）"


@cache
def risk_levels() -> tuple[RiskLevel, ...]:
    """The district-wide levels (kind `*`), most severe first."""
    with THRESHOLDS_FILE.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "*"]
    rows.sort(key=lambda r: -float(r["min_score"]))
    return tuple(RiskLevel(r["level"], r["colour"] + "色", r["level_zh"]) for r in rows)


def colour_zh() -> dict[str, str]:
    """{level: 红色 …}, most severe first."""
    return {lv.key: lv.colour_zh for lv in risk_levels()}
