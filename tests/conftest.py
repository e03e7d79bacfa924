"""Shared fixtures: a throw-away deployment (data_raw, output, DuckDB file) per test."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipeline.intake.ingest import ingest_kind
from pipeline.intake.validate import normalize, validate
from pipeline.platform import store
from pipeline.platform.paths import PROJECT_ROOT
from pipeline.platform.resources import LitongStore, SparkResource
from pipeline.registries.templates import load_template


def example_row(kind: str, **overrides: str) -> dict[str, str]:
    """The template's own example row, by field key, with overrides."""
    row = {f.key: f.example for f in load_template(kind).fields}
    row.update(overrides)
    return row


def csv_bytes(kind: str, rows: list[dict[str, str]], encoding: str = "utf-8", newline: str = "\n",
              headers: list[str] | None = None) -> bytes:  # fmt: skip
    t = load_template(kind)
    keys = t.keys
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(headers or [t.field(k).header for k in keys])
    for r in rows:
        w.writerow([r.get(k, "") for k in keys])
    return buf.getvalue().encode(encoding)


class Deployment:
    def __init__(self, root: Path):
        self.root = root
        self.data_raw = root / "data_raw"
        self.output = root / "output"
        self.db = root / "test.duckdb"
        self.data_raw.mkdir(parents=True)

    def drop(self, kind: str, name: str, data: bytes, unit: str = "ZJJ", rnd: str = "2023-1") -> Path:
        path = self.data_raw / kind / unit / rnd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def resource(self) -> LitongStore:
        return LitongStore(database=str(self.db), data_raw=str(self.data_raw), output=str(self.output))

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(self.db))
        store.ensure_schema(con)
        return con

    def intake(self, *kinds: str):
        """Ingest + normalise + validate, as the assets do; returns {kind: ValidationResult}."""
        out = {}
        with store.connect(self.db) as con:
            for kind in kinds:
                ingest_kind(con, self.data_raw, kind)
                t = load_template(kind)
                normalize(con, t)
                out[kind] = validate(con, t)
        return out

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with store.connect(self.db) as con:
            return con.execute(sql, params or []).fetchall()


def saved_figures(monkeypatch) -> list:
    """The figures saved from now on (caught at savefig), to be drawn again and read."""
    from matplotlib.figure import Figure

    saved = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


@contextmanager
def rules_scratch() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with the store's tables and the rules' reference tables and views."""
    from pipeline.scoring.ruleset import install

    con = duckdb.connect()
    try:
        store.ensure_schema(con)
        install(con)
        yield con
    finally:
        con.close()


@contextmanager
def normalised_rows(db: Path, kind: str) -> Iterator[tuple[Callable, int]]:
    """A column loader over every normalised row of `kind` in the store `db` (read-only), and their number."""
    from pipeline.engines.duckdb import column_loader
    from pipeline.intake.normalize import norm_table

    con = duckdb.connect(str(db), read_only=True)
    try:
        lo, hi = con.execute(f"SELECT min(_row_key) - 1, max(_row_key) FROM {norm_table(kind)}").fetchall()[0]
        yield column_loader(con, norm_table(kind), lo, hi), (hi or 0) - (lo or 0)
    finally:
        con.close()


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    return Deployment(tmp_path)


def run_all(deployment: Deployment, publish: bool = True) -> dg.ExecuteInProcessResult:
    """Every asset (without the charts and briefing when `publish` is False: they cost seconds a run)."""
    from pipeline.wiring.definitions import all_assets

    selection = None if publish else dg.AssetSelection.all() - dg.AssetSelection.groups("publish")
    return dg.materialize(all_assets, selection=selection, resources={"store": deployment.resource(), "spark": SparkResource()},
                          raise_on_error=False)  # fmt: skip


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `build` fills, built once in this test session and shared by its workers: read it, or copy it
    to change it. Under xdist the workers' temp folders share a parent made for this session alone (a clean
    clone's CI starts with nothing); the first worker to ask builds under a lock, the others wait and take it."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    built = shared / f"built-{name}"
    with open(shared / f"built-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not built.is_dir():
            partial = shared / f"building-{name}"
            shutil.rmtree(partial, ignore_errors=True)  # a build that failed before: its worker said so
            partial.mkdir()
            build(partial)
            partial.rename(built)
    return built


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> tuple[Deployment, dg.ExecuteInProcessResult]:
    """The bundled sample district through every asset once (about a minute), shared by the tests
    that read its results and never change it."""
    deployment = Deployment(tmp_path_factory.mktemp("sample"))
    shutil.rmtree(deployment.data_raw)
    shutil.copytree(PROJECT_ROOT / "data_raw", deployment.data_raw)
    return deployment, run_all(deployment)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright (the portal's browser tests), one per test file."""
    from playwright.sync_api import sync_playwright
    from portal_support import CHROMIUM, CHROMIUM_FLAGS

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it (make browser)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(autouse=True)
def _clock_reads_the_environment():
    """A Dagster resource points the clock at its deployment's data folder; no test inherits another's."""
    from pipeline.platform import clock
    from pipeline.registries import uploads as upload_audit

    clock.use_data_raw(None)
    upload_audit.use_output(None)
    yield
    clock.use_data_raw(None)
    upload_audit.use_output(None)


# The longest test files start first: `make test` hands whole files to its two workers in collection order, so a
# long file collected last (test_spark.py: a JVM and the sample on both engines, ~5 min) would run alone at the end.
LONGEST_FIRST = ("tests/test_spark.py", "tests/test_portal_browser.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file keeps its own order
