"""Airflow Assets the DAGs share."""

from __future__ import annotations

from airflow.sdk import Asset

# Emitted by the sync's `load` task when it succeeds; the reconciliation is scheduled on it.
QUICKBOOKS_LOADED = Asset(name="taxdome_qbo_quickbooks_load", uri="taxdome-qbo://quickbooks/load")
