"""Why did an asset get its level? The fired rules, their points, evidence values and sources."""

from __future__ import annotations

import duckdb

EXPLAIN_SQL = """
SELECT f.rule_id, r.title_zh, f.points, f.hard, f.hazard, f.evidence, r.source_ref, r.confidence, r.file
FROM findings f
JOIN rules r ON r.rule_id = f.rule_id AND r.ruleset_version = f.ruleset_version
WHERE f.kind = ? AND f.asset_id = ?
ORDER BY f.points DESC, f.rule_id
"""


def explain(con: duckdb.DuckDBPyConnection, asset_id: str) -> str:
    """A plain-text explanation of every scored record with this id (any kind)."""
    scores = con.execute(
        "SELECT kind, asset_name, score, raw_points, level_zh, colour, hard_rule, ruleset_version, survey_round "
        "FROM scores WHERE asset_id = ? ORDER BY kind",
        [asset_id],
    ).fetchall()
    if not scores:
        return f"没有找到编码为“{asset_id}”的已评分资产（请先运行评分）。"
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
    return "\n".join(out)


def top_assets_markdown(con: duckdb.DuckDBPyConnection, kind: str, limit: int = 10) -> str:
    rows = con.execute(
        "SELECT asset_id, asset_name, score, level_zh, coalesce(hard_rule, ''), top_reasons FROM scores "
        "WHERE kind = ? ORDER BY (hard_rule IS NOT NULL) DESC, raw_points DESC, asset_id LIMIT ?",
        [kind, limit],
    ).fetchall()
    lines = ["| asset | name | score | level | hard | reasons |", "|---|---|---|---|---|---|"]
    lines += [f"| {a} | {n} | {s:g} | {lv} | {h} | {r or ''} |" for a, n, s, lv, h, r in rows]
    return "\n".join(lines)
