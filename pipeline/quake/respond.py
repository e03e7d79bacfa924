"""One event from its declaration to its files: used by the Dagster assets and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.quake.event import Event
from pipeline.quake.exposure import Exposure, assess, quake_db_path
from pipeline.quake.reports import FirstReport, first_report_figures, write_checklists, write_first_report, write_map


@dataclass
class Response:
    exposure: Exposure
    report: FirstReport
    files: list[Path]


def event_dir(out_dir: Path, event: Event) -> Path:
    return out_dir / "quake" / event.event_id


def respond(event: Event, published: Path, live: Path, out_dir: Path) -> Response:
    exposure = assess(event, published, live, out_dir)
    folder = event_dir(out_dir, event)
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(quake_db_path(out_dir)), read_only=True)
    try:
        report = first_report_figures(con, event)
        txt, pdf = write_first_report(report, folder)
        checklists = write_checklists(con, event, folder) if report.felt else []
        figure = write_map(con, event, folder)
    finally:
        con.close()
    return Response(exposure, report, [txt, pdf, figure, *checklists])
