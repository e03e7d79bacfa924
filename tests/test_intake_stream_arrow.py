"""Issue 30: a CSV over readers.STREAM_BYTES is parsed by Arrow's streaming reader while its records are as wide
as the header, and from the first one that is not by Python's csv module, exactly: the same rows, row numbers,
blank rows, quarantine and row problems as the whole-file reader."""

from __future__ import annotations

from pipeline.intake import readers
from tests.conftest import Deployment, example_row
from tests.test_intake_robust import csv_text, rows_of


def _outcome(d: Deployment) -> tuple:
    result = d.intake("buildings")["buildings"]
    return (
        (result.valid, result.quarantined),
        d.query("SELECT rows_read, blank_rows FROM intake_files"),
        d.query("SELECT row_no, building_id, address FROM stg_buildings ORDER BY row_no"),
        d.query("SELECT row_no, reasons_zh FROM quarantine ORDER BY row_no"),
        d.query("SELECT row_no, column_key, problem_zh FROM intake_row_problems ORDER BY ALL"),
    )


def test_a_huge_csv_is_parsed_by_arrow_then_exactly_from_its_first_ragged_record(tmp_path, monkeypatch):
    records = [example_row("buildings", building_id=f"B{i:03d}") for i in range(200)]
    records[5]["address"] = "金积镇\n三组"  # a quoted line break, in Arrow's part
    records[30]["address"] = "长" * 2100  # an over-long cell, in Arrow's part
    records[120]["year_built"] = "一九九零"  # not a year, in Arrow's part
    rows = rows_of("buildings", *records)
    rows[150] = [*rows[150], "", "错位"]  # a value right of the header (record 152): Python's csv module from here
    rows.insert(160, [""] * len(rows[0]))  # a blank row, in Python's part
    text = "利通区房屋建筑调查表\r\n" + csv_text(rows)
    arrow_batches = []
    real_stream = readers._arrow_stream

    def counted(*args):
        for b in real_stream(*args):  # noqa: B007
            arrow_batches.append(b.num_rows)
            yield b

    outcomes = []
    for name, stream in (("whole", False), ("streamed", True)):
        d = Deployment(tmp_path / name)
        d.drop("buildings", "a.csv", text.encode("utf-8"))
        with monkeypatch.context() as m:
            if stream:
                m.setattr(readers, "STREAM_BYTES", 0)
                m.setattr(readers, "ARROW_BLOCK", 16 << 10)  # several blocks before the ragged record
                m.setattr(readers, "_arrow_stream", counted)
            outcomes.append(_outcome(d))
    assert outcomes[0] == outcomes[1]
    assert len(arrow_batches) >= 2 and 40 < sum(arrow_batches) < 150  # Arrow read the first blocks
    (valid, quarantined), files, staged, quarantine, problems = outcomes[1]
    assert files == [(200, 1)] and (valid, quarantined) == (197, 3)
    assert (8, "B005", "金积镇\n三组") in staged
    assert [r for r, _ in quarantine] == [33, 123, 152]  # the long cell, the bad year, the value right of the header
    assert [r for r, _, _ in problems] == [33, 152]
