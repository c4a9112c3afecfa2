"""Extra links from Airflow's task pages to the TaxDome ↔ QuickBooks view the api-server serves under
`/taxdome-qbo`: a load to its sync run's page, the reconciliation's report task to the run's report.

They are the operators' own links (`operator_extra_links`), which Airflow 3 resolves on the worker when the
task finishes (whatever its state) and keeps in XCom; the serialized DAG names them, so the api-server shows
them without importing this module and no plugin registers them. A page is addressed by the DAG run's id
alone, quoted as one path segment: the view looks the run up in the warehouse and serves nothing by a path
the link could smuggle in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink, conf

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.sdk import BaseOperator

VIEW_PATH = "/taxdome-qbo"


def path_segment(value: str) -> str:
    """`value` as one segment of a path: `/`, `?`, `#` and `%` escaped, and what RFC 3986 allows in a segment
    (an Airflow run id's `:` and `+`) kept, since the Airflow UI decodes the address of an external view's
    frame and loads the frame again where the two differ."""
    return quote(str(value), safe="!$&'()*+,;=:@-._~")


def view_url(*segments: str) -> str:
    """The address of a page of the view: `[api] base_url` (empty: relative to the UI's own host), the
    view's path, then `segments`, each one path segment."""
    base_url = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return base_url + VIEW_PATH + "".join("/" + path_segment(segment) for segment in segments)


class SyncRunLink(BaseOperatorLink):
    """From a load to its sync run's page: what it planned, wrote, and what failed."""

    name = "TaxDome ↔ QuickBooks run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return view_url("sync-runs", ti_key.run_id)


class ReconciliationReportLink(BaseOperatorLink):
    """From the task that writes a reconciliation's report to the report's page (its run's verdict,
    exceptions and downloads)."""

    name = "Reconciliation report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return view_url("reconciliation", ti_key.run_id)
