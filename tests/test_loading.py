"""The loader against the QBO emulator (real client libraries over HTTP), on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import sqlalchemy as sa
from load_harness import (
    assert_everything_planned_is_done,
    assert_qbo_matches_sync_state,
    generated_firm,
    load,
    load_in_this_process,
    plan,
    request_count,
    seeded_company,
    session_for,
    stage,
    writes_since,
)

from qbo_emulator.testing import running_emulator
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
    warehouse_engine, chaotic_emulator, tmp_path
):
    """10% 5xx, 5% 429, 2% writes committed but their answers lost, short-lived tokens, and the load killed
    midway and run again: QBO ends with every planned object exactly once."""
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

    receipt = load(
        engine, session_for(engine, emulator, company, **FAST_THROTTLE), emulator, "run-chaos", batch_size=5
    )

    assert receipt.failed == 0, receipt.as_xcom()
    assert receipt.outcomes, "the second attempt did nothing"
    assert_everything_planned_is_done(engine, company["realm_id"], "run-chaos")
    assert_qbo_matches_sync_state(engine, emulator, company["realm_id"])
    served = emulator.admin("GET", "requests").json()
    statuses = {int(s) for s in served["counts_by_status"]}
    assert {429, 401}.issubset(statuses) and statuses & {500, 503}, served["counts_by_status"]
    assert any(r["dropped"] for r in served["requests"] if r["realm_id"] == company["realm_id"])
    assert 0 < audited_when_killed < planned.operations


def _audited(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(warehouse.qbo_requests)).scalar()
