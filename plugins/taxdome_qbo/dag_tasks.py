"""Bodies of the `taxdome_qbo_sync` tasks: resolve Airflow things (params, Variable, hooks, paths), call one
use case of `services.pipeline`, return its small receipt. Nothing here holds business logic."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath, Variable
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.settings import SETTINGS_VARIABLE, FirmSettings, SettingsError, resolve_settings
from taxdome_qbo.core.sync_period import period_of
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.paths import default_landing_dir, reports_location
from taxdome_qbo.services import company_lease, loading, pipeline
from taxdome_qbo.services.reports import ReportFolder

log = logging.getLogger(__name__)


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


def plan_sync(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Plan the run against the connected QuickBooks company, record it, and publish its preview."""
    settings = firm_settings(params)
    session = QuickBooksHook().governed_session("planned")
    try:
        period = period_of(params.get("period_from"), params.get("period_to"))
    except ValueError as exc:
        raise AirflowFailException(f"period: {exc}") from exc
    options = PlanOptions(
        export_mode=params["export_mode"], allow_mass_delete=params["allow_mass_delete"], period=period
    )
    with task_outcome():
        return pipeline.plan(
            WarehouseHook().get_engine(),
            session,
            settings,
            options,
            run_id,
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
