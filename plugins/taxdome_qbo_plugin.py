"""The taxdome_qbo Airflow plugin: what the project adds to Airflow itself wherever this plugins folder is
loaded. The package next to this file is hidden from Airflow's plugin scan (plugins/.airflowignore) and
imported as `taxdome_qbo`."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

import taxdome_qbo.listeners
from taxdome_qbo.alerts import SyncRunQueuedAt
from taxdome_qbo.timetables import SyncTimetable
from taxdome_qbo.ui.app import create_app
from taxdome_qbo.ui.web import URL_PREFIX


class TaxDomeQboPlugin(AirflowPlugin):
    name = "taxdome_qbo"
    listeners = [taxdome_qbo.listeners]  # noqa: RUF012 (Airflow's plugin API is class attributes)
    # The sync's deadline is N minutes after this reference; the scheduler finds the class here to evaluate it.
    deadline_references = [SyncRunQueuedAt]  # noqa: RUF012
    # The sync's schedule (on the hour, backfills by period): the scheduler deserializes it from here.
    timetables = [SyncTimetable]  # noqa: RUF012
    # The view's pages, served by the api-server, and their entry in the UI's navigation (shown in an iframe).
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "TaxDome ↔ QuickBooks"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "TaxDome ↔ QuickBooks",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "taxdome-qbo",
        }
    ]
