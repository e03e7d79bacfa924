"""The district's date. Overdue, "today" and future-date checks follow Beijing time (UTC+8, no
daylight saving), not the server's clock: a run at 07:00 in Wuzhong is 23:00 UTC the day before.

`LITONG_TODAY=YYYY-MM-DD` sets the district's date (tests, a replay of a past day, a sample shown
as of its own date); unset, it is today in Beijing time.
"""

from __future__ import annotations

import datetime as dt
import os

DISTRICT_TZ = dt.timezone(dt.timedelta(hours=8), "CST")
TODAY_ENV = "LITONG_TODAY"


def district_today() -> dt.date:
    fixed = os.environ.get(TODAY_ENV)
    if fixed:
        try:
            return dt.date.fromisoformat(fixed)
        except ValueError as e:
            raise ValueError(f"{TODAY_ENV} 应为 YYYY-MM-DD 格式的日期，而不是“{fixed}”") from e
    return dt.datetime.now(DISTRICT_TZ).date()
