"""GET / : the Overview (connection, export loads, latest plan and load, reconciliation and its trend)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from taxdome_qbo.services import ui_pages
from taxdome_qbo.ui.web import CurrentUser, Warehouse, render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def show_overview(request: Request, user: CurrentUser, engine: Warehouse) -> HTMLResponse:
    return render(request, "overview.html", user=user, overview=ui_pages.overview(engine))
