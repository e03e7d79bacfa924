"""An earthquake the district responds to: declared by the bureau (YJJ) or the duty officer.

An event is a small YAML file in `data_raw/earthquakes/YJJ/` (the sensor runs quake_job for it), written by
`cli quake …` or dropped by hand:

    time: 2025-06-30 14:23:05     # origin time, Beijing time (UTC+8)
    lon: 106.20
    lat: 37.95
    depth_km: 10
    magnitude: 5.2               # M as the China Earthquake Networks Center reports it (used as Ms)
    strike: 35                   # optional: the fault's strike, degrees clockwise from north
    place: 宁夏吴忠市利通区        # optional

Authority comes from the folder: only YJJ's folder declares events. Every problem is one Chinese sentence.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import yaml

from pipeline.platform.atomic import write_bytes_atomic
from pipeline.platform.clock import beijing_now
from pipeline.quake.shaking import distance_km, response_settings, screen_radius_km
from pipeline.registries.events import (  # noqa: F401  (re-exported for the response)
    DECLARING_UNIT,
    EVENTS_FOLDER,
    EventTimeError,
    event_files,
    event_id_of,
    parse_time,
)

DISTRICT_CENTRE = (106.20, 37.98)  # lon, lat of Litong District (the towns' centre)


class EventError(ValueError):
    """An event that cannot be taken (Chinese message naming the field)."""


@dataclass(frozen=True)
class Event:
    time: dt.datetime  # Beijing time, naive
    lon: float
    lat: float
    depth_km: float
    magnitude: float
    strike: float | None = None
    place: str = ""

    @property
    def event_id(self) -> str:
        """`20250630T142305-M5.2`: the Dagster partition key, a folder name, stable for one event."""
        return event_id_of(self.time, self.magnitude)

    def epicentre_km(self) -> float:
        """Distance from the epicentre to the district's centre."""
        lon, lat = DISTRICT_CENTRE
        return float(distance_km(self.lon, self.lat, np.array([lon]), np.array([lat]))[0])

    def describe_zh(self) -> str:
        place = self.place or f"北纬{self.lat:.2f}度、东经{self.lon:.2f}度"
        return f"北京时间{self.time:%Y年%m月%d日%H时%M分}，{place}发生{self.magnitude:.1f}级地震，震源深度{self.depth_km:g}千米"

    def to_yaml(self) -> str:
        data = {"time": f"{self.time:%Y-%m-%d %H:%M:%S}", "lon": self.lon, "lat": self.lat,
                "depth_km": self.depth_km, "magnitude": self.magnitude}  # fmt: skip
        if self.strike is not None:
            data["strike"] = self.strike
        if self.place:
            data["place"] = self.place
        return "# 地震事件（北京时间；震级为中国地震台网中心测定的M，按Ms使用）\n" + yaml.safe_dump(
            data, allow_unicode=True, sort_keys=False
        )


def _number(raw: dict, key: str, label: str, required: bool = True) -> float | None:
    value = raw.get(key)
    if value is None or str(value).strip() == "":
        if required:
            raise EventError(f"缺少{label}（{key}）")
        return None
    try:
        number = float(str(value).strip())
    except ValueError as e:
        raise EventError(f"{label}（{key}）应为数字，而不是“{value}”") from e
    if not np.isfinite(number):
        raise EventError(f"{label}（{key}）应为数字，而不是“{value}”")
    return number


# The origin time as a duty officer types it: 2026年12月07日10时45分(30秒), 2026-12-07 10:45, 2026/12/7 10:45:30,
# full-width digits too (NFKC); a four-digit year always.
TYPED_TIME = re.compile(
    r"(?P<y>\d{4})\s*[年/.-]\s*(?P<mo>\d{1,2})\s*[月/.-]\s*(?P<d>\d{1,2})\s*[日号]?\s*[T ]?\s*"
    r"(?P<h>\d{1,2})\s*[时点:]\s*(?P<mi>\d{1,2})\s*分?\s*(?:[:]?\s*(?P<s>\d{1,2})\s*秒?)?"
)
EARLIEST_YEAR = 1900  # J: no response is run for an event before instrumental records (an unreadable 876 is a typo)


def _typed(value: object) -> object:
    """A typed time in the form parse_time reads (`YYYY-MM-DD HH:MM:SS`); anything else unchanged."""
    if not isinstance(value, str):
        return value
    m = TYPED_TIME.fullmatch(unicodedata.normalize("NFKC", value).strip())
    if not m:
        return value
    return (f"{int(m['y']):04d}-{int(m['mo']):02d}-{int(m['d']):02d} "
            f"{int(m['h']):02d}:{int(m['mi']):02d}:{int(m['s'] or 0):02d}")  # fmt: skip


def _time(value: object) -> dt.datetime:
    try:
        t = parse_time(_typed(value))
    except EventTimeError as e:
        raise EventError(
            f"发震时刻“{value}”无法识别：请写成 2026年12月07日10时45分 或 2026-12-07 10:45:00（北京时间）"
        ) from e
    if t.year < EARLIEST_YEAR:
        raise EventError(f"发震时刻“{value}”的年份 {t.year} 有误，请写四位年份（如 2026年12月07日10时45分）")
    now = beijing_now()
    if t > now + dt.timedelta(minutes=5):
        raise EventError(f"发震时刻 {t:%Y-%m-%d %H:%M:%S} 晚于当前北京时间，请核对")
    return t


def event_from(raw: dict) -> Event:
    """Check a declared event against the response settings (rules/quake/response.yaml)."""
    if not isinstance(raw, dict):
        raise EventError("地震事件文件应为“键: 值”的形式（time、lon、lat、depth_km、magnitude）")
    settings = response_settings()
    lon = _number(raw, "lon", "震中经度")
    lat = _number(raw, "lat", "震中纬度")
    depth = _number(raw, "depth_km", "震源深度(千米)")
    mag = _number(raw, "magnitude", "震级")
    strike = _number(raw, "strike", "发震断层走向(度)", required=False)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise EventError(f"震中经纬度（{lon}, {lat}）不是有效坐标（经度在前，纬度在后）")
    lo, hi = settings["magnitude"]["min"], settings["magnitude"]["max"]
    if not lo <= mag <= hi:
        raise EventError(f"震级 {mag} 超出 {lo}–{hi} 的范围，请核对")
    lo, hi = settings["depth_km"]["min"], settings["depth_km"]["max"]
    if not lo <= depth <= hi:
        raise EventError(f"震源深度 {depth} 千米超出 {lo}–{hi} 千米的范围，请核对")
    if strike is not None and not 0 <= strike <= 360:
        raise EventError(f"发震断层走向 {strike} 度应在 0–360 度之间")
    event = Event(_time(raw.get("time")), round(lon, 4), round(lat, 4), depth, round(mag, 1), strike,
                  str(raw.get("place") or "").strip()[:60])  # fmt: skip
    screen = settings["distance_screen"]
    radius = screen_radius_km(event.magnitude)
    limit = screen["district_radius_km"] + radius
    if (far := event.epicentre_km()) > limit:
        reach = f"Ⅵ度区（含余量）长轴半径约 {radius:.0f} 千米" if radius >= 1 else "不出现Ⅵ度区"
        raise EventError(
            f"震中距利通区中心约 {far:.0f} 千米：按衰减关系，{event.magnitude:.1f}级地震{reach}，"
            f"本区估计烈度低于Ⅵ度（受理范围为距区中心 {limit:.0f} 千米以内），不启动本区震后响应"
        )
    return event


def read_event(path: Path) -> Event:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise EventError(f"{path.name}：文件无法读取（应为UTF-8文本，“键: 值”的形式）") from e
    try:
        return event_from(raw)
    except EventError as e:
        raise EventError(f"{path.name}：{e}") from e


def declaring_unit(rel_path: str) -> str | None:
    """The unit whose folder a file under data_raw/earthquakes/ is in."""
    parts = PurePosixPath(rel_path).parts
    return parts[1] if len(parts) >= 3 and parts[0] == EVENTS_FOLDER else None


def declare(event: Event, data_raw: Path) -> Path:
    """Write the event's file into the bureau's folder (atomically); the same event twice is one file."""
    path = data_raw / EVENTS_FOLDER / DECLARING_UNIT / f"{event.event_id}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(path, event.to_yaml().encode("utf-8"))


def find_event(data_raw: Path, event_id: str) -> Event:
    for p in event_files(data_raw):
        try:
            e = read_event(p)
        except EventError:
            continue
        if e.event_id == event_id:
            return e
    raise EventError(f"没有编号为 {event_id} 的地震事件（data_raw/{EVENTS_FOLDER}/{DECLARING_UNIT}/）")
