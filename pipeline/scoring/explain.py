"""Why did an asset get its level? The fired rules, their points, evidence values and sources."""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb

from pipeline.platform.store import has_table
from pipeline.registries.templates import load_template

EXPLAIN_SQL = """
SELECT f.rule_id, r.title_zh, f.points, f.hard, f.hazard, f.evidence, r.source_ref, r.confidence, r.file
FROM findings f
JOIN rules r ON r.rule_id = f.rule_id AND r.ruleset_version = f.ruleset_version
WHERE f.kind = ? AND f.asset_id = ?
ORDER BY f.points DESC, f.rule_id
"""


QUARANTINE_SQL = """
SELECT kind, source_file, row_no, department, survey_round, reasons_zh
FROM quarantine
WHERE kind <> 'feedback' AND (record_id = ? OR (kind = 'hazchem_inventory' AND starts_with(record_id, ?)))
ORDER BY kind, source_file, row_no
"""


def explain(con: duckdb.DuckDBPyConnection, asset_id: str) -> str:
    """A plain-text explanation of every scored record with this id (any kind)."""
    scores = _scores(con, asset_id)
    quarantined = quarantined_rows(con, asset_id)
    if not scores:
        if quarantined:
            return quarantine_explanation(asset_id, quarantined)
        return (f"没有找到编码为“{asset_id}”的资产：它没有评分，也不在未通过校验的记录中。"
                "请核对编码；若文件刚上传，请先运行（make run）。")  # fmt: skip
    out = []
    for kind, name, score, raw, level_zh, colour, hard_rule, version, rnd in scores:
        head = f"{asset_id} {name or ''}（{kind}，调查轮次 {rnd}）：{score:g}分，{level_zh}（{colour}）"
        if raw > score:
            head += f"，原始合计{raw:g}分（封顶100）"
        if hard_rule:
            head += f"；硬性规则 {hard_rule} 直接定为红色"
        out.append(head + f"\n规则集版本：{version}")
        rows = con.execute(EXPLAIN_SQL, [kind, asset_id]).fetchall()
        if not rows:
            out.append("  没有规则触发。")
        for rule_id, title, points, hard, hazard, evidence, source, conf, file in rows:
            tags = "，".join(t for t, on in (("硬性", hard), ("隐患", hazard)) if on)
            out.append(f"  {rule_id} {title}  +{points:g}分" + (f"（{tags}）" if tags else ""))
            out.append(f"      依据值：{evidence}")
            out.append(f"      来源：{source} [{conf}]（{file}）")
            out += _no_q_hint(evidence)
    if quarantined:
        out.append(f"另有 {len(quarantined)} 行同一编码的记录未通过校验，未参与评分：")
        out += _quarantine_lines(quarantined)
    return "\n".join(out)


def _no_q_hint(evidence: str | None) -> list[str]:
    """The 提示 naming the chemicals whose critical quantity cannot be determined (left out of S and R)."""
    names = (json.loads(evidence) if evidence else {}).get("chemicals_no_q_names")
    if not names:
        return []
    return [f"      提示：{names} 无法确定临界量（不在GB 18218-2018表1，且未填危险性类别或临界量），"
            "未计入S和R，重大危险源等级可能偏低；请企业补报CAS号或危险性类别"]  # fmt: skip


def _scores(con: duckdb.DuckDBPyConnection, asset_id: str) -> list[tuple]:
    if not has_table(con, "scores"):
        return []
    return con.execute(
        "SELECT kind, asset_name, score, raw_points, level_zh, colour, hard_rule, ruleset_version, survey_round "
        "FROM scores WHERE asset_id = ? ORDER BY kind",
        [asset_id],
    ).fetchall()


@dataclass(frozen=True)
class QuarantinedRow:
    kind: str
    source_file: str
    row_no: int
    department: str | None
    survey_round: str | None
    reasons_zh: str


def quarantined_rows(con: duckdb.DuckDBPyConnection, asset_id: str) -> list[QuarantinedRow]:
    """Survey rows with this id (a hazchem inventory row by its site) that failed validation."""
    if not has_table(con, "quarantine"):
        return []
    rows = con.execute(QUARANTINE_SQL, [asset_id, asset_id + "|"]).fetchall()
    return [QuarantinedRow(*r) for r in rows]


def quarantine_explanation(asset_id: str, rows: list[QuarantinedRow]) -> str:
    """Why an id has no score: its rows are in quarantine, where, why, and what to do."""
    lines = [f"编码为“{asset_id}”的记录未通过校验（已隔离），因此没有评分："]
    lines += _quarantine_lines(rows)
    lines.append("请按上述原因改正该行后，将整个文件以原文件名重新上传到原目录（data_raw/<类别>/<单位代码>/<调查轮次>/），"
                 "重新运行后即参与评分；每个文件的回执在 output/receipts/<单位代码>/ 下。")  # fmt: skip
    return "\n".join(lines)


def _quarantine_lines(rows: list[QuarantinedRow]) -> list[str]:
    out = []
    for r in rows:
        out.append(f"  {_kind_zh(r.kind)}：文件 {r.source_file} 第{r.row_no}行"
                   f"（单位 {r.department}，调查轮次 {r.survey_round}）")  # fmt: skip
        out.append(f"      原因：{r.reasons_zh}")
    return out


def _kind_zh(kind: str) -> str:
    return f"{load_template(kind).title}（{kind}）"


def top_assets_markdown(con: duckdb.DuckDBPyConnection, kind: str, limit: int = 10) -> str:
    rows = con.execute(
        "SELECT asset_id, asset_name, score, level_zh, coalesce(hard_rule, ''), top_reasons FROM scores "
        "WHERE kind = ? ORDER BY (hard_rule IS NOT NULL) DESC, raw_points DESC, asset_id LIMIT ?",
        [kind, limit],
    ).fetchall()
    lines = ["| asset | name | score | level | hard | reasons |", "|---|---|---|---|---|---|"]
    lines += [f"| {a} | {n} | {s:g} | {lv} | {h} | {r or ''} |" for a, n, s, lv, h, r in rows]
    return "\n".join(lines)
