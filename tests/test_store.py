"""An existing database keeps working after a template gains a column."""

from __future__ import annotations

import duckdb

from pipeline.platform import store
from tests.conftest import csv_bytes, example_row


def test_a_database_made_before_a_template_gained_a_column_takes_the_new_column(deployment):
    with store.connect(deployment.db) as con:  # today's tables, then the column "removed" as if made earlier
        con.execute('ALTER TABLE stg_pipelines DROP COLUMN "fault_seismic_design"')
        con.execute('ALTER TABLE raw_pipelines DROP COLUMN "fault_seismic_design"')
    deployment.drop("pipelines", "p.csv", csv_bytes("pipelines", [example_row("pipelines")]), unit="FGJ")
    result = deployment.intake("pipelines")["pipelines"]
    assert (result.valid, result.quarantined) == (1, 0)
    con = duckdb.connect(str(deployment.db), read_only=True)
    try:
        assert con.execute("SELECT fault_seismic_design FROM stg_pipelines").fetchall() == [("是",)]
    finally:
        con.close()
