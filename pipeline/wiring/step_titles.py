"""What the command line calls each step of a run (reference/step_titles.csv): 校验：房屋建筑, not stg_buildings.

A row names a step, or a family of steps by its prefix and `*` (raw_*, stg_*, scores_*), whose `{title}` is the
kind's title: the survey template's for intake and validation, rules/kinds.yaml's for scoring (乡镇避难场所容量 is
scored, not surveyed). A step the file does not name keeps its code, so a new step is shown, never dropped."""

from __future__ import annotations

import csv
from functools import cache

from pipeline.platform.paths import REFERENCE_DIR
from pipeline.registries.templates import load_template
from pipeline.scoring.ruleset import load_kinds

TITLES_FILE = "step_titles.csv"


@cache
def _rows() -> dict[str, str]:
    with open(REFERENCE_DIR / TITLES_FILE, encoding="utf-8") as f:
        return {r["step"]: r["title"] for r in csv.DictReader(f)}


def _kind_title(family: str, kind: str) -> str | None:
    if family == "scores_":
        spec = load_kinds().get(kind)
        return spec.title if spec and spec.title else None
    try:
        return load_template(kind).title
    except (FileNotFoundError, KeyError):
        return None


def step_title(step: str) -> str:
    """The step's title as people read it (its code when the file names it nowhere)."""
    rows = _rows()
    if step in rows:
        return rows[step]
    for pattern, title in rows.items():
        if pattern.endswith("*") and step.startswith(prefix := pattern[:-1]):
            kind_title = _kind_title(prefix, step.removeprefix(prefix))
            if kind_title:
                return title.format(title=kind_title)
    return step


def step_titles(steps: list[str]) -> dict[str, str]:
    return {s: step_title(s) for s in steps}
