"""Match an upload's headers to template fields, through a department's saved mapping."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.intake.schema import Template, header_key, header_lookup

MAPPING_FILE = "列映射.csv"
MAPPING_HEADERS = ("本单位列名", "模板列名")


@dataclass
class HeaderMatch:
    columns: dict[str, str] = field(default_factory=dict)  # field key -> source column
    unknown: list[str] = field(default_factory=list)  # source columns matched to nothing
    problems: list[str] = field(default_factory=list)  # Chinese, file-level, blocking


def load_mapping(path: Path, template: Template) -> tuple[dict[str, str], list[str]]:
    """A department's column mapping: own header → template header. Returns (mapping, problems)."""
    if not path.exists():
        return {}, []
    lookup = header_lookup(template)
    mapping: dict[str, str] = {}
    problems: list[str] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ())[:2] != MAPPING_HEADERS:
            return {}, [f"{path.name}：表头应为“本单位列名,模板列名”"]
        for line_no, row in enumerate(reader, start=2):
            own, target = (row["本单位列名"] or "").strip(), (row["模板列名"] or "").strip()
            if not own or not target:
                problems.append(f"{path.name}第{line_no}行：本单位列名和模板列名都必须填写")
            elif header_key(target) not in lookup:
                problems.append(f"{path.name}第{line_no}行：模板列名“{target}”不是{template.title}模板中的列")
            else:
                mapping[header_key(own)] = lookup[header_key(target)]
    return mapping, problems


def match_headers(source: list[str], template: Template, mapping: dict[str, str]) -> HeaderMatch:
    lookup = header_lookup(template)
    result = HeaderMatch()
    for col in source:
        k = header_key(col)
        key = mapping.get(k) or lookup.get(k)
        if key is None:
            if k and not k.startswith("column"):
                result.unknown.append(col)
            continue
        if key in result.columns:
            first = result.columns[key]
            result.problems.append(f"列“{first}”和列“{col}”都对应模板列“{template.field(key).header}”，请删除其中一列")
            continue
        result.columns[key] = col
    missing = [f.header for f in template.fields if f.required and f.key not in result.columns]
    if "town_code" in result.columns or "town_name" not in result.columns:
        pass
    else:  # 乡镇 by name stands in for 乡镇代码 (templates.md)
        missing = [h for h in missing if h != template.field("town_code").header]
    if missing:
        result.problems.append("缺少必填列：" + "、".join(missing) + "（请使用模板表头）")
    return result
