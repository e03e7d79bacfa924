"""The published snapshot is not copied when nothing it holds changed (issue 30); a run that confirmed it is
the run readers are told about, and any change is published whole."""

from __future__ import annotations

import duckdb

from pipeline.platform import store
from pipeline.publish.snapshot import STATE_NAME, publish_snapshot, snapshot_info
from tests.conftest import Deployment, csv_bytes, run_all
from tests.test_ledger import building


def test_nothing_changed_no_copy_and_a_change_is_published(tmp_path):
    db, target = tmp_path / "store.duckdb", tmp_path / "published" / "litong.duckdb"
    with store.connect(db) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS a")
    first = publish_snapshot(db, target, "run-1", "main_job")
    assert first["copied"] and (target.parent / STATE_NAME).is_file()
    stamp = target.stat().st_mtime_ns

    with store.connect(db) as con:  # read, not written
        con.execute("SELECT * FROM t").fetchall()
    second = publish_snapshot(db, target, "run-2", "daily_job")
    assert not second["copied"] and target.stat().st_mtime_ns == stamp
    info = snapshot_info(target)
    assert (info["run_id"], info["job_name"], info["published_at"]) == ("run-2", "daily_job", first["published_at"])

    with store.connect(db) as con:
        con.execute("INSERT INTO t VALUES (2)")
    third = publish_snapshot(db, target, "run-3", "main_job")
    assert third["copied"] and snapshot_info(target)["run_id"] == "run-3"
    con = duckdb.connect(str(target), read_only=True)
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    con.close()

    target.write_bytes(target.read_bytes())  # the snapshot replaced by something else: published again
    assert publish_snapshot(db, target, "run-4", "main_job")["copied"]


def test_a_run_with_nothing_new_publishes_nothing(tmp_path):
    d = Deployment(tmp_path)
    d.drop("buildings", "b.csv", csv_bytes("buildings", [building("B-1", appraisal_grade="D"), building("B-2")]))
    first = run_all(d)
    assert first.success
    assert first.asset_materializations_for_node("published_snapshot")[0].metadata["copied"].value is True
    published = d.output / "published" / "litong.duckdb"
    stamp = published.stat().st_mtime_ns
    again = run_all(d)
    assert again.success
    assert again.asset_materializations_for_node("published_snapshot")[0].metadata["copied"].value is False
    assert published.stat().st_mtime_ns == stamp
    assert snapshot_info(published)["run_id"] == again.run_id
