"""Dagster resources: where the store, the uploads and the outputs are."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from pipeline import paths, store


class LitongStore(dg.ConfigurableResource):
    """The DuckDB file and the folders of one deployment. Empty = the defaults of paths.py
    (project folders, overridable by LITONG_DB / LITONG_DATA_RAW / LITONG_OUTPUT)."""

    database: str = ""
    data_raw: str = ""
    output: str = ""

    def db_path(self) -> Path:
        return Path(self.database) if self.database else paths.database_path()

    def raw_dir(self) -> Path:
        return Path(self.data_raw) if self.data_raw else paths.data_raw_dir()

    def out_dir(self) -> Path:
        return Path(self.output) if self.output else paths.output_dir()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with store.connect(self.db_path()) as con:
            yield con
