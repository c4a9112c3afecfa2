"""Bodies of the `taxdome_qbo_reconcile` tasks: resolve Airflow things (params, hooks, paths), call one use
case of `services.pipeline`, return its receipt."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSensorTimeout

from taxdome_qbo import dag_tasks
from taxdome_qbo.assets import SYNC_DAG_ID
from taxdome_qbo.core.reconciliation_period import period_of_interval
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.services import pipeline

log = logging.getLogger(__name__)

SYNC_WAIT_TIMEOUT = dt.timedelta(hours=6)
SYNC_IN_FLIGHT = ["queued", "running"]
# Runs the timetable makes (the schedule's, a backfill's) reconcile their data interval; the others (after a
# load, by hand) the period of their params.
PERIOD_RUN_TYPES = frozenset({"scheduled", "backfill"})


def no_sync_in_flight(context: Context) -> bool:
    """The poke of `wait_for_sync`: done when no sync run is queued or running, since comparing a company a
    sync is staging or loading would judge it half-loaded. The sync run whose load started this run may
    still be `running` for a few seconds: the next poke sees it finished. The param `wait_for_sync` off
    compares at once: for a metadata database holding a run no scheduler will finish (`airflow dags test`
    on the home of a stopped deployment), where the fence still guards the verdict."""
    ti = context["ti"]
    in_flight = ti.get_dr_count(dag_id=SYNC_DAG_ID, states=SYNC_IN_FLIGHT)
    if not in_flight:
        return True
    if not context["params"]["wait_for_sync"]:
        log.warning(
            "%d %s run(s) queued or running, compared anyway (wait_for_sync is off): a sync writing meanwhile "
            "makes the verdict skip",
            in_flight,
            SYNC_DAG_ID,
        )
        return True
    if (waited := dag_tasks.waited(context)) >= SYNC_WAIT_TIMEOUT:
        raise AirflowSensorTimeout(
            f"{in_flight} {SYNC_DAG_ID} run(s) still queued or running after {waited}: nothing is compared "
            f"while a sync may be writing. Look at the {SYNC_DAG_ID} run in the UI (stuck in `load`? waiting "
            "for the company lease or the qbo_api pool?); once it has finished or was marked failed, clear "
            "`wait_for_sync` of this run."
        )
    log.info("%d %s run(s) queued or running: waiting before comparing", in_flight, SYNC_DAG_ID)
    return False


def _param_date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(str(value)) if value else None


def read_back(params: dict[str, Any]) -> dict:
    """Read the company back into the `stg_qbo__*` tables (CDC unless `full_read`), noting the sync's
    fingerprint for `verdict`."""
    hook = QuickBooksHook()
    session = hook.governed_session("read")
    return pipeline.read_back(hook.warehouse_engine, session, full_read=params["full_read"])


def period(context: Context) -> tuple[dt.date | None, dt.date | None]:
    """The first and last day the run reconciles: its data interval's days (in the timetable's time zone)
    for a scheduled or backfilled run, else `period_from` and `period_to` (None: the pipeline's default)."""
    if context["dag_run"].run_type in PERIOD_RUN_TYPES:
        return period_of_interval(
            context["data_interval_start"], context["data_interval_end"], context["dag"].timezone
        )
    params = context["params"]
    return _param_date(params.get("period_from")), _param_date(params.get("period_to"))


def reconcile(context: Context) -> dict:
    """Compare TaxDome with the QBO copies for the run's period and record the summary and the exceptions."""
    params = context["params"]
    settings = dag_tasks.firm_settings(params)
    period_from, period_to = period(context)
    log.info("reconciling %s to %s", period_from or "the sync date", period_to or "today")
    hook = QuickBooksHook()
    session = hook.governed_session("reconciled")
    with dag_tasks.task_outcome():
        return pipeline.reconcile(
            hook.warehouse_engine,
            session,
            settings,
            context["run_id"],
            period_from=period_from,
            period_to=period_to,
        )


def report(receipt: dict, run_id: str) -> dict:
    """HTML, CSV and XLSX reports of the run, in `<reports>/<run id>/` (a local folder or an object store)."""
    return pipeline.report(WarehouseHook().get_engine(), receipt, dag_tasks.reports_root(), run_id)


def verdict(receipt: dict, written: dict, read: dict) -> None:
    """Fails the run when a difference is unexplained; the report exists by then. Skips instead when a sync
    staged, planned or loaded since the read-back: the comparison may have seen the company half-loaded."""
    with dag_tasks.task_outcome():
        pipeline.verdict(WarehouseHook().get_engine(), receipt, written, read)
