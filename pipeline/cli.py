"""Command line for people who do not use the Dagster UI (`python -m pipeline.cli <command>`).

run               everything: uploads in data_raw/ -> receipts, scores, ledger, charts, briefing
refresh           only what depends on the date: overdue, ledger exports, charts, briefing
status            last run, counts per stage, failing checks
feedback FILE     preview a rectification feedback file; --apply to apply it (asks first)
explain ID        why an asset has its risk level, rule by rule
export            the ledger as XLSX/CSV, optionally --as-of a past date
rules             check the rule set and list its rules
templates         write the blank upload templates

Messages are Chinese (the bureau's staff read them); errors are messages, never tracebacks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from pipeline.platform import paths


class CliError(Exception):
    """A message for the person at the command line."""


_INSTANCES: dict[str, object] = {}


def _instance():
    """The Dagster instance in DAGSTER_HOME (project's dagster_home/ by default), so CLI runs are in the
    same history the UI shows, and the run queue sees them. Made once per DAGSTER_HOME in a process (making one
    checks its storage's schema: ~0.5 s, and a run asked for it twice)."""
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        home = paths.PROJECT_ROOT / "dagster_home"
        home.mkdir(exist_ok=True)
        if not (home / "dagster.yaml").exists():
            shutil.copy(paths.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)
    home = os.environ["DAGSTER_HOME"]
    if home not in _INSTANCES:
        _INSTANCES[home] = dg.DagsterInstance.get()
    return _INSTANCES[home]


@contextmanager
def _writing(what: str, wait: float | None = None) -> Iterator[None]:
    """Hold the database's writer lock for the block (waiting a bounded time, with a message), after
    marking failed any run whose process died. Every CLI command that writes goes through here."""
    from pipeline.platform.writer_lock import CLI_WAIT_SECONDS, WriterBusy, fail_dead_runs, wait_seconds, writer_lock

    db = paths.database_path()
    try:
        with writer_lock(db, what, wait if wait is not None else wait_seconds(CLI_WAIT_SECONDS), _say):
            for run_id in fail_dead_runs(_instance(), db):
                print(f"运行 {run_id[:8]} 的进程已不存在（被终止或崩溃），已标记为失败")
            yield
    except WriterBusy as e:
        raise CliError(str(e)) from e


def _say(message: str) -> None:
    print(message, flush=True)


def _execute(
    job_name: str,
    partition_key: str | None = None,
    ops: dict | None = None,
    selection: list | None = None,
    at_end: Callable[[], object] | None = None,
) -> tuple[int, str | None]:
    """Run a job in this process with stage progress on the screen. Returns (exit code, run id): 0 only if
    the run succeeded and no check of ERROR severity failed; failed warnings are printed. A job of the
    earthquake response (tagged QUAKE_TAG: it reads the snapshot, writes its own store) takes no writer lock."""
    import dagster as dg

    from pipeline.platform.resources import QUAKE_TAG
    from pipeline.wiring.definitions import defs
    from pipeline.wiring.run_history import quick_history_writes, shared_shard_connections
    from pipeline.wiring.step_titles import step_titles

    instance = _instance()
    job = defs.resolve_job_def(job_name)
    with nullcontext() if QUAKE_TAG in job.tags else _writing(f"命令行 {job_name}"):
        steps = len(selection) if selection else len(job.graph.node_defs)
        titles = step_titles([node.name for node in job.graph.node_defs])
        progress = {"steps": steps, "titles": titles}
        config = {"loggers": {"progress": {"config": progress}}, **({"ops": ops} if ops else {})}
        history = instance.event_log_storage  # the run's Dagster events: no fsync each, one connection a file
        with quick_history_writes(Path(instance.root_directory)), shared_shard_connections(history):
            result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=config,
                                            partition_key=partition_key, asset_selection=selection)  # fmt: skip
        if at_end:  # still holding the writer lock
            at_end()
    evaluations = [e for e in result.get_asset_check_evaluations() if not e.passed]
    errors = [e for e in evaluations if e.severity == dg.AssetCheckSeverity.ERROR]
    for e in evaluations:
        if e.severity != dg.AssetCheckSeverity.ERROR:
            print(f"提示：检查 {e.asset_key.to_user_string()}.{e.check_name} 未通过（警告）")
    if errors:
        print("未通过的检查：" + "、".join(f"{e.asset_key.to_user_string()}.{e.check_name}" for e in errors))
    if not result.success:
        from pipeline.platform.failures import run_failure_zh

        reasons = run_failure_zh(instance, result.run_id)
        print(f"运行未成功完成（{result.run_id[:8]}）" + "".join(f"\n  {r}" for r in reasons)
              + "\n详见 Dagster 界面或 status 命令")  # fmt: skip
    return (0 if result.success and not errors else 1), result.run_id


def cmd_run(args: argparse.Namespace) -> int:
    print(f"读取上传文件：{paths.data_raw_dir()}", flush=True)
    kinds = getattr(args, "kind", None) or []
    if kinds:
        return _run_kinds(kinds, getattr(args, "first", False))
    from pipeline.platform import run_state

    before = None if os.environ.get("LITONG_FAULT") else run_state.taken()
    if before is not None and (state := run_state.confirmed(before)) is not None:
        print(f"自上次运行（{state['confirmed_at'].replace('T', ' ')} 确认）以来，上传文件、"
              "规则、数据库和输出文件都没有变化：无需运行", flush=True)  # fmt: skip
        print_status()
        _print_outputs()
        return 0
    ended: list[run_state.Fingerprint] = []
    job_name, selection = _changed_part(before)
    code, run_id = _execute(job_name, selection=selection,
                            at_end=None if before is None else lambda: ended.append(run_state.taken()))  # fmt: skip
    print_status(run_id)
    _print_outputs()
    if code == 0:
        code = _follow_up_events()
    if code == 0 and before is not None and ended:
        run_state.confirm(run_id, before, ended[0])  # the next run, with nothing new, starts no Dagster run
    elif before is not None:
        run_state.forget()
    return code


def _changed_part(before) -> tuple[str, list | None]:
    """The job and steps a run must cover: after a confirmed run, when only uploads changed since (nothing
    else a run reads or writes), the steps downstream of them, as the upload sensor runs them (a new buildings
    file: 17 of 42 steps; every other step is at its fixed point, with Dagster's ~0.15 s each at 1 M spared);
    else all of main_job."""
    from pipeline.platform import run_state
    from pipeline.wiring.sensors import what_to_run

    changed = None if before is None else run_state.changed_uploads(before)
    if not changed:
        return "main_job", None
    job_name, selection = what_to_run(changed)
    if selection is not None or job_name != "main_job":
        folders = sorted({rel.split("/", 1)[0] for rel in changed})
        print(f"自上次运行以来只有上传文件有变化（{'、'.join(_kind_title(f) for f in folders)}）："
              "只运行它们及其下游的步骤", flush=True)  # fmt: skip
    return job_name, selection


FIRST_STEPS = {  # `run --kind K --first`: what a person waits for (receipts, the hazard's change), then publish
    "feedback": ["ledger_feedback"],
    "quake_feedback": ["ledger_quake_damage"],
}


def run_selection(kinds: list[str], first: bool) -> tuple[str, list | None]:
    """The job and assets a run for uploads of these kinds covers. `first`: only the intake and validation of
    the kinds (which write the receipts) or the feedback's application, then the published snapshot, so the
    portal shows the receipt or the changed hazard in seconds; without it, everything downstream of the kinds
    (as the upload sensor runs it: scores, ledger, charts, briefing)."""
    import dagster as dg

    from pipeline.registries.templates import KINDS
    from pipeline.wiring.sensors import what_to_run

    unknown = [k for k in kinds if k not in (*KINDS, *FIRST_STEPS)]
    if unknown:
        raise CliError(f"未知的上传类别：{'、'.join(unknown)}（可选：{'、'.join((*KINDS, *FIRST_STEPS))}）")
    if not first:
        return what_to_run([f"{k}/" for k in kinds])
    names = [n for k in sorted(set(kinds)) for n in FIRST_STEPS.get(k, [f"raw_{k}", f"stg_{k}"])]
    return "main_job", [dg.AssetKey(n) for n in [*names, "published_snapshot"]]


def _run_kinds(kinds: list[str], first: bool) -> int:
    job_name, selection = run_selection(kinds, first)
    what = "受理回执" if first else "全部更新"
    print(f"处理上传类别：{'、'.join(sorted(set(kinds)))}（{what}）", flush=True)
    code, run_id = _execute(job_name, selection=selection)
    print_status(run_id)
    if code == 0 and not first and "quake_feedback" in kinds:
        code = _follow_up_events()
    return code


def _follow_up_events() -> int:
    """续报 for every event whose 灾情反馈 batches this run took (as the earthquake sensor does in the UI)."""
    from pipeline.quake.followup import pending_follow_ups

    code = 0
    for event_id in sorted(pending_follow_ups(paths.published_database_path(), paths.output_dir())):
        print(f"\n地震事件 {event_id} 有新受理的灾情反馈：生成续报", flush=True)
        code = max(code, _execute("quake_followup_job", partition_key=event_id)[0])
        folder = paths.output_dir() / "quake" / event_id
        print("续报：" + "、".join(sorted(p.name for p in folder.glob("续报*.pdf"))))
    return code


def cmd_refresh(_: argparse.Namespace) -> int:
    code, _ = _execute("daily_job")
    _print_outputs()
    return code


def _print_outputs() -> None:
    out = paths.output_dir()
    print(f"\n数据库：{paths.database_path()}\n回执：{out / 'receipts'}\n空白模板：{out / 'templates'}")
    print(f"隐患台账：{out / 'ledger'}\n图表：{out / 'charts'}\n简报：{out / 'briefing' / '简报.pdf'}")


def print_status(this_run: str | None = None) -> None:
    """Counts per stage and the ledger's figures, from the published snapshot (never waits behind a run).
    After a run (`this_run`), figures that are not from that run are marked as such."""
    from pipeline.platform import store
    from pipeline.publish.snapshot_state import snapshot_info

    published, live = paths.published_database_path(), paths.database_path()
    if not published.exists() and not live.exists():
        print(f"尚未运行：{live} 不存在。先运行：python -m pipeline.cli run")
        return
    info = snapshot_info(published)
    if info is None:
        print("注意：尚无发布的快照，以下数字直接读自数据库")
    elif this_run is not None and info["run_id"] != this_run:
        print(f"注意：本次运行未完成发布，以下数字不是本次运行的结果，而是 {info['published_at']} 发布的"
              f"上一次结果")  # fmt: skip
    else:
        print(f"数据发布于 {info['published_at']}")
    with store.connect_read(published, live) as con:
        _print_intake(con)
        _print_ledger(con)


def _print_intake(con) -> None:
    rows = con.execute(
        """
        SELECT kind, count(DISTINCT rel_path), count(*) FILTER (WHERE is_latest AND status <> 'ingested'),
               coalesce(sum(rows_read) FILTER (WHERE status = 'ingested'), 0)
        FROM intake_files WHERE is_current GROUP BY kind ORDER BY kind
        """
    ).fetchall()
    from pipeline.registries.templates import survey_kinds

    order = {k: i for i, k in enumerate(survey_kinds())}
    rows.sort(key=lambda r: (order.get(r[0], len(order)), r[0]))  # surveys in their order, then the reports
    titles = {kind: _kind_title(kind) for kind, *_ in rows}
    width = max([2, *map(len, titles.values())])  # titles are CJK: padded with full-width spaces to line up
    print(
        "\n"
        + "类别".ljust(width, "\u3000")
        + "".join(" " * (10 - 2 * len(h)) + h for h in ("文件", "无法读取", "数据行", "接收", "退回"))
    )
    for kind, files, bad, n in rows:
        valid, refused = _accepted_refused(con, kind)
        print(titles[kind].ljust(width, "\u3000") + "".join(f"{v:>10}" for v in (files, bad, n, valid, refused)))
    for rel, problem, in_use in con.execute(
        """
        SELECT f.rel_path, f.problem_zh, (SELECT max(o.version) FROM intake_files o WHERE o.rel_path = f.rel_path
                                          AND o.kind = f.kind AND o.is_current AND o.status = 'ingested')
        FROM intake_files f WHERE f.is_latest AND f.status <> 'ingested' ORDER BY f.rel_path
        """
    ).fetchall():
        kept = f"（仍沿用第{in_use}版）" if in_use else ""
        print(f"无法读取：{rel}：{problem}{kept}")


# Kinds whose rows the ledger stage judges again after validation: (its per-row results, its applied files, the
# outcome of a row taken). A row can pass validation and still be returned there (not the unit's object, an
# illegal change), so the summary counts those rows by the ledger's outcome.
LEDGER_JUDGED = {
    "feedback": ("feedback_results", "feedback_applied", ["已执行", "此前已执行"]),
    "quake_feedback": ("quake_feedback_rows", "quake_feedback_applied", ["已受理"]),
}


def _kind_title(kind: str) -> str:
    """The kind as people read it (its template's title, e.g. 房屋建筑), not its folder name."""
    from pipeline.registries.templates import load_template

    try:
        return load_template(kind).title
    except (FileNotFoundError, KeyError):
        return kind


def _accepted_refused(con, kind: str) -> tuple[int, int]:
    """Rows accepted and refused. Feedback and 灾情反馈 rows count as the ledger took or returned them (退回);
    rows of files not yet applied count as validated."""
    from pipeline.platform import store

    valid = con.execute(f"SELECT count(*) FROM stg_{kind}").fetchall()[0][0]
    refused = con.execute("SELECT count(*) FROM quarantine WHERE kind = ?", [kind]).fetchall()[0][0]
    if kind not in LEDGER_JUDGED or not store.has_table(con, LEDGER_JUDGED[kind][0]):
        return valid, refused
    results, applied, taken = LEDGER_JUDGED[kind]
    return con.execute(
        f"""
        SELECT (SELECT count(*) FROM stg_{kind} WHERE file_id NOT IN (SELECT file_id FROM {applied}))
               + count(*) FILTER (WHERE list_contains(?, r.outcome)),
               (SELECT count(*) FROM quarantine q WHERE q.kind = ?
                  AND q.file_id NOT IN (SELECT file_id FROM {applied}))
               + count(*) FILTER (WHERE r.outcome = '退回')
        FROM {results} r JOIN intake_files f USING (file_id) WHERE f.is_current
        """,
        [taken, kind],
    ).fetchall()[0]


def _print_ledger(con) -> None:
    from pipeline.ledger.exports import query_ledger
    from pipeline.platform import store
    from pipeline.platform.clock import as_of_label, district_today

    if not (store.has_table(con, "scores") and store.has_table(con, "hazards")):
        print("\n尚未评分，台账为空")
        return
    today = district_today()
    levels = dict(con.execute("SELECT level, count(*) FROM scores GROUP BY level").fetchall())
    by_status = dict(con.execute("SELECT status, count(*) FROM hazards GROUP BY status").fetchall())
    # as the summaries count; a count needs no order (sorting every hazard was most of the summary's second)
    overdue = int(query_ledger(con, today, "SELECT count(overdue_days) AS n FROM l", ordered=False)["n"][0])
    withdrawn = by_status.pop("已撤销", 0)  # no hazard under today's rules: not in the figures
    found = sum(by_status.values())
    closed = by_status.get("已销号", 0)
    print(f"\n已评分资产 {sum(levels.values()):,}：红 {levels.get('red', 0):,}  橙 {levels.get('orange', 0):,}  "
          f"黄 {levels.get('yellow', 0):,}  蓝 {levels.get('blue', 0):,}")  # fmt: skip
    rate = f"{closed / found:.1%}" if found else "—"
    print(f"隐患 {found:,}：已销号 {closed:,}（整改率 {rate}），逾期 {overdue:,}（{as_of_label(today)}），管控中 "
          f"{by_status.get('管控中', 0):,}")  # fmt: skip
    print("  " + "  ".join(f"{s} {n:,}" for s, n in sorted(by_status.items())))
    if withdrawn:
        print(f"  另有 {withdrawn:,} 项因规则调整撤销（编号和历史保留，不计入以上数字）")


def _print_last_run() -> None:
    import dagster as dg

    instance = _instance()
    runs = instance.get_runs(limit=1)
    if not runs:
        print("运行记录：无")
        return
    run = runs[0]
    stats = instance.get_run_stats(run.run_id)
    from pipeline.platform.clock import beijing_time

    started = f"{beijing_time(stats.start_time):%Y-%m-%d %H:%M:%S}" if stats.start_time else "—"
    took = f"，用时 {stats.end_time - stats.start_time:.0f} 秒" if stats.end_time and stats.start_time else ""
    print(f"最近一次运行：{run.job_name}  {run.status.value}  开始于 {started}{took}  （{run.run_id[:8]}）")
    if run.status == dg.DagsterRunStatus.FAILURE:
        from pipeline.platform.failures import run_failure_zh

        for reason in run_failure_zh(instance, run.run_id) or ["运行未成功完成（详见 Dagster 界面）"]:
            print(f"失败原因：{reason}")
    failed = []
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        check = record.dagster_event.event_specific_data
        if not check.passed:
            failed.append(f"{check.asset_key.to_user_string()}.{check.check_name}（{check.severity.value}）")
    print("未通过的检查：" + ("、".join(failed) if failed else "无"))


def cmd_status(_: argparse.Namespace) -> int:
    _print_last_run()
    print_status()
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from pipeline.intake.blank_templates import write_blank_templates

    for p in write_blank_templates(paths.output_dir() / "templates"):
        print(p)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from pipeline.platform import store
    from pipeline.scoring.explain import explain

    _require_database()
    with store.connect_read(paths.published_database_path(), paths.database_path()) as con:
        print(explain(con, args.asset_id))
    return 0


def cmd_rules(_: argparse.Namespace) -> int:
    from pipeline.scoring.ruleset import RuleSetError, load_ruleset

    try:
        ruleset = load_ruleset()
    except RuleSetError as e:
        raise CliError(str(e)) from e
    rates, note = _fire_rates(ruleset.version)
    print(f"规则集版本 {ruleset.version}：{len(ruleset.rules)}条规则，全部示例通过")
    if note:
        print(note)
    for r in ruleset.rules:
        flags = ("硬性 " if r.hard else "") + (f"隐患({r.hazard_grade})" if r.hazard else "")
        rate = rates.get((r.kind, r.id))
        fired = f"  触发 {rate[0]:,}/{rate[1]:,}（{rate[0] / rate[1]:.1%}）" if rate else ""
        print(f"  {r.id:<5}{r.kind:<15}{r.points:>5g}分  {r.title_zh}  {flags}  [{r.confidence}]{fired}")
    return 0


def _fire_rates(version: str) -> tuple[dict[tuple[str, str], tuple[int, int]], str]:
    """(kind, rule) -> (assets it fires on, assets of the kind) from the published data, and a note."""
    from pipeline.platform import store
    from pipeline.scoring.fire_rates import fire_rates, scored_versions

    published, live = paths.published_database_path(), paths.database_path()
    if not published.exists() and not live.exists():
        return {}, "（尚未运行，没有触发率；运行后再看）"
    with store.connect_read(published, live) as con:
        if not store.has_table(con, "findings"):
            return {}, "（尚未评分，没有触发率）"
        versions = scored_versions(con)
        rates = fire_rates(con)
    counts = {(k, r): (int(f), int(a)) for k, r, f, a in rates[["kind", "rule_id", "fired", "assets"]].values}
    note = "触发率：每条规则在已评分资产中触发的数量和比例（当前数据）"
    if versions != [version]:
        note += f"；注意：当前评分用的规则集版本为 {'、'.join(versions) or '无'}，运行后按新版本重算"
    return counts, note


def _require_database() -> None:
    if not paths.database_path().exists() and not paths.published_database_path().exists():
        raise CliError(f"尚未运行：{paths.database_path()} 不存在。先运行：python -m pipeline.cli run")


def _feedback_target(source: Path, unit: str | None) -> tuple[Path, bool]:
    """(where the file is or will be under data_raw/feedback/, whether it is there already). A file already
    under data_raw/feedback/<unit>/<batch>/ stays (and acts as that folder's unit; a different --unit is
    refused); any other file goes into today's batch of --unit, the acting unit, once it is to be applied."""
    from pipeline.registries.units import AuthorityError, acting_unit_of, resolve_acting_unit

    feedback_root = (paths.data_raw_dir() / "feedback").resolve()
    if not source.is_file():
        raise CliError(f"找不到文件：{source}")
    inside = source.resolve().is_relative_to(feedback_root)
    folder_unit = acting_unit_of(source.resolve().relative_to(feedback_root.parent).as_posix()) if inside else None
    if inside and folder_unit is None:
        raise CliError(f"{source} 所在文件夹不是责任单位代码：反馈文件应放在 data_raw/feedback/<单位代码>/<批次>/ 下")
    try:
        acting = resolve_acting_unit(folder_unit, unit)
    except AuthorityError as e:
        raise CliError(str(e)) from e
    if inside:
        return source.resolve(), True
    from pipeline.platform.clock import district_today

    return feedback_root / acting / f"{district_today():%Y-%m-%d}" / source.name, False


def cmd_feedback(args: argparse.Namespace) -> int:
    """A file from outside data_raw/ is previewed where it is (nothing is put into data_raw/ unless it is to be
    applied), then landed whole (temp name, then rename) and applied; a file already in its place is
    previewed and applied there."""
    _require_database()
    source = Path(args.file)
    target, in_place = _feedback_target(source, args.unit)
    with _writing(f"命令行 feedback {target.name}"):  # preview too: it reads the ledger a run may be changing
        if in_place:
            return _feedback(target, args)
        if _same_bytes(source, target):  # sent before: the rerun finishes it
            _record_landing(target)
            return _feedback(target, args)
        if not _preview_unlanded(source, target, args):
            return 0
        _land(source, target)
        _record_landing(target)
        return _feedback(target, args, confirmed=True)


def _same_bytes(a: Path, b: Path) -> bool:
    from pipeline.intake.ingest import sha256_of

    return b.is_file() and sha256_of(a) == sha256_of(b)


def _preview_unlanded(source: Path, target: Path, args: argparse.Namespace) -> bool:
    """Preview a file not yet in data_raw/ on a throw-away store (the portal's preview, against the live
    ledger: this command holds the writer lock), then ask. Whether to land and apply it."""
    from pipeline.portal.preview import Request, run

    rel = target.relative_to(paths.data_raw_dir().resolve()).as_posix()
    unit, batch = target.parent.parent.name, target.parent.name
    result = run(Request(str(source.resolve()), "feedback", unit, batch, str(paths.data_raw_dir()),
                         str(paths.database_path()), rows_shown=1_000_000))  # fmt: skip
    if result.error:
        raise CliError(f"{source.name}：{result.error}")
    part = next((p for p in result.parts if p.kind == "feedback"), None)
    if part is None or not part.readable or result.feedback is None:
        raise CliError(f"文件无法读取：{source.name}：{part.problem if part else '文件中没有反馈表'}")
    fb = result.feedback
    again = f"，{fb['applied_before']} 行此前已执行" if fb.get("applied_before") else ""
    print(f"预览 {rel}：将执行 {fb['will_apply']} 行，退回 {fb['will_refuse']} 行{again}（尚未做任何更改）")
    for r in fb["rows"]:
        change = f"{r['from']} → {r['to']}" if r["outcome"] == "将执行" else r["reason"]
        print(f"  第{r['row']}行 {r['hazard_no'] or ''}：{r['outcome']}  {change}")
    if not args.apply:
        print(f"（仅预览，未做任何更改，文件未放入 {paths.data_raw_dir()}；确认无误后加 --apply 执行）")
        return False
    if not args.yes and not _confirm("确认执行以上更改？[y/N] "):
        print("已取消，未做任何更改")
        return False
    return True


def _land(source: Path, target: Path) -> None:
    """Copy the file into its place whole: under a hidden temp name (never read by the intake or the sensor),
    then renamed; a kill leaves no file at the final name."""
    from pipeline.platform import faults
    from pipeline.platform.atomic import atomic_path

    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        faults.point("cli_feedback:landing")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    print(f"已复制到 {target}（报送单位 {target.parent.parent.name}）")


def _record_landing(target: Path) -> None:
    """With the web portal in use, a file without an upload record is refused: the file this command put into
    data_raw/ is recorded in the upload audit as the --unit's, by the command line's user."""
    import getpass

    from pipeline.intake.ingest import sha256_of
    from pipeline.registries import uploads as upload_audit

    if not upload_audit.portal_in_use():
        return
    rel = target.relative_to(paths.data_raw_dir().resolve()).as_posix()
    upload_audit.record_landing(rel, sha256_of(target), target.stat().st_size, target.parent.parent.name,
                                f"命令行:{getpass.getuser()}")  # fmt: skip


def _feedback(target: Path, args: argparse.Namespace, confirmed: bool = False) -> int:
    from pipeline.ledger.feedback import apply_pending, validate_feedback, write_feedback_receipts
    from pipeline.platform import store

    rel = target.relative_to(paths.data_raw_dir().resolve()).as_posix()
    with store.connect(paths.database_path()) as con:
        validate_feedback(con, paths.data_raw_dir())
        rows = con.execute(
            "SELECT f.file_id, f.status, f.problem_zh, a.applied_at FROM intake_files f "
            "LEFT JOIN feedback_applied a USING (file_id) WHERE f.rel_path = ? AND f.is_latest",
            [rel],
        ).fetchall()
        if not rows:
            raise CliError(f"不是 data_raw/feedback/<单位代码>/<批次>/ 下的反馈文件：{rel}")
        file_id, status, problem, applied_at = rows[0]
        if status != "ingested":
            raise CliError(f"文件无法读取：{rel}：{problem}")
        if applied_at is not None:
            if _published_since(applied_at):
                print(f"{rel} 已于 {applied_at:%Y-%m-%d %H:%M} 执行过，不再重复执行（修改内容请另存为新文件上传）")
                return 0
            print(f"{rel} 已于 {applied_at:%Y-%m-%d %H:%M} 执行，但之后的台账、图表和简报更新未完成（被中断）："
                  "不再重复执行，现在完成更新")  # fmt: skip
            write_feedback_receipts(con, paths.output_dir() / "receipts")
            applied = []
        else:
            if not confirmed and not _preview_landed(con, file_id, rel, args):
                return 0
            applied = apply_pending(con, only=file_id)
            write_feedback_receipts(con, paths.output_dir() / "receipts")
    for r in applied:
        again = f"，{r.repeated} 行此前已执行（不再重复执行）" if r.repeated else ""
        print(f"已执行 {r.applied} 行，退回 {r.refused} 行{again}；回执已写入 {paths.output_dir() / 'receipts'}")
    print("更新台账、图表和简报：")
    return _execute("daily_job")[0]


def _preview_landed(con, file_id: str, rel: str, args: argparse.Namespace) -> bool:
    """Preview a file in its place in data_raw/ (rolled back), then ask. Whether to apply it."""
    from pipeline.ledger.feedback import preview

    result = preview(con, file_id)
    again = f"，{result.repeated} 行此前已执行" if result.repeated else ""
    print(f"预览 {rel}：将执行 {result.applied} 行，退回 {result.refused} 行{again}（尚未做任何更改）")
    for r in result.rows:
        change = f"{r.from_status} → {r.to_status}" if r.outcome == "将执行" else r.reason_zh
        print(f"  第{r.row_no}行 {r.hazard_no or ''}：{r.outcome}  {change}")
    if not args.apply:
        print("（仅预览，未做任何更改；确认无误后加 --apply 执行）")
        return False
    if not args.yes and not _confirm("确认执行以上更改？[y/N] "):
        print("已取消，未做任何更改")
        return False
    return True


def _published_since(moment: dt.datetime) -> bool:
    """Whether a snapshot was published after `moment` (a run that went through to its end since)."""
    from pipeline.publish.snapshot_state import snapshot_info

    info = snapshot_info(paths.published_database_path())
    return info is not None and info["published_at"] >= moment.replace(microsecond=0)


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        raise CliError("需要确认：在终端中运行，或加 --yes 直接执行")
    return input(prompt).strip().lower() in {"y", "yes", "是"}


def cmd_export(args: argparse.Namespace) -> int:
    from pipeline.ledger.exports import export_ledger
    from pipeline.ledger.history import materialize_as_of
    from pipeline.platform import store
    from pipeline.platform.clock import district_today

    _require_database()
    try:
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else district_today()
    except ValueError as e:
        raise CliError(f"--as-of 日期格式应为 2023-12-31：{args.as_of}") from e
    with store.connect_read(paths.published_database_path(), paths.database_path()) as con:
        table = materialize_as_of(con, as_of) if args.as_of else "hazards"  # the past, rebuilt from the history
        result = export_ledger(con, as_of, paths.output_dir() / "ledger", suffix=f"_{as_of.isoformat()}", table=table)
    print(f"{as_of} 的台账：{result.hazards:,} 项隐患")
    for p in [*result.files, *result.proposals]:
        print(p)
    return 0


def cmd_quake(args: argparse.Namespace) -> int:
    """Declare an earthquake (or re-run one by its id) and run its response now, in this process."""
    from pipeline.quake.event import EventError, declare, event_from, find_event
    from pipeline.quake.respond import event_dir

    if args.action:
        return _quake_action(args)
    try:
        if args.event:
            event = find_event(paths.data_raw_dir(), args.event)
        else:
            event = event_from({"time": args.time, "lon": args.lon, "lat": args.lat, "depth_km": args.depth,
                                "magnitude": args.mag, "strike": args.strike, "place": args.place})  # fmt: skip
            path = declare(event, paths.data_raw_dir())
            print(f"已登记地震事件 {event.event_id}：{path}", flush=True)
    except EventError as e:
        raise CliError(str(e)) from e
    _instance().add_dynamic_partitions("quake_events", [event.event_id])
    code, _ = _execute("quake_job", partition_key=event.event_id)
    if code:
        return code
    folder = event_dir(paths.output_dir(), event)
    print("\n" + (folder / "首报.txt").read_text(encoding="utf-8"))
    print(f"首报：{folder / '首报.pdf'}\n排查清单：{folder / '排查清单'}\n烈度分布图：{folder / '烈度分布图.png'}")
    return 0


def _quake_action(args: argparse.Namespace) -> int:
    """`quake close <event id>` (终报; the event's later 灾情反馈 is refused) or `quake followup <event id>`."""
    from pipeline.quake.event import EventError, find_event
    from pipeline.quake.respond import event_dir

    if not args.event_id:
        raise CliError(f"请给出事件编号，如：quake {args.action} 20250630T142305-M6.5（见 output/quake/ 下的文件夹名）")
    try:
        event = find_event(paths.data_raw_dir(), args.event_id.strip())
    except EventError as e:
        raise CliError(str(e)) from e
    _instance().add_dynamic_partitions("quake_events", [event.event_id])
    if args.action == "followup":
        code, _ = _execute("quake_followup_job", partition_key=event.event_id)
    else:
        config = {"close_earthquake": {"config": {"event_id": event.event_id, "closed_by": args.by}}}
        code, _ = _execute("close_earthquake_job", ops=config)
    if code:
        return code
    folder = event_dir(paths.output_dir(), event)
    if args.action == "close":
        print("\n" + (folder / "终报.txt").read_text(encoding="utf-8"))
        print(f"终报：{folder / '终报.pdf'}\n未排查对象：{folder / '终报_未排查对象.xlsx'}")
    else:
        print("续报：" + ("、".join(sorted(p.name for p in folder.glob("续报*.pdf"))) or "无新受理的灾情反馈批次"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="litong", description="利通区地震风险隐患排查数据处理")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="处理 data_raw/ 中的全部上传文件，更新台账、图表和简报")
    run.add_argument("--kind", action="append", help="只处理此类上传及其下游（可重复），如 buildings、feedback")
    run.add_argument("--first", action="store_true", help="与 --kind 同用：只做受理和校验（写回执）并发布快照")
    run.set_defaults(fn=cmd_run)
    sub.add_parser("refresh", help="按今天的日期更新逾期、台账导出、图表和简报").set_defaults(fn=cmd_refresh)
    sub.add_parser("status", help="最近一次运行、各阶段数量、未通过的检查").set_defaults(fn=cmd_status)
    sub.add_parser("templates", help="生成空白填报模板").set_defaults(fn=cmd_templates)
    explain = sub.add_parser("explain", help="解释某资产的风险等级")
    explain.add_argument("asset_id", help="资产编码，如房屋编码、桥梁编码、统一社会信用代码、管段编码")
    explain.set_defaults(fn=cmd_explain)
    sub.add_parser("rules", help="检查规则集并列出全部规则").set_defaults(fn=cmd_rules)
    fb = sub.add_parser("feedback", help="导入整改反馈文件：先预览，加 --apply 执行")
    fb.add_argument("file", help="反馈文件（XLSX 或 CSV）")
    fb.add_argument(
        "--unit", help="报送单位代码：本单位（文件不在 data_raw/feedback/<单位代码>/ 下时必填；在其下时须与文件夹一致）"
    )
    fb.add_argument("--apply", action="store_true", help="预览后执行")
    fb.add_argument("--yes", action="store_true", help="执行前不再询问")
    fb.set_defaults(fn=cmd_feedback)
    ex = sub.add_parser("export", help="导出隐患台账（XLSX、CSV）")
    ex.add_argument("--as-of", help="按某日的台账导出，如 2023-12-31（由变更历史重建）")
    ex.set_defaults(fn=cmd_export)
    qk = sub.add_parser(
        "quake",
        help="登记一次地震并立即生成首报和排查清单；quake close <事件编号> 结束事件并写终报；"
        "quake followup <事件编号> 补写续报（值班人员使用）",
    )
    qk.add_argument(
        "action", nargs="?", choices=["close", "followup"], help="close：结束事件（终报）；followup：补写续报"
    )
    qk.add_argument("event_id", nargs="?", help="事件编号，如 20250630T142305-M6.5")
    qk.add_argument("--by", default="值班人员", help="结束事件的值班人员姓名（写入终报）")
    qk.add_argument("--time", help='发震时刻（北京时间），如 "2025-06-30 14:23:05"')
    qk.add_argument("--lon", help="震中经度，如 106.19")
    qk.add_argument("--lat", help="震中纬度，如 37.93")
    qk.add_argument("--depth", help="震源深度（千米）")
    qk.add_argument("--mag", help="震级（中国地震台网中心测定的M）")
    qk.add_argument("--strike", help="发震断层走向（度，正北顺时针；不知道可不填）")
    qk.add_argument("--place", default="", help="参考地名，如 宁夏吴忠市利通区")
    qk.add_argument("--event", help="按事件编号重新生成（如 20250630T142305-M6.5），不再登记")
    qk.set_defaults(fn=cmd_quake)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except CliError as e:
        print(f"错误：{e}", file=sys.stderr)
        return 1
    except Exception as e:  # a message, not a traceback, for people at the command line
        print(f"错误：{_explain_error(e)}", file=sys.stderr)
        return 1


def _explain_error(e: Exception) -> str:
    from pipeline.platform.failures import explain

    if message := explain(e):  # a full disk: what happened and where, in Chinese
        return message
    text = str(e)
    if "lock" in text.lower() and "duckdb" in type(e).__module__:
        return f"数据库 {paths.database_path()} 正被另一个进程使用（可能有运行正在进行）：请稍后再试"
    return f"{type(e).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
