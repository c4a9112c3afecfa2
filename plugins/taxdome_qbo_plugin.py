"""The taxdome_qbo Airflow plugin: what the project adds to Airflow itself wherever this plugins folder is
loaded. The package next to this file is hidden from Airflow's plugin scan (plugins/.airflowignore) and
imported as `taxdome_qbo`."""

from __future__ import annotations

from functools import cached_property

from airflow.plugins_manager import AirflowPlugin

import taxdome_qbo.listeners
from taxdome_qbo.alerts import SyncRunQueuedAt
from taxdome_qbo.links import VIEW_PATH
from taxdome_qbo.timetables import SyncTimetable


class TaxDomeQboPlugin(AirflowPlugin):
    name = "taxdome_qbo"
    listeners = [taxdome_qbo.listeners]  # noqa: RUF012 (Airflow's plugin API is class attributes)
    # The sync's deadline is N minutes after this reference; the scheduler finds the class here to evaluate it.
    deadline_references = [SyncRunQueuedAt]  # noqa: RUF012
    # The sync's schedule (on the hour, backfills by period): the scheduler deserializes it from here.
    timetables = [SyncTimetable]  # noqa: RUF012
    # The view's entry in the UI's navigation (its pages are shown in an iframe).
    external_views = [  # noqa: RUF012
        {
            "name": "TaxDome ↔ QuickBooks",
            "href": f"{VIEW_PATH}/",
            "destination": "nav",
            "url_route": "taxdome-qbo",
        }
    ]

    @cached_property
    def fastapi_apps(self) -> list[dict]:
        """The view's pages, served by the api-server. Built when Airflow asks for them (the api-server, `airflow
        plugins`), not on import: every task process loads the plugins, and the web stack's imports (FastAPI,
        Jinja, the pages) cost it seconds for nothing."""
        from taxdome_qbo.ui.app import create_app

        return [{"app": create_app(), "url_prefix": VIEW_PATH, "name": "TaxDome ↔ QuickBooks"}]
