"""The earthquakes the district has declared, and which of them are closed: what the intake needs to know
to take a unit's 灾情反馈 (data_raw/quake_feedback/<unit>/<event id>/) or refuse it.

An event is declared by a file in `data_raw/earthquakes/YJJ/` (pipeline/quake/event.py checks its fields);
it is closed by the duty officer (`cli quake close`, or the UI), which writes
`data_raw/earthquakes/YJJ/已结束/<event id>.yaml`. Authority comes from the folder: only the bureau's
folder declares and closes events. This module sits below the intake, so it reads the files itself and
never imports the earthquake response.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import yaml

from pipeline.platform.atomic import write_bytes_atomic
from pipeline.platform.clock import DISTRICT_TZ, beijing_now, beijing_time

EVENTS_FOLDER = "earthquakes"
DECLARING_UNIT = "YJJ"  # 利通区应急管理局（地震局）: its folder, or the duty officer's CLI
CLOSED_FOLDER = "已结束"
EVENT_ID_PATTERN = re.compile(r"^\d{8}T\d{6}-M\d{1,2}\.\d$")


class EventTimeError(ValueError):
    """An origin time that cannot be read (Chinese message)."""


def event_id_of(time: dt.datetime, magnitude: float) -> str:
    """`20250630T142305-M5.2`: the Dagster partition key and folder name of one event."""
    return f"{time:%Y%m%dT%H%M%S}-M{magnitude:.1f}"


def parse_time(value: object) -> dt.datetime:
    """An origin time as Beijing time (naive): `2025-06-30 14:23:05`, ISO with T, or with an offset."""
    if isinstance(value, dt.datetime):
        t = value
    else:
        text = re.sub(r"\s+", " ", str(value or "").strip()).replace("T", " ")
        try:
            t = dt.datetime.fromisoformat(text)
        except ValueError as e:
            raise EventTimeError(f"发震时刻“{value}”无法识别：请写成 2025-06-30 14:23:05（北京时间）") from e
    if t.tzinfo is not None:  # an explicit offset: convert to Beijing time
        t = t.astimezone(DISTRICT_TZ).replace(tzinfo=None)
    return t.replace(microsecond=0)


def events_dir(data_raw: Path) -> Path:
    return data_raw / EVENTS_FOLDER / DECLARING_UNIT


def event_files(data_raw: Path) -> list[Path]:
    """The bureau's event files (not those in its 已结束 folder)."""
    folder = events_dir(data_raw)
    return sorted(p for p in folder.glob("*.y*ml") if p.is_file() and not p.name.startswith((".", "~$")))


def declared_events(data_raw: Path) -> dict[str, dt.datetime]:
    """event id → origin time of every readable event file (the response checks the rest of its fields)."""
    out: dict[str, dt.datetime] = {}
    for path in event_files(data_raw):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
            time = parse_time(raw.get("time"))
            out[event_id_of(time, round(float(raw.get("magnitude")), 1))] = time
        except (yaml.YAMLError, UnicodeDecodeError, AttributeError, TypeError, ValueError):
            continue
    return out


def closure_path(data_raw: Path, event_id: str) -> Path:
    return events_dir(data_raw) / CLOSED_FOLDER / f"{event_id}.yaml"


def closed_at(data_raw: Path, event_id: str) -> dt.datetime | None:
    """When the duty officer closed the event (its 终报), or None while it is open."""
    path = closure_path(data_raw, event_id)
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
        return parse_time(raw.get("closed_at"))
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError, EventTimeError):
        return beijing_time(path.stat().st_mtime)


def close_event(data_raw: Path, event_id: str, by: str) -> Path:
    """Record the event as closed (atomically). Closing twice keeps the first closure."""
    path = closure_path(data_raw, event_id)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    now = beijing_now()
    text = (f"# 地震事件结束（终报已发出）：此后不再受理该事件的灾情反馈\nevent_id: {event_id}\n"
            f"closed_at: {now:%Y-%m-%d %H:%M:%S}\nclosed_by: {by}\n")  # fmt: skip
    return write_bytes_atomic(path, text.encode("utf-8"))


def event_problem(data_raw: Path, event_id: str) -> str | None:
    """Why a 灾情反馈 folder named `event_id` cannot be taken (Chinese), or None."""
    example = "例如 20250630T142305-M5.2，见首报的文件夹名"
    if not EVENT_ID_PATTERN.match(event_id):
        return f"文件夹“{event_id}”不是地震事件编号（{example}）：灾情反馈应放在 data_raw/quake_feedback/<单位代码>/<事件编号>/ 下"
    if event_id not in declared_events(data_raw):
        return f"地震事件“{event_id}”未登记（{example}）：请核对事件编号，或联系区应急管理局（地震局）值班人员"
    if (when := closed_at(data_raw, event_id)) is not None:
        return f"地震事件“{event_id}”已于{when:%Y-%m-%d %H:%M}结束（终报已发出），不再受理该事件的灾情反馈"
    return None
