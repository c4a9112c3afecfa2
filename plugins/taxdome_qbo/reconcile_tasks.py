"""Bodies of the `taxdome_qbo_reconcile` tasks: resolve Airflow things, call one service, return a receipt."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException

from taxdome_qbo import dag_tasks
from taxdome_qbo.assets import SYNC_DAG_ID
from taxdome_qbo.core.planner import resolve_setting_ids
from taxdome_qbo.core.reconciliation import ReconciliationSettings
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.services import qbo_client, qbo_readback, reconciliation, reports

log = logging.getLogger(__name__)

SYNC_WAIT_TIMEOUT = dt.timedelta(hours=6)
SYNC_IN_FLIGHT = ["queued", "running"]


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
    now = dt.datetime.now(dt.UTC)
    waited = now - (ti.get_first_reschedule_date(context) or now)
    if waited >= SYNC_WAIT_TIMEOUT:
        raise AirflowSensorTimeout(
            f"{in_flight} {SYNC_DAG_ID} run(s) still queued or running after {waited}: nothing is compared "
            f"while a sync may be writing. Look at the {SYNC_DAG_ID} run in the UI (stuck in `load`? waiting "
            "for the company lease or the qbo_api pool?); once it has finished or was marked failed, clear "
            "`wait_for_sync` of this run."
        )
    log.info("%d %s run(s) queued or running: waiting before comparing", in_flight, SYNC_DAG_ID)
    return False


def read_back(params: dict[str, Any]) -> dict:
    """Read the company's customers and transactions back into the `stg_qbo__*` tables (CDC when it can).

    The receipt holds the sync's fingerprint taken before the read: `verdict` judges only if it is unchanged.
    """
    hook = QuickBooksHook()
    session = dag_tasks.governed_session(hook, "read")
    fingerprint = reconciliation.sync_fingerprint(hook.warehouse_engine, session.realm_id)
    receipt = qbo_readback.read_back(hook.warehouse_engine, session, incremental=not params["full_read"])
    return receipt.as_xcom() | {"sync_fingerprint": fingerprint}


def reconcile(params: dict[str, Any], run_id: str) -> dict:
    """Compare TaxDome with the QBO copies for the period and record the summary and the exceptions."""
    settings = dag_tasks.firm_settings(params)
    hook = QuickBooksHook()
    session = dag_tasks.governed_session(hook, "reconciled")
    reference = qbo_client.fetch_reference(session)
    ids = resolve_setting_ids(settings, reference)
    period_from = params.get("period_from") or settings.sync_start_date
    period_to = params.get("period_to") or dt.datetime.now(dt.UTC).date()
    automated_tax = settings.automated_sales_tax or reference.automated_sales_tax
    options = ReconciliationSettings(
        period_from=dt.date.fromisoformat(str(period_from)) if period_from else None,
        period_to=dt.date.fromisoformat(str(period_to)),
        tax_item_id=None if automated_tax else ids.ids["tax_item"],
        fee_expense_account_id=ids.ids["fee_expense_account"],
        deposit_account_id=ids.ids["deposit_to_account"],
        app_url=session.app_url,
    )
    try:
        receipt = reconciliation.reconcile_company(
            WarehouseHook().get_engine(), reference.realm_id, run_id, options
        )
    except reconciliation.NothingToReconcile as exc:
        raise AirflowSkipException(str(exc)) from exc
    return receipt.as_xcom() | {"company_name": qbo_client.fetch_company_info(session)["CompanyName"]}


def report(receipt: dict, run_id: str) -> dict:
    """HTML, CSV and XLSX reports of the run, in `<reports>/<run id>/` (a local folder or an object store)."""
    engine = WarehouseHook().get_engine()
    folder = dag_tasks.run_folder(run_id)
    written = reports.write_reports(
        engine,
        receipt["recon_run_id"],
        folder,
        dq_run_id=receipt["sync_run_id"],
        company_name=receipt["company_name"],
    )
    reconciliation.record_report_location(engine, receipt["recon_run_id"], written["html"])
    log.info("reconciliation report: %s", written["html"])
    return written


def verdict(receipt: dict, written: dict, read: dict) -> None:
    """Fails the run when a difference is unexplained; the report exists by then. Skips instead when a sync
    staged, planned or loaded since the read-back (`read`'s fingerprint): the comparison may have seen the
    company half-loaded."""
    engine = WarehouseHook().get_engine()
    fingerprint = reconciliation.sync_fingerprint(engine, read["realm_id"])
    if fingerprint != read["sync_fingerprint"]:
        reconciliation.record_superseded(engine, receipt["recon_run_id"])
        message = (
            f"a sync changed the data during this comparison (before: {read['sync_fingerprint']}, after: "
            f"{fingerprint}), so its {receipt['unexplained']} unexplained difference(s) are not judged: the "
            "reconciliation the sync's load triggers will judge (if that sync writes nothing, run "
            f"taxdome_qbo_reconcile again). Report of this comparison: {written['html']}"
        )
        log.warning("%s", message)
        raise AirflowSkipException(message)
    if receipt["unexplained"]:
        classes = ", ".join(f"{name} {n}" for name, n in receipt["exceptions_by_class"].items())
        raise AirflowFailException(
            f"{receipt['unexplained']} unexplained difference(s) between TaxDome and QuickBooks ({classes}); "
            f"the report says which and why: {written['html']}"
        )
    log.info("TaxDome and QuickBooks agree to the cent (report: %s)", written["html"])
