"""Throttling (429 as JSON and as HTML), batch limits and seeded fault injection, on a separate emulator."""

import threading
import time

import pytest
import requests
from quickbooks.batch import BatchManager, batch_create
from quickbooks.exceptions import AuthorizationException, QuickbooksException, ValidationException
from quickbooks.objects import Customer

# A "minute" of 1.2 s keeps QBO's ratios while the tests wait only briefly for a window to pass.
FAST_MINUTE = {"time_scale": 0.02}


@pytest.fixture
def company(tuned_emulator) -> dict:
    return tuned_emulator.admin("POST", "companies").json()


@pytest.fixture
def qb(tuned_emulator, company):
    return tuned_emulator.quickbooks(company)


def _new_customer(name: str) -> Customer:
    new = Customer()
    new.DisplayName = name
    return new


def test_requests_beyond_the_per_minute_limit_get_a_json_429(tuned_emulator, qb):
    tuned_emulator.configure(requests_per_minute=5, **FAST_MINUTE)
    for _ in range(5):
        Customer.count(qb=qb)

    with pytest.raises(ValidationException) as raised:
        Customer.count(qb=qb)

    assert raised.value.error_code == 3001
    assert raised.value.message == "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    time.sleep(1.3)
    assert Customer.count(qb=qb) == 0


def test_new_limits_count_requests_from_when_they_are_set(tuned_emulator, qb):
    """A company seeded unthrottled is then read under QBO's limits, not refused for the seeding's window."""
    tuned_emulator.configure(requests_per_minute=10**9)
    for _ in range(8):
        Customer.count(qb=qb)
    tuned_emulator.configure(requests_per_minute=5)

    for _ in range(5):
        assert Customer.count(qb=qb) == 0
    with pytest.raises(ValidationException, match="ThrottleExceeded"):
        Customer.count(qb=qb)


def test_non_json_429_reaches_python_quickbooks_as_error_10000(tuned_emulator, qb):
    tuned_emulator.configure(requests_per_minute=1, throttle_body="text", **FAST_MINUTE)
    Customer.count(qb=qb)

    with pytest.raises(QuickbooksException) as raised:
        Customer.count(qb=qb)

    assert raised.value.error_code == 10000
    assert "ThrottleExceeded" in raised.value.message


def test_batch_requests_per_minute_and_operations_per_batch(tuned_emulator, qb):
    tuned_emulator.configure(batch_requests_per_minute=2, max_batch_items=2, **FAST_MINUTE)
    batch_create([_new_customer("Batch A")], qb=qb)
    batch_create([_new_customer("Batch B")], qb=qb)

    with pytest.raises(ValidationException) as throttled:
        batch_create([_new_customer("Batch C")], qb=qb)
    time.sleep(1.3)
    with pytest.raises(QuickbooksException) as oversized:
        BatchManager("create", max_request_items=3).save([_new_customer(f"Big {n}") for n in range(3)], qb=qb)

    assert throttled.value.error_code == 3001
    assert oversized.value.error_code == 6000
    assert Customer.count(qb=qb) == 2


def test_more_than_the_concurrent_limit_gets_429(tuned_emulator, company):
    tuned_emulator.configure(max_concurrent_requests=2, latency_seconds=0.4)
    clients = [tuned_emulator.quickbooks(company) for _ in range(4)]
    start = threading.Barrier(len(clients))
    outcomes: list[str] = []

    def count_customers(client) -> None:
        start.wait()
        try:
            Customer.count(qb=client)
            outcomes.append("ok")
        except ValidationException as error:
            outcomes.append(str(error.error_code))

    threads = [threading.Thread(target=count_customers, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["3001", "3001", "ok", "ok"]


def _outcomes(qb, count: int) -> list[str]:
    outcomes = []
    for _ in range(count):
        try:
            Customer.count(qb=qb)
            outcomes.append("ok")
        except QuickbooksException as error:
            outcomes.append(str(error.error_code))
    return outcomes


def test_injected_faults_follow_the_seed(tuned_emulator, qb):
    tuned_emulator.configure(fault_seed=7, fault_server_error_rate=0.4, fault_throttle_rate=0.2)
    first = _outcomes(qb, 15)
    tuned_emulator.configure(fault_seed=7)
    second = _outcomes(qb, 15)

    assert first == second
    assert {"ok", "10000", "3001"} <= set(first), "5xx pages are not JSON, so python-quickbooks says 10000"
    counts = tuned_emulator.admin("GET", "requests").json()["counts_by_status"]
    assert {"500", "503", "429", "200"} <= set(counts)


def test_slow_responses(tuned_emulator, qb):
    tuned_emulator.configure(fault_slow_rate=1.0, fault_slow_seconds=0.3)
    started = time.perf_counter()

    Customer.count(qb=qb)

    assert time.perf_counter() - started >= 0.3


def test_write_committed_then_connection_dropped_is_recovered_by_requestid(tuned_emulator, qb):
    tuned_emulator.configure(fault_drop_after_commit_rate=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        _new_customer("Lost Response").save(qb=qb, request_id="td-lost-1")
    assert Customer.count(qb=qb) == 1, "reads are never dropped, and the write was committed"

    tuned_emulator.configure(fault_drop_after_commit_rate=0.0)
    retried = _new_customer("Lost Response").save(qb=qb, request_id="td-lost-1")

    assert retried.DisplayName == "Lost Response"
    assert Customer.count(qb=qb) == 1


def test_injected_token_revocation_is_a_401_and_a_refresh_recovers(tuned_emulator, company, qb):
    tuned_emulator.configure(fault_revoke_token_rate=1.0)
    with pytest.raises(AuthorizationException):
        Customer.count(qb=qb)

    tuned_emulator.configure(fault_revoke_token_rate=0.0)
    qb.auth_client.refresh()
    assert Customer.count(qb=tuned_emulator.connect(qb.auth_client, company["realm_id"])) == 0
