"""The sync's timetable: a run on the hour for the scheduler, a firm's history period by period for backfills.

`taxdome_qbo_sync` has two kinds of runs that no built-in timetable gives together. The scheduler's runs
(hourly by default) sync everything in scope; they never catch up, since each one syncs the whole firm. A
backfill (`airflow backfill create`, the UI's backfill form) syncs a firm's history one period at a time
(monthly by default): each of its runs gets one period as its data interval and syncs only what is dated in
it (core/sync_period.py, docs/sync-run.md#backfilling-a-firms-history-month-by-month).

Airflow asks a timetable for runs in two ways: the scheduler without catch-up (the DAG's `catchup=False`),
a backfill with catch-up over its range. So the answer without catch-up is the schedule's next tick, and the
answer with catch-up is the history's next period. The DAG must therefore never catch up: with catch-up the
scheduler would start backfilling history on its own (tests/test_dag_integrity.py checks it).

A period's run is logged at the period's start (January's run has the logical date January 1, 00:00) and
ends when the period does: a backfill makes runs only for periods that have ended.

Registered by the project's plugin (plugins/taxdome_qbo_plugin.py), so that the scheduler, the dag-processor
and the api-server can deserialize it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.timetables.trigger import CronTriggerTimetable
from pendulum import DateTime


class SyncTimetable(Timetable):
    """Runs on the `schedule` cron; backfills by periods of the `history_period` cron; both in `timezone`."""

    def __init__(self, schedule: str, history_period: str, timezone: str = "UTC") -> None:
        self.schedule = schedule
        self.history_period = history_period
        self.timezone = timezone
        self._scheduled = CronTriggerTimetable(schedule, timezone=timezone)
        self._history = CronDataIntervalTimetable(history_period, timezone)
        self.description = f"{self._scheduled.description}; backfilled by {history_period} periods".strip(
            "; "
        )

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> SyncTimetable:
        return cls(data["schedule"], data["history_period"], data["timezone"])

    def serialize(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "history_period": self.history_period, "timezone": self.timezone}

    def validate(self) -> None:
        self._scheduled.validate()
        self._history.validate()

    @property
    def summary(self) -> str:
        return f"{self.schedule}, backfills {self.history_period}"

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return self._scheduled.infer_manual_data_interval(run_after=run_after)

    def next_dagrun_info_v2(
        self, *, last_dagrun_info: DagRunInfo | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if restriction.catchup:  # a backfill: the DAG itself never catches up
            return self._history.next_dagrun_info_v2(
                last_dagrun_info=last_dagrun_info, restriction=restriction
            )
        return self._scheduled.next_dagrun_info_v2(last_dagrun_info=last_dagrun_info, restriction=restriction)

    def previous_period_start(self, period_start: dt.datetime) -> DateTime:
        """The start (and logical date) of the history period that ends when the one at `period_start` begins."""
        return self._history.infer_manual_data_interval(run_after=DateTime.instance(period_start)).start

    def period_starts(self, earliest: dt.datetime, latest: dt.datetime) -> Iterator[DateTime]:
        """The starts of the history periods that begin between `earliest` and `latest`, both included."""
        restriction = TimeRestriction(DateTime.instance(earliest), DateTime.instance(latest), catchup=True)
        info = None
        while info := self._history.next_dagrun_info_v2(last_dagrun_info=info, restriction=restriction):
            yield info.data_interval.start
