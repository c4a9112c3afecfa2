"""Sync issues (R19): GET /sync-issues lists what the latest run left failed or unsynced, a page at a time;
POST /sync-issues/retry retries (the CLI's `retry`) and POST /overrides syncs, unsyncs or clears an account or
a payment by hand (the CLI's `account` / `payment`). Each action is recorded with the Airflow user.

A retry plans the firm again and loads what it selects (minutes on a firm of a million invoices), so it runs
in the api-server's background, one at a time per api-server process (the company's lease keeps it from a
sync writing the same company): the page answers at once and lists it as running until its outcome is in."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.engine import Engine

from taxdome_qbo import dag_tasks
from taxdome_qbo.core.kinds import CATEGORIES
from taxdome_qbo.core.qbo_faults import CATEGORY_BY_KIND
from taxdome_qbo.services import company_lease, loading, sync_issues, ui_pages
from taxdome_qbo.ui.web import URL_PREFIX, Editor, Page, Reader, Warehouse, render

log = logging.getLogger(__name__)
router = APIRouter()
_retries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taxdome-qbo-ui-retry")
RETRY_RUNNING = "running: its outcome replaces this line when it is done"
# A page request must not wait long for another writer (a sync run) to finish with the company.
RETRY_WAIT_SECONDS = 10.0
ISSUES_PAGE = f"{URL_PREFIX}/sync-issues"
# While an action runs, the page reloads itself this often (no script: a refresh the browser does), for at
# most an hour: a retry whose api-server stopped never finishes its line, and must not reload pages forever.
RUNNING_REFRESH_SECONDS = 5
RUNNING_REFRESH_FOR = timedelta(hours=1)


@router.get("/sync-issues", response_class=HTMLResponse)
def show_issues(
    request: Request,
    user: Reader,
    engine: Warehouse,
    paging: Page,
    category: Annotated[str, Query()] = "",
    status_filter: Annotated[str, Query(alias="status")] = "",
) -> HTMLResponse:
    if category and category not in CATEGORIES:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "unknown category")
    if status_filter and status_filter not in sync_issues.ALL_STATUSES:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "unknown status")
    actions = ui_pages.recent_actions(engine)
    found = ui_pages.issue_page(
        engine,
        category=category or None,
        status=status_filter or None,
        page=paging.page,
        page_size=paging.size,
    )
    return render(
        request,
        "sync_issues.html",
        user=user,
        issues=found,
        category=category,
        status=status_filter,
        categories=CATEGORIES,
        statuses=sync_issues.ALL_STATUSES,
        issue_statuses=sync_issues.ISSUE_STATUSES,
        overridable=sync_issues.OVERRIDABLE_KINDS,
        actions=actions,
        refresh_seconds=(
            RUNNING_REFRESH_SECONDS
            if ui_pages.action_running_since(engine, datetime.now(UTC) - RUNNING_REFRESH_FOR)
            else None
        ),
    )


def _retried(selection: loading.Selection | None) -> str:
    """Run the command line's retry (plan again, load the selection now, under the company's lease)."""
    try:
        planned, loaded = dag_tasks.retry_now(
            selection, export_mode="incremental", wait_seconds=RETRY_WAIT_SECONDS
        )
    except dag_tasks.RETRY_NOT_RUN as exc:
        return f"did not run: {exc}"
    except company_lease.LeaseLost as exc:
        return f"stopped: {exc}"
    outcomes = "; ".join(
        f"{kind}: {', '.join(f'{outcome} {n}' for outcome, n in by_kind.items())}"
        for kind, by_kind in loaded.by_kind().items()
    )
    failed = planned["statuses"].get("failed", 0) + loaded.failed
    return (
        f"planned {planned['operations']} operation(s) in run {planned['run_id']}"
        + (f"; {outcomes}" if outcomes else "")
        + (f"; {failed} object(s) failed" if failed else "")
    )


@router.post("/sync-issues/retry")
def retry(
    user: Editor,
    engine: Warehouse,
    scope: Annotated[Literal["object", "category", "all"], Form()],
    target: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """`scope` object: `target` is KIND:ID; category: a category; all: everything the new plan holds."""
    if scope == "all":
        selection, named = None, "all"
    elif scope == "category":
        if target not in CATEGORIES:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "unknown category")
        selection, named = loading.Selection(frozenset(), frozenset({target})), f"category:{target}"
    else:
        kind, _, taxdome_id = target.partition(":")
        if kind not in CATEGORY_BY_KIND or not taxdome_id:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "name the object as KIND:ID")
        selection, named = loading.Selection(frozenset({(kind, taxdome_id)}), frozenset()), target
    action_id = ui_pages.record_action(
        engine, user_name=user.get_name(), action="retry", target=named, outcome=RETRY_RUNNING, finished=False
    )
    _retries.submit(_retry_and_record, engine, action_id, selection)
    return RedirectResponse(ISSUES_PAGE, status_code=status.HTTP_303_SEE_OTHER)


def _retry_and_record(engine: Engine, action_id: int, selection: loading.Selection | None) -> None:
    try:
        outcome = _retried(selection)
    except Exception as exc:  # whatever stopped it, the action the page lists as running must end
        log.exception("the retry of UI action %s failed", action_id)
        outcome = f"failed: {exc}"
    ui_pages.finish_action(engine, action_id, outcome)


@router.post("/overrides")
def override(
    user: Editor,
    engine: Warehouse,
    kind: Annotated[str, Form()],
    taxdome_id: Annotated[str, Form(min_length=1)],
    decision: Annotated[Literal["sync", "unsync", "clear"], Form()],
) -> RedirectResponse:
    if kind not in sync_issues.OVERRIDABLE_KINDS:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "only accounts and payments are synced by hand")
    if decision == "clear":
        removed = sync_issues.clear_override(engine, kind, taxdome_id)
        head = (
            "no decision by hand to clear"
            if removed is None
            else f"cleared the decision to {removed.action} it"
        )
    else:
        before, now = sync_issues.set_override(engine, kind, taxdome_id, sync=decision == "sync")
        head = f"already set to {now.action} by hand" if before == now else f"set to {now.action} by hand"
    outcome = " ".join([f"{head}.", *sync_issues.next_sync_effect(engine, kind, taxdome_id)])
    ui_pages.record_action(
        engine, user_name=user.get_name(), action=decision, target=f"{kind}:{taxdome_id}", outcome=outcome
    )
    return RedirectResponse(ISSUES_PAGE, status_code=status.HTTP_303_SEE_OTHER)
