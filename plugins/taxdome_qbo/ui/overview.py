"""GET / : the Overview (connection, export loads, latest plan and load, reconciliation and its trend)."""

from __future__ import annotations

import logging

import requests
from airflow.sdk.exceptions import AirflowException
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.services import qbo_client, ui_pages
from taxdome_qbo.services.qbo_client import (
    QboAuthorizationError,
    QboTokenRefreshError,
    QboUnavailableError,
)
from taxdome_qbo.services.qbo_tokens import QboDisconnectedError
from taxdome_qbo.ui.web import Reader, Warehouse, render

log = logging.getLogger(__name__)
router = APIRouter()

# The warehouse keeps no company name: QuickBooks is asked once per api-server process and company.
_company_names: dict[str, str] = {}
_UNREACHABLE = (
    AirflowException,
    ValueError,
    QboDisconnectedError,
    QboTokenRefreshError,
    QboUnavailableError,
    QboAuthorizationError,
    requests.RequestException,
)


def company_name(realm_id: str) -> str | None:
    """QuickBooks' name of the connected company `realm_id`; None when it cannot be asked now."""
    if realm_id not in _company_names:
        hook = QuickBooksHook()
        try:
            if hook.current_realm_id() != realm_id:
                return None
            _company_names[realm_id] = qbo_client.fetch_company_info(hook.get_session())["CompanyName"]
        except _UNREACHABLE as exc:
            log.warning("the name of QuickBooks company %s is not known: %s", realm_id, exc)
            return None
    return _company_names[realm_id]


@router.get("/", response_class=HTMLResponse)
def show_overview(request: Request, user: Reader, engine: Warehouse) -> HTMLResponse:
    found = ui_pages.overview(engine)
    connected = found.company is not None and found.company.status == "connected"
    return render(
        request,
        "overview.html",
        user=user,
        overview=found,
        company_name=company_name(found.company.realm_id) if connected else None,
    )
