"""QuickBooks Online through python-quickbooks + intuit-oauth: connecting, staying authorized, and reading.

`environment` is `sandbox`, `production` (Intuit's own URLs, as the libraries know them) or the base URL of
a QBO emulator, whose discovery document and API the unchanged libraries are pointed at. Tokens come from a
`TokenStore`, so the newest refresh token is always used and every rotation is persisted.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import pandas as pd
import requests
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.exceptions import AuthorizationException, QuickbooksException
from requests.adapters import HTTPAdapter

from taxdome_qbo.core import qbo_reference
from taxdome_qbo.core.qbo_faults import THROTTLE_CODE, Answer, classify, first_fault, mentions_throttling
from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.services.qbo_tokens import Refresher, StoredTokens, TokenGrant, TokenStore

if TYPE_CHECKING:
    from taxdome_qbo.services.qbo_rate import RateGovernor

log = logging.getLogger(__name__)
# requests-oauthlib logs the whole token (access and refresh) of every request at DEBUG; tokens stay out of logs.
logging.getLogger("requests_oauthlib").setLevel(logging.INFO)

MINOR_VERSION = 75
PAGE_SIZE = 1000  # QBO's MAXRESULTS cap
CDC_MAX_OBJECTS = 1000  # QBO's cap per CDC answer
REFRESH_TIMEOUT_SECONDS = 30.0  # well within qbo_tokens.REFRESH_CLAIM_LEASE
INTUIT_ENVIRONMENTS = ("sandbox", "production")
UNAUTHORIZED = 401
# QBO hides inactive name-list rows unless the WHERE clause mentions Active.
ACTIVE_AND_INACTIVE = "Active IN (true, false)"
_ENTITY_NAME = re.compile(r"[A-Za-z]+")

Result = TypeVar("Result")


class QboTokenRefreshError(RuntimeError):
    """Intuit refused to refresh the company's token (revoked, or expired after 100 days unused)."""


class QboUnavailableError(RuntimeError):
    """QBO kept failing (5xx, timeouts, lost connections, throttling) through every retry."""


class QboAuthorizationError(RuntimeError):
    """QBO refuses the company's requests for a reason no retry fixes (permissions, subscription)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one request is tried. Only throttling, 5xx, timeouts and lost connections are retried."""

    max_attempts: int = 6  # per request, for 5xx, timeouts and lost connections
    max_throttled: int = 30  # 429s of one request before giving up
    backoff_seconds: float = 1.0  # first wait; doubles per attempt, with full jitter
    backoff_cap_seconds: float = 60.0
    timeout_seconds: float = 130.0  # QBO ends a request after 120 s itself

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_cap_seconds, self.backoff_seconds * 2 ** (attempt - 1)))


@dataclass
class RequestStats:
    """What a session has sent, for progress logs and receipts."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    token_refreshes: int = 0


@dataclass(frozen=True)
class Attempt:
    """One HTTP exchange of a request: its status (None when no answer came back) and how long it took."""

    status: int | None
    duration_ms: int
    error: str | None
    sent_at: datetime


@dataclass(frozen=True)
class RawAnswer:
    """The final answer to a request sent with `QboSession.send`, and every attempt it took."""

    status: int
    body: dict | None
    answer: Answer
    attempts: tuple[Attempt, ...]


class _TimeoutAdapter(HTTPAdapter):
    """requests waits forever by default, and python-quickbooks passes no timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


@dataclass(frozen=True)
class QboCredentials:
    """What is needed to reach one QuickBooks company; the secret and the token stay out of the repr."""

    client_id: str
    client_secret: str = field(repr=False)
    realm_id: str
    environment: str
    redirect_uri: str
    initial_refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class QboEndpoints:
    """Where the libraries go (`oauth_environment` for intuit-oauth, `api_url_v3` for python-quickbooks), and
    where people see the company's objects (`app_url`, QuickBooks' web app)."""

    oauth_environment: str
    api_url_v3: str
    emulated: bool
    insecure_transport: bool
    app_url: str


def endpoints_for(environment: str) -> QboEndpoints:
    """The endpoints of `sandbox`, `production`, or a QBO emulator at a base URL like http://127.0.0.1:8765."""
    if environment in INTUIT_ENVIRONMENTS:
        sandbox = environment == "sandbox"
        return QboEndpoints(
            environment,
            QuickBooks.sandbox_api_url_v3 if sandbox else QuickBooks.api_url_v3,
            emulated=False,
            insecure_transport=False,
            app_url="https://app.sandbox.qbo.intuit.com/app" if sandbox else "https://app.qbo.intuit.com/app",
        )
    parts = urlsplit(environment)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"QuickBooks environment {environment!r}: expected sandbox, production or an emulator's base URL"
        )
    base_url = environment.rstrip("/")
    return QboEndpoints(
        f"{base_url}/.well-known/openid_configuration",
        f"{base_url}/v3",
        emulated=True,
        insecure_transport=parts.scheme == "http",
        app_url=f"{base_url}/app",
    )


def quickbooks_client(auth_client: AuthClient, realm_id: str, endpoints: QboEndpoints) -> QuickBooks:
    """A python-quickbooks client on `auth_client`, which must already hold a valid access token."""
    if endpoints.insecure_transport:
        # requests-oauthlib refuses plain http unless told otherwise; only an emulator is served that way.
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    client = QuickBooks(
        auth_client=auth_client,
        refresh_token=auth_client.refresh_token,
        company_id=realm_id,
        minorversion=MINOR_VERSION,
        use_decimal=True,
    )
    if endpoints.emulated:
        client.api_url_v3 = client.sandbox_api_url_v3 = endpoints.api_url_v3
    return client


def intuit_refresher(auth_client: AuthClient, realm_id: str) -> Refresher:
    """Refreshes at Intuit's token endpoint through `auth_client` (which then holds the new tokens too)."""

    def refresh(refresh_token: str) -> TokenGrant:
        try:
            auth_client.refresh(refresh_token=refresh_token)
        except AuthClientError as error:
            # Chaining is cut: the original carries the HTTP exchange, and so the refresh token.
            raise QboTokenRefreshError(
                f"Intuit refused to refresh the token of QuickBooks company {realm_id} "
                f"(HTTP {error.status_code}: {error.content.decode(errors='replace')}); reconnect the company"
            ) from None
        return TokenGrant(auth_client.access_token, auth_client.refresh_token, int(auth_client.expires_in))

    return refresh


class QboSession:
    """A connected python-quickbooks client that recovers once from an access token QBO no longer accepts.

    :param credentials: the app's credentials and the company.
    :param token_store: where the company's tokens live.
    """

    def __init__(self, credentials: QboCredentials, token_store: TokenStore) -> None:
        self.realm_id = credentials.realm_id
        self._token_store = token_store
        endpoints = endpoints_for(credentials.environment)
        self.app_url = endpoints.app_url  # where people see the company's objects (deep links)
        # Fetches the discovery document: Intuit's for sandbox/production, the emulator's otherwise.
        self._auth_client = AuthClient(
            credentials.client_id,
            credentials.client_secret,
            credentials.redirect_uri,
            endpoints.oauth_environment,
            realm_id=credentials.realm_id,
        )
        # The refresh runs under the company's refresh claim, which must not outlive a hung call.
        for prefix in ("https://", "http://"):
            self._auth_client.mount(prefix, _TimeoutAdapter(REFRESH_TIMEOUT_SECONDS))
        self._refresh_at_intuit = intuit_refresher(self._auth_client, credentials.realm_id)
        if credentials.initial_refresh_token:
            token_store.seed(credentials.initial_refresh_token)
        self._use(token_store.tokens(self._refresh_at_intuit))
        self.client = quickbooks_client(self._auth_client, credentials.realm_id, endpoints)
        self.governor: RateGovernor | None = None
        self.retry = RetryPolicy()
        self.stats = RequestStats()
        self._limit_waits()

    def __repr__(self) -> str:
        return f"QboSession(realm_id={self.realm_id!r})"

    def govern(self, governor: RateGovernor, retry: RetryPolicy | None = None) -> None:
        """Send every later request through `governor` (the company's limits, shared by all processes)."""
        self.governor = governor
        self.retry = retry or self.retry
        self._limit_waits()

    def _limit_waits(self) -> None:
        adapter = _TimeoutAdapter(self.retry.timeout_seconds)
        for prefix in ("https://", "http://"):
            self.client.session.mount(prefix, adapter)

    @contextmanager
    def _slot(self, *, batch: bool) -> Iterator[None]:
        self.stats.requests += 1
        with self.governor.slot(batch=batch) if self.governor else nullcontext():
            yield

    def _throttled(self, retry_after: float | None, throttles: int) -> None:
        self.stats.throttled += 1
        if throttles > self.retry.max_throttled:
            raise QboUnavailableError(
                f"QuickBooks company {self.realm_id} kept answering 429 (too many requests) "
                f"{throttles} times in a row; the sync resumes where it stopped when the task is retried"
            )
        wait = self.governor.pause(retry_after) if self.governor else retry_after or 60.0
        if not self.governor:
            time.sleep(wait)
        log.warning("QuickBooks company %s throttled the sync (429): waited %.1f s", self.realm_id, wait)

    def _transient(self, why: str, attempt: int) -> None:
        if attempt >= self.retry.max_attempts:
            raise QboUnavailableError(
                f"QuickBooks company {self.realm_id} failed {attempt} times in a row ({why}); QBO may be "
                "down: the sync resumes where it stopped when the task is retried"
            )
        self.stats.retries += 1
        wait = self.retry.backoff(attempt)
        log.warning("QuickBooks: %s; retry %d in %.1f s", why, attempt, wait)
        time.sleep(wait)

    def call(self, operation: Callable[[QuickBooks], Result]) -> Result:
        """`operation(client)` (a read) within the company's limits: a 401 refreshes the access token (a
        second one in a row is raised); throttling, 5xx, timeouts and lost connections are retried."""
        transient = throttles = 0
        refreshed = False
        while True:
            try:
                with self._slot(batch=False):
                    return operation(self.client)
            except AuthorizationException as error:
                if error.error_code != UNAUTHORIZED or refreshed:
                    raise
                log.info("QuickBooks company %s refused the access token; refreshing", self.realm_id)
                self.refresh()
                refreshed = True
            except QuickbooksException as error:
                refreshed = False
                # python-quickbooks gives no HTTP status: a 429 is code 3001 or an unreadable page naming it.
                if str(error.error_code) == THROTTLE_CODE or mentions_throttling(error.message):
                    throttles += 1
                    self._throttled(None, throttles)
                elif error.error_code == 10000 and "Error reading json response" in error.message:
                    transient += 1
                    self._transient("an unreadable answer (QBO's 5xx page)", transient)
                else:
                    raise
            except (requests.ConnectionError, requests.Timeout) as error:
                refreshed = False
                transient += 1
                self._transient(f"{type(error).__name__}", transient)

    def send(
        self,
        method: str,
        path: str,
        *,
        body: dict | None = None,
        params: dict | None = None,
        batch: bool = False,
    ) -> RawAnswer:
        """A raw request to `/v3/company/<realm>/<path>` through python-quickbooks' own request path (its
        session and headers), so the HTTP status and Retry-After are seen. A `requestid` in `params` makes the
        retries safe: QBO answers a repeated id with the first answer instead of writing again.

        Retries throttling (waiting Retry-After, else 60 s, for every process of the company), 5xx,
        timeouts and lost connections, refreshes an expired token once; returns the first other answer.
        Raises QboUnavailableError when the retries run out, QboAuthorizationError when QBO refuses the
        company itself.
        """
        client = self.client
        url = f"{client.api_url}/company/{client.company_id}/{path}"
        data = json.dumps(body, default=_decimal_text) if body is not None else None
        attempts: list[Attempt] = []
        transient = throttles = 0
        refreshed = False
        while True:
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "python-quickbooks V3 library",
            }
            query = {**(params or {}), "minorversion": client.minorversion}
            sent_at, started = datetime.now(UTC), time.monotonic()
            try:
                with self._slot(batch=batch):
                    response = client.process_request(method, url, headers=headers, params=query, data=data)
            except (requests.ConnectionError, requests.Timeout) as error:
                attempts.append(Attempt(None, _elapsed_ms(started), type(error).__name__, sent_at))
                transient += 1
                self._transient(f"no answer ({type(error).__name__})", transient)
                continue
            status = response.status_code
            try:
                parsed = response.json(parse_float=Decimal)
            except ValueError:
                parsed = None
            answer = classify(status, parsed, response.text)
            fault = first_fault(parsed)
            attempts.append(
                Attempt(
                    status,
                    _elapsed_ms(started),
                    fault.describe() if fault else None if answer is Answer.OK else f"HTTP {status}",
                    sent_at,
                )
            )
            if answer is Answer.UNAUTHORIZED and not refreshed:
                self.refresh()
                refreshed = True
                continue
            if answer is not Answer.UNAUTHORIZED:
                # Only a 401 right after a refresh means the company refuses us; a later one is a new expiry.
                refreshed = False
            if answer is Answer.THROTTLED:
                throttles += 1
                self._throttled(_retry_after(response), throttles)
            elif answer is Answer.TRANSIENT:
                transient += 1
                self._transient(f"HTTP {status}", transient)
            elif answer in (Answer.UNAUTHORIZED, Answer.COMPANY_FAULT):
                raise QboAuthorizationError(
                    f"QuickBooks company {self.realm_id} refused the sync's requests "
                    f"({fault.describe() if fault else f'HTTP {status}'}): check that the connected user is "
                    "still an admin and the subscription is active, then reconnect with "
                    "`python -m taxdome_qbo reconnect`"
                )
            else:
                return RawAnswer(status, parsed, answer, tuple(attempts))

    def refresh(self) -> None:
        """Replace the access token QBO refused (under the store's refresh claim) and restart the HTTP session."""
        self._use(
            self._token_store.tokens(
                self._refresh_at_intuit, rejected_access_token=self._auth_client.access_token
            )
        )
        self.stats.token_refreshes += 1
        self.client.refresh_token = self._auth_client.refresh_token
        self.client._start_session()
        self._limit_waits()

    def _use(self, tokens: StoredTokens) -> None:
        self._auth_client.access_token = tokens.access_token
        self._auth_client.refresh_token = tokens.refresh_token


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _decimal_text(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (QBO documents none, but a proxy in front of it may send one)."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def open_session(credentials: QboCredentials, token_store: TokenStore) -> QboSession:
    """A session on the company, reusing the stored access token while it is valid."""
    return QboSession(credentials, token_store)


def connect(credentials: QboCredentials, token_store: TokenStore) -> QuickBooks:
    """A bare python-quickbooks client; prefer `open_session`, whose `call` survives an expired token."""
    return open_session(credentials, token_store).client


def quote(value: str) -> str:
    """`value` as a QBO query string literal: O'Brien -> 'O\\'Brien' (backslashes escaped first)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def query_pages(session: QboSession, entity_name: str, where: str | None = None) -> Iterator[list[dict]]:
    """The `entity_name` objects matching `where` (values inside it written with `quote`), a page at a time."""
    if not _ENTITY_NAME.fullmatch(entity_name):
        raise ValueError(f"not a QBO entity name: {entity_name!r}")
    condition = f" WHERE {where}" if where else ""
    start = 1
    while True:
        # QBO's query API has no bound parameters: the entity name is checked above, values go through quote().
        statement = (
            f"SELECT * FROM {entity_name}{condition} ORDERBY Id "  # noqa: S608
            f"STARTPOSITION {start} MAXRESULTS {PAGE_SIZE}"
        )
        response = session.call(lambda client, statement=statement: client.query(statement))
        page = response["QueryResponse"].get(entity_name, [])
        yield page
        if len(page) < PAGE_SIZE:
            return
        start += len(page)


def query_all(session: QboSession, entity_name: str, where: str | None = None) -> list[dict]:
    """Every `entity_name` object matching `where` (values inside it written with `quote`), page by page."""
    return [obj for page in query_pages(session, entity_name, where) for obj in page]


def fetch_company_info(session: QboSession) -> dict:
    return session.call(lambda client: client.get_single_object("CompanyInfo", client.company_id))[
        "CompanyInfo"
    ]


def read_preferences(session: QboSession) -> tuple[dict, datetime | None]:
    """The company's preferences, and QBO's clock when it answered (the `time` of its every answer; None
    when the answer lacks it)."""
    answer = session.call(
        lambda client: client.get(f"{client.api_url}/company/{client.company_id}/preferences", {})
    )
    try:
        answered_at = datetime.fromisoformat(answer["time"])
    except (KeyError, TypeError, ValueError):
        answered_at = None
    return answer["Preferences"], answered_at


def fetch_preferences(session: QboSession) -> dict:
    return read_preferences(session)[0]


def automated_sales_tax(preferences: dict) -> bool:
    """Whether QBO computes sales tax itself (AST): `TaxPrefs.PartnerTaxEnabled`, absent meaning off."""
    return preferences.get("TaxPrefs", {}).get("PartnerTaxEnabled") is True


def _field(row: dict, path: str) -> object:
    """`row`'s value at a dotted path (`IncomeAccountRef.value`), None where any step is missing."""
    value: object = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _frame(rows: list[dict], columns: tuple[str, ...], paths: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {column: pd.Series([_field(row, paths[column]) for row in rows], dtype=object) for column in columns}
    )
    if "active" in frame:
        frame["active"] = frame["active"].astype(bool)
    return frame


def fetch_customer_types(session: QboSession) -> pd.DataFrame:
    """The active customer types: only an active type can be given to a new customer."""
    return _frame(
        query_all(session, "CustomerType"),
        qbo_reference.CUSTOMER_TYPE_COLUMNS,
        {"id": "Id", "name": "Name"},
    )


def changed_since(session: QboSession, entities: Sequence[str], since: datetime) -> dict[str, list[dict]]:
    """What QBO's change data capture (CDC) answers for `entities` changed since `since`: per entity, the
    objects changed and the deleted ones (`status` "Deleted"), at most CDC_MAX_OBJECTS in all; an answer
    that reaches the cap may have left objects out. QBO refuses a `since` more than 30 days ago."""
    changed_since = since.astimezone(UTC).replace(microsecond=0).isoformat()

    def cdc(client):
        url = f"{client.api_url}/company/{client.company_id}/cdc"
        return client.get(url, params={"entities": ",".join(entities), "changedSince": changed_since})

    answer = session.call(cdc)
    changed: dict[str, list[dict]] = {entity: [] for entity in entities}
    for response in answer.get("CDCResponse", []):
        for group in response.get("QueryResponse", []):
            for entity in entities:
                changed[entity].extend(group.get(entity, []))
    return changed


def fetch_reference(session: QboSession) -> QboReference:
    """The company's name lists (inactive rows included, except customer types) and its sales tax mode."""
    name_list = {"id": "Id", "name": "Name", "active": "Active"}
    reference = QboReference(
        realm_id=session.realm_id,
        customers=_frame(
            query_all(session, "Customer", ACTIVE_AND_INACTIVE),
            qbo_reference.CUSTOMER_COLUMNS,
            {
                "id": "Id",
                "display_name": "DisplayName",
                "active": "Active",
                "sync_token": "SyncToken",
                "notes": "Notes",
            },
        ),
        customer_types=fetch_customer_types(session),
        items=_frame(
            query_all(session, "Item", ACTIVE_AND_INACTIVE),
            qbo_reference.ITEM_COLUMNS,
            {
                **name_list,
                "type": "Type",
                "sync_token": "SyncToken",
                "income_account_id": "IncomeAccountRef.value",
            },
        ),
        accounts=_frame(
            query_all(session, "Account", ACTIVE_AND_INACTIVE),
            qbo_reference.ACCOUNT_COLUMNS,
            {**name_list, "account_type": "AccountType"},
        ),
        payment_methods=_frame(
            query_all(session, "PaymentMethod", ACTIVE_AND_INACTIVE),
            qbo_reference.PAYMENT_METHOD_COLUMNS,
            {**name_list, "type": "Type"},
        ),
        automated_sales_tax=automated_sales_tax(fetch_preferences(session)),
        vendors_and_employees=pd.concat(
            [
                _frame(
                    query_all(session, entity, ACTIVE_AND_INACTIVE),
                    ("id", "display_name", "active"),
                    {"id": "Id", "display_name": "DisplayName", "active": "Active"},
                ).assign(entity=entity)
                for entity in ("Vendor", "Employee")
            ],
            ignore_index=True,
        ),
    )
    log.info(
        "QuickBooks company %s: %d customers, %d items, %d accounts, %d payment methods, automated sales tax %s",
        session.realm_id,
        len(reference.customers),
        len(reference.items),
        len(reference.accounts),
        len(reference.payment_methods),
        "on" if reference.automated_sales_tax else "off",
    )
    return reference
