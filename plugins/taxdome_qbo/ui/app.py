"""The FastAPI app of the view, mounted by the api-server at /taxdome-qbo (plugins/taxdome_qbo_plugin.py).

Pages are rendered on the server: the Airflow UI shows an external view in an iframe, and a page that needs
no JavaScript bundle works there as it is (docs/decisions.md says why this and not a React app)."""

from __future__ import annotations

from fastapi import FastAPI

from taxdome_qbo.ui import issues, overview, quality, quarantine, reconciliation, sync_runs


def create_app() -> FastAPI:
    app = FastAPI(title="TaxDome ↔ QuickBooks", docs_url=None, redoc_url=None, openapi_url=None)
    for page in (overview, sync_runs, issues, quarantine, reconciliation, quality):
        app.include_router(page.router)
    return app
