"""Airflow Assets, and the DAG ids, the DAGs share."""

from __future__ import annotations

from airflow.sdk import Asset

SYNC_DAG_ID = "taxdome_qbo_sync"  # the reconciliation waits while a run of it is queued or running

# Emitted by the sync's `load` task when it succeeds; the reconciliation is scheduled on it.
QUICKBOOKS_LOADED = Asset(name="taxdome_qbo_quickbooks_load", uri="taxdome-qbo://quickbooks/load")
