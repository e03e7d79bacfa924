"""Command line for people who do not use the Dagster UI.

python -m pipeline.cli run        ingest, validate and write receipts for everything in data_raw/
python -m pipeline.cli status     counts per survey kind and the files that could not be read
python -m pipeline.cli templates  write the blank upload templates
"""

from __future__ import annotations

import argparse
import os
import sys

from pipeline import paths


def _instance():
    import dagster as dg

    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def cmd_run(_: argparse.Namespace) -> int:
    import dagster as dg

    from pipeline.definitions import defs

    print(f"读取上传文件：{paths.data_raw_dir()}", flush=True)
    job = defs.resolve_job_def("main_job")
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # the stages' progress, not DEBUG events
    result = job.execute_in_process(instance=_instance(), raise_on_error=False, run_config=quiet)
    failed_checks = [
        f"{e.asset_key.to_user_string()}.{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    print_status()
    if failed_checks:
        print("未通过的阻断性检查：" + "、".join(failed_checks))
    if not result.success:
        for ev in result.all_events:
            if ev.is_step_failure:
                print(f"步骤失败：{ev.step_key}: {ev.event_specific_data.error.message.strip()}")
        return 1
    return 0


def print_status() -> None:
    from pipeline import store

    db = paths.database_path()
    if not db.exists():
        print(f"尚未运行：{db} 不存在")
        return
    with store.connect(db) as con:
        rows = con.execute(
            """
            SELECT kind, count(*) FILTER (WHERE status = 'ingested'), count(*) FILTER (WHERE status <> 'ingested'),
                   coalesce(sum(rows_read), 0)
            FROM intake_files WHERE is_current GROUP BY kind ORDER BY kind
            """
        ).fetchall()
        print(f"\n{'类别':<20}{'文件':>6}{'无法读取':>10}{'数据行':>10}{'接收':>10}{'退回':>8}")
        for kind, ok, bad, n in rows:
            valid = con.execute(f"SELECT count(*) FROM stg_{kind}").fetchall()[0][0]
            refused = con.execute("SELECT count(*) FROM quarantine WHERE kind = ?", [kind]).fetchall()[0][0]
            print(f"{kind:<20}{ok + bad:>6}{bad:>10}{n:>10}{valid:>10}{refused:>8}")
        for rel, problem in con.execute(
            "SELECT rel_path, problem_zh FROM intake_files WHERE is_current AND status <> 'ingested'"
        ).fetchall():
            print(f"无法读取：{rel}：{problem}")
    out = paths.output_dir()
    print(f"\n数据库：{db}\n回执：{out / 'receipts'}\n空白模板：{out / 'templates'}\n隐患台账：{out / 'ledger'}")


def cmd_status(_: argparse.Namespace) -> int:
    print_status()
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from pipeline.intake.blank_templates import write_blank_templates

    for p in write_blank_templates(paths.output_dir() / "templates"):
        print(p)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from pipeline import store
    from pipeline.scoring.explain import explain

    with store.connect(paths.database_path()) as con:
        print(explain(con, args.asset_id))
    return 0


def cmd_rules(_: argparse.Namespace) -> int:
    from pipeline.scoring.ruleset import RuleSetError, load_ruleset

    try:
        ruleset = load_ruleset()
    except RuleSetError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(f"规则集版本 {ruleset.version}：{len(ruleset.rules)}条规则，全部示例通过")
    for r in ruleset.rules:
        flags = ("硬性 " if r.hard else "") + (f"隐患({r.hazard_grade})" if r.hazard else "")
        print(f"  {r.id:<5}{r.kind:<15}{r.points:>5g}分  {r.title_zh}  {flags}  [{r.confidence}]")
    return 0


def cmd_preview_feedback(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline import store
    from pipeline.ledger.feedback import preview, validate_feedback

    target = Path(args.file).resolve()
    with store.connect(paths.database_path()) as con:
        validate_feedback(con, paths.data_raw_dir())
        rel = target.relative_to(paths.data_raw_dir().resolve()).as_posix()
        rows = con.execute(
            "SELECT file_id, status, problem_zh FROM intake_files WHERE rel_path = ? AND is_current", [rel]
        ).fetchall()
        if not rows:
            print(f"不是 data_raw/feedback/<单位代码>/<批次>/ 下的反馈文件：{args.file}")
            return 1
        file_id, status, problem = rows[0]
        if status != "ingested":
            print(f"文件无法读取：{problem}")
            return 1
        result = preview(con, file_id)
    print(f"预览 {rel}：将执行 {result.applied} 行，退回 {result.refused} 行（未做任何更改）")
    for r in result.rows:
        change = f"{r.from_status} → {r.to_status}" if r.outcome == "已执行" else r.reason_zh
        print(f"  第{r.row_no}行 {r.hazard_no or ''}：{r.outcome}  {change}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import datetime as dt

    from pipeline import store
    from pipeline.ledger.exports import ledger_rows, summary, write_csv, write_xlsx
    from pipeline.ledger.history import ledger_as_of

    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else dt.date.today()
    out = paths.output_dir() / "ledger"
    with store.connect(paths.database_path()) as con:
        if args.as_of:  # rebuild the past ledger from the history into a scratch table first
            con.execute("CREATE OR REPLACE TEMP TABLE hazards_as_of AS SELECT * FROM hazards WHERE false")
            for state in ledger_as_of(con, as_of):
                cols = list(state)
                con.execute(
                    f"INSERT INTO hazards_as_of ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                    [state[c] for c in cols],
                )
        rows = ledger_rows(con, as_of, table="hazards_as_of" if args.as_of else "hazards")
        by_town = summary(con, "town", as_of, as_of - dt.timedelta(days=30),
                          table="hazards_as_of" if args.as_of else "hazards")  # fmt: skip
    stem = f"隐患台账_{as_of.isoformat()}"
    for p in (write_xlsx(rows, by_town, out / f"{stem}.xlsx"), write_csv(rows, out / f"{stem}.csv")):
        print(p)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="litong", description="利通区地震风险隐患排查数据处理")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="处理 data_raw/ 中的全部上传文件").set_defaults(fn=cmd_run)
    sub.add_parser("status", help="查看各类数据的接收情况").set_defaults(fn=cmd_status)
    sub.add_parser("templates", help="生成空白填报模板").set_defaults(fn=cmd_templates)
    explain_cmd = sub.add_parser("explain", help="解释某资产的风险等级")
    explain_cmd.add_argument("asset_id", help="资产编码，如房屋编码、桥梁编码、统一社会信用代码、管段编码")
    explain_cmd.set_defaults(fn=cmd_explain)
    sub.add_parser("rules", help="检查规则集并列出全部规则").set_defaults(fn=cmd_rules)
    fb = sub.add_parser("preview-feedback", help="预览整改反馈文件将做的更改（不做任何更改）")
    fb.add_argument("file")
    fb.set_defaults(fn=cmd_preview_feedback)
    ex = sub.add_parser("export", help="导出隐患台账（XLSX、CSV）")
    ex.add_argument("--as-of", help="按某日的台账导出，如 2023-12-31（由变更历史重建）")
    ex.set_defaults(fn=cmd_export)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a message, not a traceback, for people at the command line
        print(f"错误：{type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
