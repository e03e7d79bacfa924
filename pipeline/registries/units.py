"""Who may act, and when: the unit registry, the district's survey rounds, the acting-unit resolver.

Authority comes from where a file came from — the unit's folder under data_raw/ today, the logged-in
account once uploads go through the web page — never from a value typed inside the file. Everything
that decides "who did this" goes through `acting_unit_of` / `resolve_acting_unit`, so a new channel
(an account) is one more branch here, not a new rule in every stage.

The registry is `reference/units.csv` (the district government, departments, towns, the enterprises
named in the plan) and the enterprises the surveys name: a hazardous-chemical site's enterprise and a
pipeline's operator, by their unified social credit codes, each supervised by the department whose
folder its latest survey came from (the scoring stage keeps them in the store's `enterprise_units`;
`load_enterprises` brings them in whenever a connection to the store opens). Every unit but the
district's top one names its supervising unit. An enterprise that both kinds name takes its hazchem
regulator as supervisor (before its pipeline department).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

import duckdb

from pipeline.formats.yaml_file import load_yaml
from pipeline.platform.paths import REFERENCE_DIR, RULES_DIR

UNITS_FILE = "units.csv"
TOP_UNIT = "QZF"  # 利通区人民政府: supervises the bureau (YJJ); the registry's one unit without a supervisor
ROUNDS_FILE = "survey_rounds.csv"


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    kind: str  # department / town / enterprise
    supervisor: str | None

    def label(self) -> str:
        """`T100（金积镇人民政府）`, as receipts name a unit."""
        return f"{self.code}（{self.name}）"


@dataclass(frozen=True)
class SurveyRound:
    code: str
    name_zh: str
    starts_on: dt.date
    ends_on: dt.date
    order: int  # 1, 2, … in the order the rounds happen


@cache
def enterprise_surveys() -> dict[str, tuple[str, ...]]:
    """kind → its staging tables, for the survey kinds whose assets belong to an enterprise (`owner` in
    rules/kinds.yaml): their scoring finds the enterprises that the other surveys' 责任单位 may name, so those
    surveys are validated after it (one run then does all its work: the next finds nothing to do)."""
    with open(RULES_DIR / "kinds.yaml", encoding="utf-8") as f:
        kinds = load_yaml(f) or {}
    return {
        kind: tuple(spec.get("staging") or [f"stg_{kind}"])
        for kind, spec in kinds.items()
        if isinstance(spec, dict) and spec.get("owner")
    }


@cache
def district_units() -> dict[str, Unit]:
    """unit_code → Unit of reference/units.csv, in the file's order."""
    with open(REFERENCE_DIR / UNITS_FILE, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {r["unit_code"]: Unit(r["unit_code"], r["unit_name"], r["kind"], r["supervisor_code"] or None) for r in rows}


_enterprises: dict[str, Unit] = {}
_merged: dict[str, Unit] | None = None


def units() -> dict[str, Unit]:
    """unit_code → Unit: the district's units, then the enterprises from the surveys."""
    global _merged
    if _merged is None:
        base = district_units()  # a district unit's code is never shadowed by a survey's
        _merged = {**base, **{c: u for c, u in _enterprises.items() if c not in base}}
    return _merged


def set_enterprises(enterprises: dict[str, Unit]) -> None:
    global _enterprises, _merged
    _enterprises, _merged = dict(enterprises), None


def load_enterprises(con: duckdb.DuckDBPyConnection) -> None:
    """Replace the enterprises with those of this store (none when it has no `enterprise_units`)."""
    if not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'enterprise_units'").fetchall():
        set_enterprises({})
        return
    order = {k: i for i, k in enumerate(("hazchem_sites", "pipelines"))}
    rows = con.execute(
        "SELECT unit_code, unit_name, supervisor_code, survey_kind FROM enterprise_units ORDER BY unit_code"
    ).fetchall()
    found: dict[str, tuple[int, Unit]] = {}
    for code, name, supervisor, survey_kind in rows:
        rank = order.get(survey_kind, len(order))
        if code not in found or rank < found[code][0]:
            found[code] = (rank, Unit(code, name or code, "enterprise", supervisor))
    set_enterprises({c: u for c, (_, u) in found.items()})


def unit_label(code: str | None) -> str:
    """A unit as people read it; an unknown code is shown as typed."""
    if code and code in units():
        return units()[code].label()
    return f"“{code}”" if code else "（未填写）"


def supervisor_of(code: str | None) -> str | None:
    unit = units().get(code or "")
    return unit.supervisor if unit else None


@cache
def survey_rounds() -> dict[str, SurveyRound]:
    """round_code → SurveyRound. Codes sort as text in the order the rounds happen (checked here),
    so `ORDER BY survey_round` in SQL and `>` between two codes both mean "later"."""
    with open(REFERENCE_DIR / ROUNDS_FILE, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for i, r in enumerate(rows, start=1):
        out[r["round_code"]] = SurveyRound(
            r["round_code"], r["round_name_zh"], dt.date.fromisoformat(r["starts_on"]),
            dt.date.fromisoformat(r["ends_on"]), i,
        )  # fmt: skip
    codes = list(out)
    if codes != sorted(codes):
        raise ValueError(f"reference/{ROUNDS_FILE}: round codes must sort as text in the order of the rounds")
    return out


def round_problem(code: str | None) -> str | None:
    """Why a folder name is not a survey round of the district (Chinese, for the unit), or None."""
    if code in survey_rounds():
        return None
    known = "、".join(survey_rounds())
    return f"文件夹“{code}”不是区里确定的调查轮次（可用：{known}），请放到正确的轮次文件夹后重新上传"


def acting_unit_of(rel_path: str) -> str | None:
    """The unit a file under data_raw/ came from: its folder `<kind>/<unit>/…`; None if the folder is
    not a registered unit (such a file is refused, never attributed)."""
    parts = PurePosixPath(rel_path).parts
    if len(parts) >= 2 and parts[1] in units():
        return parts[1]
    return None


class AuthorityError(Exception):
    """A request to act for a unit that the channel does not carry (Chinese message)."""


def resolve_acting_unit(folder_unit: str | None, requested: str | None = None) -> str:
    """The acting unit of one submission: the folder's (or, later, the account's) unit. A unit named
    by the person (CLI `--unit`) must be that same unit; it never overrides the channel."""
    if requested is not None and requested not in units():
        raise AuthorityError(f"单位代码 {requested} 不在责任单位名录（reference/{UNITS_FILE}）中")
    if folder_unit is None:
        if requested is None:
            raise AuthorityError("无法确定报送单位：文件须放在 data_raw/<类别>/<单位代码>/… 下，或用 --unit 指明本单位")
        return requested
    if requested is not None and requested != folder_unit:
        raise AuthorityError(
            f"--unit 指明的单位 {unit_label(requested)} 与文件所在文件夹的单位 {unit_label(folder_unit)} 不一致："
            "一个单位只能以本单位身份报送"
        )
    return folder_unit
