"""Batch, change data capture and requestid idempotency."""

import json
from datetime import datetime, timedelta

import pytest
from quickbooks.batch import BatchManager, batch_create, batch_delete, batch_update
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects import Customer, Invoice, Purchase

from tests.emulator.builders import account_named, customer, fee_purchase, invoice


def _new_customer(name: str) -> Customer:
    new = Customer()
    new.DisplayName = name
    return new


def _batch_url(qb) -> str:
    return f"{qb.api_url}/company/{qb.company_id}/batch"


def test_batch_runs_items_in_order_with_a_fault_per_failing_item(qb):
    taken = customer(qb, "Already Here")
    wanted = [_new_customer(name) for name in ("Batch One", "Already Here", "Batch Three")]
    request = BatchManager("create").list_to_batch_request(wanted)

    raw = qb.make_request("POST", _batch_url(qb), request.to_json())

    assert [item["bId"] for item in raw["BatchItemResponse"]] == [
        item.bId for item in request.BatchItemRequest
    ]
    fault = raw["BatchItemResponse"][1]["Fault"]
    assert fault["type"] == "ValidationFault"
    assert fault["Error"][0]["code"] == "6240"
    assert fault["Error"][0]["Detail"].endswith(f"Id={taken.Id}")

    result = batch_create([_new_customer("Batch Four"), _new_customer("Batch One")], qb=qb)
    assert [created.DisplayName for created in result.successes] == ["Batch Four"]
    assert [fault.Error[0].code for fault in result.faults] == ["6240"]


def test_batch_update_delete_and_query_items(qb):
    clearing, fees = account_named(qb, "Stripe Clearing"), account_named(qb, "Commissions & fees")
    fees_paid = [fee_purchase(qb, amount, clearing, fees) for amount in ("1.00", "2.00")]
    renamed = Customer.get(customer(qb, "Batch Rename").Id, qb=qb)
    renamed.DisplayName = "Batch Renamed"

    updated = batch_update([renamed], qb=qb)
    deleted = batch_delete([Purchase.get(fee.Id, qb=qb) for fee in fees_paid], qb=qb)
    queried = qb.make_request(
        "POST",
        _batch_url(qb),
        json.dumps({"BatchItemRequest": [{"bId": "q1", "Query": "SELECT COUNT(*) FROM Purchase"}]}),
    )

    assert [(item.DisplayName, item.SyncToken) for item in updated.successes] == [("Batch Renamed", "1")]
    assert not deleted.faults
    assert queried["BatchItemResponse"] == [{"bId": "q1", "QueryResponse": {"totalCount": 0}}]


def test_batch_beyond_30_operations_is_refused(qb):
    with pytest.raises(QuickbooksException) as raised:
        BatchManager("create", max_request_items=31).save(
            [_new_customer(f"Big {n}") for n in range(31)], qb=qb
        )

    assert raised.value.error_code == 6000
    assert Customer.count(qb=qb) == 0


def test_change_data_capture_reports_changes_and_deletions(qb):
    since = datetime.now() - timedelta(hours=20)  # naive: read in the company's time zone, as QBO does
    buyer = customer(qb, "CDC Client")
    removed = invoice(qb, buyer, "5.00")
    Invoice.get(removed.Id, qb=qb).delete(qb=qb)
    kept = invoice(qb, buyer, "7.00")

    changes = change_data_capture([Customer, Invoice], since, qb=qb)

    assert [changed.Id for changed in changes.Customer] == [buyer.Id]
    assert [(changed.Id, getattr(changed, "status", None)) for changed in changes.Invoice] == [
        (kept.Id, None),
        (removed.Id, "Deleted"),
    ]
    with pytest.raises(QuickbooksException):
        change_data_capture([Customer], datetime.now() - timedelta(days=31), qb=qb)


def _created_count(emulator, realm_id: str, entity: str) -> int:
    log = emulator.admin("GET", "requests").json()["requests"]
    return sum(
        1
        for entry in log
        if entry["realm_id"] == realm_id and entry["entity"] == entity and entry["operation"] == "create"
    )


def test_repeated_requestid_returns_the_first_response_and_writes_nothing(emulator, company, qb):
    first = _new_customer("Idempotent Client").save(qb=qb, request_id="td-account-42-v1")
    replayed = _new_customer("Some Other Name").save(qb=qb, request_id="td-account-42-v1")

    assert (replayed.Id, replayed.DisplayName, replayed.SyncToken) == (first.Id, "Idempotent Client", "0")
    assert Customer.count(qb=qb) == 1
    assert _created_count(emulator, company["realm_id"], "Customer") == 1
    log = emulator.admin("GET", "requests").json()["requests"]
    assert [
        entry["operation"]
        for entry in log
        if entry["requestid"] == "td-account-42-v1" and entry["realm_id"] == company["realm_id"]
    ] == ["create", "replay:create"]

    Customer.get(first.Id, qb=qb).save(qb=qb, request_id="td-account-42-v2")
    assert Customer.get(first.Id, qb=qb).SyncToken == "1"
    other_company = emulator.quickbooks(emulator.admin("POST", "companies").json())
    assert _new_customer("Idempotent Client").save(qb=other_company, request_id="td-account-42-v1").Id


def test_replayed_delete_answers_like_the_first_one(qb):
    fee = fee_purchase(qb, "3.00", account_named(qb, "Checking"), account_named(qb, "Bank charges"))

    first = fee.delete(qb=qb, request_id="td-fee-delete-1")
    again = fee.delete(qb=qb, request_id="td-fee-delete-1")

    assert first["Purchase"] == again["Purchase"] == {"status": "Deleted", "domain": "QBO", "Id": fee.Id}
    assert first["time"] == again["time"]


def test_only_successful_responses_are_remembered(qb):
    customer(qb, "Taken Name")
    with pytest.raises(QuickbooksException):
        _new_customer("Taken Name").save(qb=qb, request_id="td-retry-after-fix")

    assert _new_customer("Free Name").save(qb=qb, request_id="td-retry-after-fix").DisplayName == "Free Name"


def test_requestid_length_limits(qb):
    with pytest.raises(QuickbooksException) as raised:
        _new_customer("Long Id").save(qb=qb, request_id="x" * 51)
    assert raised.value.error_code == 6000
    assert _new_customer("Long Id").save(qb=qb, request_id="x" * 50).Id

    request = BatchManager("create").list_to_batch_request([_new_customer("Batch Long Id")])
    with pytest.raises(QuickbooksException):
        qb.make_request("POST", _batch_url(qb), request.to_json(), request_id="b" * 37)


def test_batch_replay_with_the_same_requestid_writes_once(qb):
    request = BatchManager("create").list_to_batch_request([_new_customer(f"Replayed {n}") for n in range(3)])

    first = qb.make_request("POST", _batch_url(qb), request.to_json(), request_id="td-batch-0001")
    second = qb.make_request("POST", _batch_url(qb), request.to_json(), request_id="td-batch-0001")

    assert first == second
    assert Customer.count(qb=qb) == 3
