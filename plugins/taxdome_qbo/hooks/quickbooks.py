"""QuickBooks Online as an Airflow hook: connection `quickbooks_default`, tokens kept in the warehouse."""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook
from quickbooks import QuickBooks
from sqlalchemy.engine import Engine

from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.services import qbo_client, warehouse
from taxdome_qbo.services.qbo_client import QboCredentials, QboSession
from taxdome_qbo.services.qbo_tokens import TokenStore

# Refreshing tokens never redirects; the URI only matters to the connect command's authorization flow.
DEFAULT_REDIRECT_URI = "https://developer.intuit.com/v2/OAuth2Playground/RedirectUrl"


class QuickBooksHook(BaseHook):
    """Connects to one QuickBooks Online company through python-quickbooks and intuit-oauth.

    The connection (`AIRFLOW_CONN_QUICKBOOKS_DEFAULT`, JSON) holds the app's client id in `login`, its client
    secret in `password`, and extras `realm_id` (the company), `environment` (`sandbox`, `production`, or the
    base URL of a QBO emulator), `refresh_token` (only the first one: the warehouse keeps the rotated ones, and
    the newest stored token always wins) and optionally `redirect_uri`.

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

    def get_credentials(self) -> QboCredentials:
        """The app's credentials and the company, from the connection (missing extras raise ValueError)."""
        conn = self.get_connection(self.quickbooks_conn_id)
        extra = conn.extra_dejson
        missing = [
            name
            for name, value in (
                ("login (client id)", conn.login),
                ("password (client secret)", conn.password),
                ("extra realm_id", extra.get("realm_id")),
                ("extra environment", extra.get("environment")),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"connection {self.quickbooks_conn_id} lacks {', '.join(missing)}")
        return QboCredentials(
            client_id=conn.login,
            client_secret=conn.password,
            realm_id=str(extra["realm_id"]),
            environment=extra["environment"],
            redirect_uri=extra.get("redirect_uri") or DEFAULT_REDIRECT_URI,
            initial_refresh_token=extra.get("refresh_token") or None,
        )

    @cached_property
    def _warehouse_engine(self) -> Engine:
        engine = WarehouseHook(self.warehouse_conn_id).get_engine()
        warehouse.create_schema(engine)
        return engine

    def get_session(self) -> QboSession:
        """A connected session whose `call` refreshes the access token once when QBO refuses it."""
        credentials = self.get_credentials()
        return qbo_client.open_session(credentials, TokenStore(self._warehouse_engine, credentials.realm_id))

    def get_conn(self) -> QuickBooks:
        """A bare python-quickbooks client (it does not refresh by itself; `get_session` does)."""
        return self.get_session().client

    def fetch_reference(self) -> QboReference:
        """The company's customers, customer types, items, accounts, payment methods and sales tax mode."""
        session = self.get_session()
        reference = qbo_client.fetch_reference(session)
        self.log.info(
            "QuickBooks company %s: %d customers, %d items, %d accounts, %d payment methods, automated sales tax %s",
            session.realm_id,
            len(reference.customers),
            len(reference.items),
            len(reference.accounts),
            len(reference.payment_methods),
            "on" if reference.automated_sales_tax else "off",
        )
        return reference

    def test_connection(self) -> tuple[bool, str]:
        """Reads the company's name; (False, why) when that fails."""
        try:
            session = self.get_session()
            company_name = qbo_client.fetch_company_info(session)["CompanyName"]
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"
        return True, f"Connected to QuickBooks company {company_name!r} (realm {session.realm_id})"
