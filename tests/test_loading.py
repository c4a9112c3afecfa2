"""The loader against the QBO emulator (real client libraries over HTTP), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from load_harness import (
    assert_qbo_matches_sync_state,
    generated_firm,
    load,
    plan,
    request_count,
    seeded_company,
    session_for,
    stage,
    writes_since,
)

from taxdome_qbo.services import warehouse

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

    receipt = load(engine, session, emulator, "run-1")

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
    again = load(engine, session, emulator, "run-2")

    assert replanned.operations == 0
    assert writes_since(emulator, company["realm_id"], before) == []
    assert again.failed == 0
