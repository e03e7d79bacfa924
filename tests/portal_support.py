"""The web portal for tests: a real uvicorn server on a loopback port, over a copy of a deployment."""

from __future__ import annotations

import re
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from pipeline.portal import accounts
from pipeline.portal.settings import Settings

PASSWORDS = {"admin": "Admin-pass-2025", "clerk100": "Clerk-pass-2025", "clerk101": "Clerk-pass-2101",
             "sup": "Super-pass-2025", "duty": "Duty-pass-2025", "analyst": "Analyst-pass-2025"}  # fmt: skip
ACCOUNTS = (  # username, name, unit, role
    ("admin", "管理员", "YJJ", "admin"),
    ("clerk100", "金积镇填报员", "T100", "clerk"),
    ("clerk101", "另一镇填报员", "T101", "clerk"),
    ("sup", "住建局监管", "ZJJ", "supervisor"),
    ("duty", "值班员", "YJJ", "duty"),
    ("analyst", "分析员", "YJJ", "analyst"),
)


@dataclass
class Site:
    root: Path
    settings: Settings
    url: str = ""

    @property
    def data_raw(self) -> Path:
        return self.settings.data_raw

    def portal_db(self) -> sqlite3.Connection:
        """The portal's database as the portal opens it (autocommit: a write in a test is a real write)."""
        from pipeline.registries import uploads as upload_audit

        return upload_audit.connect(self.settings.portal_db)

    def uploads(self) -> list[sqlite3.Row]:
        with closing(self.portal_db()) as con:
            return con.execute("SELECT * FROM uploads ORDER BY created_at").fetchall()


def copy_deployment(source_root: Path, target: Path) -> Path:
    """A writable copy of a deployment made by conftest.Deployment (data_raw, output, test.duckdb)."""
    shutil.copytree(source_root / "data_raw", target / "data_raw")
    shutil.copytree(source_root / "output", target / "output", ignore=shutil.ignore_patterns("portal"))
    for name in ("test.duckdb", ".cache"):
        src = source_root / name
        if src.is_dir():
            shutil.copytree(src, target / name)
        elif src.exists():
            shutil.copyfile(src, target / name)
    return target


def make_site(root: Path, **overrides) -> Site:
    settings = Settings(
        data_raw=root / "data_raw", output=root / "output", database=root / "test.duckdb",
        published=root / "output" / "published" / "litong.duckdb",
        portal_db=root / "output" / "portal" / "portal.sqlite3", preview_workers=1, **overrides,
    )  # fmt: skip
    from pipeline.registries import uploads as upload_audit

    with closing(upload_audit.connect(settings.portal_db)) as con:
        accounts.ensure_tables(con)
        for username, name, unit, role in ACCOUNTS:
            if accounts.get_account(con, username) is None:
                accounts.create_account(con, username, name, unit, role, PASSWORDS[username], "test")
    return Site(root, settings)


@contextmanager
def serving(site: Site) -> Iterator[Site]:
    """The portal on a free loopback port, in this process (a thread), until the block ends."""
    import uvicorn

    from pipeline.portal.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(site.settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the portal did not start"
        time.sleep(0.05)
    site.url = f"http://127.0.0.1:{port}"
    try:
        yield site
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@contextmanager
def serving_copy(source_root: Path, target: Path, **overrides) -> Iterator[Site]:
    """The portal over a writable copy (in `target`) of a built deployment, e.g. the session's sample."""
    with serving(make_site(copy_deployment(source_root, target), **overrides)) as site:
        yield site


def published_rows(site: Site, sql: str, params: list | None = None) -> list[tuple]:
    """A query on the publication the portal reads (read-only, closed at once: the portal may write it next)."""
    import duckdb

    with closing(duckdb.connect(str(site.settings.published), read_only=True)) as con:
        return con.execute(sql, params or []).fetchall()


# Debian's Chromium, headless, for the browser tests (conftest's `browser`): never a browser Playwright downloads
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    return CSRF.search(html).group(1)


def login(site: Site, username: str, password: str | None = None) -> requests.Session:
    s = requests.Session()
    r = s.get(site.url + "/login")
    r = s.post(site.url + "/login", data={"csrf": csrf_of(r.text), "username": username,
                                          "password": password or PASSWORDS[username], "next": "/"})  # fmt: skip
    assert r.status_code == 200 and r.url.endswith("/"), r.text[:500]
    return s


def token(s: requests.Session, site: Site, path: str = "/") -> str:
    return csrf_of(s.get(site.url + path).text)


def text_of(html: str) -> str:
    """The visible text of a page, roughly (tags out, blanks collapsed)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
