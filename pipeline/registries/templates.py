"""Survey template definitions, loaded from `schemas/<kind>.yaml`.

These dataclasses are the one source of truth that the parser, the Great Expectations
suites and the blank templates are generated from.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pipeline.formats.yaml_file import load_yaml
from pipeline.platform.paths import REFERENCE_DIR, SCHEMAS_DIR
from pipeline.registries import units as registry


def survey_kinds(schemas_dir: Path = SCHEMAS_DIR) -> tuple[str, ...]:
    """The survey kinds: every template in `schemas/` with an `order` (the order of every list that shows them).
    Adding a kind is adding its files (schemas/README.md); no list of kinds lives in Python."""
    found = []
    for path in schemas_dir.glob("*.yaml"):
        raw = load_yaml(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and "order" in raw:
            found.append((raw["order"], raw["kind"]))
    return tuple(k for _, k in sorted(found))


KINDS: tuple[str, ...] = survey_kinds()
# Every template, including the rectification feedback (template part 5) and the units' 灾情反馈 after an
# earthquake, which are not surveys.
TEMPLATE_KINDS: tuple[str, ...] = (*KINDS, "feedback", "quake_feedback")
FIELD_TYPES = {
    "text",
    "integer",
    "decimal",
    "year",
    "date",
    "enum",
    "bool",
    "town_code",
    "town_list",
    "unit_code",
    "credit_code",
}
# Values that mean "unknown" (templates.md): a value, not an error, unless required.
UNKNOWN_MARKERS: tuple[str, ...] = ("无", "/", "不详", "未知", "／")
BOOL_ALIASES: dict[str, str] = {
    "是": "是",
    "否": "否",
    "Y": "是",
    "y": "是",
    "YES": "是",
    "Yes": "是",
    "yes": "是",
    "有": "是",
    "√": "是",
    "N": "否",
    "n": "否",
    "NO": "否",
    "No": "否",
    "no": "否",
    "无": "否",
    "×": "否",
}
TYPE_LABELS_ZH = {
    "text": "文本",
    "integer": "整数",
    "decimal": "数字",
    "year": "四位年份",
    "date": "日期(年-月-日)",
    "enum": "从下列取值中选填",
    "bool": "是/否",
    "town_code": "9位乡镇代码",
    "town_list": "乡镇代码或名称，用;分隔",
    "unit_code": "责任单位代码",
    "credit_code": "18位统一社会信用代码",
}


@dataclass(frozen=True)
class Field:
    key: str
    header: str
    type: str
    required: bool = False
    values: tuple[str, ...] = ()
    value_aliases: dict[str, str] = field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    aliases: tuple[str, ...] = ()
    allow_future: bool = False  # dates: a future date is allowed (e.g. an extension)
    warn_below: float | None = None  # a valid value below this gets a hint (提示) on the receipt
    warn_above: float | None = None  # a valid value above this gets a hint (提示) on the receipt
    warn_message: str = ""
    note: str = ""
    example: str = ""

    def allowed_values(self) -> tuple[str, ...]:
        """Values a normalised cell may hold (enum and bool fields)."""
        if self.type == "bool":
            return ("是", "否")
        return self.values

    def spelling_map(self) -> dict[str, str]:
        """Accepted spellings → canonical value, for enum and bool fields."""
        if self.type == "bool":
            return dict(BOOL_ALIASES)
        mapping = {v: v for v in self.values}
        mapping.update(self.value_aliases)
        return mapping

    def expected_zh(self) -> str:
        """What the clerk should have written, in Chinese, for receipts and templates."""
        parts = [TYPE_LABELS_ZH[self.type]]
        if self.allowed_values():
            parts = ["、".join(self.allowed_values())]
        if self.min is not None and self.max is not None:
            parts.append(f"范围{_fmt(self.min)}–{_fmt(self.max)}")
        elif self.min is not None:
            parts.append(f"不小于{_fmt(self.min)}")
        if self.pattern and self.example:
            parts.append(f"格式如{self.example}")
        return "，".join(parts)


@dataclass(frozen=True)
class Check:
    id: str
    columns: tuple[str, ...]
    message: str
    sql: str = ""
    requires: str = ""  # another kind whose valid records this check looks up


@dataclass(frozen=True)
class Template:
    kind: str
    title: str
    title_en: str
    departments: tuple[str, ...]
    id_keys: tuple[str, ...]
    fields: tuple[Field, ...]
    checks: tuple[Check, ...]
    cross_kind: tuple[Check, ...]
    unique_within: str = "round"  # ids must be unique per survey round, or per "file"
    prefilled: tuple[str, ...] = ()  # columns a downloaded file comes filled in: a row with only these is untouched

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.fields]

    def field(self, key: str) -> Field:
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(f"{self.kind} has no field {key!r}")

    def has(self, key: str) -> bool:
        return any(f.key == key for f in self.fields)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _field(raw: dict, kind: str) -> Field:
    if raw["type"] not in FIELD_TYPES:
        raise ValueError(f"schemas/{kind}.yaml: field {raw['key']}: unknown type {raw['type']!r}")
    return Field(
        key=raw["key"],
        header=raw["header"],
        type=raw["type"],
        required=bool(raw.get("required", False)),
        values=tuple(str(v) for v in raw.get("values", [])),
        value_aliases={str(k): str(v) for k, v in (raw.get("value_aliases") or {}).items()},
        min=raw.get("min"),
        max=raw.get("max"),
        pattern=raw.get("pattern"),
        aliases=tuple(raw.get("aliases", [])),
        allow_future=bool(raw.get("allow_future", False)),
        warn_below=(raw.get("warn") or {}).get("below"),
        warn_above=(raw.get("warn") or {}).get("above"),
        warn_message=str((raw.get("warn") or {}).get("message", "")),
        note=str(raw.get("note", "")),
        example=str(raw.get("example", "")),
    )


def _check(raw: dict) -> Check:
    return Check(
        id=raw["id"],
        columns=tuple(raw["columns"]),
        message=raw["message"],
        sql=raw.get("sql", ""),
        requires=raw.get("requires", ""),
    )


@cache
def load_template(kind: str, schemas_dir: Path = SCHEMAS_DIR) -> Template:
    path = schemas_dir / f"{kind}.yaml"
    raw = load_yaml(path.read_text(encoding="utf-8"))
    fields = tuple(_field(f, kind) for f in raw["fields"])
    keys = [f.key for f in fields]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: duplicate field keys")
    for k in raw["id_keys"]:
        if k not in keys:
            raise ValueError(f"{path}: id key {k!r} is not a field")
    return Template(
        kind=raw["kind"],
        title=raw["title"],
        title_en=raw["title_en"],
        departments=tuple(raw.get("departments", [])),
        id_keys=tuple(raw["id_keys"]),
        fields=fields,
        checks=tuple(_check(c) for c in raw.get("checks") or []),
        cross_kind=tuple(_check(c) for c in raw.get("cross_kind") or []),
        unique_within=raw.get("unique_within", "round"),
        prefilled=tuple(raw.get("prefilled") or ()),
    )


def all_templates() -> list[Template]:
    return [load_template(k) for k in KINDS]


@cache
def towns() -> dict[str, str]:
    """town_code → town_name of the 13 township-level units."""
    with open(REFERENCE_DIR / "towns.csv", encoding="utf-8") as f:
        return {r["town_code"]: r["town_name"] for r in csv.DictReader(f)}


def units() -> dict[str, dict[str, str]]:
    """unit_code → row of the responsible-units directory (the one registry, pipeline/registries/units.py)."""
    return {
        c: {"unit_code": u.code, "unit_name": u.name, "kind": u.kind, "supervisor_code": u.supervisor or ""}
        for c, u in registry.units().items()
    }


_UNIT_SUFFIX = re.compile(r"\((米|m|平方米|m2|㎡|吨|t|千米|km|毫米|mm|mpa|%|‰|度|°|辆|人|万元)\)$", re.IGNORECASE)


def header_key(text: str) -> str:
    """Normalise a header for matching: NFKC (full-width brackets, ㎡), no spaces,
    lower case, and the unit in brackets dropped (`建筑面积（㎡）` = `建筑面积(平方米)`)."""
    s = unicodedata.normalize("NFKC", str(text)).replace("\ufeff", "")
    s = re.sub(r"\s+", "", s).lower()
    s = s.replace("m²", "m2")
    return _UNIT_SUFFIX.sub("", s)


def header_lookup(template: Template) -> dict[str, str]:
    """Normalised header → field key, for every accepted spelling of every field."""
    lookup: dict[str, str] = {}
    for f in template.fields:
        for name in (f.header, f.key, *f.aliases):
            lookup[header_key(name)] = f.key
    return lookup
