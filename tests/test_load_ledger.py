"""The load ledger on its own: what it writes for each answer the loader hands it, without QBO."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from taxdome_qbo.core.qbo_faults import Fault
from taxdome_qbo.services import warehouse
from taxdome_qbo.services.load_ledger import LoadLedger, Operation
from taxdome_qbo.services.qbo_client import RequestStats

APP_URL = "https://app.example"
ACCOUNT = Operation(1, "account", "A1", "Customer", "create", "{}", "hash-a1", "new account")
INVOICE = Operation(2, "invoice", "I1", "Invoice", "create", "{}", "hash-i1", "new invoice")
FEE = Operation(3, "fee", "F1", "Purchase", "create", "{}", "hash-f1", "new fee")


@pytest.fixture
def progress() -> list[str]:
    return []


@pytest.fixture
def ledger(sqlite_engine, progress):
    warehouse.create_schema(sqlite_engine)
    session = SimpleNamespace(realm_id="realm-1", app_url=APP_URL, stats=RequestStats(requests=3))
    return LoadLedger(sqlite_engine, session, "run-1", progress.append, progress_every_seconds=3600)


def _rows(engine, table: sa.Table, *columns: str) -> set[tuple]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(*(table.c[name] for name in columns))))


def test_a_success_is_synced_with_its_link_once_the_batch_is_recorded(ledger):
    ledger.succeeded(ACCOUNT, "58", "0", "created", "rq-1")
    ledger.succeeded(FEE, "90", "0", "created", "rq-2")

    assert ledger.qbo_id_of("@account:A1") == "58"
    assert _rows(ledger.engine, warehouse.qbo_sync_state, "taxdome_id") == set()
    ledger.record()
    assert _rows(
        ledger.engine, warehouse.qbo_sync_state, "taxdome_id", "qbo_id", "status", "last_request_id"
    ) == {("A1", "58", "synced", "rq-1"), ("F1", "90", "synced", "rq-2")}
    # A fee has a status row only when it fails.
    assert _rows(ledger.engine, warehouse.sync_object_status, "taxdome_id", "status", "qbo_link") == {
        ("A1", "synced", f"{APP_URL}/customerdetail?nameId=58")
    }
    assert ledger.receipt.by_kind() == {"account": {"created": 1}, "fee": {"created": 1}}


def test_a_refusal_fails_the_object_and_what_needs_it_waits_naming_it(ledger):
    ledger.failed(ACCOUNT, Fault("6240", "Duplicate Name Exists Error", "The name supplied already exists."))
    ledger.dependency_missing(INVOICE, "@account:A1")
    ledger.record()

    with ledger.engine.connect() as conn:
        statuses = {row.taxdome_id: row for row in conn.execute(sa.select(warehouse.sync_object_status))}
    assert statuses["A1"].status == "failed"
    assert statuses["A1"].reason.startswith("could not create the account in QuickBooks: the name is already")
    assert statuses["I1"].status == "not_synced"
    assert statuses["I1"].reason == f"its account A1 is not in QuickBooks: {statuses['A1'].reason}"
    assert statuses["I1"].caused_by == "account:A1"
    assert ledger.qbo_id_of("@account:A1") is None
    assert ledger.receipt.failed == 1


def test_a_reference_that_failed_before_this_load_is_its_own_cause(ledger):
    ledger.dependency_missing(INVOICE, "@account:A9")
    ledger.record()

    assert _rows(ledger.engine, warehouse.sync_object_status, "taxdome_id", "reason", "caused_by") == {
        ("I1", "its account A9 is not in QuickBooks", "account:A9")
    }


def test_a_pending_write_is_written_before_sending_and_a_refused_update_keeps_the_object_synced(ledger):
    ledger.succeeded(ACCOUNT, "58", "0", "created", "rq-1")
    ledger.record()
    update = ACCOUNT._replace(action="update", payload_hash="hash-a1-v2")

    ledger.mark_pending([(update, "rq-3")])
    assert _rows(ledger.engine, warehouse.qbo_sync_state, "status", "pending_action", "last_request_id") == {
        ("synced", "update", "rq-3")
    }
    ledger.failed(update, Fault("6000", "Business Validation Error", "no"))
    ledger.record()
    assert _rows(ledger.engine, warehouse.qbo_sync_state, "qbo_id", "status", "pending_action") == {
        ("58", "synced", None)
    }


def test_progress_is_reported_when_due_or_forced_with_what_was_reached_of_the_plan(ledger, progress):
    ledger.planned = {("account", "create"): 2}
    ledger.reached(ACCOUNT)
    ledger.report()
    assert progress == []

    ledger.report(force=True)
    assert progress == [
        "QuickBooks load of run-1: account create 1/2 · requests 3, 429s 0, retries 0, token refreshes 0"
    ]


def _synced(engine, realm_id: str, kind: str, ids: list[str]) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "realm_id": realm_id,
            "taxdome_kind": kind,
            "taxdome_id": taxdome_id,
            "qbo_entity": "Customer",
            "qbo_id": f"q-{taxdome_id}",
            "payload_hash": f"hash-{taxdome_id}",
            "status": "synced",
            "updated_at": now,
        }
        for taxdome_id in ids
    ]
    with engine.begin() as conn:
        conn.execute(warehouse.qbo_sync_state.insert(), rows)


def test_the_ledger_holds_the_state_it_looked_up_not_the_companys(ledger):
    _synced(ledger.engine, "realm-1", "account", [f"A{n}" for n in range(1, 1_201)])
    _synced(ledger.engine, "realm-2", "account", ["A7"])

    wanted = {("account", f"A{n}") for n in range(1, 1_101)} | {("invoice", "I1")}  # 3 statements' worth

    ledger.look_up(wanted)

    assert set(ledger.state) == wanted
    assert sum(state is not None for state in ledger.state.values()) == 1_100
    assert ledger.known(ACCOUNT._replace(taxdome_id="A7")).qbo_id == "q-A7"  # this company's, not realm-2's
    assert ledger.known(INVOICE) is None  # looked up: it has none
    assert ledger.qbo_id_of("@account:A42") == "q-A42"  # not looked up: read when needed
    ledger.look_up([("fee", "F1")])
    assert set(ledger.state) == {("fee", "F1")}


def test_a_look_up_records_what_was_decided_before_forgetting_it(ledger):
    ledger.succeeded(ACCOUNT, "58", "0", "created", "rq-1")

    ledger.look_up([("invoice", "I1")])

    assert _rows(ledger.engine, warehouse.qbo_sync_state, "taxdome_id", "qbo_id") == {("A1", "58")}
    assert ledger.qbo_id_of("@account:A1") == "58"
