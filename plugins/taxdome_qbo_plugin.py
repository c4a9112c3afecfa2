"""The taxdome_qbo Airflow plugin: what the project adds to Airflow itself wherever this plugins folder is
loaded. The package next to this file is hidden from Airflow's plugin scan (plugins/.airflowignore) and
imported as `taxdome_qbo`."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

import taxdome_qbo.listeners


class TaxDomeQboPlugin(AirflowPlugin):
    name = "taxdome_qbo"
    listeners = [taxdome_qbo.listeners]  # noqa: RUF012 (Airflow's plugin API is class attributes)
