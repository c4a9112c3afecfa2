"""The QuickBooks hook from an Airflow connection in the environment, against the emulator."""

from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.services import qbo_client, warehouse
from taxdome_qbo.services.qbo_client import endpoints_for, quickbooks_client
from taxdome_qbo.services.qbo_rate import RateLimits
from taxdome_qbo.services.qbo_tokens import TokenStore
from taxdome_qbo.services.warehouse import qbo_oauth_tokens


def set_quickbooks_connection(monkeypatch, company: dict, environment: str, **changes) -> None:
    connection = {
        "conn_type": "quickbooks",
        "login": company["client_id"],
        "password": company["client_secret"],
        "extra": {
            "realm_id": company["realm_id"],
            "environment": environment,
            "refresh_token": company["refresh_token"],
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps({**connection, **changes}))


@pytest.fixture
def hook(emulator, company, warehouse_file, monkeypatch) -> QuickBooksHook:
    set_quickbooks_connection(monkeypatch, company, emulator.base_url)
    return QuickBooksHook()


def test_the_connection_test_reads_the_company(hook, company, warehouse_file, caplog):
    caplog.set_level(logging.DEBUG)
    succeeded, message = hook.test_connection()

    assert succeeded, message
    assert company["realm_id"] in message
    assert "Emulated Company" in message
    engine = warehouse.sqlite_engine(str(warehouse_file))
    with engine.connect() as conn:
        stored = conn.execute(sa.select(qbo_oauth_tokens)).one()
    engine.dispose()
    assert (stored.realm_id, stored.status) == (company["realm_id"], "connected")
    refresh_token, access_token = (
        hook.token_cipher.decrypt(token, realm_id=stored.realm_id)
        for token in (stored.refresh_token, stored.access_token)
    )
    assert refresh_token != company["refresh_token"]  # rotated by the first refresh, and kept
    secrets = (company["client_secret"], company["refresh_token"], refresh_token, access_token)
    assert not [secret for secret in secrets if secret in caplog.text or secret in message]


def test_a_wrong_secret_fails_the_connection_test_without_showing_it(
    emulator, company, warehouse_file, monkeypatch
):
    set_quickbooks_connection(monkeypatch, company, emulator.base_url, password="not-the-secret")

    succeeded, message = QuickBooksHook().test_connection()

    assert not succeeded
    assert "invalid_client" in message
    assert "not-the-secret" not in message
    assert company["refresh_token"] not in message


def test_the_hooks_session_reads_the_company(hook, company):
    reference = qbo_client.fetch_reference(hook.get_session())

    assert reference.realm_id == company["realm_id"]
    assert "Services" in set(reference.items["name"])
    assert reference.customer_types["name"].tolist() == ["Individual"]


def test_get_conn_is_a_python_quickbooks_client_on_the_emulator(hook, emulator, company):
    client = hook.get_conn()

    assert client.api_url == emulator.api_url
    assert client.company_id == company["realm_id"]
    assert client.minorversion == 75


def test_credentials_come_from_the_connection_without_showing_secrets(hook, company, emulator):
    credentials = hook.get_credentials()

    assert (credentials.client_id, credentials.realm_id, credentials.environment) == (
        company["client_id"],
        company["realm_id"],
        emulator.base_url,
    )
    assert company["client_secret"] not in repr(credentials)
    assert company["refresh_token"] not in repr(credentials)


def test_a_connection_without_realm_or_environment_is_refused(company, warehouse_file, monkeypatch):
    set_quickbooks_connection(monkeypatch, company, "", extra={"refresh_token": company["refresh_token"]})

    with pytest.raises(ValueError, match="lacks extra realm_id, extra environment"):
        QuickBooksHook().get_credentials()


@pytest.mark.parametrize(
    ("environment", "api_url", "discovery"),
    [
        ("sandbox", "https://sandbox-quickbooks.api.intuit.com/v3", "sandbox"),
        ("production", "https://quickbooks.api.intuit.com/v3", "production"),
    ],
)
def test_intuit_environments_use_the_libraries_own_urls(environment, api_url, discovery, monkeypatch):
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    endpoints = endpoints_for(environment)
    # A stand-in for intuit-oauth's AuthClient, which would fetch Intuit's discovery document.
    auth_client = SimpleNamespace(
        environment=endpoints.oauth_environment,
        client_id="app",
        access_token="access",
        refresh_token="refresh",
    )

    client = quickbooks_client(auth_client, "4620816365", endpoints)

    assert endpoints.oauth_environment == discovery  # intuit-oauth maps it to Intuit's discovery document
    assert client.api_url == api_url
    assert client.sandbox is (environment == "sandbox")
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_an_emulator_url_points_both_libraries_at_it():
    endpoints = endpoints_for("http://127.0.0.1:8765/")

    assert endpoints.oauth_environment == "http://127.0.0.1:8765/.well-known/openid_configuration"
    assert endpoints.api_url_v3 == "http://127.0.0.1:8765/v3"
    assert (endpoints.emulated, endpoints.insecure_transport) == (True, True)
    assert endpoints_for("https://qbo-emulator.internal").insecure_transport is False


@pytest.mark.parametrize("environment", ["Sandbox", "prod", "ftp://127.0.0.1", "127.0.0.1:8765"])
def test_an_unknown_environment_is_refused(environment):
    with pytest.raises(ValueError, match="expected sandbox, production or an emulator's base URL"):
        endpoints_for(environment)


def test_the_governed_session_keeps_the_rate_limits_the_connection_sets(
    emulator, company, warehouse_file, monkeypatch
):
    extra = {
        "realm_id": company["realm_id"],
        "environment": emulator.base_url,
        "refresh_token": company["refresh_token"],
        "rate_window_seconds": "3",
        "requests_per_minute": 100,
    }
    set_quickbooks_connection(monkeypatch, company, emulator.base_url, extra=extra)

    session = QuickBooksHook().governed_session("read")

    assert session.governor.realm_id == company["realm_id"]
    assert session.governor.limits == RateLimits(window_seconds=3.0, requests_per_window=100)
    assert qbo_client.fetch_company_info(session)["CompanyName"].startswith("Emulated Company")
    assert session.stats.requests == 1, "the request went through the governor"


def test_a_rate_limit_extra_that_is_no_number_fails_without_retries(company, warehouse_file, monkeypatch):
    set_quickbooks_connection(monkeypatch, company, "sandbox", extra={"max_concurrent_requests": "ten"})

    with pytest.raises(AirflowFailException, match="connection quickbooks_default: bad rate limit extra"):
        QuickBooksHook().rate_limits()


def test_no_connection_or_a_disconnected_company_skips_saying_what_is_not_done(
    hook, company, warehouse_file, monkeypatch
):
    hook.get_session()  # stores the company's tokens
    TokenStore(hook.warehouse_engine, company["realm_id"], hook.token_cipher).mark_disconnected()
    with pytest.raises(AirflowSkipException, match="QuickBooks is disconnected: nothing is read") as skip:
        hook.governed_session("read")
    assert "python -m taxdome_qbo reconnect" in str(skip.value)

    monkeypatch.delenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT")
    with pytest.raises(AirflowSkipException, match="no quickbooks_default connection"):
        QuickBooksHook().governed_session("planned")
