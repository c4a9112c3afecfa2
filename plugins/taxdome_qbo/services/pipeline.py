"""The sync's and the reconciliation's use cases, one function each: `exports_to_stage`, `stage`, `check`,
`plan` (and its preview files), `load`, `read_back`, `reconcile`, `report`, `verdict`, and `retry` (check,
plan and load now, for the objects named).

Both callers use these: the DAGs' tasks and the load operator (after resolving params, Variables, hooks and
object-store paths) and the command line. Nothing here knows Airflow: engines, sessions, settings and
locations come as arguments, and an outcome that is not a plain success is one of two exceptions, `Refused`
(retrying cannot help: a task fails at once) or `Skipped` (nothing to do: a task is skipped).
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import shlex
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from taxdome_qbo.core.planner import PlanOptions, PlanRefused, resolve_setting_ids
from taxdome_qbo.core.reconciliation import ReconciliationSettings
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.paths import run_folder_name
from taxdome_qbo.services import (
    company_lease,
    loading,
    local_files,
    plan_inputs,
    planning,
    qbo_client,
    qbo_readback,
    quality,
    reconciliation,
    reports,
    warehouse,
)
from taxdome_qbo.services.export_reader import ExportContractError, ExportLocation, check_export
from taxdome_qbo.services.landing import LandingLocation, unloaded_exports
from taxdome_qbo.services.qbo_client import QboAuthorizationError, QboSession
from taxdome_qbo.services.reports import ReportFolder
from taxdome_qbo.services.staging import stage_export

log = logging.getLogger(__name__)

PLAN_PREVIEW = "plan_preview.md"
PLAN_OPERATIONS = "plan_operations.csv.gz"
OPERATIONS_ON_DEMAND = (
    "\nEvery operation of the run, as CSV: `python -m taxdome_qbo plan-operations --run-id {run_id}` writes "
    f"`{PLAN_OPERATIONS}` beside this preview.\n"
)
# The gzip tool's default level: measured, a third of level 9's time for 5 % more bytes.
OPERATIONS_COMPRESSION_LEVEL = 6

OpenSession = Callable[[], QboSession]


class Refused(RuntimeError):
    """The step cannot succeed as things are (a bad export, critical data-quality failures, a plan or load
    refused, unexplained differences): retrying will not help."""


class Skipped(RuntimeError):
    """The step has nothing to do (no plan to load, a dry run, nothing to reconcile, a comparison a sync
    changed meanwhile)."""


def run_folder(reports_root: ReportFolder, run_id: str) -> ReportFolder:
    """Where a run's reports go: a folder per run under the reports location (local or object store)."""
    return reports_root / run_folder_name(run_id)


def exports_to_stage(
    engine: Engine, *, export: ExportLocation | None, landing: LandingLocation
) -> list[ExportLocation]:
    """`export` when given, else every export of `landing` not staged yet (oldest first), each checked for
    its required files and columns before anything is staged."""
    if export is not None:
        locations = [export]
    else:
        locations = unloaded_exports(engine, landing)
        log.info("landing %s: %d export(s) to load", landing, len(locations))
    for location in locations:
        try:
            check_export(location)
        except ExportContractError as exc:
            raise Refused(f"export {location}: {exc}") from exc
    return locations


def stage(engine: Engine, locations: Sequence[ExportLocation], run_id: str) -> list[dict[str, Any]]:
    """Stage each export in order, one transaction each; returns one receipt (counts) per export."""
    log.info("warehouse: %s", warehouse.describe(engine))
    receipts = []
    for location in locations:
        try:
            result = stage_export(engine, location, dag_run_id=run_id)
        except ExportContractError as exc:
            raise Refused(f"export {location}: {exc}") from exc
        for counts in result.files:
            log.info(
                "%s: read %d = staged %d + rejected %d (inserted %d, updated %d, unchanged %d)",
                counts.source_file,
                counts.rows_read,
                counts.rows_staged,
                counts.rows_rejected,
                counts.rows_inserted,
                counts.rows_updated,
                counts.rows_unchanged,
            )
        if result.deletion_proof:
            log.info("export %s can prove deletions: %s", location, result.deletion_proof_reason)
        else:
            log.warning(
                "export %s proves no deletion (its good rows are staged; in full mode nothing is deleted "
                "for being absent from it): %s",
                location,
                result.deletion_proof_reason,
            )
        receipts.append(result.as_xcom())
    return receipts


def check(engine: Engine, run_id: str, *, export_mode: str, home_currency: str) -> dict[str, Any]:
    """Check the staged firm before anything is planned; a critical failure refuses the run.

    The checks judge as the planner will: in `full` export mode what the latest export no longer lists is
    left out, and amounts are in the firm's home currency.
    """
    checked = plan_inputs.check_inputs(engine, export_mode=export_mode, home_currency=home_currency)
    if (earlier := plan_inputs.checked_before(engine, checked)) is not None:
        log.info("data quality: not checked again, run %s passed the checks on the same staged firm", earlier)
        return {
            "run_id": run_id,
            "checks": 0,
            "passed": 0,
            "critical_failures": [],
            "warnings": [],
            "seconds": 0.0,
            "same_as_run": earlier,
        }
    report = quality.run_quality_checks(engine, run_id, export_mode=export_mode, home_currency=home_currency)
    log.info("%s", report.summary())
    for result in report.warnings:
        log.warning("data-quality warning: %s", result.describe())
    if report.critical_failures:
        raise Refused(
            "critical data-quality checks failed, nothing is planned or written to QuickBooks (every check of "
            "the run is in dq_results):\n" + "\n".join(r.describe() for r in report.critical_failures)
        )
    plan_inputs.record_check(engine, run_id, checked)
    return report.as_xcom()


def plan(
    engine: Engine,
    session: QboSession,
    settings: FirmSettings,
    options: PlanOptions,
    run_id: str,
    *,
    dry_run: bool,
    reports_root: ReportFolder,
    even_if_unchanged: bool = False,
) -> dict[str, Any]:
    """Plan the run against the session's company, record it with what it was made from, and publish its
    preview (`plan_preview.md` in the run's folder under `reports_root`). The file of every operation is
    written on demand (`write_plan_operations`, the `plan-operations` command): at a million invoices it
    costs as long to write as the plan takes to make, and most runs' are never opened.

    Skipped, writing nothing, when nothing the plan reads changed since the company's last plan and that
    plan's load left nothing to do (services/plan_inputs.py), unless `dry_run` (a preview asked for) or
    `even_if_unchanged`.
    """
    inputs = plan_inputs.plan_inputs(engine, session.realm_id, settings, options)
    if not (dry_run or even_if_unchanged):
        decision = plan_inputs.decide(engine, session, inputs)
        log.info("%s: %s", "planning" if decision.plan else "not planning", decision.reason)
        if not decision.plan:
            raise Skipped(decision.reason)
    plan_inputs.adopt_checks(
        engine, run_id, export_mode=options.export_mode, home_currency=settings.home_currency
    )
    # The company's names are read under its lease too: a load running meanwhile changes them.
    with company_lease.company_lease(engine, session.realm_id, f"plan task of run {run_id}"):
        read_at = plan_inputs.company_clock(session)
        reference = qbo_client.fetch_reference(session)
        try:
            receipt = planning.plan_sync(engine, reference, settings, options, run_id, dry_run=dry_run)
        except PlanRefused as exc:
            raise Refused(str(exc)) from exc
    plan_inputs.record_plan(engine, run_id, inputs, reference, read_at)
    mode = "dry run: nothing will be written to QuickBooks" if dry_run else "plan"
    if options.period is not None:
        mode += f", only what is dated {options.period}"
    title = f"Sync plan for QuickBooks company {reference.realm_id} ({mode})"
    preview = planning.preview_markdown(engine, run_id, title=title) + OPERATIONS_ON_DEMAND.format(
        run_id=shlex.quote(run_id)
    )
    log.info("%s", preview)
    folder = run_folder(reports_root, run_id)
    local_files.private_folder(folder)
    with local_files.open_private(folder / PLAN_PREVIEW, "w", encoding="utf-8") as handle:
        handle.write(preview)
    planning.record_preview_location(engine, run_id, str(folder / PLAN_PREVIEW))
    period = None if options.period is None else str(options.period)
    return receipt.as_xcom() | {"dry_run": dry_run, "preview": str(folder / PLAN_PREVIEW), "period": period}


def write_plan_operations(engine: Engine, run_id: str, folder: ReportFolder) -> ReportFolder:
    """Every planned operation of the run, as CSV compressed while it is written (`plan_operations.csv.gz`
    in `folder`: under a tenth of the bytes of the plain CSV it replaced); `gunzip -k` gives the CSV a
    spreadsheet opens."""
    location = folder / PLAN_OPERATIONS
    with (
        local_files.open_private(location, "wb") as raw,
        gzip.open(
            raw, "wt", compresslevel=OPERATIONS_COMPRESSION_LEVEL, encoding="utf-8", newline=""
        ) as handle,
    ):
        planning.write_operations_csv(engine, run_id, handle)
    return location


def load(
    engine: Engine, open_session: OpenSession, run_id: str, options: loading.LoadOptions | None = None
) -> loading.LoadReceipt:
    """Load the run's plan into the connected company, within its rate limits shared by every writer.

    Skipped when there is nothing to load (no plan, a dry run, a plan without operation), before a session
    is opened: `open_session` is called only when there is something to write. Refused when the plan cannot
    be loaded as it is or QuickBooks refuses the company.
    """
    warehouse.create_schema(engine)
    run = loading.plan_run(engine, run_id)
    if run is None:
        raise Skipped(f"run {run_id} has no plan (QuickBooks was not connected when it planned)")
    if run.dry_run:
        raise Skipped("dry run: the plan is only a preview, nothing is written to QuickBooks")
    if not run.operations:
        # Skipped, not succeeded: a skipped task emits no Asset event, so no reconciliation is started for
        # a run that changed nothing in QuickBooks.
        raise Skipped(f"nothing to write: the plan of run {run_id} has no operation")
    session = open_session()
    try:
        receipt = loading.load_plan(engine, session, run_id, options=options)
    except (loading.LoadRefused, QboAuthorizationError) as exc:
        raise Refused(str(exc)) from exc
    for kind, outcomes in receipt.by_kind().items():
        log.info("%s: %s", kind, ", ".join(f"{outcome} {n}" for outcome, n in outcomes.items()))
    if receipt.failed:
        log.warning(
            "%d object(s) failed in QuickBooks; `python -m taxdome_qbo issues` lists them with what to do",
            receipt.failed,
        )
    return receipt


def retry(
    engine: Engine,
    realm_id: str | None,
    open_session: OpenSession,
    settings: FirmSettings,
    *,
    export_mode: str,
    selection: loading.Selection | None,
    reports_root: ReportFolder,
    wait_seconds: float = company_lease.COMMAND_WAIT_SECONDS,
) -> tuple[dict[str, Any], loading.LoadReceipt]:
    """Check the staged firm, plan again from it, and load only the selected objects (all when None), now.

    `realm_id` is the connected company (None: none is, and nothing is retried). Its lease is held from the
    check to the end of the load, so the plan is made from the sync state no other writer changes before it
    is loaded; another writer holding it longer than `wait_seconds` makes the retry refuse (CompanyBusy,
    naming it). Returns the plan's and the load's receipts (an empty load when the plan has no operation).
    """
    if realm_id is None:
        raise Skipped("QuickBooks is not connected: nothing is retried")
    run_id = f"retry__{dt.datetime.now(dt.UTC):%Y-%m-%dT%H%M%S.%f}"
    with company_lease.company_lease(engine, realm_id, f"retry {run_id}", wait_seconds=wait_seconds):
        check(engine, run_id, export_mode=export_mode, home_currency=settings.home_currency)
        planned = plan(
            engine,
            open_session(),
            settings,
            PlanOptions(export_mode=export_mode, allow_mass_delete=False),
            run_id,
            dry_run=False,
            reports_root=reports_root,
            even_if_unchanged=True,
        )
        if not planned["operations"]:
            log.info("retry %s: nothing to write, the plan has no operation", run_id)
            return planned, loading.LoadReceipt(run_id, realm_id)
        return planned, load(engine, open_session, run_id, loading.LoadOptions(selection=selection))


def read_back(engine: Engine, session: QboSession, *, full_read: bool) -> dict[str, Any]:
    """Read the company's customers and transactions back into the `stg_qbo__*` tables (CDC unless
    `full_read`). The receipt holds the sync's fingerprint taken before the read: `verdict` judges only if it
    is unchanged by then."""
    fingerprint = reconciliation.sync_fingerprint(engine, session.realm_id)
    receipt = qbo_readback.read_back(engine, session, incremental=not full_read)
    return receipt.as_xcom() | {"sync_fingerprint": fingerprint}


def reconcile(
    engine: Engine,
    session: QboSession,
    settings: FirmSettings,
    run_id: str,
    *,
    period_from: dt.date | None = None,
    period_to: dt.date | None = None,
) -> dict[str, Any]:
    """Compare TaxDome with the QBO copies for the period and record the summary and the exceptions.

    The period runs from the sync date (`period_from` unset) to today (`period_to` unset); a period that
    ended before today leaves the balances out (core/reconciliation_period.py). Sales tax is compared on
    the firm's tax item unless QuickBooks computes it (automated sales tax). Skipped when nothing was synced
    to compare.
    """
    reference = qbo_client.fetch_reference(session)
    ids = resolve_setting_ids(settings, reference).ids
    automated_tax = settings.automated_sales_tax or reference.automated_sales_tax
    today = dt.datetime.now(dt.UTC).date()
    options = ReconciliationSettings(
        period_from=period_from or settings.sync_start_date,
        period_to=period_to or today,
        as_of=today,
        tax_item_id=None if automated_tax else ids["tax_item"],
        fee_expense_account_id=ids["fee_expense_account"],
        deposit_account_id=ids["deposit_to_account"],
        app_url=session.app_url,
    )
    try:
        receipt = reconciliation.reconcile_company(engine, reference.realm_id, run_id, options)
    except reconciliation.NothingToReconcile as exc:
        raise Skipped(str(exc)) from exc
    return receipt.as_xcom() | {"company_name": qbo_client.fetch_company_info(session)["CompanyName"]}


def report(
    engine: Engine, receipt: dict[str, Any], reports_root: ReportFolder, run_id: str
) -> dict[str, str]:
    """HTML, CSV and XLSX reports of the reconciliation `receipt`, in the run's folder under `reports_root`."""
    written = reports.write_reports(
        engine,
        receipt["recon_run_id"],
        run_folder(reports_root, run_id),
        dq_run_id=receipt["sync_run_id"],
        company_name=receipt["company_name"],
    )
    reconciliation.record_report_location(engine, receipt["recon_run_id"], written["html"])
    log.info("reconciliation report: %s", written["html"])
    return written


def verdict(engine: Engine, receipt: dict[str, Any], written: dict[str, str], read: dict[str, Any]) -> None:
    """Refused when a difference is unexplained; the report exists by then. Skipped instead when a sync
    staged, planned or loaded since the read-back (`read`'s fingerprint): the comparison may have seen the
    company half-loaded, so it is recorded as superseded."""
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
        raise Skipped(message)
    if receipt["unexplained"]:
        classes = ", ".join(f"{name} {n}" for name, n in receipt["exceptions_by_class"].items())
        raise Refused(
            f"{receipt['unexplained']} unexplained difference(s) between TaxDome and QuickBooks ({classes}); "
            f"the report says which and why: {written['html']}"
        )
    log.info("TaxDome and QuickBooks agree to the cent (report: %s)", written["html"])
