"""Connecting, disconnecting and switching the QuickBooks company through Intuit's OAuth 2 authorization.

Only someone who can sign in to the company as its admin can approve the authorization at Intuit, which is
what keeps connecting to the firm owner (R21). One company is current: the sync writes there. Disconnecting
stops the sync (R17); reconnecting the same company resumes it, and moving to another company needs an
explicit confirmation (R18). The sync state is kept per company, so coming back to an earlier company re-links
to what was synced there instead of creating it again.

Authorization codes, tokens and the client secret never reach output, logs or exception messages: errors
of intuit-oauth and requests are re-raised without chaining, since they carry the HTTP exchange.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from sqlalchemy.engine import Engine

from taxdome_qbo.services import qbo_client
from taxdome_qbo.services.qbo_client import QboCredentials, endpoints_for
from taxdome_qbo.services.qbo_tokens import TokenStore
from taxdome_qbo.services.token_cipher import TokenCipher

SWITCH_CONFIRMATION = "ACCEPT"


class ConnectionRefused(Exception):
    """The request was refused before anything changed (wrong company, state mismatch, not confirmed)."""


class ConnectionFailed(Exception):
    """Intuit or the network failed the (re)connection."""


@dataclass(frozen=True)
class QboApp:
    """The Intuit app the firm authorizes: enough to run the authorization flow before a company is known."""

    client_id: str
    client_secret: str = field(repr=False)
    environment: str
    redirect_uri: str

    def credentials(self, realm_id: str, *, initial_refresh_token: str | None = None) -> QboCredentials:
        return QboCredentials(
            client_id=self.client_id,
            client_secret=self.client_secret,
            realm_id=realm_id,
            environment=self.environment,
            redirect_uri=self.redirect_uri,
            initial_refresh_token=initial_refresh_token,
        )


@dataclass(frozen=True)
class AuthorizationRequest:
    """The URL the firm owner opens to approve access, and the state token its redirect must carry back."""

    url: str
    state: str


@dataclass(frozen=True)
class AuthorizationGrant:
    """What Intuit's redirect after approval carries: a one-time code for the chosen company."""

    code: str = field(repr=False)
    realm_id: str
    state: str | None


@dataclass(frozen=True)
class Disconnection:
    """The outcome of a disconnect: the company is always marked disconnected; `revocation_problem` says why
    Intuit may still accept its token, None when Intuit revoked it."""

    realm_id: str
    revocation_problem: str | None


def _auth_client(app: QboApp) -> AuthClient:
    """An intuit-oauth client of the app; fetches the discovery document (Intuit's, or the emulator's)."""
    try:
        return AuthClient(
            app.client_id,
            app.client_secret,
            app.redirect_uri,
            endpoints_for(app.environment).oauth_environment,
        )
    except (AuthClientError, requests.RequestException) as error:
        raise ConnectionFailed(
            f"cannot reach Intuit's OAuth discovery document: {_describe(error)}"
        ) from None


def _describe(error: AuthClientError | requests.RequestException) -> str:
    """An error of intuit-oauth or requests: the answer or the network failure, never the request's headers
    or body (they hold the client secret, the code or a token)."""
    if isinstance(error, AuthClientError):
        return f"HTTP {error.status_code}: {error.content.decode(errors='replace')}"
    return f"{type(error).__name__}: {error}"


def authorization_request(app: QboApp, *, realm_hint: str | None = None) -> AuthorizationRequest:
    """The Intuit authorization URL for the accounting scope, with a fresh state token.

    An emulator lets the URL pick the company (`realm_hint`); at Intuit the firm owner picks it on the page.
    """
    state = secrets.token_urlsafe(24)
    url = _auth_client(app).get_authorization_url([Scopes.ACCOUNTING], state_token=state)
    if realm_hint and endpoints_for(app.environment).emulated:
        url = f"{url}&{urlencode({'realm_id': realm_hint})}"
    return AuthorizationRequest(url, state)


def parse_redirect_url(redirect_url: str) -> AuthorizationGrant:
    """The code, company and state of the URL Intuit redirected the browser to after approval."""
    query = {name: values[0] for name, values in parse_qs(urlsplit(redirect_url.strip()).query).items()}
    if "error" in query:
        raise ConnectionRefused(f"the authorization was not granted at Intuit: {query['error']}")
    missing = [name for name in ("code", "realmId") if not query.get(name)]
    if missing:
        raise ConnectionRefused(
            f"the redirect URL lacks {' and '.join(missing)}: paste the whole address the browser was sent to "
            "after approving"
        )
    return AuthorizationGrant(query["code"], query["realmId"], query.get("state"))


def check_grant(
    grant: AuthorizationGrant,
    *,
    expected_state: str | None,
    expected_realm: str | None,
    current_realm: str | None,
    switch_confirmed: bool,
) -> None:
    """Refuse a grant that answers another authorization request, is for another company than asked, or
    would move the sync to another company without confirmation (R18)."""
    if expected_state is not None and grant.state is not None and grant.state != expected_state:
        raise ConnectionRefused(
            "the redirect URL answers another authorization request (its state differs): start again"
        )
    if expected_realm is not None and grant.realm_id != expected_realm:
        raise ConnectionRefused(
            f"QuickBooks company {grant.realm_id} was authorized, not {expected_realm} as asked: nothing changed"
        )
    if current_realm is not None and grant.realm_id != current_realm and not switch_confirmed:
        raise ConnectionRefused(switch_warning(current_realm, grant.realm_id))


def switch_warning(current_realm: str, new_realm: str) -> str:
    return (
        f"The sync currently writes to QuickBooks company {current_realm}. Connecting company {new_realm} makes "
        f"it the target of everything: all customers, invoices, payments and refunds in scope are synced to "
        f"company {new_realm}, and company {current_realm} receives nothing more. The sync state is kept per "
        f"company, so returning to {current_realm} later re-links to what was synced there instead of "
        f"duplicating it. Nothing changed; to proceed, run: python -m taxdome_qbo reconnect --realm {new_realm} "
        f"--confirm {SWITCH_CONFIRMATION}"
    )


def complete_connection(app: QboApp, engine: Engine, cipher: TokenCipher, grant: AuthorizationGrant) -> str:
    """Exchange the code for tokens, store them (encrypted by `cipher`) and make the company current; returns
    the company's name."""
    auth_client = _auth_client(app)
    try:
        auth_client.get_bearer_token(grant.code, realm_id=grant.realm_id)
    except (AuthClientError, requests.RequestException) as error:
        raise ConnectionFailed(
            f"Intuit refused the authorization code of QuickBooks company {grant.realm_id} "
            f"({_describe(error)}); start the authorization again"
        ) from None
    token_store = TokenStore(engine, grant.realm_id, cipher)
    token_store.store_new_connection(
        auth_client.refresh_token, auth_client.access_token, int(auth_client.expires_in)
    )
    session = qbo_client.open_session(app.credentials(grant.realm_id), token_store)
    return qbo_client.fetch_company_info(session)["CompanyName"]


def disconnect(
    app: QboApp,
    engine: Engine,
    cipher: TokenCipher,
    realm_id: str,
    *,
    seed_refresh_token: str | None = None,
) -> Disconnection:
    """Mark the company disconnected (the sync stops), then revoke its refresh token at Intuit.

    Marking comes first and happens even when revocation fails: stopping the sync must not depend on Intuit
    being reachable. `seed_refresh_token` (the connection's, for a company never used yet) is stored first,
    so that it is the one revoked and is not seeded again afterwards. Raises QboDisconnectedError when the
    company has no tokens at all.
    """
    token_store = TokenStore(engine, realm_id, cipher)
    if seed_refresh_token:
        token_store.seed(seed_refresh_token)
    refresh_token = token_store.mark_disconnected()
    try:
        _auth_client(app).revoke(token=refresh_token)
    except ConnectionFailed as error:
        return Disconnection(realm_id, str(error))
    except (AuthClientError, requests.RequestException) as error:
        return Disconnection(realm_id, f"Intuit did not revoke the token ({_describe(error)})")
    return Disconnection(realm_id, None)
