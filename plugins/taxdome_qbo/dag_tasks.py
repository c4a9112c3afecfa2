"""Bodies of the `taxdome_qbo_sync` tasks: resolve Airflow things (params, Variable, hooks, paths), call one
service, return a small receipt. Nothing here holds business logic."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import ObjectStoragePath, Variable
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

from taxdome_qbo.core.planner import PlanOptions, PlanRefused
from taxdome_qbo.core.settings import SETTINGS_VARIABLE, FirmSettings, SettingsError, resolve_settings
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.paths import default_landing_dir, reports_location, run_folder_name
from taxdome_qbo.services import company_lease, loading, local_files, planning, qbo_client, quality, warehouse
from taxdome_qbo.services.export_reader import ExportContractError, check_export
from taxdome_qbo.services.landing import unloaded_exports
from taxdome_qbo.services.qbo_client import QboAuthorizationError, QboSession, RetryPolicy
from taxdome_qbo.services.qbo_rate import RateGovernor, RateLimits
from taxdome_qbo.services.qbo_tokens import QboDisconnectedError
from taxdome_qbo.services.staging import stage_export

log = logging.getLogger(__name__)

# Connection extras that tune the rate governor: an emulator with time-scaled minutes shrinks the window.
RATE_EXTRAS = {
    "rate_window_seconds": "window_seconds",
    "throttle_wait_seconds": "throttle_wait_seconds",
    "requests_per_minute": "requests_per_window",
    "batch_requests_per_minute": "batch_requests_per_window",
    "max_concurrent_requests": "max_concurrent",
}


def firm_settings(params: dict[str, Any]) -> FirmSettings:
    """Params over the Variable over the defaults; a bad value fails the run without retries."""
    try:
        return resolve_settings(Variable.get(SETTINGS_VARIABLE, default=None, deserialize_json=True), params)
    except SettingsError as exc:
        raise AirflowFailException(f"firm settings: {exc}") from exc


def resolve_exports(params: dict[str, Any]) -> list[str]:
    """The export named by `export_dir`, else every export of `landing_dir` not loaded yet (oldest first).

    Each is checked for its required files and columns before anything is staged.
    """
    settings = firm_settings(params)
    log.info("firm settings: %s", settings.as_json())
    if params.get("export_dir"):
        locations = [ObjectStoragePath(params["export_dir"])]
    else:
        landing = ObjectStoragePath(params.get("landing_dir") or str(default_landing_dir()))
        locations = unloaded_exports(WarehouseHook().get_engine(), landing)
        log.info("landing %s: %d export(s) to load", landing, len(locations))
    for location in locations:
        try:
            check_export(location)
        except ExportContractError as exc:
            raise AirflowFailException(f"export {location}: {exc}") from exc
    return [str(location) for location in locations]


def stage_exports(locations: list[str], run_id: str) -> list[dict[str, Any]]:
    """Stage each export in order, one transaction each; returns one receipt (counts) per export."""
    hook = WarehouseHook()
    engine = hook.get_engine()
    log.info("warehouse: %s", warehouse.describe(engine))
    receipts = []
    for location in locations:
        try:
            result = stage_export(engine, ObjectStoragePath(location), dag_run_id=run_id)
        except ExportContractError as exc:
            raise AirflowFailException(f"export {location}: {exc}") from exc
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


def run_folder(run_id: str) -> ObjectStoragePath:
    """Where a run's reports go: a folder per run under the reports location (local or object store)."""
    return ObjectStoragePath(reports_location()) / run_folder_name(run_id)


def plan_sync(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Plan the run against the connected QuickBooks company, record it, and publish its preview."""
    settings = firm_settings(params)
    session = governed_session(QuickBooksHook(), "planned")
    options = PlanOptions(export_mode=params["export_mode"], allow_mass_delete=params["allow_mass_delete"])
    engine = WarehouseHook().get_engine()
    # The company's names are read under its lease too: a load running meanwhile changes them.
    with company_lease.company_lease(engine, session.realm_id, f"plan task of run {run_id}"):
        reference = qbo_client.fetch_reference(session)
        try:
            receipt = planning.plan_sync(
                engine, reference, settings, options, run_id, dry_run=params["dry_run"]
            )
        except PlanRefused as exc:
            raise AirflowFailException(str(exc)) from exc
    mode = "dry run: nothing will be written to QuickBooks" if params["dry_run"] else "plan"
    title = f"Sync plan for QuickBooks company {reference.realm_id} ({mode})"
    preview = planning.preview_markdown(engine, run_id, title=title)
    log.info("%s", preview)
    folder = run_folder(run_id)
    local_files.private_folder(folder)
    with local_files.open_private(folder / "plan_preview.md", "w", encoding="utf-8") as handle:
        handle.write(preview)
    with local_files.open_private(
        folder / "plan_operations.csv", "w", encoding="utf-8", newline=""
    ) as handle:
        planning.write_operations_csv(engine, run_id, handle)
    planning.record_preview_location(engine, run_id, str(folder / "plan_preview.md"))
    return receipt.as_xcom() | {"dry_run": params["dry_run"], "preview": str(folder / "plan_preview.md")}


def governed_session(hook: QuickBooksHook, nothing_is: str) -> QboSession:
    """A session on the connected company within its rate limits; a skip (saying what is not done) when
    QuickBooks is not connected or was disconnected."""
    try:
        session = hook.get_session()
    except AirflowNotFoundException as exc:
        conn_id = hook.quickbooks_conn_id
        raise AirflowSkipException(
            f"QuickBooks is not connected (no {conn_id} connection): nothing is {nothing_is}. Define the "
            f"connection with the Intuit app's client id and secret (AIRFLOW_CONN_{conn_id.upper()}, see "
            "docs/configuration.md), then connect the company with "
            "`python -m taxdome_qbo connect --realm <company id>` (or give the connection the extras realm_id "
            "and refresh_token), and run again."
        ) from exc
    except QboDisconnectedError as exc:
        raise AirflowSkipException(
            f"QuickBooks is disconnected: nothing is {nothing_is} ({exc}). Reconnect with "
            "`python -m taxdome_qbo reconnect --realm <company id>`, then run again."
        ) from exc
    session.govern(RateGovernor(hook.warehouse_engine, session.realm_id, rate_limits(hook)), RetryPolicy())
    return session


def rate_limits(hook: QuickBooksHook) -> RateLimits:
    """Intuit's limits, or what the connection's extras say (an emulator's time-scaled minute)."""
    extras = hook.get_connection(hook.quickbooks_conn_id).extra_dejson
    defaults = RateLimits()
    try:
        return RateLimits(
            **{
                field: type(getattr(defaults, field))(extras[extra])
                for extra, field in RATE_EXTRAS.items()
                if extra in extras
            }
        )
    except (TypeError, ValueError) as exc:
        raise AirflowFailException(
            f"connection {hook.quickbooks_conn_id}: bad rate limit extra ({exc})"
        ) from exc


def load_run(
    run_id: str,
    *,
    quickbooks_conn_id: str = QuickBooksHook.default_conn_name,
    warehouse_conn_id: str = WarehouseHook.default_conn_name,
    options: loading.LoadOptions | None = None,
) -> loading.LoadReceipt:
    """Load the run's plan into the connected company, within its rate limits shared by every task.

    Skips (AirflowSkipException) when there is nothing to load (no plan, a dry run, a plan without operation)
    or QuickBooks is not connected; fails without retries when the plan cannot be loaded as it is or QBO
    refuses the company.
    """
    engine = WarehouseHook(warehouse_conn_id).get_engine()
    warehouse.create_schema(engine)
    run = loading.plan_run(engine, run_id)
    if run is None:
        raise AirflowSkipException(f"run {run_id} has no plan (QuickBooks was not connected when it planned)")
    if run.dry_run:
        raise AirflowSkipException("dry run: the plan is only a preview, nothing is written to QuickBooks")
    if not run.operations:
        # Skipped, not succeeded: a skipped task emits no Asset event, so no reconciliation is started for
        # a run that changed nothing in QuickBooks.
        raise AirflowSkipException(f"nothing to write: the plan of run {run_id} has no operation")
    hook = QuickBooksHook(quickbooks_conn_id, warehouse_conn_id)
    session = governed_session(hook, "written (no write was attempted)")
    try:
        receipt = loading.load_plan(engine, session, run_id, options=options)
    except (loading.LoadRefused, QboAuthorizationError) as exc:
        raise AirflowFailException(str(exc)) from exc
    for kind, outcomes in receipt.by_kind().items():
        log.info("%s: %s", kind, ", ".join(f"{outcome} {n}" for outcome, n in outcomes.items()))
    if receipt.failed:
        log.warning(
            "%d object(s) failed in QuickBooks; `python -m taxdome_qbo issues` lists them with what to do",
            receipt.failed,
        )
    return receipt


def retry_sync(
    selection: loading.Selection | None,
    *,
    export_mode: str,
    wait_seconds: float = company_lease.COMMAND_WAIT_SECONDS,
) -> tuple[dict, loading.LoadReceipt]:
    """Check the staged firm, plan again from it, and load only the selected objects (all when None), now.

    The firm settings come from the `taxdome_qbo_settings` Variable (then the defaults), as in a scheduled
    run without params. The company's lease is held from the check to the end of the load, so the plan is
    made from the sync state no other writer changes before it is loaded; another writer holding it longer
    than `wait_seconds` makes the retry refuse (CompanyBusy, naming it). Returns the plan's and the load's
    receipts (an empty load when the plan has no operation).
    """
    hook = QuickBooksHook()
    realm_id = hook.current_realm_id()
    if realm_id is None:
        raise AirflowSkipException("QuickBooks is not connected: nothing is retried")
    run_id = f"retry__{datetime.now(UTC):%Y-%m-%dT%H%M%S.%f}"
    params = {"export_mode": export_mode, "allow_mass_delete": False, "dry_run": False}
    with company_lease.company_lease(
        hook.warehouse_engine, realm_id, f"retry {run_id}", wait_seconds=wait_seconds
    ):
        check_quality(params, run_id)
        planned = plan_sync(params, run_id)
        if not planned["operations"]:
            # load_run would skip it: a retry with nothing to write is done, with an empty load.
            log.info("retry %s: nothing to write, the plan has no operation", run_id)
            return planned, loading.LoadReceipt(run_id, realm_id)
        return planned, load_run(run_id, options=loading.LoadOptions(selection=selection))


def check_quality(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Check the staged firm before anything is planned; a critical failure fails the run without retries.

    Takes the params for what the checks must judge as the planner will: the export mode (in `full` mode what
    the latest export no longer lists is left out) and the firm's home currency.
    """
    settings = firm_settings(params)
    report = quality.run_quality_checks(
        WarehouseHook().get_engine(),
        run_id,
        export_mode=params["export_mode"],
        home_currency=settings.home_currency,
    )
    log.info("%s", report.summary())
    for result in report.warnings:
        log.warning("data-quality warning: %s", result.describe())
    if report.critical_failures:
        raise AirflowFailException(
            "critical data-quality checks failed, nothing is planned or written to QuickBooks (every check of "
            "the run is in dq_results):\n" + "\n".join(r.describe() for r in report.critical_failures)
        )
    return report.as_xcom()
