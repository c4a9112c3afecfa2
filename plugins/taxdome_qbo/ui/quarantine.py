"""Quarantine: GET /quarantine lists the rows staging refused (file, line, reason, the row as read), filtered
by batch, file and reason text, a page at a time; GET /quarantine.csv downloads what the same filters match."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from taxdome_qbo.services import ui_reports
from taxdome_qbo.services.ui_reports import QuarantineFilter
from taxdome_qbo.ui.web import Page, Reader, Warehouse, render

router = APIRouter()
MAX_FILTER_LENGTH = 500


def quarantine_filter(
    batch: Annotated[str, Query(max_length=MAX_FILTER_LENGTH)] = "",
    file: Annotated[str, Query(max_length=MAX_FILTER_LENGTH)] = "",
    reason: Annotated[str, Query(max_length=MAX_FILTER_LENGTH)] = "",
) -> QuarantineFilter:
    """The query's filters; an empty one matches any row."""
    return QuarantineFilter(batch_id=batch or None, source_file=file or None, reason_contains=reason or None)


Filter = Annotated[QuarantineFilter, Depends(quarantine_filter)]


@router.get("/quarantine", response_class=HTMLResponse)
def show_quarantine(
    request: Request, user: Reader, engine: Warehouse, paging: Page, where: Filter
) -> HTMLResponse:
    reasons = ui_reports.quarantine_reasons(engine, where.batch_id)
    return render(
        request,
        "quarantine.html",
        user=user,
        rows=ui_reports.rejected_rows(engine, where, page=paging.page, page_size=paging.size),
        batches=ui_reports.quarantine_batches(engine),
        files=sorted({r.source_file for r in reasons}),
        reasons=sorted({r.reason for r in reasons}),
        where=where,
    )


@router.get("/quarantine.csv")
def download_quarantine(user: Reader, engine: Warehouse, where: Filter) -> StreamingResponse:
    return StreamingResponse(
        ui_reports.rejected_rows_csv(engine, where),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="quarantine.csv"'},
    )
