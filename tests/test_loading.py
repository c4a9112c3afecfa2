"""The loader against the QBO emulator (real client libraries over HTTP), on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from export_builder import drop_row, replace_row, write_export
from load_harness import (
    BASE_FIRM_SETTINGS,
    Firm,
    assert_everything_planned_is_done,
    assert_qbo_matches_sync_state,
    company_for_base_export,
    generated_firm,
    load,
    load_in_this_process,
    objects_marked,
    plan,
    reconcile_now,
    request_count,
    seeded_company,
    session_for,
    stage,
    writes_since,
)
from quickbooks.objects import Invoice, Vendor

from qbo_emulator.testing import running_emulator
from taxdome_qbo.services import loading, warehouse

_APP_PAGE = {
    "Customer": "customerdetail?nameId=",
    "Item": "items?itemId=",
    "Invoice": "invoice?txnId=",
    "Payment": "recvpayment?txnId=",
    "CreditMemo": "creditmemo?txnId=",
    "RefundReceipt": "refundreceipt?txnId=",
}


@pytest.fixture
def firm(tmp_path):
    return generated_firm(tmp_path / "export")


def test_the_demo_firm_syncs_fully_and_a_rerun_writes_nothing(warehouse_engine, emulator, firm):
    engine = warehouse_engine
    company = seeded_company(emulator, firm)
    stage(engine, firm.export)
    session = session_for(engine, emulator, company)
    planned = plan(engine, session, firm, "run-1")

    receipt = load(engine, session, "run-1")

    assert receipt.failed == 0, receipt.as_xcom()
    done = sum(
        n for (_, outcome), n in receipt.outcomes.items() if outcome in ("created", "linked", "reactivated")
    )
    assert done == planned.operations
    assert_qbo_matches_sync_state(engine, emulator, company["realm_id"])
    with engine.connect() as conn:
        audited = conn.execute(sa.select(sa.func.count()).select_from(warehouse.qbo_requests)).scalar()
        status = warehouse.sync_object_status
        synced = conn.execute(
            sa.select(status.c.taxdome_kind, status.c.qbo_entity, status.c.qbo_id, status.c.qbo_link).where(
                status.c.run_id == "run-1", status.c.status == "synced"
            )
        ).all()
    links_planned = sum(
        n for key, n in planned.operations_by_kind_and_action.items() if key.endswith(".link")
    )
    assert audited == planned.operations - links_planned  # one audit row per write: no fault, no retry
    # Every synced object has its QuickBooks link (R16), but a payment made from credit, which adds nothing.
    assert all(row.qbo_id for row in synced if row.taxdome_kind != "payment")
    assert all(
        row.qbo_link == f"{emulator.base_url}/app/{_APP_PAGE[row.qbo_entity]}{row.qbo_id}"
        for row in synced
        if row.qbo_id
    )

    before = request_count(emulator, company["realm_id"])
    replanned = plan(engine, session, firm, "run-2")
    again = load(engine, session, "run-2")

    assert replanned.operations == 0
    assert writes_since(emulator, company["realm_id"], before) == []
    assert again.failed == 0


CHAOS = {
    "fault_seed": 11,
    "fault_server_error_rate": 0.10,
    "fault_throttle_rate": 0.05,
    "fault_drop_after_commit_rate": 0.02,
    "access_token_ttl_seconds": 2.0,  # expires again and again during the load
    "time_scale": 0.05,  # Intuit's limits per 3-second "minute"
}
FAST_THROTTLE = {"throttle_wait_seconds": 0.2, "window_seconds": 3.0}


@pytest.fixture(scope="module")
def chaotic_emulator():
    with running_emulator(**CHAOS) as handle:
        yield handle


def _warehouse_spec(engine) -> dict:
    if engine.dialect.name == "sqlite":
        return {"sqlite": engine.url.database}
    return {"postgres": engine.url.query.get("options", "") or _search_path(engine)}


def _search_path(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT current_schema()")).scalar()


def test_chaos_and_a_killed_load_leave_exactly_one_copy_of_everything(
    warehouse_engine, chaotic_emulator, tmp_path, monkeypatch
):
    """10% 5xx, 5% 429, 2% writes committed but their answers lost, short-lived tokens, and the load killed
    midway and run again: QBO ends with every planned object exactly once. The second attempt reads the sync
    state 12 operations at a time: windows span phases, and what it wrote is forgotten and read again."""
    emulator = chaotic_emulator
    engine = warehouse_engine
    firm = generated_firm(tmp_path / "export", accounts=30, seed=3)
    emulator.configure(fault_server_error_rate=0.0, fault_throttle_rate=0.0, fault_drop_after_commit_rate=0.0)
    company = seeded_company(emulator, firm)
    stage(engine, firm.export)
    session = session_for(engine, emulator, company, **FAST_THROTTLE)
    planned = plan(engine, session, firm, "run-chaos")
    emulator.configure(**CHAOS)

    child = multiprocessing.get_context("spawn").Process(
        target=load_in_this_process,
        args=(_warehouse_spec(engine), emulator.base_url, company, "run-chaos", FAST_THROTTLE, 5),
    )
    child.start()
    deadline = time.monotonic() + 60
    while _audited(engine) < planned.operations // 3 and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.is_alive(), "the load ended before it could be killed"
    child.kill()
    child.join()
    audited_when_killed = _audited(engine)
    monkeypatch.setattr(loading, "WINDOW_OPERATIONS", 12)

    receipt = load(engine, session_for(engine, emulator, company, **FAST_THROTTLE), "run-chaos", batch_size=5)

    assert receipt.failed == 0, receipt.as_xcom()
    assert receipt.outcomes, "the second attempt did nothing"
    assert_everything_planned_is_done(engine, company["realm_id"], "run-chaos")
    assert_qbo_matches_sync_state(engine, emulator, company["realm_id"])
    served = emulator.admin("GET", "requests").json()
    statuses = {int(s) for s in served["counts_by_status"]}
    assert {429, 401}.issubset(statuses) and statuses & {500, 503}, served["counts_by_status"]
    assert any(r["dropped"] for r in served["requests"] if r["realm_id"] == company["realm_id"])
    assert 0 < audited_when_killed < planned.operations
    reconciled, exceptions, _ = reconcile_now(
        engine,
        emulator,
        session_for(engine, emulator, company, **FAST_THROTTLE),
        "recon-chaos",
        firm.settings,
    )
    # The seeded vendor holds an account's name: that account fails and keeps its invoices and payments out
    # of QuickBooks. Only what follows from that may remain, unexplained (a failure never explains a
    # difference) and naming the failure; chaos adds nothing.
    kept_out_by_failure = _failed_or_kept_out_by_a_failure(engine, "run-chaos")
    unexplained = [e for e in exceptions if not e.explained]
    assert kept_out_by_failure, "the seeded vendor conflict should fail an account"
    assert reconciled.unexplained == len(unexplained)
    failed_payments = {taxdome_id for kind, taxdome_id in kept_out_by_failure if kind == "payment"}
    for e in unexplained:
        if e.difference_class == "missing_in_qbo":
            assert (e.object_kind, e.taxdome_id) in kept_out_by_failure, e
            assert "failed" in e.detail, e
        else:
            assert e.difference_class == "amount_mismatch", e
            named = e.detail.rsplit("failed or wait for a failure: ", 1)[-1].split(", ")
            assert set(named) <= failed_payments and named, e


def _failed_or_kept_out_by_a_failure(engine, run_id: str) -> set[tuple[str, str]]:
    table = warehouse.sync_object_status
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.taxdome_kind, table.c.taxdome_id).where(
                table.c.run_id == run_id, (table.c.status == "failed") | table.c.caused_by.is_not(None)
            )
        ).all()
    return {(row.taxdome_kind, row.taxdome_id) for row in rows}


def _audited(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(warehouse.qbo_requests)).scalar()


def _sync_export(engine, emulator, company, export, run_id, **plan_options):
    stage(engine, export)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), run_id, **plan_options)
    return load(engine, session, run_id)


def test_a_changed_invoice_is_updated_and_a_payment_gone_from_a_full_export_is_deleted_with_its_refund(
    warehouse_engine, emulator, tmp_path
):
    engine = warehouse_engine
    company = company_for_base_export(emulator)
    realm = company["realm_id"]
    first = _sync_export(engine, emulator, company, write_export(tmp_path / "e1"), "run-1")
    assert first.failed == 0, first.as_xcom()
    [(_, invoice_before)] = objects_marked(emulator, realm, "taxdome:invoice:I2")
    assert [entity for entity, _ in objects_marked(emulator, realm, "taxdome:fee:P1")] == ["Purchase"]

    newer = write_export(
        tmp_path / "e2",
        invoices_csv=replace_row(
            "invoices.csv", "I2,", "I2,INV-0002,A2,2026-01-06,,Unpaid,USD,,300.00,,2026-01-10T09:00:00Z"
        ),
        invoice_lines_csv=replace_row(
            "invoice_lines.csv", "I2,1,", "I2,1,S1,Tax return,,300.00,1,300.00,false"
        ),
        payments_csv=drop_row("payments.csv", "P1,"),
        payment_applications_csv=drop_row("payment_applications.csv", "P1,"),
        refunds_csv=drop_row("refunds.csv", "R1,"),
        payouts_csv=drop_row("payouts.csv", "PO1,"),
    )
    second = _sync_export(engine, emulator, company, newer, "run-2", allow_mass_delete=True)

    assert second.failed == 0, second.as_xcom()
    assert second.by_kind()["invoice"] == {"updated": 1}
    assert second.by_kind()["payment"] == {"deleted": 1}
    assert second.by_kind()["fee"] == {"deleted": 1} and second.by_kind()["refund"] == {"deleted": 1}
    [(_, invoice_after)] = objects_marked(emulator, realm, "taxdome:invoice:I2")
    assert invoice_after["Id"] == invoice_before["Id"]
    assert Decimal(str(invoice_after["TotalAmt"])) == Decimal("300.00")
    assert int(invoice_after["SyncToken"]) == int(invoice_before["SyncToken"]) + 1
    for gone in ("taxdome:payment:P1", "taxdome:fee:P1", "taxdome:refund:R1"):
        assert objects_marked(emulator, realm, gone) == [], gone
    assert_qbo_matches_sync_state(engine, emulator, realm)


def test_a_refused_object_fails_with_a_reason_its_dependents_wait_and_the_run_goes_on(
    warehouse_engine, emulator, tmp_path
):
    engine = warehouse_engine
    company = company_for_base_export(emulator)
    export = write_export(tmp_path / "e1")
    stage(engine, export)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), "run-1")
    # Between the plan and the load, someone adds a vendor with the name the plan gives a new customer.
    vendor = Vendor()
    vendor.DisplayName = "Zoë Müller"
    vendor.save(qb=emulator.quickbooks(company))

    receipt = load(engine, session, "run-1")

    assert receipt.by_kind()["account"] == {"created": 1, "failed": 1}
    assert receipt.by_kind()["invoice"] == {"created": 1, "not_synced": 1}
    status = warehouse.sync_object_status
    with engine.connect() as conn:
        verdicts = {
            (row.taxdome_kind, row.taxdome_id): (row.status, row.reason)
            for row in conn.execute(sa.select(status).where(status.c.run_id == "run-1"))
        }
        audit = conn.execute(
            sa.select(warehouse.qbo_requests).where(warehouse.qbo_requests.c.taxdome_id == "A2")
        ).one()
    assert verdicts[("account", "A2")][0] == "failed"
    assert "already used by another QuickBooks customer, vendor or employee" in verdicts[("account", "A2")][1]
    assert verdicts[("invoice", "I2")] == (
        "not_synced",
        f"its account A2 is not in QuickBooks: {verdicts[('account', 'A2')][1]}",
    )
    assert verdicts[("payment", "P2")][0] == "not_synced"
    assert verdicts[("invoice", "I1")][0] == verdicts[("payment", "P1")][0] == "synced"
    assert (audit.http_status, audit.fault_code, audit.operation) == (200, "6240", "create")

    # Renamed in QuickBooks, the vendor no longer blocks: the next plan creates the account and its invoice.
    vendor.DisplayName = "Zoë Müller (supplier)"
    vendor.save(qb=emulator.quickbooks(company))
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), "run-2")
    retried = load(engine, session, "run-2")
    assert retried.failed == 0 and retried.by_kind()["account"] == {"created": 1}
    assert_qbo_matches_sync_state(engine, emulator, company["realm_id"])


def test_an_object_changed_in_quickbooks_meanwhile_is_reread_and_updated_once(
    warehouse_engine, emulator, tmp_path
):
    engine = warehouse_engine
    company = company_for_base_export(emulator)
    realm = company["realm_id"]
    assert _sync_export(engine, emulator, company, write_export(tmp_path / "e1"), "run-1").failed == 0
    qb = emulator.quickbooks(company)
    [(_, invoice)] = objects_marked(emulator, realm, "taxdome:invoice:I2")
    edited = Invoice.get(invoice["Id"], qb=qb)
    edited.CustomerMemo = {"value": "Thank you!"}  # a bookkeeper's edit: the SyncToken we hold is stale now
    edited.save(qb=qb)
    newer = write_export(
        tmp_path / "e2",
        invoices_csv=replace_row(
            "invoices.csv",
            "I2,",
            "I2,INV-0002,A2,2026-01-06,2026-02-06,Unpaid,USD,,250.00,,2026-01-10T09:00:00Z",
        ),
    )

    receipt = _sync_export(engine, emulator, company, newer, "run-2")

    assert receipt.by_kind()["invoice"] == {"updated": 1}
    [(_, updated)] = objects_marked(emulator, realm, "taxdome:invoice:I2")
    assert updated["DueDate"] == "2026-02-06"
    with engine.connect() as conn:
        faults = (
            conn.execute(
                sa.select(warehouse.qbo_requests.c.fault_code).where(
                    warehouse.qbo_requests.c.run_id == "run-2"
                )
            )
            .scalars()
            .all()
        )
    assert sorted(faults, key=str) == sorted(["5010", None], key=str)
