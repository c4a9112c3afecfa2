"""
### TaxDome ↔ QuickBooks Online reconciliation

**What it does.** Answers finance's question after every sync: does QuickBooks now say exactly what TaxDome
says, and where not, why? `wait_for_sync` first waits while a `taxdome_qbo_sync` run is queued or running
(a company is never compared while a sync stages or loads it; the run that started this one may still be
finishing). `read_back` then reads the company's customers, invoices (with lines), payments (with
what they apply to), credit memos, purchases and refund receipts into the `stg_qbo__*` tables (Change Data
Capture since the last read; a full read the first time, after 30 days, or with `full_read`). `reconcile`
compares them with the staged TaxDome firm for the sync's scope, per object and in totals (invoiced, tax,
collected gross, fees, net = gross − fees per day, month and processor, refunds, credits, customer balances,
payouts), to the cent, and classifies every difference (missing in QBO, extra in QBO, amount mismatch,
customer mismatch, field mismatch, duplicate in QBO; out of scope by a sync rule is explained).
`report` writes an HTML report (opens offline), CSV files and an XLSX workbook to
`<reports>/<run id>/`; its extra link *Reconciliation report* opens the run's report in the
TaxDome ↔ QuickBooks view. `verdict` then fails the run if a difference is unexplained: the evidence exists
first. If a sync staged, planned or loaded between `read_back` and `verdict` (a run started by hand, a
`retry`), `verdict` is skipped instead: that comparison may have seen a half-loaded company, and the
reconciliation the sync's load triggers judges.

**When it runs.** After every load of `taxdome_qbo_sync` that wrote to QuickBooks (scheduled on the Asset
its `load` task emits; a run with nothing to write skips `load` and emits none), over the sync date to today;
by hand for any period (`period_from`, `period_to`; default: the sync date to today); and once per period
(monthly unless `TAXDOME_QBO_RECONCILE_PERIOD` says otherwise), right after the period ends, over the period
just closed. A backfill (`airflow backfill create --dag-id taxdome_qbo_reconcile --from-date 2026-01-01
--to-date 2026-06-01`, or the UI's *Backfill* form) makes one run per period starting in the range (here
January to June), each with its own summary, exceptions, report and verdict: its period is its data
interval's days (January 1 to 31), and a period that ended before the run leaves balances out (the report
says why). It is created unpaused: a deployment that
unpauses the sync reconciles without another step.

**Where to look.** `rpt_reconciliation__summary` (run × measure × period × dimension: TaxDome, QBO,
difference), `rpt_reconciliation__exceptions` (one row per difference, both sides' ids and amounts, its
class, the QuickBooks link), `reconciliation_runs` (verdict, report location).

**When it fails.** *N unexplained difference(s)*: open the report; each exception says what differs. Fix
it in TaxDome or QuickBooks (or `python -m taxdome_qbo retry`) and run the sync, or this DAG, again.
`read_back` failing after retries: QuickBooks was unreachable; clear the task later. `wait_for_sync`
timing out (6 hours): a sync run is stuck queued or running; see to it, then clear `wait_for_sync` (a run
no scheduler will ever finish — a stopped deployment's, under `airflow dags test` — : trigger with
`wait_for_sync: false`).
`verdict` skipped: a sync changed the data during the comparison (the log says what changed).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import (
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

from taxdome_qbo import alerts, reconcile_tasks
from taxdome_qbo.assets import QUICKBOOKS_LOADED
from taxdome_qbo.dag_defaults import default_args
from taxdome_qbo.operators.reconciliation_report import ReconciliationReportOperator

NULLABLE_DATE = {"type": ["null", "string"], "format": "date"}


@dag(
    dag_id="taxdome_qbo_reconcile",
    # After each load (the whole sync period), and once per period (its data interval) when it has ended.
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable(
            os.environ.get("TAXDOME_QBO_RECONCILE_PERIOD", "@monthly"), timezone="UTC"
        ),
        assets=[QUICKBOOKS_LOADED],
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    default_args=default_args(),
    tags=["taxdome", "quickbooks", "finance", "reconciliation"],
    doc_md=__doc__,
    params={
        "period_from": Param(
            None,
            description="First day (YYYY-MM-DD). Empty: the sync date. Scheduled and backfilled runs "
            "reconcile their data interval instead.",
            **NULLABLE_DATE,
        ),
        "period_to": Param(
            None,
            description="Last day (YYYY-MM-DD). Empty: today. Scheduled and backfilled runs reconcile "
            "their data interval instead.",
            **NULLABLE_DATE,
        ),
        "full_read": Param(False, type="boolean", description="Read QuickBooks in full instead of by CDC."),
        "wait_for_sync": Param(
            True,
            type="boolean",
            description="Wait while a taxdome_qbo_sync run is queued or running. Off: compare now (the "
            "verdict still skips if a sync writes meanwhile).",
        ),
    },
)
def taxdome_qbo_reconcile():
    # The sensor's own timeout only backs up the one no_sync_in_flight raises, which says what to do.
    @task.sensor(
        poke_interval=15,
        timeout=reconcile_tasks.SYNC_WAIT_TIMEOUT + timedelta(minutes=1),
        mode="reschedule",
    )
    def wait_for_sync() -> bool:
        return reconcile_tasks.no_sync_in_flight(get_current_context())

    # A backfill's runs, and the run after a load, may run side by side (Airflow holds backfill runs only to
    # the backfill's own limit): the company's QBO copy is read back, and a firm compared (gigabytes at a
    # million invoices), by one run at a time.
    @task(max_active_tis_per_dag=1)
    def read_back() -> dict:
        return reconcile_tasks.read_back(get_current_context()["params"])

    @task(max_active_tis_per_dag=1)
    def reconcile() -> dict:
        return reconcile_tasks.reconcile(get_current_context())

    # Finance hears of the verdict; a failed verdict is also a failed task for the data team.
    @task(
        on_success_callback=alerts.reconciliation_verdict,
        on_failure_callback=[alerts.task_failed, alerts.reconciliation_verdict],
    )
    def verdict(receipt: dict, written: dict, read: dict) -> None:
        reconcile_tasks.verdict(receipt, written, read)

    read = read_back()
    compared = reconcile()
    wait_for_sync() >> read >> compared
    # An operator for its link from the task to the run's report in the TaxDome ↔ QuickBooks view.
    written = ReconciliationReportOperator(task_id="report", receipt=compared)
    verdict(compared, written.output, read)


taxdome_qbo_reconcile()
