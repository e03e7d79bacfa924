"""Match an upload's headers to template fields, through a department's saved mapping."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.intake.readers import UnreadableFile, read_text_rows
from pipeline.registries.templates import Template, header_key, header_lookup

MAPPING_FILE = "列映射.csv"
MAPPING_HEADERS = ("本单位列名", "模板列名")


@dataclass
class Mapping:
    """A department's 列映射.csv for one kind: its own header → template field key."""

    targets: dict[str, str] = field(default_factory=dict)  # header_key(own header) -> field key
    lines: dict[str, int] = field(default_factory=dict)  # header_key(own header) -> line in the file
    problems: list[str] = field(default_factory=list)  # Chinese, each naming the file and its line
    sha256: str | None = None  # of the mapping file's bytes (part of every file version it applies to)


@dataclass
class HeaderMatch:
    columns: dict[str, str] = field(default_factory=dict)  # field key -> source column
    unknown: list[str] = field(default_factory=list)  # source columns matched to nothing
    problems: list[str] = field(default_factory=list)  # Chinese, file-level, blocking
    missing: list[str] = field(default_factory=list)  # headers of required fields not found


def quoted(headers: list[str]) -> str:
    """Headers for a message, each in quotes, separated by ，: never joined with 、 (headers themselves hold 、,
    e.g. 是否有明显裂缝、变形、倾斜)."""
    return "，".join(f"“{h}”" for h in headers)


def renamed_by_mapping(header_map: dict[str, str], template: Template) -> list[tuple[str, str]]:
    """(the file's column, the template column) of each column that the unit's mapping renamed: the loaded
    columns whose own name is not a spelling of the template column they were read as."""
    lookup = header_lookup(template)
    return [(src, template.field(key).header) for src, key in header_map.items() if lookup.get(header_key(src)) != key]


def mapping_sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def load_mapping(path: Path, template: Template) -> Mapping:
    """Read `列映射.csv` like any upload (UTF-8, BOM, GBK, UTF-16, comma or tab)."""
    if not path.is_file():
        return Mapping()
    mapping = Mapping(sha256=mapping_sha256(path))
    try:
        rows, _ = read_text_rows(path)
    except UnreadableFile as e:
        mapping.problems.append(f"{MAPPING_FILE}：{e}")
        return mapping
    if not rows or tuple(c.strip().lstrip("\ufeff") for c in rows[0][:2]) != MAPPING_HEADERS:
        mapping.problems.append(f"{MAPPING_FILE}：第1行（表头）应为“本单位列名,模板列名”")
        return mapping
    lookup = header_lookup(template)
    for line_no, row in enumerate(rows[1:], start=2):
        own, target = ((row + ["", ""])[i].strip() for i in (0, 1))
        if not own and not target:
            continue
        problem = _mapping_line_problem(mapping, own, target, line_no, lookup, template)
        if problem:
            mapping.problems.append(problem)
        elif header_key(own) not in mapping.targets:
            mapping.targets[header_key(own)] = lookup[header_key(target)]
            mapping.lines[header_key(own)] = line_no
    return mapping


def _mapping_line_problem(
    mapping: Mapping, own: str, target: str, line_no: int, lookup: dict[str, str], template: Template
) -> str | None:
    where = f"{MAPPING_FILE}第{line_no}行"
    if not own or not target:
        return f"{where}：本单位列名和模板列名都必须填写"
    if header_key(target) not in lookup:
        return f"{where}：模板列名“{target}”不是{template.title}模板中的列"
    key = lookup[header_key(target)]
    earlier = mapping.targets.get(header_key(own))
    if earlier is not None and earlier != key:
        first = mapping.lines[header_key(own)]
        return (
            f"{where}：本单位列名“{own}”已在第{first}行对应模板列“{template.field(earlier).header}”，"
            f"不能再对应“{target}”（一列只能对应一个模板列）"
        )
    return None


def _key_of(col: str, lookup: dict[str, str], mapping: Mapping) -> str | None:
    k = header_key(col)
    return mapping.targets.get(k) or lookup.get(k)


def header_score(cells: list[str | None], template: Template, mapping: Mapping) -> int:
    """How many distinct template fields a row of cells names: to find the header row."""
    lookup = header_lookup(template)
    return len({key for c in cells if c and (key := _key_of(str(c), lookup, mapping))})


def match_headers(source: list[str], template: Template, mapping: Mapping | None = None) -> HeaderMatch:
    mapping = mapping or Mapping()
    lookup = header_lookup(template)
    result = HeaderMatch()
    for col in source:
        key = _key_of(col, lookup, mapping)
        if key is None:
            if header_key(col) and not col.startswith("column"):
                result.unknown.append(col)
            continue
        if key in result.columns:
            result.problems.append(_duplicate_problem(result.columns[key], col, template.field(key).header, mapping))
            continue
        result.columns[key] = col
    result.missing = _missing(result, template)
    if result.missing:
        result.problems.append(
            f"缺少必填列：{quoted(result.missing)}。请使用模板表头；如本单位的表格用自己的列名，可在本单位的文件夹中"
            f"放一个{MAPPING_FILE}（两列：本单位列名,模板列名），把本单位的列名对应到模板列名"
        )
    return result


def _duplicate_problem(first: str, second: str, header: str, mapping: Mapping) -> str:
    """Two source columns for one template column; a column mapped by 列映射.csv names its line."""

    def described(col: str) -> str:
        line = mapping.lines.get(header_key(col))
        return f"“{col}”（{MAPPING_FILE}第{line}行）" if line else f"“{col}”"

    via_mapping = any(mapping.lines.get(header_key(c)) for c in (first, second))
    fix = f"请删除其中一列或修改{MAPPING_FILE}" if via_mapping else "请删除其中一列"
    return f"列{described(first)}和列{described(second)}都对应模板列“{header}”，{fix}"


def _missing(result: HeaderMatch, template: Template) -> list[str]:
    missing = [f.header for f in template.fields if f.required and f.key not in result.columns]
    if template.has("town_code") and "town_code" not in result.columns and "town_name" in result.columns:
        missing = [h for h in missing if h != template.field("town_code").header]  # 乡镇 by name (templates.md)
    return missing
