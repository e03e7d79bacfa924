"""The district's date: Beijing time, or the date LITONG_TODAY sets."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.clock import DISTRICT_TZ, district_today


def test_the_district_date_is_beijing_time_unless_set(monkeypatch):
    monkeypatch.delenv("LITONG_TODAY", raising=False)
    assert district_today() == dt.datetime.now(DISTRICT_TZ).date()
    monkeypatch.setenv("LITONG_TODAY", "2024-03-31")
    assert district_today() == dt.date(2024, 3, 31)
    monkeypatch.setenv("LITONG_TODAY", "31/03/2024")
    with pytest.raises(ValueError, match="LITONG_TODAY 应为 YYYY-MM-DD"):
        district_today()
