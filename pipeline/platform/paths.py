"""Where the project keeps its files. One place, so tests and the CLI can redirect it.

Defaults are relative to the project root; `LITONG_DATA_RAW`, `LITONG_OUTPUT` and
`LITONG_DB` override them (read when a path is asked for, never at import). The data that defines the survey
kinds (`schemas/`, `rules/`, `reference/`) can be read from elsewhere with `LITONG_SCHEMAS`, `LITONG_RULES` and
`LITONG_REFERENCE`: read once, at import, because the kinds they define make the Dagster assets (a test runs the
CLI in a subprocess over a copy holding one more kind, tests/test_kinds_framework.py).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = Path(os.environ.get("LITONG_SCHEMAS", PROJECT_ROOT / "schemas"))
REFERENCE_DIR = Path(os.environ.get("LITONG_REFERENCE", PROJECT_ROOT / "reference"))
RULES_DIR = Path(os.environ.get("LITONG_RULES", PROJECT_ROOT / "rules"))


def data_raw_dir() -> Path:
    return Path(os.environ.get("LITONG_DATA_RAW", PROJECT_ROOT / "data_raw"))


def output_dir() -> Path:
    return Path(os.environ.get("LITONG_OUTPUT", PROJECT_ROOT / "output"))


def database_path() -> Path:
    return Path(os.environ.get("LITONG_DB", output_dir() / "litong.duckdb"))


PUBLISHED_DB_NAME = "litong.duckdb"


def published_database_path() -> Path:
    """The read-only snapshot of the database published at the end of every run: what status, explain,
    export, the web page and the earthquake response read, so they never wait behind a writer."""
    return output_dir() / "published" / PUBLISHED_DB_NAME
