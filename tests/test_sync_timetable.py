"""The sync's timetable: the scheduler gets the hourly ticks, a backfill the months of the firm's history."""

from __future__ import annotations

import pendulum
import pytest
from airflow.timetables.base import TimeRestriction

from taxdome_qbo.timetables import SyncTimetable

pytestmark = pytest.mark.airflow

HOURLY_MONTHLY = SyncTimetable("@hourly", "@monthly")


def _runs(timetable: SyncTimetable, restriction: TimeRestriction, limit: int = 50) -> list:
    runs, info = [], None
    while len(runs) < limit and (
        info := timetable.next_dagrun_info_v2(last_dagrun_info=info, restriction=restriction)
    ):
        runs.append(info)
    return runs


def test_a_backfill_gets_one_run_per_month_whose_data_interval_is_the_month():
    backfill = TimeRestriction(pendulum.datetime(2026, 1, 1), pendulum.datetime(2026, 3, 31), catchup=True)
    runs = _runs(HOURLY_MONTHLY, backfill)
    assert [(r.logical_date.to_date_string(), r.data_interval.end.to_date_string()) for r in runs] == [
        ("2026-01-01", "2026-02-01"),
        ("2026-02-01", "2026-03-01"),
        ("2026-03-01", "2026-04-01"),
    ]
    assert all(r.run_after == r.data_interval.end for r in runs)  # a month runs once it has ended


def test_the_scheduler_gets_the_next_hour_whatever_the_last_backfilled_month():
    backfill = TimeRestriction(pendulum.datetime(2026, 1, 1), pendulum.datetime(2026, 3, 31), catchup=True)
    last_backfilled = _runs(HOURLY_MONTHLY, backfill)[-1]
    scheduler = TimeRestriction(pendulum.datetime(2026, 1, 1), None, catchup=False)
    now = pendulum.now("UTC")
    for last in (None, last_backfilled):
        scheduled = HOURLY_MONTHLY.next_dagrun_info_v2(last_dagrun_info=last, restriction=scheduler)
        assert now.subtract(hours=1) <= scheduled.run_after <= now.add(hours=1)
        assert scheduled.run_after.minute == 0 and scheduled.data_interval.start == scheduled.run_after
    manual = HOURLY_MONTHLY.infer_manual_data_interval(run_after=now)
    assert manual.start == manual.end == now


def test_periods_follow_the_history_period_and_its_time_zone():
    quarterly = SyncTimetable("@hourly", "0 0 1 */3 *", timezone="America/New_York")
    starts = list(quarterly.period_starts(pendulum.datetime(2025, 12, 15), pendulum.datetime(2026, 7, 1, 4)))
    # Midnight in New York: 05:00 UTC in winter, 04:00 in summer.
    assert [s.in_timezone("UTC").to_datetime_string() for s in starts] == [
        "2026-01-01 05:00:00",
        "2026-04-01 04:00:00",
        "2026-07-01 04:00:00",
    ]
    assert quarterly.previous_period_start(starts[1]) == starts[0]
    assert HOURLY_MONTHLY.previous_period_start(pendulum.datetime(2026, 3, 1)) == pendulum.datetime(
        2026, 2, 1
    )
