"""What every page of the view shares: the Jinja environment (autoescaped), rendering, the Airflow user and
who may act, the warehouse engine, paging, and the same-origin check of the forms."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import get_user
from airflow.sdk.exceptions import AirflowNotFoundException
from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import Engine

from taxdome_qbo.core.money import format_cents
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.links import VIEW_PATH, path_segment

URL_PREFIX = VIEW_PATH
# Acting on the sync is editing it: who may edit the sync DAG may retry and override, nobody else.
SYNC_DAG_ID = "taxdome_qbo_sync"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def _when(value: datetime | str | None) -> str:
    """A recorded UTC time to the second; SQLite hands back text without the zone, PostgreSQL a datetime."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{str(value)[:19]} UTC"


def _money(cents: int | None) -> str:
    return "" if cents is None else format_cents(int(cents))


def _trend_points(values: list[int], width: int, height: int) -> str:
    """An SVG polyline's points for `values` spread over width × height, the largest at the top."""
    if not values:
        return ""
    top = max(max(values), 1)
    step = width / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{height - value * height / top:.1f}" for i, value in enumerate(values))


templates = Environment(
    loader=PackageLoader("taxdome_qbo.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
)
templates.filters.update(when=_when, money=_money, path_segment=path_segment)
templates.globals.update(prefix=URL_PREFIX, trend_points=_trend_points)


def render(
    request: Request, template: str, *, user: BaseUser, status_code: int = 200, **context
) -> HTMLResponse:
    page = templates.get_template(template).render(
        request=request, user_name=user.get_name(), can_edit=may_edit(user), **context
    )
    return HTMLResponse(page, status_code=status_code)


CurrentUser = Annotated[BaseUser, Depends(get_user)]


def may_edit(user: BaseUser) -> bool:
    return get_auth_manager().is_authorized_dag(method="PUT", details=DagDetails(id=SYNC_DAG_ID), user=user)


def require_reader(user: CurrentUser) -> BaseUser:
    """The view shows the firm's billing: only to users the auth manager lets read the sync DAG (logged in
    is not enough)."""
    if not get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=SYNC_DAG_ID), user=user):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"only users who may read the {SYNC_DAG_ID} DAG may look"
        )
    return user


Reader = Annotated[BaseUser, Depends(require_reader)]


def _same_origin(request: Request) -> None:
    """A form posted with the session cookie must come from a page of this server (a cross-site form posts
    the cookie too, where SameSite allows it); a bearer token is never sent by a browser on its own."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    if COOKIE_NAME_JWT_TOKEN not in request.cookies:
        return  # get_user has refused it already
    source = request.headers.get("origin") or request.headers.get("referer")
    # Behind a proxy that keeps the public host in X-Forwarded-Host; a cross-site form cannot set headers.
    this_server = {request.headers.get("host"), request.headers.get("x-forwarded-host")} - {None}
    if not source or urlsplit(source).netloc not in this_server:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a form must be posted from this server's pages")


def require_editor(request: Request, user: Reader) -> BaseUser:
    if not may_edit(user):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"only users who may edit the {SYNC_DAG_ID} DAG may act"
        )
    _same_origin(request)
    return user


Editor = Annotated[BaseUser, Depends(require_editor)]


# The connection is looked up again after this long, so that a changed `warehouse_default` is taken up
# without restarting the api-server, while a request never waits on a secrets backend.
CONNECTION_RECHECK_SECONDS = 30.0


@dataclass
class WarehouseEngines:
    """One engine (its pool, its schema checked once) per connection URI and api-server process."""

    recheck_seconds: float = CONNECTION_RECHECK_SECONDS
    engines: dict[str, Engine] = field(default_factory=dict)
    current_uri: str | None = None
    checked_at: float = -math.inf
    lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self) -> Engine:
        with self.lock:
            if time.monotonic() - self.checked_at >= self.recheck_seconds:
                self.current_uri = self._connection_uri()
                self.checked_at = time.monotonic()
            if self.current_uri not in self.engines:
                self.engines[self.current_uri] = WarehouseHook().get_engine()
            return self.engines[self.current_uri]

    @staticmethod
    def _connection_uri() -> str:
        hook = WarehouseHook()
        try:
            return hook.get_connection(hook.warehouse_conn_id).get_uri()
        except AirflowNotFoundException:
            return ""  # no connection: the default SQLite warehouse


warehouse_engines = WarehouseEngines()


def warehouse_engine() -> Engine:
    """The warehouse of the `warehouse_default` connection, as of at most `CONNECTION_RECHECK_SECONDS` ago."""
    return warehouse_engines.current()


Warehouse = Annotated[Engine, Depends(warehouse_engine)]


@dataclass(frozen=True)
class Paging:
    page: int
    size: int


def paging(
    page: Annotated[int, Query(ge=1)] = 1, size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = PAGE_SIZE
) -> Paging:
    return Paging(page, size)


Page = Annotated[Paging, Depends(paging)]
