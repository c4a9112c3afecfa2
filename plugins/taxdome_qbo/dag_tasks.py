"""Bodies of the `taxdome_qbo_sync` tasks: resolve Airflow things (params, Variable, hooks, paths), call one
service, return a small receipt. Nothing here holds business logic."""

from __future__ import annotations

import logging
import re
from typing import Any

from airflow.sdk import ObjectStoragePath, Variable
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

from taxdome_qbo.core.planner import PlanOptions, PlanRefused
from taxdome_qbo.core.settings import SETTINGS_VARIABLE, FirmSettings, SettingsError, resolve_settings
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.paths import default_landing_dir, reports_location
from taxdome_qbo.services import planning
from taxdome_qbo.services.export_reader import ExportContractError, check_export
from taxdome_qbo.services.landing import unloaded_exports
from taxdome_qbo.services.qbo_tokens import QboDisconnectedError
from taxdome_qbo.services.staging import stage_export

log = logging.getLogger(__name__)


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
    log.info("warehouse: %s", hook.describe())
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
        receipts.append(result.as_xcom())
    return receipts


def run_folder(run_id: str) -> ObjectStoragePath:
    """Where a run's reports go: a folder per run under the reports location (local or object store)."""
    return ObjectStoragePath(reports_location()) / re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)


def plan_sync(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Plan the run against the connected QuickBooks company, record it, and publish its preview."""
    settings = firm_settings(params)
    hook = QuickBooksHook()
    try:
        reference = hook.fetch_reference()
    except AirflowNotFoundException as exc:
        raise AirflowSkipException(
            "QuickBooks is not connected (no quickbooks_default connection): nothing is planned"
        ) from exc
    except QboDisconnectedError as exc:
        raise AirflowSkipException(f"QuickBooks is disconnected: nothing is planned ({exc})") from exc
    options = PlanOptions(export_mode=params["export_mode"], allow_mass_delete=params["allow_mass_delete"])
    engine = WarehouseHook().get_engine()
    try:
        receipt = planning.plan_sync(engine, reference, settings, options, run_id, dry_run=params["dry_run"])
    except PlanRefused as exc:
        raise AirflowFailException(str(exc)) from exc
    mode = "dry run: nothing will be written to QuickBooks" if params["dry_run"] else "plan"
    title = f"Sync plan for QuickBooks company {reference.realm_id} ({mode})"
    preview = planning.preview_markdown(engine, run_id, title=title)
    log.info("%s", preview)
    folder = run_folder(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan_preview.md").write_text(preview)
    with (folder / "plan_operations.csv").open("w", newline="") as handle:
        planning.write_operations_csv(engine, run_id, handle)
    planning.record_preview_location(engine, run_id, str(folder / "plan_preview.md"))
    return receipt.as_xcom() | {"dry_run": params["dry_run"], "preview": str(folder / "plan_preview.md")}
