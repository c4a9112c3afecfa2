"""Where things live by default: everything embedded sits in the Airflow home, nothing in the user's home."""

from __future__ import annotations

import os
from pathlib import Path


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def default_warehouse_path() -> Path:
    return airflow_home() / "warehouse.db"


def default_landing_dir() -> Path:
    """One sub-folder per export; `make demo` writes the generated demo export here."""
    return airflow_home() / "landing"


def default_reports_dir() -> Path:
    """Plan previews and reconciliation reports, one sub-folder per run."""
    return Path(os.environ.get("TAXDOME_QBO_REPORTS_DIR") or airflow_home() / "reports")
