"""QuickBooks Online through python-quickbooks + intuit-oauth: connecting, staying authorized, and reading.

`environment` is `sandbox`, `production` (Intuit's own URLs, as the libraries know them) or the base URL of
a QBO emulator, whose discovery document and API the unchanged libraries are pointed at. Tokens come from a
`TokenStore`, so the newest refresh token is always used and every rotation is persisted.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import pandas as pd
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.exceptions import AuthorizationException

from taxdome_qbo.core import qbo_reference
from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.services.qbo_tokens import Refresher, StoredTokens, TokenGrant, TokenStore

log = logging.getLogger(__name__)
# requests-oauthlib logs the whole token (access and refresh) of every request at DEBUG; tokens stay out of logs.
logging.getLogger("requests_oauthlib").setLevel(logging.INFO)

MINOR_VERSION = 75
PAGE_SIZE = 1000  # QBO's MAXRESULTS cap
INTUIT_ENVIRONMENTS = ("sandbox", "production")
UNAUTHORIZED = 401
# QBO hides inactive name-list rows unless the WHERE clause mentions Active.
ACTIVE_AND_INACTIVE = "Active IN (true, false)"
_ENTITY_NAME = re.compile(r"[A-Za-z]+")

Result = TypeVar("Result")


class QboTokenRefreshError(RuntimeError):
    """Intuit refused to refresh the company's token (revoked, or expired after 100 days unused)."""


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
    """Where the libraries go: `oauth_environment` for intuit-oauth, `api_url_v3` for python-quickbooks."""

    oauth_environment: str
    api_url_v3: str
    emulated: bool
    insecure_transport: bool


def endpoints_for(environment: str) -> QboEndpoints:
    """The endpoints of `sandbox`, `production`, or a QBO emulator at a base URL like http://127.0.0.1:8765."""
    if environment in INTUIT_ENVIRONMENTS:
        api_url = QuickBooks.sandbox_api_url_v3 if environment == "sandbox" else QuickBooks.api_url_v3
        return QboEndpoints(environment, api_url, emulated=False, insecure_transport=False)
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
        # Fetches the discovery document: Intuit's for sandbox/production, the emulator's otherwise.
        self._auth_client = AuthClient(
            credentials.client_id,
            credentials.client_secret,
            credentials.redirect_uri,
            endpoints.oauth_environment,
            realm_id=credentials.realm_id,
        )
        self._refresh_at_intuit = intuit_refresher(self._auth_client, credentials.realm_id)
        if credentials.initial_refresh_token:
            token_store.seed(credentials.initial_refresh_token)
        self._use(token_store.tokens(self._refresh_at_intuit))
        self.client = quickbooks_client(self._auth_client, credentials.realm_id, endpoints)

    def __repr__(self) -> str:
        return f"QboSession(realm_id={self.realm_id!r})"

    def call(self, operation: Callable[[QuickBooks], Result]) -> Result:
        """`operation(client)`; after a 401 (expired or revoked access token) refresh and try once more."""
        try:
            return operation(self.client)
        except AuthorizationException as error:
            if error.error_code != UNAUTHORIZED:
                raise
            log.info("QuickBooks company %s refused the access token; refreshing and retrying", self.realm_id)
        self.refresh()
        return operation(self.client)

    def refresh(self) -> None:
        """Replace the access token QBO refused (under the store's lock) and restart the HTTP session."""
        self._use(
            self._token_store.tokens(
                self._refresh_at_intuit, rejected_access_token=self._auth_client.access_token
            )
        )
        self.client.refresh_token = self._auth_client.refresh_token
        self.client._start_session()

    def _use(self, tokens: StoredTokens) -> None:
        self._auth_client.access_token = tokens.access_token
        self._auth_client.refresh_token = tokens.refresh_token


def open_session(credentials: QboCredentials, token_store: TokenStore) -> QboSession:
    """A session on the company, reusing the stored access token while it is valid."""
    return QboSession(credentials, token_store)


def connect(credentials: QboCredentials, token_store: TokenStore) -> QuickBooks:
    """A bare python-quickbooks client; prefer `open_session`, whose `call` survives an expired token."""
    return open_session(credentials, token_store).client


def quote(value: str) -> str:
    """`value` as a QBO query string literal: O'Brien -> 'O\\'Brien' (backslashes escaped first)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def query_all(session: QboSession, entity_name: str, where: str | None = None) -> list[dict]:
    """Every `entity_name` object matching `where` (values inside it written with `quote`), page by page."""
    if not _ENTITY_NAME.fullmatch(entity_name):
        raise ValueError(f"not a QBO entity name: {entity_name!r}")
    condition = f" WHERE {where}" if where else ""
    rows: list[dict] = []
    while True:
        # QBO's query API has no bound parameters: the entity name is checked above, values go through quote().
        statement = (
            f"SELECT * FROM {entity_name}{condition} ORDERBY Id "  # noqa: S608
            f"STARTPOSITION {len(rows) + 1} MAXRESULTS {PAGE_SIZE}"
        )
        response = session.call(lambda client, statement=statement: client.query(statement))
        page = response["QueryResponse"].get(entity_name, [])
        rows.extend(page)
        if len(page) < PAGE_SIZE:
            return rows


def fetch_company_info(session: QboSession) -> dict:
    return session.call(lambda client: client.get_single_object("CompanyInfo", client.company_id))[
        "CompanyInfo"
    ]


def fetch_preferences(session: QboSession) -> dict:
    return session.call(
        lambda client: client.get(f"{client.api_url}/company/{client.company_id}/preferences", {})
    )["Preferences"]


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


def fetch_reference(session: QboSession) -> QboReference:
    """The company's name lists (inactive rows included, except customer types) and its sales tax mode."""
    name_list = {"id": "Id", "name": "Name", "active": "Active"}
    return QboReference(
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
        # Only an active type can be given to a new customer.
        customer_types=_frame(
            query_all(session, "CustomerType"), qbo_reference.CUSTOMER_TYPE_COLUMNS, name_list
        ),
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
