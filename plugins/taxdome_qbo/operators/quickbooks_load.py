"""The `load` step of the sync: execute a run's plan against QuickBooks Online."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from taxdome_qbo import dag_tasks, pools
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.links import SyncRunLink
from taxdome_qbo.services import loading, pipeline


class QuickBooksLoadOperator(BaseOperator):
    """Loads a sync plan (by default the current DAG run's) into QuickBooks Online, idempotently.

    Every write carries a deterministic requestid, the sync state records it as pending before it is sent
    and as done after, and a write whose outcome is unknown is looked up in QBO before it is sent again: a
    retry or a re-run of the DAG run never duplicates. Requests go through one rate governor per company,
    shared with every other task. QBO's refusals of single objects become their statuses; the task fails
    only when QBO stays unreachable or refuses the company, and is skipped when there is nothing to write
    (no plan, a dry run, a plan without operation) or QuickBooks is not connected. Returns a receipt:
    outcomes per kind, requests, 429s, retries. Runs in the pool `pools.QBO_API` unless told otherwise; the
    taxdome_qbo plugin creates it. Its extra link opens the DAG run's page in the TaxDome ↔ QuickBooks view.

    :param quickbooks_conn_id: the QuickBooks connection. (templated)
    :param warehouse_conn_id: the warehouse holding the plan, the sync state and the tokens. (templated)
    :param plan_run_id: the run whose plan is loaded; default the current DAG run's. (templated)
    :param batch_size: operations per batch request (QBO recommends at most 30). (templated)
    """

    template_fields: Sequence[str] = ("quickbooks_conn_id", "warehouse_conn_id", "plan_run_id", "batch_size")
    ui_color = "#2ca01c"  # QuickBooks green
    operator_extra_links = (SyncRunLink(),)

    def __init__(
        self,
        *,
        quickbooks_conn_id: str = QuickBooksHook.default_conn_name,
        warehouse_conn_id: str = WarehouseHook.default_conn_name,
        plan_run_id: str = "{{ run_id }}",
        batch_size: int | str = loading.BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("pool", pools.QBO_API.name)
        super().__init__(**kwargs)
        self.quickbooks_conn_id = quickbooks_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.plan_run_id = plan_run_id
        self.batch_size = batch_size

    def execute(self, context: Context) -> dict:
        hook = QuickBooksHook(self.quickbooks_conn_id, self.warehouse_conn_id)
        with dag_tasks.task_outcome():
            receipt = pipeline.load(
                WarehouseHook(self.warehouse_conn_id).get_engine(),
                lambda: hook.governed_session("written (no write was attempted)"),
                self.plan_run_id,
                # A templated batch size renders as text.
                loading.LoadOptions(batch_size=int(self.batch_size)),
            )
        return receipt.as_xcom()
