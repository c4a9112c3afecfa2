"""QuickBooks Online as an Airflow hook: connection `quickbooks_default`, tokens kept in the warehouse."""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook, Connection, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException
from quickbooks import QuickBooks
from sqlalchemy.engine import Engine

from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.paths import token_key_path
from taxdome_qbo.services import qbo_client, qbo_tokens, warehouse
from taxdome_qbo.services.qbo_client import QboCredentials, QboSession, RetryPolicy
from taxdome_qbo.services.qbo_connection import QboApp
from taxdome_qbo.services.qbo_rate import RateGovernor, RateLimits
from taxdome_qbo.services.qbo_tokens import QboDisconnectedError, TokenStore
from taxdome_qbo.services.token_cipher import TokenCipher, key_from_file, split_keys

# Refreshing tokens never redirects; the URI only matters to the connect command's authorization flow.
DEFAULT_REDIRECT_URI = "https://developer.intuit.com/v2/OAuth2Playground/RedirectUrl"
# What the Task SDK's configuration answers for a fernet_key no airflow.cfg or environment variable sets.
_UNSET_FERNET_KEY = "{FERNET_KEY}"
# Connection extras that tune the rate governor: an emulator with time-scaled minutes shrinks the window.
RATE_EXTRAS = {
    "rate_window_seconds": "window_seconds",
    "throttle_wait_seconds": "throttle_wait_seconds",
    "requests_per_minute": "requests_per_window",
    "batch_requests_per_minute": "batch_requests_per_window",
    "max_concurrent_requests": "max_concurrent",
}


def deployment_token_cipher(connection_extra: dict | None = None) -> TokenCipher:
    """The cipher of the stored QuickBooks tokens, on the deployment's keys.

    The QuickBooks connection's extra `token_encryption_key` encrypts when set, else Airflow's
    `[core] fernet_key` (`AIRFLOW__CORE__FERNET_KEY`), else the key file `taxdome_qbo.key` in the Airflow
    home, generated (0600) the first time nothing else is configured. Every one of them present decrypts
    (all comma-separated keys of a setting included), so adding a key first and keeping the old one rotates
    the tokens as they are refreshed.
    """
    keys = [
        (key, "the QuickBooks connection's extra token_encryption_key")
        for key in split_keys((connection_extra or {}).get("token_encryption_key"))
    ]
    airflow_keys = split_keys(conf.get("core", "fernet_key", fallback=""))
    if airflow_keys != [_UNSET_FERNET_KEY]:
        keys += [(key, "Airflow's [core] fernet_key") for key in airflow_keys]
    key_file = token_key_path()
    if file_key := key_from_file(key_file, create=not keys):
        keys.append((file_key, f"the key file {key_file}"))
    return TokenCipher(keys)


class QuickBooksHook(BaseHook):
    """Connects to one QuickBooks Online company through python-quickbooks and intuit-oauth.

    The connection (`AIRFLOW_CONN_QUICKBOOKS_DEFAULT`, JSON) holds the app's client id in `login`, its client
    secret in `password`, and extras `environment` (`sandbox`, `production`, or the base URL of a QBO
    emulator), `redirect_uri` (optional; the connect command's), `realm_id` (the company, until
    `python -m taxdome_qbo connect` makes one current in the warehouse) and `refresh_token` (only the first
    one of `realm_id`: the warehouse keeps the rotated ones, and the newest stored token always wins), and
    optionally `token_encryption_key` (Fernet keys encrypting the stored tokens; see `deployment_token_cipher`).

    :param quickbooks_conn_id: the QuickBooks connection id.
    :param warehouse_conn_id: the connection id of the warehouse that stores the OAuth tokens.
    """

    conn_name_attr = "quickbooks_conn_id"
    default_conn_name = "quickbooks_default"
    conn_type = "quickbooks"
    hook_name = "QuickBooks Online"

    def __init__(
        self,
        quickbooks_conn_id: str = default_conn_name,
        warehouse_conn_id: str = WarehouseHook.default_conn_name,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.quickbooks_conn_id = quickbooks_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def get_app(self) -> QboApp:
        """The Intuit app of the connection (client id, secret, environment, redirect URI); no company needed."""
        return self._app(self.get_connection(self.quickbooks_conn_id))

    def get_credentials(self) -> QboCredentials:
        """The app's credentials and the company the sync writes to (missing settings raise ValueError).

        The company is the current one in the warehouse once a company has been connected, else the
        connection's extra `realm_id`. The connection's `refresh_token` only seeds the connection's company.
        """
        conn = self.get_connection(self.quickbooks_conn_id)
        realm_id = self._current_realm_id(conn)
        app = self._app(conn, realm_needed=True, realm_id=realm_id)
        extra = conn.extra_dejson
        seeds_this_company = realm_id == str(extra.get("realm_id"))
        return app.credentials(
            realm_id,
            initial_refresh_token=(extra.get("refresh_token") or None) if seeds_this_company else None,
        )

    def current_realm_id(self) -> str | None:
        """The company the sync writes to: the current one in the warehouse, else the connection's realm_id."""
        return self._current_realm_id(self.get_connection(self.quickbooks_conn_id))

    def _current_realm_id(self, conn: Connection) -> str | None:
        with self.warehouse_engine.connect() as warehouse_conn:
            current = qbo_tokens.current_realm_id(warehouse_conn)
        realm_id = current or conn.extra_dejson.get("realm_id")
        return str(realm_id) if realm_id else None

    def _app(self, conn: Connection, *, realm_needed: bool = False, realm_id: str | None = None) -> QboApp:
        extra = conn.extra_dejson
        required = [("login (client id)", conn.login), ("password (client secret)", conn.password)]
        if realm_needed:
            required.append(("extra realm_id", realm_id))
        required.append(("extra environment", extra.get("environment")))
        missing = [name for name, value in required if not value]
        if missing:
            no_company = (
                " (or connect a company: python -m taxdome_qbo connect)"
                if realm_needed and not realm_id
                else ""
            )
            raise ValueError(f"connection {self.quickbooks_conn_id} lacks {', '.join(missing)}{no_company}")
        return QboApp(
            client_id=conn.login,
            client_secret=conn.password,
            environment=extra["environment"],
            redirect_uri=extra.get("redirect_uri") or DEFAULT_REDIRECT_URI,
        )

    @cached_property
    def token_cipher(self) -> TokenCipher:
        """What encrypts the company's tokens in the warehouse (see `deployment_token_cipher`)."""
        return deployment_token_cipher(self.get_connection(self.quickbooks_conn_id).extra_dejson)

    @cached_property
    def warehouse_engine(self) -> Engine:
        """The warehouse that keeps the companies' tokens (its schema created if needed)."""
        engine = WarehouseHook(self.warehouse_conn_id).get_engine()
        warehouse.create_schema(engine)
        return engine

    def get_session(self) -> QboSession:
        """A connected session whose `call` refreshes the access token once when QBO refuses it."""
        credentials = self.get_credentials()
        return qbo_client.open_session(
            credentials, TokenStore(self.warehouse_engine, credentials.realm_id, self.token_cipher)
        )

    def governed_session(self, nothing_is: str) -> QboSession:
        """A session on the connected company within its rate limits (`rate_limits`), shared by every process.

        Skips (AirflowSkipException, saying what is not done: `nothing_is`) when QuickBooks is not connected
        or was disconnected, naming the command that connects it.
        """
        try:
            session = self.get_session()
        except AirflowNotFoundException as exc:
            conn_id = self.quickbooks_conn_id
            raise AirflowSkipException(
                f"QuickBooks is not connected (no {conn_id} connection): nothing is {nothing_is}. Define the "
                f"connection with the Intuit app's client id and secret (AIRFLOW_CONN_{conn_id.upper()}, see "
                "docs/configuration.md), then connect the company with "
                "`python -m taxdome_qbo connect --realm <company id>` (or give the connection the extras "
                "realm_id and refresh_token), and run again."
            ) from exc
        except QboDisconnectedError as exc:
            raise AirflowSkipException(
                f"QuickBooks is disconnected: nothing is {nothing_is} ({exc}). Reconnect with "
                "`python -m taxdome_qbo reconnect --realm <company id>`, then run again."
            ) from exc
        session.govern(
            RateGovernor(self.warehouse_engine, session.realm_id, self.rate_limits()), RetryPolicy()
        )
        return session

    def rate_limits(self) -> RateLimits:
        """Intuit's limits, or what the connection's extras (`RATE_EXTRAS`) say: an emulator's time-scaled
        minute. A value that is not a number fails without retries."""
        extras = self.get_connection(self.quickbooks_conn_id).extra_dejson
        defaults = RateLimits()
        try:
            return RateLimits(
                **{
                    field: type(getattr(defaults, field))(extras[extra])
                    for extra, field in RATE_EXTRAS.items()
                    if extra in extras
                }
            )
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(
                f"connection {self.quickbooks_conn_id}: bad rate limit extra ({exc})"
            ) from exc

    def get_conn(self) -> QuickBooks:
        """A bare python-quickbooks client (it does not refresh by itself; `get_session` does)."""
        return self.get_session().client

    def test_connection(self) -> tuple[bool, str]:
        """Reads the company's name; (False, why) when that fails."""
        try:
            session = self.get_session()
            company_name = qbo_client.fetch_company_info(session)["CompanyName"]
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"
        return True, f"Connected to QuickBooks company {company_name!r} (realm {session.realm_id})"
