"""Data quality: GET /quality lists the sync runs whose staged data was checked and shows one run's checks
(the newest, or `run`) with severity, status and failing TaxDome ids; `check` pages through one check's ids."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse

from taxdome_qbo.services import ui_reports
from taxdome_qbo.services.ui_reports import NotFound
from taxdome_qbo.ui.web import PAGE_SIZE, Page, Reader, Warehouse, render

router = APIRouter()


@router.get("/quality", response_class=HTMLResponse)
def show_quality(
    request: Request,
    user: Reader,
    engine: Warehouse,
    paging: Page,
    run: Annotated[str, Query(max_length=250)] = "",
    check: Annotated[str, Query(max_length=250)] = "",
    ids_page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    runs = ui_reports.quality_runs(engine, page=paging.page, page_size=paging.size)
    chosen = run or (runs.items[0].run_id if runs.items else "")
    checks, failing = [], None
    if chosen:
        try:
            checks = ui_reports.quality_checks(engine, chosen)
            if check:
                failing = ui_reports.failing_ids(engine, chosen, check, page=ids_page, page_size=PAGE_SIZE)
        except NotFound as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    return render(
        request,
        "quality.html",
        user=user,
        runs=runs,
        chosen=chosen,
        checks=checks,
        check=check,
        failing=failing,
    )
