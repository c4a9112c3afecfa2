"""Reconciliation: GET /reconciliation lists the runs with their verdicts and periods; GET
/reconciliation/{run_id} shows one run's exceptions by class and explanation, with links to QuickBooks and to
its report documents, served from where the reconciliation stored them (or made again from the warehouse)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from taxdome_qbo.dag_tasks import folder_at
from taxdome_qbo.services import ui_reports
from taxdome_qbo.services.ui_reports import NotFound, ReportFormat
from taxdome_qbo.ui.web import Page, Reader, Warehouse, render

router = APIRouter()

DOCUMENTS = {
    "report.html": ReportFormat.HTML,
    "exceptions.csv": ReportFormat.EXCEPTIONS_CSV,
    "summary.csv": ReportFormat.SUMMARY_CSV,
    "report.xlsx": ReportFormat.XLSX,
}
# The stored report is a file the reconciliation wrote from firm data: shown as a page of this server, it may
# style itself but never run a script, load anything, or post a form.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)
EXPLAINED = {"": None, "yes": True, "no": False}


def _not_found(error: NotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(error))


@router.get("/reconciliation", response_class=HTMLResponse)
def show_runs(request: Request, user: Reader, engine: Warehouse, paging: Page) -> HTMLResponse:
    runs = ui_reports.reconciliation_runs(engine, page=paging.page, page_size=paging.size)
    return render(request, "reconciliation_runs.html", user=user, runs=runs)


@router.get("/reconciliation/{run_id}", response_class=HTMLResponse)
def show_run(
    request: Request,
    user: Reader,
    engine: Warehouse,
    paging: Page,
    run_id: str,
    difference_class: Annotated[str, Query(alias="class", max_length=100)] = "",
    explained: Annotated[Literal["", "yes", "no"], Query()] = "",
) -> HTMLResponse:
    try:
        run = ui_reports.reconciliation_run(engine, run_id)
        classes = ui_reports.exception_classes(engine, run_id)
        exceptions = ui_reports.reconciliation_exceptions(
            engine,
            run_id,
            difference_class=difference_class or None,
            explained=EXPLAINED[explained],
            page=paging.page,
            page_size=paging.size,
        )
    except NotFound as error:
        raise _not_found(error) from error
    return render(
        request,
        "reconciliation_run.html",
        user=user,
        run=run,
        classes=classes,
        class_names=sorted({c.difference_class for c in classes}),
        exceptions=exceptions,
        difference_class=difference_class,
        explained=explained,
        documents=DOCUMENTS,
    )


@router.get("/reconciliation/{run_id}/{document}")
def download_document(
    user: Reader,
    engine: Warehouse,
    run_id: str,
    document: str,
) -> Response:
    if document not in DOCUMENTS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"a run's documents are {', '.join(DOCUMENTS)}")
    try:
        found = ui_reports.report_document(engine, run_id, DOCUMENTS[document], folder_at)
    except NotFound as error:
        raise _not_found(error) from error
    headers = {"X-Content-Type-Options": "nosniff"}
    if DOCUMENTS[document] is ReportFormat.HTML:
        headers |= {"Content-Security-Policy": REPORT_CSP, "Content-Disposition": "inline"}
    else:
        headers["Content-Disposition"] = f'attachment; filename="{found.filename}"'
    return Response(found.content, media_type=found.media_type, headers=headers)
