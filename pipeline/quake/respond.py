"""One event from its declaration to its files: used by the Dagster assets and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.quake.event import Event
from pipeline.quake.exposure import Exposure, assess, quake_db_path
from pipeline.quake.reports import (
    FirstReport,
    first_report_figures,
    write_annex_pdf,
    write_checklists,
    write_first_report,
    write_map,
)


@dataclass
class Response:
    exposure: Exposure
    report: FirstReport
    files: list[Path]


def event_dir(out_dir: Path, event: Event) -> Path:
    return out_dir / "quake" / event.event_id


def first_report(event: Event, published: Path, live: Path, out_dir: Path) -> Response:
    """The shaking and the 首报 (text and PDF): what must go out within a minute."""
    exposure = assess(event, published, live, out_dir)
    folder = event_dir(out_dir, event)
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(quake_db_path(out_dir)), read_only=True)
    try:
        report = first_report_figures(con, event)
        files = list(write_first_report(report, folder))
    finally:
        con.close()
    return Response(exposure, report, files)


def checklists_and_map(event: Event, out_dir: Path) -> list[Path]:
    """The map, the 排查清单 per responsible unit (all objects at ≥ VI: large after a strong event; none when the
    event was not felt) and the PDF of the 首报's annex, in that order."""
    folder = event_dir(out_dir, event)
    con = duckdb.connect(str(quake_db_path(out_dir)), read_only=True)
    try:
        checklists = write_checklists(con, event, folder)
        figure = write_map(con, event, folder)
    finally:
        con.close()
    annex = write_annex_pdf(folder)
    return [figure, *checklists, *([annex] if annex else [])]


def respond(event: Event, published: Path, live: Path, out_dir: Path) -> Response:
    """Everything for one event, in order: 首报 first, then the checklists and the map."""
    response = first_report(event, published, live, out_dir)
    response.files += checklists_and_map(event, out_dir)
    return response
