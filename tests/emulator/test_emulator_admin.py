"""The admin API under /_emulator and state that survives a restart."""

from decimal import Decimal

import httpx
import pytest
from quickbooks.exceptions import ObjectNotFoundException
from quickbooks.objects import Customer

from qbo_emulator import storage
from qbo_emulator.seed import SEED_ACCOUNTS, SEED_PAYMENT_METHODS
from qbo_emulator.testing import running_emulator
from tests.emulator.builders import customer, invoice


def test_companies_share_the_app_and_come_with_a_live_refresh_token(emulator, company):
    listed = emulator.companies()

    assert company in listed
    assert set(company) == {"realm_id", "company_name", "client_id", "client_secret", "refresh_token"}
    assert {entry["client_id"] for entry in listed} == {company["client_id"]}
    assert len({entry["realm_id"] for entry in listed}) == len(listed)
    assert Customer.count(qb=emulator.quickbooks(company)) == 0


def test_state_holds_the_seeded_company_and_every_entity(emulator, company, qb):
    buyer = customer(qb, "State Client")
    invoice(qb, buyer, "12.34")

    state = emulator.admin("GET", f"state/{company['realm_id']}").json()
    entities = state["entities"]

    assert [account["Name"] for account in entities["Account"]] == [name for _, name, _, _ in SEED_ACCOUNTS]
    assert [entry["Name"] for entry in entities["CustomerType"]] == ["Individual"]
    assert [(item["Name"], item["Type"], item["IncomeAccountRef"]["name"]) for item in entities["Item"]] == [
        ("Services", "Service", "Services")
    ]
    assert [method["Name"] for method in entities["PaymentMethod"]] == [
        name for name, _ in SEED_PAYMENT_METHODS
    ]
    assert [entry["DisplayName"] for entry in entities["Customer"]] == ["State Client"]
    assert entities["Customer"][0]["Balance"] == 12.34
    assert entities["Invoice"][0]["TotalAmt"] == 12.34
    assert {"CompanyInfo", "Preferences"} <= set(entities)
    assert httpx.get(f"{emulator.base_url}/_emulator/state/1").status_code == 404


def test_request_log_counts_by_status_and_operation(emulator, company, qb):
    customer(qb, "Logged Client")
    with pytest.raises(ObjectNotFoundException):
        Customer.get("999999", qb=qb)

    log = emulator.admin("GET", "requests", params={"limit": 1000}).json()
    mine = [entry for entry in log["requests"] if entry["realm_id"] == company["realm_id"]]

    assert [(entry["operation"], entry["entity"], entry["status"]) for entry in mine] == [
        ("create", "Customer", 200),
        ("read", "Customer", 400),
    ]
    assert set(mine[1]) == {
        "method",
        "path",
        "realm_id",
        "entity",
        "operation",
        "status",
        "requestid",
        "dropped",
        "time",
    }
    assert log["counts_by_status"]["400"] >= 1
    assert log["counts_by_operation"]["read"] >= 1


def test_config_is_validated(emulator):
    for bad in (
        {"no_such_setting": 1},
        {"fault_server_error_rate": 2},
        {"throttle_body": "xml"},
        {"requests_per_minute": "many"},
    ):
        assert httpx.put(f"{emulator.base_url}/_emulator/config", json=bad).status_code == 400
    assert emulator.admin("GET", "config").json()["requests_per_minute"] == 500


def test_reset_starts_over_with_one_new_company(tuned_emulator):
    before = tuned_emulator.companies()

    after = tuned_emulator.admin("POST", "reset").json()

    assert len(after) == 1
    assert after[0]["realm_id"] not in {entry["realm_id"] for entry in before}
    assert tuned_emulator.admin("GET", "requests").json()["total"] == 0
    assert Customer.count(qb=tuned_emulator.quickbooks(after[0])) == 0


def test_stored_records_load_back_equal_with_equal_values_one_object(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "DECODED_TOGETHER", 3)  # several decodes, as a large company takes
    records = [
        (
            "9130",
            "Invoice",
            str(number),
            {
                "Id": str(number),
                "TotalAmt": Decimal("800.00"),
                "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
                "Line": [{"Amount": Decimal("800.00"), "Description": f"Line {number}"}],
            },
        )
        for number in range(10)
    ]
    path = str(tmp_path / "state.sqlite")
    saved = storage.Storage(path)
    saved.write(records)
    saved.close()

    loaded = sorted(storage.Storage(path).load(), key=lambda record: int(record[2]))

    assert loaded == records
    assert len({id(data["CurrencyRef"]["name"]) for *_, data in loaded}) == 1
    assert len({id(line["Amount"]) for *_, data in loaded for line in data["Line"]}) == 1


def test_state_tokens_and_requestids_survive_a_restart(tmp_path):
    database = tmp_path / "emulator.sqlite"
    with running_emulator(db_path=database) as first_run:
        first_run.admin("POST", "companies")
        company = first_run.companies()[0]
        client = first_run.quickbooks(company)
        created = Customer()
        created.DisplayName = "Persistent Client"
        created = created.save(qb=client, request_id="td-persist-1")
        refresh_token = client.auth_client.refresh_token

    with running_emulator(db_path=database) as second_run:
        assert [entry["company_name"] for entry in second_run.companies()] == [
            "Emulated Company 1",
            "Emulated Company 2",
        ]
        assert second_run.companies()[0]["realm_id"] == company["realm_id"]
        auth_client = second_run.auth_client(company)
        auth_client.refresh(refresh_token=refresh_token)
        client = second_run.connect(auth_client, company["realm_id"])
        replayed = Customer()
        replayed.DisplayName = "Persistent Client"
        assert replayed.save(qb=client, request_id="td-persist-1").Id == created.Id
        assert Customer.get(created.Id, qb=client).Balance == Decimal(0)
