"""The `load` step of the sync: execute the run's plan against QuickBooks Online."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from taxdome_qbo import dag_tasks, pools
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.services import loading


class QuickBooksLoadOperator(BaseOperator):
    """Loads the sync plan of the current DAG run into QuickBooks Online, idempotently.

    Every write carries a deterministic requestid, the sync state records it as pending before it is sent
    and as done after, and a write whose outcome is unknown is looked up in QBO before it is sent again: a
    retry or a re-run of the DAG run never duplicates. Requests go through one rate governor per company,
    shared with every other task. QBO's refusals of single objects become their statuses; the task fails
    only when QBO stays unreachable or refuses the company. Returns a receipt: outcomes per kind, requests,
    429s, retries. Runs in the pool `pools.QBO_API` unless told otherwise; the taxdome_qbo plugin creates it.

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
        kwargs.setdefault("pool", pools.QBO_API.name)
        super().__init__(**kwargs)
        self.quickbooks_conn_id = quickbooks_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.batch_size = batch_size

    def execute(self, context: Context) -> dict:
        receipt = dag_tasks.load_run(
            context["run_id"],
            quickbooks_conn_id=self.quickbooks_conn_id,
            warehouse_conn_id=self.warehouse_conn_id,
            options=loading.LoadOptions(batch_size=self.batch_size),
        )
        return receipt.as_xcom()
