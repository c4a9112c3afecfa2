"""Where things live by default: everything embedded sits in the Airflow home, nothing in the user's home."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

# What a run id keeps in its folder's name: no dot (so never `.` or `..`), no separator, nothing to quote.
_NOT_IN_FOLDER_NAMES = re.compile(r"[^A-Za-z0-9_-]+")
FOLDER_SLUG_LENGTH = 80


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def default_warehouse_path() -> Path:
    return airflow_home() / "warehouse.db"


def token_key_path() -> Path:
    """The key that encrypts the stored QuickBooks tokens when the deployment configures none (created 0600)."""
    return airflow_home() / "taxdome_qbo.key"


def default_landing_dir() -> Path:
    """One sub-folder per export; `make demo` writes the generated demo export here."""
    return airflow_home() / "landing"


def reports_location() -> str:
    """Plan previews and reconciliation reports, one sub-folder per run: a folder or an object-store URL
    (kept as text: a Path would fold `s3://bucket` into `s3:/bucket`)."""
    return os.environ.get("TAXDOME_QBO_REPORTS_DIR") or str(airflow_home() / "reports")


def run_folder_name(run_id: str) -> str:
    """A run's folder under the reports location: the run id made safe and readable, then a hash of the exact
    run id, so two run ids never share a folder (`a:b` and `a+b` both read `a_b`) and none escapes the root."""
    slug = _NOT_IN_FOLDER_NAMES.sub("_", run_id).strip("_")[:FOLDER_SLUG_LENGTH] or "run"
    return f"{slug}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"
