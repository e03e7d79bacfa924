"""The district's date. Overdue, "today" and future-date checks follow Beijing time (UTC+8, no
daylight saving), not the server's clock: a run at 07:00 in Wuzhong is 23:00 UTC the day before.

`LITONG_TODAY=YYYY-MM-DD` sets the district's date (tests, a replay of a past day). Else, when the data
folder is the bundled sample (it holds `样例数据.yaml` with the date the sample's story stops), the
district's date is that as-of date and every output says 样例数据，截至…; real data uses today.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import yaml

from pipeline.platform.paths import data_raw_dir

DISTRICT_TZ = dt.timezone(dt.timedelta(hours=8), "CST")
TODAY_ENV = "LITONG_TODAY"
SAMPLE_MARKER = "样例数据.yaml"  # in data_raw/: `as_of: 2025-06-30` and a description

_data_raw: Path | None = None  # the data folder of the deployment in use (the Dagster resource's), if set


def use_data_raw(path: Path | None) -> None:
    """The data folder whose sample marker the clock reads (the Dagster resource sets its own; the CLI
    and everything else use paths.data_raw_dir())."""
    global _data_raw
    _data_raw = path


def sample_as_of() -> dt.date | None:
    """The as-of date of the bundled sample when the data folder is the sample, else None."""
    marker = (_data_raw or data_raw_dir()) / SAMPLE_MARKER
    if not marker.is_file():
        return None
    try:
        value = (yaml.safe_load(marker.read_text(encoding="utf-8")) or {}).get("as_of")
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    except (yaml.YAMLError, ValueError, AttributeError) as e:
        raise ValueError(f"{marker}: as_of 应为 YYYY-MM-DD 格式的日期") from e


def beijing_now() -> dt.datetime:
    """The wall-clock time in Beijing (naive, to the second), whatever the server's clock or TZ: every time the
    product writes or shows (reports, closure, receipts, records, the portal) is this."""
    return dt.datetime.now(DISTRICT_TZ).replace(tzinfo=None, microsecond=0)


# The same in DuckDB SQL, whatever the session's TimeZone (the server's): UTC microseconds of now() plus 8 hours.
BEIJING_NOW_SQL = "make_timestamp(epoch_us(now()) + 28800000000)"


def beijing_time(timestamp: float) -> dt.datetime:
    """A POSIX timestamp (a file's mtime, a run's start) as naive Beijing time, to the second."""
    return dt.datetime.fromtimestamp(timestamp, DISTRICT_TZ).replace(tzinfo=None, microsecond=0)


def district_today() -> dt.date:
    fixed = os.environ.get(TODAY_ENV)
    if fixed:
        try:
            return dt.date.fromisoformat(fixed)
        except ValueError as e:
            raise ValueError(f"{TODAY_ENV} 应为 YYYY-MM-DD 格式的日期，而不是“{fixed}”") from e
    return sample_as_of() or dt.datetime.now(DISTRICT_TZ).date()


def as_of_label(as_of: dt.date) -> str:
    """How every output states its date: `截至2025年6月30日`, or `样例数据，截至…` on the sample."""
    text = f"截至{as_of.year}年{as_of.month}月{as_of.day}日"
    return f"样例数据，{text}" if sample_as_of() is not None else text
