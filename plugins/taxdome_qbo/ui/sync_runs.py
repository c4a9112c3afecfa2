"""GET /sync-runs/{dag_run_id} : one sync run's plan and load (the load operator's extra link opens it)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from taxdome_qbo.services import ui_pages
from taxdome_qbo.ui.web import Reader, Warehouse, render

router = APIRouter()


@router.get("/sync-runs/{dag_run_id}", response_class=HTMLResponse)
def show_sync_run(request: Request, dag_run_id: str, user: Reader, engine: Warehouse) -> HTMLResponse:
    found = ui_pages.sync_run(engine, dag_run_id)
    return render(
        request,
        "sync_run.html",
        user=user,
        run_id=dag_run_id,
        view=found,
        status_code=200 if found is not None else 404,
    )
