"""Bodies of the `taxdome_qbo_sync` tasks: resolve Airflow things (params, Variable, hooks, paths), call one
use case of `services.pipeline`, return its small receipt. Nothing here holds business logic."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk import Context, ObjectStoragePath, Variable
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.reconciliation_period import period_of_interval
from taxdome_qbo.core.settings import SETTINGS_VARIABLE, FirmSettings, SettingsError, resolve_settings
from taxdome_qbo.core.sync_period import SyncPeriod, period_of
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.paths import default_landing_dir, reports_location
from taxdome_qbo.services import company_lease, loading, pipeline
from taxdome_qbo.services.reports import ReportFolder

log = logging.getLogger(__name__)

BACKFILL = "backfill"
IN_FLIGHT = ["queued", "running"]
# How far back a backfill's history runs are looked for, and how long a run waits for its turn.
HISTORY_LOOKBACK = dt.timedelta(days=10 * 366)
TURN_WAIT_TIMEOUT = dt.timedelta(days=7)


@contextmanager
def task_outcome() -> Iterator[None]:
    """A use case's refusal fails the task without retries; its "nothing to do" skips the task."""
    try:
        yield
    except pipeline.Refused as exc:
        raise AirflowFailException(str(exc)) from exc
    except pipeline.Skipped as exc:
        raise AirflowSkipException(str(exc)) from exc


def firm_settings(params: dict[str, Any] | None = None) -> FirmSettings:
    """Params over the Variable over the defaults; a bad value fails the run without retries."""
    try:
        return resolve_settings(Variable.get(SETTINGS_VARIABLE, default=None, deserialize_json=True), params)
    except SettingsError as exc:
        raise AirflowFailException(f"firm settings: {exc}") from exc


def reports_root() -> ObjectStoragePath:
    """The reports location (local or object store): plan previews and reconciliation reports, a folder per run."""
    return ObjectStoragePath(reports_location())


def folder_at(location: str) -> ReportFolder:
    """The folder a reconciliation recorded: an object-store URL through Airflow's ObjectStoragePath, else a
    local folder (ObjectStoragePath would read a bare path as a `file://` URL too, but Path says it plainly)."""
    return ObjectStoragePath(location) if "://" in location else Path(location)


def resolve_exports(params: dict[str, Any]) -> list[str]:
    """The export named by `export_dir`, else every export of `landing_dir` not loaded yet (oldest first).

    Each is checked for its required files and columns before anything is staged.
    """
    log.info("firm settings: %s", firm_settings(params).as_json())
    export = ObjectStoragePath(params["export_dir"]) if params.get("export_dir") else None
    landing = ObjectStoragePath(params.get("landing_dir") or str(default_landing_dir()))
    with task_outcome():
        locations = pipeline.exports_to_stage(WarehouseHook().get_engine(), export=export, landing=landing)
    return [str(location) for location in locations]


def stage_exports(locations: list[str], run_id: str) -> list[dict[str, Any]]:
    """Stage each export in order, one transaction each; returns one receipt (counts) per export."""
    with task_outcome():
        return pipeline.stage(
            WarehouseHook().get_engine(), [ObjectStoragePath(location) for location in locations], run_id
        )


def check_quality(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Check the staged firm before anything is planned; a critical failure fails the run without retries."""
    settings = firm_settings(params)
    with task_outcome():
        return pipeline.check(
            WarehouseHook().get_engine(),
            run_id,
            export_mode=params["export_mode"],
            home_currency=settings.home_currency,
        )


def run_period(context: Context) -> SyncPeriod | None:
    """The days the run syncs: its `period_from` and `period_to` when given, else a backfill run's data
    interval (one period of the firm's history: the days that begin in it), else None (everything in scope)."""
    params = context["params"]
    try:
        period = period_of(params.get("period_from"), params.get("period_to"))
    except ValueError as exc:
        raise AirflowFailException(f"period: {exc}") from exc
    if period is None and context["dag_run"].run_type == BACKFILL:
        first, last = period_of_interval(
            context["data_interval_start"], context["data_interval_end"], context["dag"].timezone
        )
        period = SyncPeriod(first, last)
    return period


def _previous_period_unsettled(context: Context) -> str | None:
    """Why a backfill's run must wait: the run of the history period just before its own has not succeeded
    (None when it has, or when there is no such run: the first period of a history)."""
    ti, dag_run = context["ti"], context["dag_run"]
    previous = [context["dag"].timetable.previous_period_start(dag_run.data_interval_start)]
    runs = ti.get_dr_count(dag_id=dag_run.dag_id, logical_dates=previous)
    if not runs or ti.get_dr_count(dag_id=dag_run.dag_id, logical_dates=previous, states=["success"]):
        return None
    failed = ti.get_dr_count(dag_id=dag_run.dag_id, logical_dates=previous, states=["failed"])
    state = "failed: clear its failed tasks (or mark it success to skip it)" if failed else "not finished yet"
    return f"the run of the period before this one (logical date {previous[0]:%Y-%m-%d %H:%M}) is {state}"


def _history_in_flight(context: Context) -> str | None:
    """Why a scheduled or manual run must wait: a backfill's run of the firm's history is queued or running
    (None when none is). Such a run is logged at the start of a history period; this run counts itself when
    it is logged at one too (a scheduled run on the first of a month at midnight)."""
    ti, dag_run = context["ti"], context["dag_run"]
    now = dt.datetime.now(dt.UTC)
    starts = list(context["dag"].timetable.period_starts(now - HISTORY_LOOKBACK, now))
    in_flight = sum(
        ti.get_dr_count(dag_id=dag_run.dag_id, logical_dates=starts[at : at + 500], states=IN_FLIGHT)
        for at in range(0, len(starts), 500)
    ) - int(dag_run.logical_date in starts)
    return f"{in_flight} backfill run(s) of the firm's history queued or running" if in_flight else None


def waited(context: Context) -> dt.timedelta:
    """How long a sensor in reschedule mode has waited: since its first poke of this try."""
    now = dt.datetime.now(dt.UTC)
    return now - (context["ti"].get_first_reschedule_date(context) or now)


def turn_to_sync(context: Context) -> bool:
    """The poke of `wait_for_turn`: a firm's history lands in date order, and before anything newer.

    A backfill's run waits until the run of the period before its own has succeeded: its plan must see what
    that period loaded (a payment of February needs January's invoice in QuickBooks), whatever the
    backfill's `max_active_runs`. A scheduled or manual run, which syncs everything in scope, waits while a
    backfill is under way, or it would sync the rest of the history at once.
    """
    waiting_for = (
        _previous_period_unsettled(context)
        if context["dag_run"].run_type == BACKFILL
        else _history_in_flight(context)
    )
    if waiting_for is None:
        return True
    if (so_far := waited(context)) >= TURN_WAIT_TIMEOUT:
        raise AirflowSensorTimeout(
            f"waited {so_far}: {waiting_for}. Clear `wait_for_turn` once it is settled."
        )
    log.info("waiting: %s", waiting_for)
    return False


def plan_sync(context: Context) -> dict[str, Any]:
    """Plan the run against the connected QuickBooks company, record it, and publish its preview."""
    params = context["params"]
    settings = firm_settings(params)
    options = PlanOptions(
        export_mode=params["export_mode"],
        allow_mass_delete=params["allow_mass_delete"],
        period=run_period(context),
    )
    session = QuickBooksHook().governed_session("planned")
    with task_outcome():
        return pipeline.plan(
            WarehouseHook().get_engine(),
            session,
            settings,
            options,
            context["run_id"],
            dry_run=params["dry_run"],
            reports_root=reports_root(),
        )


# What keeps a retry from running (or stops it) that its caller reports rather than raises.
RETRY_NOT_RUN = (AirflowException, pipeline.Refused, pipeline.Skipped, company_lease.CompanyBusy)


def retry_now(
    selection: loading.Selection | None, *, export_mode: str, wait_seconds: float
) -> tuple[dict[str, Any], loading.LoadReceipt]:
    """Plan again from the staged exports and load the selection now, for the command line and the UI: the
    deployment's connection, settings and reports, under the company's lease (waiting `wait_seconds`)."""
    hook = QuickBooksHook()
    return pipeline.retry(
        hook.warehouse_engine,
        hook.current_realm_id(),
        lambda: hook.governed_session("retried"),
        firm_settings(),
        export_mode=export_mode,
        selection=selection,
        reports_root=reports_root(),
        wait_seconds=wait_seconds,
    )
