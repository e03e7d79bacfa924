"""The district's date. Overdue, "today" and future-date checks follow Beijing time (UTC+8, no
daylight saving), not the server's clock: a run at 07:00 in Wuzhong is 23:00 UTC the day before."""

from __future__ import annotations

import datetime as dt

DISTRICT_TZ = dt.timezone(dt.timedelta(hours=8), "CST")


def district_today() -> dt.date:
    return dt.datetime.now(DISTRICT_TZ).date()
