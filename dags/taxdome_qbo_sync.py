"""
### TaxDome → QuickBooks Online sync

**What it does.** Loads TaxDome billing exports (CSV folders, docs/export-contract.md) into the staging warehouse and plans
what QuickBooks Online must receive: `extract` finds the exports to load and checks their files and headers;
`stage` validates every row and upserts it into the `stg_taxdome__*` tables, quarantining bad rows in
`stg_taxdome__rejected` with a reason; `check` runs the data-quality checks on the staged firm (results in
`dq_results`; a critical failure stops the run before anything is planned or written); `plan` reads the QuickBooks company (connection `quickbooks_default`)
and applies TaxDome's sync rules: every QBO write needed goes to `sync_plan`, and every staged TaxDome object
gets a status with a reason in `sync_object_status`. A preview (counts, amounts, examples) is in the task log
and in `<reports>/<run id>/plan_preview.md` (every operation: `python -m taxdome_qbo plan-operations`). With `dry_run` nothing is written to
QuickBooks. `load` (pool `qbo_api`) then executes the plan against QuickBooks: customers and items, invoices,
payments, credit memos and their applications, fees, refunds, in batches within Intuit's limits (one rate
governor per company, shared by every task). Its XCom is a receipt of outcomes per kind; every write is in
`qbo_requests`, what QBO holds for each object in `qbo_sync_state`, each object's verdict (with its QuickBooks
link) in `sync_object_status`. Its success emits the Asset `taxdome_qbo_reconcile` is scheduled on; a plan
without operation skips `load`, so a run that changed nothing in QuickBooks starts no reconciliation.

**Nothing changed, nothing done.** A run with no new export, no change in QuickBooks since the last plan
read it (QBO's change data capture) other than the sync's own writes, the same settings, options, overrides
and code, and nothing left to retry from that plan's load, does not check again and skips `plan` and `load`:
it writes nothing, and the `plan` log says since which run (docs/sync-run.md#when-nothing-changed-no-check-no-plan).
A dry run always plans; `python -m taxdome_qbo retry --all` plans and loads now.

**Which exports.** A manual run with `export_dir` loads that export (a local path or any object-store URL).
Otherwise (every scheduled run) it loads each sub-folder of `landing_dir` that was never loaded, oldest
(by folder name) first. `make demo` puts the generated demo export in the default landing folder.

**A firm's history, month by month.** A backfill (`airflow backfill create`, or *Backfill* in the UI) makes
a run per month of its range; each writes only what is dated in its month (invoices by posted date, payments
with the invoices they pay, fees and refunds with their payments) and the customers and items it needs, and
deletes nothing. `wait_for_turn` holds each month until the month before has succeeded, and scheduled runs
while a backfill is under way. A manual run with `period_from` and `period_to` syncs such a period too
(docs/sync-run.md#backfilling-a-firms-history-month-by-month). Objects left to another month are
`not_synced` in the run's verdicts, with the reason.

**Safe to re-run.** Staging is an upsert by TaxDome id with a row hash: re-loading an export changes no
row, a newer export changes only what changed, and a row older than the staged one (by `updated_at`)
never overwrites it. Each export loads in one transaction: a failed load stages nothing. The load never
duplicates: each write has a deterministic requestid reused by its retries, is recorded as pending before
it is sent, and a write whose outcome is unknown (a crash, a lost response) is looked up in QuickBooks by
its marker before it is sent again. Clearing `load` resumes where it stopped.

**When it fails.**
- *lacks required files / lacks required columns*: the export is incomplete; fix or remove the folder,
  then clear the task. Retries will not help, so the task fails at once.
- *firm settings*: a param or the `taxdome_qbo_settings` Variable has a bad value.
- *period*: `period_from` without `period_to` (or the reverse), or a period that ends before it begins.
- `wait_for_turn` waiting (up for reschedule): its log says for what, a backfill's earlier month (failed:
  clear it, or mark it success to go on without it) or a backfill under way; it fails after 7 days.
- *critical data-quality checks failed*: `check` found staged data that would put wrong numbers in
  QuickBooks (an invoice total that is not its lines + tax, more applied or refunded than paid, a reference
  to nothing, ...); nothing is planned or written. The message names each check and its TaxDome ids, and
  `dq_results` holds every check of the run. Fix the data in TaxDome and load a new export, then clear
  `check`. Warnings (dates in the future, a file that shrank against the previous export, ...) are logged
  and stored there too; the run goes on.
- *would delete N of M synced objects*: the export lacks more than 5% of what was synced. If TaxDome really
  deleted them, trigger with `allow_mass_delete: true`; if the export is partial, use `export_mode:
  incremental`.
- `plan` / `load` skipped: nothing changed since the last plan (above), QuickBooks is not connected (no
  `quickbooks_default`) or was disconnected (`python -m taxdome_qbo reconnect --realm <id>`), or the run is a
  dry run; `load` alone: the plan has no operation: nothing to write to QuickBooks.
- objects *failed* in QuickBooks (a duplicate name, a closed period, ...): the load goes on without them;
  `python -m taxdome_qbo issues` lists them by category with what to do, `retry` re-runs them.
- `load` failed after retries: QuickBooks kept answering 5xx/429 or was unreachable; clear the task later
  (nothing is duplicated). Refused authorization: reconnect the company.
- anything else (database unreachable, ...) is retried twice, then fails; clearing the task is safe.

**Where to look.** `taxdome_export_batches` (one row per load), `taxdome_export_batch_files` (per-file
counts: read = staged + rejected), `stg_taxdome__rejected` (each quarantined row, its line and reason).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from taxdome_qbo import alerts, dag_tasks
from taxdome_qbo.assets import QUICKBOOKS_LOADED, SYNC_DAG_ID
from taxdome_qbo.dag_defaults import default_args
from taxdome_qbo.operators.quickbooks_load import QuickBooksLoadOperator
from taxdome_qbo.timetables import SyncTimetable

NULLABLE_TEXT = ["null", "string"]
NULLABLE_DATE = {"type": NULLABLE_TEXT, "format": "date"}


def _setting(description: str, **schema) -> Param:
    return Param(
        None,
        description=f"{description} Empty: the taxdome_qbo_settings Variable, then the default.",
        **({"type": NULLABLE_TEXT} | schema),
    )


@dag(
    dag_id=SYNC_DAG_ID,
    # On the hour for the scheduler; a backfill syncs the firm's history period by period (monthly).
    schedule=SyncTimetable(
        os.environ.get("TAXDOME_QBO_SYNC_SCHEDULE", "@hourly"),
        os.environ.get("TAXDOME_QBO_SYNC_HISTORY_PERIOD", "@monthly"),
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # each scheduled run syncs everything; catching up is what backfills do (timetables.py)
    max_active_runs=1,
    default_args=default_args(retry_exponential_backoff=True),
    deadline=alerts.sync_deadline(),
    tags=["taxdome", "quickbooks", "finance"],
    doc_md=__doc__,
    params={
        "export_dir": Param(None, type=NULLABLE_TEXT, description="One export folder to load (path or URL)."),
        "dry_run": Param(
            False, type="boolean", description="Plan and preview only: write nothing to QuickBooks."
        ),
        "export_mode": Param(
            "full",
            enum=["full", "incremental"],
            description="full: each export lists everything, so a synced payment or refund it lacks is deleted in "
            "QuickBooks; incremental: exports list changes only.",
        ),
        "allow_mass_delete": Param(
            False, type="boolean", description="Let a plan delete more than 5% of the synced objects."
        ),
        "period_from": Param(
            None,
            description="Backfill: first day (YYYY-MM-DD) of the history this run loads, with period_to. "
            "Empty: everything in scope.",
            **NULLABLE_DATE,
        ),
        "period_to": Param(
            None, description="Backfill: last day (YYYY-MM-DD), included, with period_from.", **NULLABLE_DATE
        ),
        "landing_dir": Param(
            None,
            type=NULLABLE_TEXT,
            description="Folder of exports, one sub-folder each. Empty: <AIRFLOW_HOME>/landing.",
        ),
        "account_scope": _setting(
            "Accounts to sync: with_activity or all.", enum=[None, "with_activity", "all"]
        ),
        "sync_start_date": _setting(
            "Sync date (YYYY-MM-DD): nothing dated before it syncs.", **NULLABLE_DATE
        ),
        "integration_date": _setting(
            "Services created before it use the default sales item.", **NULLABLE_DATE
        ),
        "service_income_account": _setting("Income account of services created in TaxDome."),
        "default_sales_item": _setting("QBO item for lines of services created before the integration."),
        "tax_item": _setting("QBO item that carries sales tax."),
        "deposit_to_account": _setting("Account payments are deposited to."),
        "fee_expense_account": _setting("Expense account of processing fees."),
        "fee_paid_from_account": _setting(
            "Account processing fees are paid from (default: the deposit account)."
        ),
        "customer_type": _setting("Customer type of new customers."),
        "sync_payments": _setting("Sync payments at all.", type=["null", "boolean"]),
        "automated_sales_tax": _setting("QBO automated sales tax is on.", type=["null", "boolean"]),
        "home_currency": _setting("The QBO company's home currency.", pattern="^[A-Z]{3}$"),
    },
)
def taxdome_qbo_sync():
    # The sensor's own timeout only backs up the one turn_to_sync raises, which says what to do.
    @task.sensor(
        poke_interval=30, timeout=dag_tasks.TURN_WAIT_TIMEOUT + timedelta(minutes=1), mode="reschedule"
    )
    def wait_for_turn() -> bool:
        return dag_tasks.turn_to_sync(get_current_context())

    @task
    def extract() -> list[str]:
        return dag_tasks.resolve_exports(get_current_context()["params"])

    @task
    def stage(export_locations: list[str]) -> list[dict]:
        return dag_tasks.stage_exports(export_locations, get_current_context()["run_id"])

    @task
    def check() -> dict:
        context = get_current_context()
        return dag_tasks.check_quality(context["params"], context["run_id"])

    @task
    def plan() -> dict:
        return dag_tasks.plan_sync(get_current_context())

    exports = extract()
    wait_for_turn() >> exports
    (
        stage(exports)
        >> check()
        >> plan()
        >> QuickBooksLoadOperator(task_id="load", outlets=[QUICKBOOKS_LOADED])
    )


taxdome_qbo_sync()
