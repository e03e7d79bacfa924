"""`python -m pipeline.portal serve | create-admin | add-account`: run the portal, make accounts.

The first administrator is made here, on the server, with a password typed at the prompt (or read from
stdin with --password-stdin); nothing ships with a default password. Further accounts are made on the
page by an administrator (or with add-account).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import threading
import time
from contextlib import closing

from pipeline.portal import accounts
from pipeline.portal.settings import Settings
from pipeline.registries import uploads as upload_audit

GRACE_SECONDS = 5  # open requests get this long to finish once the portal is asked to stop
STUCK_SECONDS = 5  # … and the process this much longer before it exits regardless


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("密码（至少10个字符，含字母和数字）：")
    if getpass.getpass("再输一次：") != first:
        raise accounts.AccountError("两次输入的密码不一致")
    return first


def _add(args: argparse.Namespace, role: str) -> int:
    settings = Settings.from_env()
    with closing(upload_audit.connect(settings.portal_db)) as con:
        accounts.ensure_tables(con)
        _load_registry(settings)
        a = accounts.create_account(con, args.username, args.name or args.username, args.unit, role,
                                    _password(args), None)  # fmt: skip
    print(f"已创建账号 {a.username}（{a.role_zh}，单位 {a.unit_code}）：{settings.portal_db}")
    return 0


def _load_registry(settings: Settings) -> None:
    """The enterprises of the last publication, so an enterprise's account can be made too."""
    from pipeline.portal.reads import Snapshots

    with Snapshots(settings.published).cursor():
        pass


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from pipeline.portal.app import create_app

    settings = Settings.from_env()
    host, port = args.host or settings.host, args.port or settings.port
    with closing(upload_audit.connect(settings.portal_db)) as con:
        accounts.ensure_tables(con)
        if not accounts.has_admin(con):
            print(
                "提示：还没有系统管理员账号。先运行：python -m pipeline.portal create-admin --username <用户名> --unit YJJ"
            )
    print(f"利通区地震风险隐患排查平台：http://{host}:{port}")
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", workers=1,
                                           timeout_graceful_shutdown=GRACE_SECONDS))  # fmt: skip
    _exit_when_stuck(server, app.state.portal.stop)
    server.run()
    return 0


def _exit_when_stuck(server, stop_workers) -> None:
    """Once asked to stop (SIGTERM, Ctrl-C), the portal is gone within GRACE_SECONDS + STUCK_SECONDS: uvicorn
    stops waiting for open requests after GRACE_SECONDS, and if the process is still there STUCK_SECONDS later
    (a page stuck in a thread, which nothing can interrupt), the preview workers are killed and it exits."""

    def watch() -> None:
        while not server.should_exit:
            time.sleep(0.2)
        time.sleep(GRACE_SECONDS + STUCK_SECONDS)
        print(f"平台未能在{GRACE_SECONDS + STUCK_SECONDS}秒内正常停止（有页面卡住），强制退出", file=sys.stderr)
        stop_workers()
        os._exit(1)

    threading.Thread(target=watch, name="portal-stop-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.portal", description="利通区地震风险隐患排查平台")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="启动网页（默认 http://127.0.0.1:8080）")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    for name, text in (("create-admin", "创建系统管理员账号"), ("add-account", "创建账号")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--username", required=True)
        p.add_argument("--name", help="姓名")
        p.add_argument("--unit", required=name == "add-account", default="YJJ", help="单位代码（默认YJJ）")
        if name == "add-account":
            p.add_argument("--role", required=True, choices=list(accounts.ROLES))
        p.add_argument("--password-stdin", action="store_true", help="从标准输入读密码（一行）")
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        return _add(args, "admin" if args.command == "create-admin" else args.role)
    except accounts.AccountError as e:
        print(f"错误：{e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
