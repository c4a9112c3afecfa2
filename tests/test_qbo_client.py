"""Connecting to QBO and reading its name lists, with the real libraries against the emulator."""

from __future__ import annotations

import time
from datetime import timedelta

import load_harness
import pytest
import sqlalchemy as sa
from quickbooks.batch import batch_create
from quickbooks.exceptions import AuthorizationException
from quickbooks.objects.account import Account
from quickbooks.objects.customer import Customer
from quickbooks.objects.preferences import Preferences
from quickbooks.objects.vendor import Vendor

from qbo_emulator.config import EmulatorConfig
from qbo_emulator.testing import EmulatorHandle, running_emulator
from taxdome_qbo.core import qbo_reference
from taxdome_qbo.hooks.quickbooks import deployment_token_cipher
from taxdome_qbo.services import warehouse
from taxdome_qbo.services.qbo_client import (
    ACTIVE_AND_INACTIVE,
    QboCredentials,
    connect,
    fetch_reference,
    open_session,
    query_all,
    quote,
)
from taxdome_qbo.services.warehouse import qbo_oauth_tokens

# Creating 1,000+ customers takes 34 batches; QBO's 40 per minute would throttle a second such test.
BATCHES_PER_MINUTE = 1000


@pytest.fixture(scope="module")
def emulator() -> EmulatorHandle:
    with running_emulator(batch_requests_per_minute=BATCHES_PER_MINUTE) as handle:
        yield handle


@pytest.fixture
def tuned_emulator(emulator: EmulatorHandle) -> EmulatorHandle:
    """The module's emulator, its start-up settings restored after the test."""
    yield emulator
    emulator.configure(**{**EmulatorConfig().as_dict(), "batch_requests_per_minute": BATCHES_PER_MINUTE})


@pytest.fixture
def credentials(emulator: EmulatorHandle, company: dict) -> QboCredentials:
    return load_harness.credentials(emulator, company)


@pytest.fixture
def engine(sqlite_engine):
    warehouse.create_schema(sqlite_engine)
    return sqlite_engine


@pytest.fixture
def session(credentials, engine):
    return open_session(credentials, load_harness.token_store(engine, credentials.realm_id))


def refresh_grants(emulator: EmulatorHandle) -> int:
    return emulator.admin("GET", "requests").json()["counts_by_operation"].get("refresh_token", 0)


def stored_refresh_token(engine) -> str:
    with engine.connect() as conn:
        row = conn.execute(sa.select(qbo_oauth_tokens.c.realm_id, qbo_oauth_tokens.c.refresh_token)).one()
    return deployment_token_cipher().decrypt(row.refresh_token, realm_id=row.realm_id)


def current_refresh_token(emulator: EmulatorHandle, company: dict) -> str:
    return next(c for c in emulator.companies() if c["realm_id"] == company["realm_id"])["refresh_token"]


def customer(name: str, *, active: bool = True) -> Customer:
    new = Customer()
    new.DisplayName = name
    new.Active = active
    return new


def test_connecting_reuses_the_stored_access_token(emulator, company, credentials, engine):
    grants_before = refresh_grants(emulator)

    first = connect(credentials, load_harness.token_store(engine, credentials.realm_id))
    second = connect(credentials, load_harness.token_store(engine, credentials.realm_id))

    assert refresh_grants(emulator) - grants_before == 1
    assert first.session.access_token == second.session.access_token
    assert second.get_single_object("CompanyInfo", company["realm_id"])["CompanyInfo"]["CompanyName"]
    assert stored_refresh_token(engine) == current_refresh_token(emulator, company)


def test_an_expired_access_token_is_refreshed_and_the_call_retried(
    tuned_emulator, company, credentials, engine
):
    tuned_emulator.configure(access_token_ttl_seconds=1)
    session = open_session(
        credentials, load_harness.token_store(engine, credentials.realm_id, safety_margin=timedelta(0))
    )
    expired_access_token = session.client.session.access_token
    time.sleep(1.1)
    grants_before = refresh_grants(tuned_emulator)

    customers = query_all(session, "Customer")

    assert customers == []
    assert refresh_grants(tuned_emulator) - grants_before == 1
    assert session.client.session.access_token != expired_access_token
    assert stored_refresh_token(engine) == current_refresh_token(tuned_emulator, company)


def test_a_call_is_retried_only_once(tuned_emulator, session):
    tuned_emulator.configure(fault_revoke_token_rate=1.0)  # every access token presented is revoked
    grants_before = refresh_grants(tuned_emulator)

    with pytest.raises(AuthorizationException) as refused:
        query_all(session, "Customer")

    assert refused.value.error_code == 401
    assert refresh_grants(tuned_emulator) - grants_before == 1


def test_paged_reads_return_every_customer_inactive_ones_included(emulator, session):
    names = [f"Client {number:04}" for number in range(1005)]
    inactive = set(names[::200])
    created = batch_create([customer(name, active=name not in inactive) for name in names], qb=session.client)
    assert not created.faults
    queries_before = emulator.admin("GET", "requests").json()["counts_by_operation"]["query"]

    every_customer = query_all(session, "Customer", ACTIVE_AND_INACTIVE)

    assert emulator.admin("GET", "requests").json()["counts_by_operation"]["query"] - queries_before == 2
    assert sorted(row["DisplayName"] for row in every_customer) == names
    assert {row["DisplayName"] for row in every_customer if not row["Active"]} == inactive
    assert len(query_all(session, "Customer")) == len(names) - len(inactive)


def test_names_with_quotes_and_backslashes_are_found_exactly(session):
    names = ["O'Brien & Sons", "O'Brien & Sons \\ Holdings", "O\\'Brien"]
    for name in names:
        customer(name).save(qb=session.client)

    for name in names:
        found = query_all(session, "Customer", f"DisplayName = {quote(name)}")
        assert [row["DisplayName"] for row in found] == [name]


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("Services", "'Services'"),
        ("O'Brien & Sons", "'O\\'Brien & Sons'"),
        ("back\\slash", "'back\\\\slash'"),
        ("\\'", "'\\\\\\''"),
        ("", "''"),
    ],
)
def test_quote_writes_a_qbo_string_literal(value, literal):
    assert quote(value) == literal


def test_query_all_refuses_anything_but_an_entity_name(session):
    with pytest.raises(ValueError, match="not a QBO entity name"):
        query_all(session, "Customer WHERE Id = '1'")


def test_fetch_reference_reads_the_company_name_lists(session):
    retired = Account()
    retired.Name = "Old clearing"
    retired.AccountType = "Bank"
    retired.Active = False
    retired.save(qb=session.client)
    customer("Dormant client", active=False).save(qb=session.client)
    supplier = Vendor()
    supplier.DisplayName = "Stripe, Inc."
    supplier.save(qb=session.client)

    reference = fetch_reference(session)

    assert reference.realm_id == session.realm_id
    assert tuple(reference.customers.columns) == qbo_reference.CUSTOMER_COLUMNS
    assert tuple(reference.customer_types.columns) == qbo_reference.CUSTOMER_TYPE_COLUMNS
    assert tuple(reference.items.columns) == qbo_reference.ITEM_COLUMNS
    assert tuple(reference.accounts.columns) == qbo_reference.ACCOUNT_COLUMNS
    assert tuple(reference.payment_methods.columns) == qbo_reference.PAYMENT_METHOD_COLUMNS
    assert reference.customers[["display_name", "active"]].values.tolist() == [["Dormant client", False]]
    assert reference.customer_types["name"].tolist() == ["Individual"]
    accounts = reference.accounts.set_index("name")
    assert {"Undeposited Funds", "Checking", "Services", "Commissions & fees"} <= set(accounts.index)
    assert not accounts.loc["Old clearing", "active"]
    assert accounts["id"].map(type).eq(str).all()
    services = reference.items.set_index("name").loc["Services"]
    assert (services["type"], services["active"]) == ("Service", True)
    assert services["income_account_id"] == accounts.loc["Services", "id"]
    assert {"Cash", "Check", "Visa"} <= set(reference.payment_methods["name"])
    assert reference.automated_sales_tax is False
    people = reference.vendors_and_employees
    assert tuple(people.columns) == qbo_reference.PERSON_COLUMNS
    assert people[["display_name", "entity", "active"]].values.tolist() == [["Stripe, Inc.", "Vendor", True]]


def test_fetch_reference_sees_automated_sales_tax(session):
    preferences = Preferences.get(qb=session.client)
    preferences.TaxPrefs.PartnerTaxEnabled = True
    preferences.save(qb=session.client)

    assert fetch_reference(session).automated_sales_tax is True
