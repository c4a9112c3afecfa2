"""HTTP routes: Intuit OAuth 2, the QBO Accounting API v3 and the emulator's admin API."""

import base64
import binascii
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from qbo_emulator import clock
from qbo_emulator.config import EmulatorConfig
from qbo_emulator.oauth import OAuthError
from qbo_emulator.service import SERVER_SEND_KEY, Emulator

DISCOVERY_PATHS = (
    "/.well-known/openid_configuration",
    "/.well-known/openid_configuration/",
    "/.well-known/openid_sandbox_configuration",
    "/.well-known/openid_sandbox_configuration/",
)
AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/oauth2/v1/tokens/revoke"
USERINFO_PATH = "/v1/openid_connect/userinfo"
JWKS_PATH = "/op/v1/jwks"


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None, None
    try:
        client_id, _, client_secret = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return client_id, client_secret


def _oauth_error(error: OAuthError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _add_oauth_routes(app: FastAPI, emulator: Emulator) -> None:
    async def discovery(request: Request) -> dict:
        base = str(request.base_url).rstrip("/")
        return {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}{AUTHORIZE_PATH}",
            "token_endpoint": f"{base}{TOKEN_PATH}",
            "userinfo_endpoint": f"{base}{USERINFO_PATH}",
            "revocation_endpoint": f"{base}{REVOKE_PATH}",
            "jwks_uri": f"{base}{JWKS_PATH}",
            "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }

    for path in DISCOVERY_PATHS:
        app.add_api_route(path, discovery, methods=["GET"], include_in_schema=False)

    @app.get(AUTHORIZE_PATH)
    async def authorize(
        client_id: str,
        redirect_uri: str,
        response_type: str = "code",
        state: str = "",
        scope: str = "",
        realm_id: str | None = None,
    ) -> Response:
        """Auto-approves; ``realm_id`` (emulator only) picks the company the user would choose."""
        chosen_realm = realm_id or next(iter(emulator.companies))
        if chosen_realm not in emulator.companies or response_type != "code":
            raise HTTPException(400, "unknown realm_id or unsupported response_type")
        try:
            code = emulator.oauth.authorization_code(client_id, chosen_realm, redirect_uri)
        except OAuthError as error:
            return _oauth_error(error)
        separator = "&" if "?" in redirect_uri else "?"
        query = urlencode({"code": code, "state": state, "realmId": chosen_realm})
        return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8")))
        grant_type = form.get("grant_type", "")
        try:
            client_id = emulator.oauth.authenticate_client(*_basic_credentials(request))
            if grant_type == "refresh_token":
                payload = emulator.oauth.refresh(client_id, form.get("refresh_token", ""))
            elif grant_type == "authorization_code":
                payload = emulator.oauth.exchange_code(
                    client_id, form.get("code", ""), form.get("redirect_uri", "")
                )
            else:
                raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}")
        except OAuthError as error:
            response = _oauth_error(error)
        else:
            response = JSONResponse(payload, headers={"Cache-Control": "no-store"})
        emulator.log.record(
            {
                "method": "POST",
                "path": TOKEN_PATH,
                "realm_id": "",
                "entity": "OAuth",
                "operation": grant_type or "token",
                "status": response.status_code,
                "requestid": None,
                "dropped": False,
                "time": clock.envelope_time(),
            }
        )
        return response

    @app.post(REVOKE_PATH)
    async def revoke(request: Request) -> Response:
        try:
            client_id = emulator.oauth.authenticate_client(*_basic_credentials(request))
            body = await request.json()
        except OAuthError as error:
            return _oauth_error(error)
        except ValueError:
            return _oauth_error(OAuthError("invalid_request", "The body must be JSON with a token"))
        emulator.oauth.revoke(client_id, str(body.get("token", "")))
        return Response(status_code=200)

    @app.get(USERINFO_PATH)
    async def userinfo(request: Request) -> dict:
        return {
            "sub": "emulated-user",
            "email": "owner@example.com",
            "emailVerified": True,
            "givenName": "Emulated",
            "familyName": "Owner",
        }

    @app.get(JWKS_PATH)
    async def jwks() -> dict:
        return {"keys": []}


def _add_accounting_routes(app: FastAPI, emulator: Emulator) -> None:
    @app.api_route("/v3/company/{realm_id}/{path:path}", methods=["GET", "POST"])
    async def accounting(request: Request, realm_id: str, path: str) -> Response:
        return await emulator.serve_accounting(request, realm_id, path)


def _add_admin_routes(app: FastAPI, emulator: Emulator) -> None:
    def known_realm(realm_id: str) -> str:
        if realm_id not in emulator.companies:
            raise HTTPException(404, f"unknown realm {realm_id}")
        return realm_id

    @app.get("/_emulator/health")
    async def health() -> dict:
        return {"status": "ok", "companies": len(emulator.companies)}

    @app.get("/_emulator/companies")
    async def companies() -> list[dict]:
        return [emulator.credentials(realm_id) for realm_id in emulator.companies]

    @app.post("/_emulator/companies")
    async def add_company() -> dict:
        return emulator.add_company()

    @app.post("/_emulator/companies/{realm_id}/revoke")
    async def revoke_company_tokens(realm_id: str) -> dict:
        emulator.oauth.revoke_connection(known_realm(realm_id))
        return {"revoked": realm_id}

    @app.post("/_emulator/reset")
    async def reset() -> list[dict]:
        emulator.reset()
        return [emulator.credentials(realm_id) for realm_id in emulator.companies]

    @app.get("/_emulator/state/{realm_id}")
    async def state(realm_id: str) -> Response:
        return Response(emulator.state_json(known_realm(realm_id)), media_type="application/json")

    @app.get("/_emulator/requests")
    async def requests_log(limit: int | None = None) -> dict:
        return emulator.log.summary(limit)

    @app.delete("/_emulator/requests")
    async def clear_requests_log() -> dict:
        emulator.log.clear()
        return {"cleared": True}

    @app.get("/_emulator/config")
    async def get_config() -> dict:
        return emulator.config.as_dict()

    @app.put("/_emulator/config")
    async def put_config(request: Request) -> dict:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            emulator.update_config(changes)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        return emulator.config.as_dict()


class EmulatorApp:
    """The ASGI application; it hands the server's own ``send`` down so a fault can drop the connection."""

    def __init__(self, db_path: str | None = None, config: EmulatorConfig | None = None):
        self.emulator = Emulator(db_path, config or EmulatorConfig())
        self.fastapi = FastAPI(title="QBO emulator", docs_url=None, redoc_url=None, openapi_url=None)
        _add_oauth_routes(self.fastapi, self.emulator)
        _add_accounting_routes(self.fastapi, self.emulator)
        _add_admin_routes(self.fastapi, self.emulator)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            scope[SERVER_SEND_KEY] = send
        await self.fastapi(scope, receive, send)


def create_app(db_path: str | None = None, config: EmulatorConfig | None = None) -> EmulatorApp:
    return EmulatorApp(db_path, config)
