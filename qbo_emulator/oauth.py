"""Intuit OAuth 2: apps, authorization codes, rotating refresh tokens and expiring access tokens."""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from qbo_emulator.config import EmulatorConfig

AUTHORIZATION_CODE_TTL_SECONDS = 300
APP_KIND = "app"
TOKEN_KIND = "token"


class OAuthError(Exception):
    """An OAuth failure answered as ``{"error": ...}`` with the given HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


@dataclass
class TokenRecord:
    kind: str  # "access" or "refresh"
    realm_id: str
    client_id: str
    issued_at: float
    expires_at: float
    superseded_at: float | None = None
    revoked: bool = False


class OAuthServer:
    def __init__(self, config: Callable[[], EmulatorConfig], persist: Callable[[str, str, dict], None]):
        self._config = config
        self._persist = persist
        self.apps: dict[str, str] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self._codes: dict[str, tuple[str, str, str, float]] = {}

    def load_record(self, kind: str, key: str, data: dict) -> None:
        if kind == APP_KIND:
            self.apps[key] = data["client_secret"]
        elif kind == TOKEN_KIND:
            # Stored times come back as Decimal (exact JSON numbers); token arithmetic is in float seconds.
            self.tokens[key] = TokenRecord(
                **{
                    name: float(value) if isinstance(value, Decimal) else value
                    for name, value in data.items()
                }
            )

    def create_app(self) -> tuple[str, str]:
        client_id = "AB" + secrets.token_hex(20)
        client_secret = secrets.token_hex(20)
        self.apps[client_id] = client_secret
        self._persist(APP_KIND, client_id, {"client_secret": client_secret})
        return client_id, client_secret

    # --- client authentication and grants ----------------------------------------------------------------

    def authenticate_client(self, client_id: str | None, client_secret: str | None) -> str:
        if client_id is None or self.apps.get(client_id) != client_secret:
            raise OAuthError("invalid_client", "Client authentication failed", status=401)
        return client_id

    def authorization_code(self, client_id: str, realm_id: str, redirect_uri: str) -> str:
        if client_id not in self.apps:
            raise OAuthError("invalid_client", "Unknown client_id")
        code = "AB" + secrets.token_urlsafe(24)
        self._codes[code] = (client_id, realm_id, redirect_uri, time.time() + AUTHORIZATION_CODE_TTL_SECONDS)
        return code

    def exchange_code(self, client_id: str, code: str, redirect_uri: str) -> dict:
        granted = self._codes.pop(code, None)
        if granted is None or granted[0] != client_id or granted[3] < time.time():
            raise OAuthError("invalid_grant", "Invalid authorization code")
        if granted[2] != redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        return self._issue_pair(client_id, granted[1])

    def refresh(self, client_id: str, refresh_token: str) -> dict:
        record = self.tokens.get(refresh_token)
        now = time.time()
        grace = self._config().refresh_token_grace_seconds
        if (
            record is None
            or record.kind != "refresh"
            or record.client_id != client_id
            or record.revoked
            or record.expires_at < now
            or (record.superseded_at is not None and record.superseded_at + grace < now)
        ):
            raise OAuthError("invalid_grant", "Incorrect or invalid refresh token")
        if record.superseded_at is None:
            record.superseded_at = now
            self._save(refresh_token, record)
        return self._issue_pair(client_id, record.realm_id)

    def revoke(self, client_id: str, token: str) -> None:
        """Revoking either token of a connection disconnects it: every token of that realm and app dies."""
        record = self.tokens.get(token)
        if record is None or record.client_id != client_id:
            return
        self.revoke_connection(record.realm_id, client_id)

    def revoke_connection(self, realm_id: str, client_id: str | None = None) -> None:
        for token, record in self.tokens.items():
            if record.realm_id == realm_id and client_id in (None, record.client_id) and not record.revoked:
                record.revoked = True
                self._save(token, record)

    def revoke_access_token(self, token: str) -> None:
        record = self.tokens.get(token)
        if record is not None:
            record.revoked = True
            self._save(token, record)

    # --- bearer tokens -----------------------------------------------------------------------------------

    def access_token_problem(self, token: str | None, realm_id: str) -> str | None:
        """None when ``token`` may call ``realm_id``; otherwise why it may not."""
        record = self.tokens.get(token or "")
        if record is None or record.kind != "access":
            return "unknown access token"
        if record.revoked:
            return "access token revoked"
        if record.expires_at < time.time():
            return "access token expired"
        if record.realm_id != realm_id:
            return "access token issued for another company"
        return None

    def current_refresh_token(self, realm_id: str, client_id: str) -> str:
        """The newest live refresh token of the connection; a fresh connection when there is none."""
        now = time.time()
        live = [
            (record.issued_at, token)
            for token, record in self.tokens.items()
            if record.kind == "refresh"
            and record.realm_id == realm_id
            and record.client_id == client_id
            and not record.revoked
            and record.superseded_at is None
            and record.expires_at > now
        ]
        if live:
            return max(live)[1]
        return self._issue_pair(client_id, realm_id)["refresh_token"]

    def _issue_pair(self, client_id: str, realm_id: str) -> dict:
        config = self._config()
        now = time.time()
        access_token = "eyJ" + secrets.token_urlsafe(48)
        refresh_token = "RT1-" + secrets.token_urlsafe(32)
        self._save(
            access_token,
            TokenRecord("access", realm_id, client_id, now, now + config.access_token_ttl_seconds),
        )
        self._save(
            refresh_token,
            TokenRecord("refresh", realm_id, client_id, now, now + config.refresh_token_ttl_seconds),
        )
        return {
            "token_type": "bearer",
            "access_token": access_token,
            "refresh_token": refresh_token,
            "expires_in": int(config.access_token_ttl_seconds),
            "x_refresh_token_expires_in": int(config.refresh_token_ttl_seconds),
        }

    def _save(self, token: str, record: TokenRecord) -> None:
        self.tokens[token] = record
        self._persist(TOKEN_KIND, token, record.__dict__)
