"""The district's date: Beijing time, the date LITONG_TODAY sets, or the bundled sample's as-of date."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.platform.clock import DISTRICT_TZ, SAMPLE_MARKER, as_of_label, district_today, sample_as_of


def test_the_district_date_is_beijing_time_unless_set(monkeypatch, tmp_path):
    monkeypatch.setenv("LITONG_DATA_RAW", str(tmp_path))  # not the bundled sample
    monkeypatch.delenv("LITONG_TODAY", raising=False)
    assert district_today() == dt.datetime.now(DISTRICT_TZ).date()
    monkeypatch.setenv("LITONG_TODAY", "2024-03-31")
    assert district_today() == dt.date(2024, 3, 31)
    monkeypatch.setenv("LITONG_TODAY", "31/03/2024")
    with pytest.raises(ValueError, match="LITONG_TODAY 应为 YYYY-MM-DD"):
        district_today()


def test_on_the_bundled_sample_the_district_date_is_its_as_of_date(monkeypatch, tmp_path):
    monkeypatch.delenv("LITONG_TODAY", raising=False)
    monkeypatch.setenv("LITONG_DATA_RAW", str(tmp_path))
    assert district_today() == dt.datetime.now(DISTRICT_TZ).date() and sample_as_of() is None
    assert as_of_label(dt.date(2025, 6, 30)) == "截至2025年6月30日"  # real data: no sample label
    (tmp_path / SAMPLE_MARKER).write_text("# 样例数据\nas_of: 2025-06-30\n", encoding="utf-8")
    assert district_today() == dt.date(2025, 6, 30)
    assert as_of_label(district_today()) == "样例数据，截至2025年6月30日"
    monkeypatch.setenv("LITONG_TODAY", "2025-01-31")  # a test or a replay still sets the date
    assert district_today() == dt.date(2025, 1, 31)
    (tmp_path / SAMPLE_MARKER).write_text("as_of: 30/06/2025\n", encoding="utf-8")
    with pytest.raises(ValueError, match="as_of 应为 YYYY-MM-DD"):
        sample_as_of()
