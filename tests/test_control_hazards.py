"""Hazards that can only be controlled (issue 11 §2): they enter 待整改 with the rectification kind 管控 and a
deadline to put the measures in place; under control (管控中) they have a review cycle from their rule
instead of an elimination deadline, and overdue means a missed review."""

from __future__ import annotations

import datetime as dt

from pipeline.ledger.exports import ledger_rows, summary
from pipeline.platform import store
from tests.test_ledger import building, fb, feedback, survey

GEO = "JZ-G-B13"  # geological hazard point nearby: rectification control, 180 days to act, review every 90


def rows_as_of(deployment, day: dt.date):
    with store.connect(deployment.db) as con:
        led = ledger_rows(con, day)
        by_town = summary(con, "town", day, dt.date(2023, 1, 1))
    return led.set_index("hazard_no").loc[GEO], by_town


def test_a_control_only_hazard_has_a_review_cycle_and_overdue_means_a_missed_review(deployment):
    survey(deployment, "2023-1", [building("JZ-G", geo_hazard_nearby="是")])
    row, by_town = rows_as_of(deployment, dt.date(2023, 6, 1))
    assert (row["status"], row["rectification_zh"]) == ("待整改", "管控")
    assert row["deadline"].date() == dt.date(2023, 5, 12) + dt.timedelta(days=180)  # to put measures in place
    assert int(by_town["未销号管控类"].sum()) == 1 and int(by_town["未销号限期整改类"].sum()) == 0
    late, _ = rows_as_of(deployment, dt.date(2023, 12, 1))
    assert late["overdue_days"] == (dt.date(2023, 12, 1) - dt.date(2023, 11, 8)).days  # measures not in place

    feedback(deployment, "管控.csv", [fb(GEO, "管控中", monitoring="每月巡查，雨季加密", report_date="2023-06-01")],
             batch="2023-06")  # fmt: skip
    row, _ = rows_as_of(deployment, dt.date(2023, 8, 1))
    assert row["status"] == "管控中" and row["next_review"].date() == dt.date(2023, 8, 30)
    assert row.isna()["overdue_days"]  # no elimination deadline runs under control
    missed, by_town = rows_as_of(deployment, dt.date(2023, 9, 15))
    assert missed["overdue_days"] == 16 and int(by_town["逾期数"].sum()) == 1  # the review of 08-30 was missed

    feedback(deployment, "复核.csv", [fb(GEO, "管控中", monitoring="复核：裂缝无发展", report_date="2023-09-10")],
             batch="2023-09")  # fmt: skip
    reviewed, _ = rows_as_of(deployment, dt.date(2023, 9, 15))
    assert reviewed["next_review"].date() == dt.date(2023, 12, 9) and reviewed.isna()["overdue_days"]


def test_a_hazard_under_control_may_turn_to_rectification_when_it_can_be_eliminated(deployment):
    survey(deployment, "2023-1", [building("JZ-G", geo_hazard_nearby="是")])
    feedback(deployment, "管控.csv", [fb(GEO, "管控中", monitoring="每月巡查", report_date="2023-06-01")],
             batch="2023-06")  # fmt: skip
    (result,) = feedback(deployment, "治理.csv", [fb(GEO, "整改中", report_date="2023-07-01")], batch="2023-07")
    assert result.applied == 1
    assert deployment.query("SELECT status FROM hazards WHERE hazard_no = ?", [GEO]) == [("整改中",)]
