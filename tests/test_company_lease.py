"""One writer per QuickBooks company (issue 10, case 1): the company lease, and loads, plans and retries racing
each other in real processes against the emulator, on SQLite and PostgreSQL. Zero duplicates, every object once."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from lease_children import QUICK, hold_until_killed, try_twice
from load_harness import (
    Firm,
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
from servers import postgres_connection

from qbo_emulator.admin import airflow_connection
from qbo_emulator.testing import running_emulator
from taxdome_qbo.services import loading, warehouse
from taxdome_qbo.services.company_lease import CompanyBusy, LeaseLost, LeaseTiming
from taxdome_qbo.services.company_lease import company_lease as lease_of

REPO = Path(__file__).resolve().parents[1]
SPAWN = multiprocessing.get_context("spawn")


def _spec(engine) -> dict:
    if engine.dialect.name == "sqlite":
        return {"sqlite": engine.url.database}
    with engine.connect() as conn:
        return {"postgres": conn.execute(sa.text("SELECT current_schema()")).scalar()}


def _killed_holder(engine, realm_id: str, machine: str | None = None):
    ready = SPAWN.Event()
    child = SPAWN.Process(target=hold_until_killed, args=(_spec(engine), realm_id, machine, ready))
    child.start()
    assert ready.wait(60), "the child never took the lease"
    child.kill()
    child.join()
    return child


def test_a_second_writer_in_another_process_refuses_naming_the_holder_and_since_when(warehouse_engine):
    answer, released = SPAWN.Queue(), SPAWN.Event()
    child = SPAWN.Process(target=try_twice, args=(_spec(warehouse_engine), "9130", answer, released))
    with lease_of(warehouse_engine, "9130", "plan task of run manual__1", timing=QUICK):
        child.start()
        refused = answer.get(timeout=60)
    released.set()
    assert "QuickBooks company 9130 is being written by plan task of run manual__1" in refused
    assert f"process {os.getpid()}" in refused and "holding it since" in refused and "UTC" in refused
    assert "wrote nothing" in refused
    # Released at the end of the block: the next writer gets it at once.
    assert answer.get(timeout=60) == "acquired"
    child.join()


def test_a_held_lease_outlives_its_expiry_through_the_heartbeat(warehouse_engine):
    with lease_of(warehouse_engine, "9131", "a long load", timing=QUICK) as held:
        time.sleep(QUICK.lease_seconds * 2.5)
        held.verify()
        with pytest.raises(CompanyBusy, match="a long load"):
            _take_in_another_thread(warehouse_engine, "9131", "intruder", wait_seconds=0)


def _take_in_another_thread(engine, realm_id: str, holder: str, wait_seconds: float) -> None:
    """Take and release the lease from a thread of its own (one that holds none); raises what it raised."""
    failure = []

    def take():
        try:
            with lease_of(engine, realm_id, holder, wait_seconds=wait_seconds, timing=QUICK):
                pass
        except CompanyBusy as busy:
            failure.append(busy)

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def test_a_holder_killed_on_another_machine_is_taken_over_after_its_lease_expires(warehouse_engine):
    _killed_holder(warehouse_engine, "9132", machine="another-host/boot")
    with pytest.raises(CompanyBusy, match="killed-holder"):
        _take_in_another_thread(warehouse_engine, "9132", "next writer", wait_seconds=0)
    started = time.monotonic()
    with lease_of(warehouse_engine, "9132", "next writer", wait_seconds=30, timing=QUICK) as taken:
        taken.verify()
    assert time.monotonic() - started < QUICK.lease_seconds + 5


def test_a_holder_killed_on_this_machine_is_taken_over_at_once(warehouse_engine):
    _killed_holder(warehouse_engine, "9133")
    with lease_of(warehouse_engine, "9133", "next writer", wait_seconds=0, timing=LeaseTiming()) as taken:
        taken.verify()


def test_a_holder_whose_lease_was_taken_over_is_stopped_by_verify(warehouse_engine):
    slow_heartbeat = LeaseTiming(lease_seconds=0.5, heartbeat_seconds=60, poll_seconds=0.05)
    with lease_of(warehouse_engine, "9134", "first writer", timing=slow_heartbeat) as first:
        time.sleep(0.8)
        # Another thread finds the lease expired and takes it: the first writer must not write any more.
        _take_in_another_thread(warehouse_engine, "9134", "second writer", wait_seconds=5)
        with pytest.raises(LeaseLost, match="first writer lost the lease of QuickBooks company 9134"):
            first.verify()


def test_a_thread_holding_the_lease_re_enters_it_and_only_the_outer_block_releases_it(warehouse_engine):
    with lease_of(warehouse_engine, "9135", "retry", timing=QUICK) as outer:
        with lease_of(warehouse_engine, "9135", "plan of run retry", wait_seconds=0) as inner:
            assert inner is outer
        outer.verify()
        with pytest.raises(CompanyBusy, match="retry"):
            _take_in_another_thread(warehouse_engine, "9135", "other", wait_seconds=0)
    with warehouse_engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(warehouse.qbo_company_leases)).scalar() == 0
        )


# -- racing writers against the emulator ---------------------------------------------------------------------
def _payments_off(firm: Firm) -> Firm:
    return Firm(firm.export, {**firm.settings, "sync_payments": False})


@pytest.fixture
def synced_without_payments(warehouse_engine, emulator, tmp_path):
    """A firm whose customers and invoices are synced and whose payments, fees and refunds are not yet: what
    a load leaves when those failed. Creating a payment twice is what QBO does not refuse."""
    firm = generated_firm(tmp_path / "export")
    company = seeded_company(emulator, firm)
    stage(warehouse_engine, firm.export)
    session = session_for(warehouse_engine, emulator, company)
    plan(warehouse_engine, session, _payments_off(firm), "run-without-payments")
    load(warehouse_engine, session, "run-without-payments")
    return firm, company


def _cli_environment(engine, base_url: str, company: dict, firm: Firm, tmp_path: Path) -> dict:
    if engine.dialect.name == "sqlite":
        connection = {"conn_type": "sqlite", "host": engine.url.database}
    else:
        connection = postgres_connection(_spec(engine)["postgres"])
    return {
        **os.environ,
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps(connection),
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT": json.dumps(airflow_connection(base_url, company)),
        "AIRFLOW_VAR_TAXDOME_QBO_SETTINGS": json.dumps(firm.settings),
        "TAXDOME_QBO_REPORTS_DIR": str(tmp_path / "reports"),
    }


def _retry(environment: dict, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "taxdome_qbo", "retry", "--all", *options],
        env=environment,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _payment_markers(emulator, realm_id: str) -> int:
    state = emulator.admin("GET", f"state/{realm_id}").json()["entities"]
    return sum(
        1 for p in state.get("Payment", []) if str(p.get("PrivateNote", "")).startswith("taxdome:payment:")
    )


@pytest.mark.airflow
def test_two_retries_started_together_create_every_object_once(
    warehouse_engine, emulator, synced_without_payments, tmp_path
):
    firm, company = synced_without_payments
    environment = _cli_environment(warehouse_engine, emulator.base_url, company, firm, tmp_path)

    retries = [_retry(environment, "--wait", "120") for _ in range(2)]
    results = [(process.wait(timeout=300), *process.communicate()) for process in retries]

    for _, out, err in results:
        # Exit 1 says objects failed: the demo company's vendor holds an account's name, whoever loads it.
        assert out.startswith("planned") or "\nplanned " in out, (out, err[-2000:])
    created = [out for _, out, _ in results if "payment: created" in out]
    assert len(created) == 1, "the retry that waited found everything done"
    assert _payment_markers(emulator, company["realm_id"]) > 0
    assert_qbo_matches_sync_state(warehouse_engine, emulator, company["realm_id"])


@pytest.mark.airflow
def test_a_retry_during_a_load_refuses_naming_the_load_and_nothing_is_duplicated(warehouse_engine, tmp_path):
    engine = warehouse_engine
    # Intuit's limits run on a 3-second "minute", so they do not make the load last minutes; each request
    # takes 0.15 s until the load has begun, then 5 s while the retry starts (however long a loaded machine
    # takes to start it), so the load is still holding the company when the retry asks for it.
    with running_emulator(latency_seconds=0.15, time_scale=0.05) as slow:
        firm = generated_firm(tmp_path / "export")
        company = seeded_company(slow, firm)
        stage(engine, firm.export)
        plan(engine, session_for(engine, slow, company), firm, "run-slow")
        loader = SPAWN.Process(
            target=load_in_this_process,
            args=(_spec(engine), slow.base_url, company, "run-slow", {"window_seconds": 3.0}, 2),
        )
        loader.start()
        before = request_count(slow, company["realm_id"])
        deadline = time.monotonic() + 120
        while not writes_since(slow, company["realm_id"], before) and time.monotonic() < deadline:
            time.sleep(0.1)
        slow.configure(latency_seconds=5.0)
        environment = _cli_environment(engine, slow.base_url, company, firm, tmp_path)

        refused = _retry(environment, "--wait", "0")
        code, out, err = refused.wait(timeout=300), *refused.communicate()
        assert loader.is_alive(), "the load ended before the retry ran: make it slower"
        slow.configure(latency_seconds=0.0)
        loader.join(timeout=300)

        assert code == 1, (out, err[-2000:])
        assert (
            "retry did not run: QuickBooks company" in err
            and "is being written by load of run run-slow" in err
        )
        assert "holding it since" in err
        assert loader.exitcode == 0
        assert_everything_planned_is_done(engine, company["realm_id"], "run-slow")
        assert_qbo_matches_sync_state(engine, slow, company["realm_id"])


def test_two_loads_of_one_plan_in_two_processes_create_every_object_once(
    warehouse_engine, emulator, synced_without_payments
):
    """Two attempts of one run's load at once (a task retried while the first still runs, batched differently:
    their batches' request ids differ, so QBO's replay alone would not stop the second copy)."""
    firm, company = synced_without_payments
    engine = warehouse_engine
    plan(engine, session_for(engine, emulator, company), firm, "run-twice")
    loaders = [
        SPAWN.Process(
            target=load_in_this_process,
            args=(_spec(engine), emulator.base_url, company, "run-twice", {}, size),
        )
        for size in (30, 7)
    ]
    for loader in loaders:
        loader.start()
    for loader in loaders:
        loader.join(timeout=300)

    assert [loader.exitcode for loader in loaders] == [0, 0]
    assert _payment_markers(emulator, company["realm_id"]) > 0
    assert_everything_planned_is_done(engine, company["realm_id"], "run-twice")
    assert_qbo_matches_sync_state(engine, emulator, company["realm_id"])


def test_a_plan_made_before_another_run_loaded_creates_nothing_twice(
    warehouse_engine, emulator, synced_without_payments
):
    """The DAG plans, a retry plans and loads (with other settings), then the DAG's load runs its older plan:
    what the retry created is not created again."""
    firm, company = synced_without_payments
    engine = warehouse_engine
    session = session_for(engine, emulator, company)
    plan(engine, session, firm, "run-dag")
    plan(engine, session, Firm(firm.export, {**firm.settings, "deposit_to_account": "Checking"}), "run-retry")
    load(engine, session, "run-retry")
    before = request_count(emulator, company["realm_id"])

    receipt = load(engine, session, "run-dag")

    assert not [w for w in writes_since(emulator, company["realm_id"], before) if w["operation"] != "update"]
    assert receipt.outcomes[("payment", "already_done")] > 0
    assert_qbo_matches_sync_state(engine, emulator, company["realm_id"])


def test_a_load_that_lost_its_lease_stops_before_its_next_batch(
    warehouse_engine, emulator, synced_without_payments
):
    firm, company = synced_without_payments
    engine = warehouse_engine
    session = session_for(engine, emulator, company)
    plan(engine, session, firm, "run-fenced")
    before = request_count(emulator, company["realm_id"])
    leases = warehouse.qbo_company_leases

    def taken_over(_progress: str) -> None:
        # What another writer does once this load's lease has expired unrenewed (a stalled heartbeat).
        with engine.begin() as conn:
            conn.execute(leases.update().values(token="f" * 32, holder="retry of another machine"))

    with pytest.raises(LeaseLost, match="taken over by retry of another machine"):
        loading.load_plan(
            engine,
            session,
            "run-fenced",
            options=loading.LoadOptions(batch_size=5, progress_every_seconds=0),
            progress=taken_over,
        )
    assert len(writes_since(emulator, company["realm_id"], before)) <= 1, "nothing sent after the takeover"

    with engine.begin() as conn:
        conn.execute(leases.delete())
    load(engine, session, "run-fenced")
    assert_everything_planned_is_done(engine, company["realm_id"], "run-fenced")
    assert_qbo_matches_sync_state(engine, emulator, company["realm_id"])
