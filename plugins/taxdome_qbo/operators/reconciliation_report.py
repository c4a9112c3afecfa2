"""The `report` step of the reconciliation: write a run's reports and link to them from Airflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from taxdome_qbo import reconcile_tasks
from taxdome_qbo.links import ReconciliationReportLink


class ReconciliationReportOperator(BaseOperator):
    """Writes a reconciliation run's reports (the HTML page, two CSV files, the XLSX workbook) into the run's
    folder under the reports root, and records where. Returns each format's location.

    An operator rather than a `@task` for its extra link: the link to the run's report is the operator's own
    (`operator_extra_links`), which Airflow resolves when the task finishes and the serialized DAG carries,
    while a `@task` function's operator class takes none.

    :param receipt: the `reconcile` task's receipt, usually its XComArg. (templated)
    """

    template_fields: Sequence[str] = ("receipt",)
    operator_extra_links = (ReconciliationReportLink(),)

    def __init__(self, *, receipt: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.receipt = receipt

    def execute(self, context: Context) -> dict:
        return reconcile_tasks.report(self.receipt, context["run_id"])
