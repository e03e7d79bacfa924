"""Issue 30: the checks across rows (id given twice with different content, exact repeat, where else the id
appears) are computed with windows only over the ids given more than once (normalize.cross_sql). Every row must
get what the windows over every row give (the formulation of main, `_every_row_sql` below), value for value:
NULL scopes, incomplete ids, an incomplete id whose text equals a complete one's, repeats and conflicts together."""

from __future__ import annotations

import duckdb

from pipeline.intake.normalize import cross_sql, shared_rows_count_sql
from pipeline.registries.templates import load_template


def _every_row_sql(table: str) -> str:
    """main's query: both windows over every affected row."""
    return f"""
    SELECT n._row_key, n.file_id, n.row_no,
        CASE WHEN n._id_complete THEN count(DISTINCT n._content) OVER w = 1 END AS _chk_id_unique,
        CASE WHEN n._id_complete THEN
            row_number() OVER (PARTITION BY n._scope, n._content ORDER BY n.source_file, n.row_no) = 1
            END AS _chk_not_repeat,
        CASE WHEN n._id_complete AND count(*) OVER w > 1 THEN
            list(n.source_file || '第' || n.row_no || '行') OVER (w ORDER BY n.source_file, n.row_no
                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) END AS _dup_where
    FROM {table} n
    WHERE n._row_key IN (SELECT _row_key FROM __affected)
    WINDOW w AS (PARTITION BY n._scope, n._record_id)
    """


ROWS = [  # scope, record id, content, id complete, file, row
    ("2023-1", "A", "a1", True, "f1", 2),  # A: the same content twice (a repeat), then different content
    ("2023-1", "A", "a1", True, "f2", 5),
    ("2023-1", "A", "a2", True, "f1", 9),
    ("2023-1", "B", "b1", True, "f1", 3),  # B: alone
    ("2023-2", "B", "b1", True, "f1", 4),  # the same id in another scope: alone there
    (None, "C", "c1", True, "f3", 2),  # a NULL scope: its rows together, as a window partitions them
    (None, "C", "c1", True, "f3", 3),
    (None, "C", "c2", True, "f4", 2),
    (None, "D", "d1", True, "f3", 7),
    ("2023-1", "", "e1", False, "f1", 11),  # incomplete ids: NULL checks, whatever they share
    ("2023-1", "", "e1", False, "f1", 12),
    ("2023-1", "X|Y", "x1", True, "f1", 20),  # a complete id and an incomplete one with the same text
    ("2023-1", "X|Y", "x2", False, "f2", 21),
    ("2023-1", "Z", "z1", True, "f5", 1),  # an exact repeat of a row outside `__affected`: not seen
    ("2023-1", "Z", "z1", True, "f5", 2),
]


def _table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE norm_buildings (_row_key BIGINT, file_id VARCHAR, row_no INTEGER, source_file VARCHAR, "
        "_scope VARCHAR, _record_id VARCHAR, _content VARCHAR, _id_complete BOOLEAN)"
    )
    con.executemany(
        "INSERT INTO norm_buildings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(i + 1, f, r, f"buildings/{f}.csv", s, rec, c, ok) for i, (s, rec, c, ok, f, r) in enumerate(ROWS)],
    )
    con.execute("CREATE TEMP TABLE __affected AS SELECT _row_key FROM norm_buildings WHERE _row_key <> 15")


def test_windows_over_shared_ids_give_what_windows_over_every_row_give():
    con = duckdb.connect()
    _table(con)
    new = con.execute(f"SELECT * FROM ({cross_sql(load_template('buildings'))}) ORDER BY _row_key").fetchall()
    old = con.execute(f"SELECT * FROM ({_every_row_sql('norm_buildings')}) ORDER BY _row_key").fetchall()
    assert new == old
    by_key = {r[0]: r[3:] for r in new}
    assert by_key[1] == (False, True, ["buildings/f1.csv第2行", "buildings/f1.csv第9行", "buildings/f2.csv第5行"])
    assert by_key[2][:2] == (False, False)  # the repeat
    assert by_key[4] == (True, True, None) and by_key[5] == (True, True, None)
    assert by_key[6][:2] == (False, True) and by_key[7][:2] == (False, False)  # NULL scope: one partition
    assert by_key[10] == (None, None, None)
    assert by_key[12] == (False, True, ["buildings/f1.csv第20行", "buildings/f2.csv第21行"])
    assert by_key[14] == (True, True, None)  # its twin is not affected


def test_the_windows_see_only_the_rows_of_ids_given_more_than_once():
    """The work: 8 of the 14 affected rows reach the windows (ids A, C and X|Y); main's windows saw all 14, and at
    1 M buildings every row (~10 s)."""
    con = duckdb.connect()
    _table(con)
    assert con.execute(shared_rows_count_sql(load_template("buildings"))).fetchall() == [(8,)]
    con.execute("DELETE FROM norm_buildings WHERE _record_id IN ('A', 'C', 'X|Y')")
    assert con.execute(shared_rows_count_sql(load_template("buildings"))).fetchall() == [(0,)]
