"""Intuit OAuth 2 through intuit-oauth: discovery, authorization code, rotation, expiry and revocation."""

import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks.exceptions import AuthorizationException
from quickbooks.objects import CompanyInfo, Customer


def test_discovery_document_points_every_endpoint_at_the_emulator(emulator, company):
    auth_client = emulator.auth_client(company)

    endpoints = [
        auth_client.auth_endpoint,
        auth_client.token_endpoint,
        auth_client.revoke_endpoint,
        auth_client.user_info_url,
        auth_client.jwks_uri,
        auth_client.issuer_uri,
    ]
    assert all(endpoint.startswith(emulator.base_url) for endpoint in endpoints)


def test_authorization_code_flow_connects_the_chosen_company(emulator, company):
    auth_client = emulator.auth_client(company)
    url = auth_client.get_authorization_url([Scopes.ACCOUNTING], state_token="csrf-123")

    redirect = httpx.get(f"{url}&realm_id={company['realm_id']}", follow_redirects=False)

    assert redirect.status_code == 302
    callback = parse_qs(urlparse(redirect.headers["location"]).query)
    assert (callback["state"], callback["realmId"]) == (["csrf-123"], [company["realm_id"]])
    auth_client.get_bearer_token(callback["code"][0], realm_id=company["realm_id"])
    assert auth_client.expires_in == 3600
    assert CompanyInfo.get(company["realm_id"], qb=emulator.connect(auth_client, company["realm_id"]))
    with pytest.raises(AuthClientError) as raised:
        auth_client.get_bearer_token(callback["code"][0], realm_id=company["realm_id"])
    assert raised.value.status_code == 400, "an authorization code is single-use"


def test_refresh_rotates_and_the_previous_token_lives_for_the_grace_period(tuned_emulator):
    tuned_emulator.configure(refresh_token_grace_seconds=1)
    company = tuned_emulator.admin("POST", "companies").json()
    auth_client = tuned_emulator.auth_client(company)
    original = company["refresh_token"]

    auth_client.refresh(refresh_token=original)
    rotated = auth_client.refresh_token
    auth_client.refresh(refresh_token=original)

    assert rotated != original
    assert auth_client.refresh_token not in (original, rotated)
    assert tuned_emulator.companies()[-1]["refresh_token"] == auth_client.refresh_token
    time.sleep(1.2)
    with pytest.raises(AuthClientError) as raised:
        auth_client.refresh(refresh_token=original)
    assert (raised.value.status_code, raised.value.content) == (
        400,
        b'{"error":"invalid_grant","error_description":"Incorrect or invalid refresh token"}',
    )
    auth_client.refresh()


def test_wrong_client_secret_is_invalid_client(emulator, company):
    with pytest.raises(AuthClientError) as raised:
        emulator.auth_client(company, client_secret="not-the-secret").refresh(
            refresh_token=company["refresh_token"]
        )
    assert raised.value.status_code == 401


def test_expired_access_token_is_401_until_refreshed(tuned_emulator):
    tuned_emulator.configure(access_token_ttl_seconds=1)
    company = tuned_emulator.admin("POST", "companies").json()
    client = tuned_emulator.quickbooks(company)
    assert Customer.count(qb=client) == 0

    time.sleep(1.2)
    with pytest.raises(AuthorizationException) as raised:
        Customer.count(qb=client)
    assert raised.value.error_code == 401

    client.auth_client.refresh()
    assert Customer.count(qb=tuned_emulator.connect(client.auth_client, company["realm_id"])) == 0


def test_revoking_a_token_disconnects_the_company(emulator, company):
    client = emulator.quickbooks(company)
    refresh_token = client.auth_client.refresh_token

    assert client.auth_client.revoke(token=refresh_token)

    with pytest.raises(AuthorizationException):
        Customer.count(qb=client)
    with pytest.raises(AuthClientError):
        client.auth_client.refresh(refresh_token=refresh_token)


def test_admin_revocation_and_reconnection(emulator, company):
    client = emulator.quickbooks(company)
    emulator.admin("POST", f"companies/{company['realm_id']}/revoke")

    with pytest.raises(AuthorizationException):
        Customer.count(qb=client)
    reconnected = next(entry for entry in emulator.companies() if entry["realm_id"] == company["realm_id"])
    assert Customer.count(qb=emulator.quickbooks(reconnected)) == 0
