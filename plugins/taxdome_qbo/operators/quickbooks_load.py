"""The `load` step of the sync: execute the run's plan against QuickBooks Online."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.services import loading, warehouse
from taxdome_qbo.services.qbo_client import QboAuthorizationError, RetryPolicy, endpoints_for
from taxdome_qbo.services.qbo_rate import RateGovernor, RateLimits
from taxdome_qbo.services.qbo_tokens import QboDisconnectedError

# Connection extras that tune the governor: an emulator with time-scaled minutes shrinks the window.
RATE_EXTRAS = {
    "rate_window_seconds": "window_seconds",
    "throttle_wait_seconds": "throttle_wait_seconds",
    "requests_per_minute": "requests_per_window",
    "batch_requests_per_minute": "batch_requests_per_window",
    "max_concurrent_requests": "max_concurrent",
}


class QuickBooksLoadOperator(BaseOperator):
    """Loads the sync plan of the current DAG run into QuickBooks Online, idempotently.

    Every write carries a deterministic requestid, the sync state records it as pending before it is sent
    and as done after, and a write whose outcome is unknown is looked up in QBO before it is sent again: a
    retry or a re-run of the DAG run never duplicates. Requests go through one rate governor per company,
    shared with every other task. QBO's refusals of single objects become their statuses; the task fails
    only when QBO stays unreachable or refuses the company.

    :param quickbooks_conn_id: the QuickBooks connection.
    :param warehouse_conn_id: the warehouse holding the plan, the sync state and the tokens.
    :param batch_size: operations per batch request (QBO recommends at most 30).
    """

    ui_color = "#2ca01c"  # QuickBooks green

    def __init__(
        self,
        *,
        quickbooks_conn_id: str = QuickBooksHook.default_conn_name,
        warehouse_conn_id: str = WarehouseHook.default_conn_name,
        batch_size: int = loading.BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("pool", "qbo_api")
        super().__init__(**kwargs)
        self.quickbooks_conn_id = quickbooks_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.batch_size = batch_size

    def execute(self, context: Context) -> dict:
        run_id = context["run_id"]
        engine = WarehouseHook(self.warehouse_conn_id).get_engine()
        warehouse.create_schema(engine)
        run = loading.plan_run(engine, run_id)
        if run is None:
            raise AirflowSkipException(f"run {run_id} has no plan (QuickBooks was not connected when it planned)")
        if run.dry_run:
            raise AirflowSkipException("dry run: the plan is only a preview, nothing is written to QuickBooks")
        hook = QuickBooksHook(self.quickbooks_conn_id, self.warehouse_conn_id)
        try:
            session = hook.get_session()
        except AirflowNotFoundException as exc:
            raise AirflowSkipException(
                f"QuickBooks is not connected (no {self.quickbooks_conn_id} connection): nothing was written"
            ) from exc
        except QboDisconnectedError as exc:
            raise AirflowSkipException(
                f"QuickBooks is disconnected: no write was attempted ({exc}). Reconnect with "
                "`python -m taxdome_qbo reconnect --realm <company id>`, then run the sync again."
            ) from exc
        extras = hook.get_connection(self.quickbooks_conn_id).extra_dejson
        limits = RateLimits(**{field: extras[extra] for extra, field in RATE_EXTRAS.items() if extra in extras})
        session.govern(RateGovernor(engine, session.realm_id, limits), RetryPolicy())
        app_url = endpoints_for(hook.get_credentials().environment).app_url
        try:
            receipt = loading.load_plan(
                engine,
                session,
                run_id,
                app_url=app_url,
                options=loading.LoadOptions(batch_size=self.batch_size),
                progress=self.log.info,
            )
        except loading.LoadRefused as exc:
            raise AirflowFailException(str(exc)) from exc
        except QboAuthorizationError as exc:
            raise AirflowFailException(str(exc)) from exc
        for kind, outcomes in receipt.by_kind().items():
            self.log.info("%s: %s", kind, ", ".join(f"{outcome} {n}" for outcome, n in outcomes.items()))
        if receipt.failed:
            self.log.warning(
                "%d object(s) failed in QuickBooks; `python -m taxdome_qbo issues` lists them with what to do",
                receipt.failed,
            )
        return receipt.as_xcom()
