"""The TaxDome ↔ QuickBooks view in the Airflow UI: a FastAPI app the api-server mounts at /taxdome-qbo."""
