"""How a plan reaches the warehouse: its rows through the drivers' bulk paths exactly as given, on SQLite
without holding the database's single write lock while the planner works, and all of it or nothing."""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import sqlite3
import time
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from export_builder import write_export

from taxdome_qbo.core.planner import PlanOptions, PlanRefused
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.demo.planning import demo_company
from taxdome_qbo.services import company_lease, planning, staging, warehouse

AWKWARD_TEXTS = ["", "plain", 'a "quoted", comma', "two\nlines", "Zoë Müller · 5 €", "\\N", "NULL"]


def test_appended_rows_keep_their_texts_nulls_and_numbers(warehouse_engine):
    warehouse.create_schema(warehouse_engine)
    texts = [*AWKWARD_TEXTS, None]
    statuses = pa.table(
        {
            "taxdome_kind": pa.array(["account"] * len(texts)),
            "taxdome_id": pa.array([f"A{n}" for n in range(len(texts))]),
            "status": pa.array(["synced"] * len(texts)),
            "reason": pa.array([text if text is not None else "none" for text in texts]),
            "caused_by": pa.array(texts),
        }
    )
    amounts = [0, -1_234, 2**62, None, 5]
    operations = pa.table(
        {
            "seq": pa.array(range(1, len(amounts) + 1), pa.int64()),
            "taxdome_kind": pa.array(["invoice"] * len(amounts)),
            "taxdome_id": pa.array([f"I{n}" for n in range(len(amounts))]),
            "qbo_entity": pa.array(["Invoice"] * len(amounts)),
            "action": pa.array(["create"] * len(amounts)),
            "amount_cents": pa.array(amounts, pa.int64()),
            "payload": pa.array(AWKWARD_TEXTS[: len(amounts)]),
            "payload_hash": pa.array(["0" * 64] * len(amounts)),
            "reason": pa.array(["r"] * len(amounts)),
        }
    )
    run = {"run_id": "run-1", "realm_id": "9130"}
    with warehouse_engine.begin() as conn:
        appending = functools.partial(warehouse.appending_arrow, warehouse_engine, conn=conn, **run)
        with appending(warehouse.sync_object_status, statuses.column_names) as write:
            write(statuses.slice(0, 3))
            write(statuses.slice(3))
        with appending(warehouse.sync_plan, operations.column_names) as write:
            write(operations)
        with appending(warehouse.sync_plan, operations.column_names):
            pass  # nothing to append: nothing written

    status, plan = warehouse.sync_object_status, warehouse.sync_plan
    with warehouse_engine.connect() as conn:
        read = conn.execute(
            sa.select(status.c.caused_by, status.c.run_id).order_by(status.c.taxdome_id)
        ).all()
        written = conn.execute(
            sa.select(plan.c.amount_cents, plan.c.payload, plan.c.realm_id).order_by(plan.c.seq)
        )
        assert [tuple(row) for row in written] == [
            (amount, text, "9130") for amount, text in zip(amounts, AWKWARD_TEXTS, strict=False)
        ]
    by_id = sorted(zip([f"A{n}" for n in range(len(texts))], texts, strict=True))
    assert [tuple(row) for row in read] == [(text, "run-1") for _, text in by_id]


def test_a_failed_append_says_why_and_keeps_whole_batches_only(sqlite_engine):
    warehouse.create_schema(sqlite_engine)
    run = {"run_id": "run-1", "realm_id": "9130"}
    statuses = pa.table(
        {
            "taxdome_kind": ["account"] * 3,
            "taxdome_id": ["A1", "A2", "A1"],  # the third is the first again: the key refuses it
            "status": ["synced"] * 3,
            "reason": ["r"] * 3,
        }
    )
    with (
        pytest.raises(RuntimeError, match="UNIQUE constraint failed"),
        warehouse.appending_arrow(
            sqlite_engine, warehouse.sync_object_status, statuses.column_names, **run
        ) as write,
    ):
        write(statuses.slice(0, 1))
        write(statuses.slice(1))  # the writer's error comes from a later write or the block's end
    with sqlite_engine.connect() as conn:
        kept = conn.execute(sa.select(warehouse.sync_object_status.c.taxdome_id)).scalars().all()
    assert kept == ["A1"]


def test_appending_refuses_columns_it_would_write_without_their_type(sqlite_engine):
    warehouse.create_schema(sqlite_engine)
    with (
        pytest.raises(TypeError, match="planned_at"),
        warehouse.appending_arrow(sqlite_engine, warehouse.sync_plan_runs, ["planned_at"], run_id="r"),
    ):
        pass


def test_the_warehouse_takes_other_writes_while_a_plan_is_made(sqlite_engine, tmp_path, monkeypatch):
    """SQLite has one write lock: a plan that held it while the planner worked kept every other writer out
    (at 1M invoices for minutes, the company lease's heartbeat too, and the plan lost its lease)."""
    staging.stage_export(sqlite_engine, write_export(tmp_path / "export"))
    planned = planning.build_plan
    written_meanwhile = []

    def plan_while_another_writer_writes(*args, **kwargs):
        plan = planned(*args, **kwargs)
        # Waiting at most for one batch of operations (a short transaction), not for the plan.
        other = sqlite3.connect(sqlite_engine.url.database, timeout=5)
        with other:
            other.execute("UPDATE qbo_company_leases SET holder = holder")
        other.close()
        written_meanwhile.append(True)
        return plan

    monkeypatch.setattr(planning, "build_plan", plan_while_another_writer_writes)
    receipt = planning.plan_sync(
        sqlite_engine, demo_company(), FirmSettings(), PlanOptions(), "run-1", dry_run=True
    )

    assert written_meanwhile and receipt.operations > 0
    with sqlite_engine.connect() as conn:
        recorded = conn.execute(sa.select(sa.func.count()).select_from(warehouse.sync_plan)).scalar_one()
    assert recorded == receipt.operations


PLAN_TABLES = (warehouse.sync_plan, warehouse.sync_object_status, warehouse.sync_plan_runs)


def runs_in(engine) -> dict[str, list[str]]:
    """The runs each plan table holds rows of."""
    with engine.connect() as conn:
        return {
            table.name: conn.execute(sa.select(table.c.run_id).distinct()).scalars().all()
            for table in PLAN_TABLES
        }


def plan_run(engine, run_id: str) -> planning.PlanReceipt:
    return planning.plan_sync(engine, demo_company(), FirmSettings(), PlanOptions(), run_id, dry_run=True)


def test_a_plan_failing_after_its_operations_were_written_leaves_nothing(
    warehouse_engine, tmp_path, monkeypatch
):
    staging.stage_export(warehouse_engine, write_export(tmp_path / "export"))
    assert plan_run(warehouse_engine, "earlier").operations > 0
    planned = planning.build_plan

    def refused_once_planned(*args, **kwargs):
        planned(*args, **kwargs)  # every operation handed to the writer
        raise PlanRefused("refused at the very end")

    monkeypatch.setattr(planning, "build_plan", refused_once_planned)
    with pytest.raises(PlanRefused, match="at the very end"):
        plan_run(warehouse_engine, "refused")

    assert runs_in(warehouse_engine) == {table.name: ["earlier"] for table in PLAN_TABLES}


def test_a_plan_whose_lease_is_taken_over_writes_nothing_more(warehouse_engine, tmp_path, monkeypatch):
    staging.stage_export(warehouse_engine, write_export(tmp_path / "export"))
    planned = planning.build_plan

    def taken_over_while_planning(*args, **kwargs):
        # What another writer does once this plan's lease has expired unrenewed (a stalled heartbeat).
        with warehouse_engine.begin() as conn:
            conn.execute(warehouse.qbo_company_leases.update().values(token="f" * 32, holder="another plan"))
        return planned(*args, **kwargs)

    monkeypatch.setattr(planning, "build_plan", taken_over_while_planning)
    with pytest.raises(company_lease.LeaseLost, match="taken over by another plan"):
        plan_run(warehouse_engine, "fenced")

    assert runs_in(warehouse_engine) == {table.name: [] for table in PLAN_TABLES}


def test_a_plan_retried_replaces_the_operations_its_first_attempt_left(sqlite_engine, tmp_path):
    """A plan task killed while it wrote leaves operations of a run not planned; its retry starts afresh."""
    staging.stage_export(sqlite_engine, write_export(tmp_path / "export"))
    first = plan_run(sqlite_engine, "retried")
    with sqlite_engine.begin() as conn:  # what a kill before the last transaction leaves
        for table in (warehouse.sync_object_status, warehouse.sync_plan_runs):
            conn.execute(table.delete())
        conn.execute(warehouse.sync_plan.update().values(reason="left by the killed attempt"))

    again = plan_run(sqlite_engine, "retried")

    assert again.operations == first.operations
    with sqlite_engine.connect() as conn:
        reasons = conn.execute(sa.select(warehouse.sync_plan.c.reason)).scalars().all()
    assert len(reasons) == again.operations and "left by the killed attempt" not in reasons


def plan_and_hang(database: str) -> None:
    """A plan task that has handed every operation to its writer, then hangs until killed."""
    planned = planning.build_plan

    def hang_once_planned(*args, **kwargs):
        planned(*args, **kwargs)
        time.sleep(3600)

    planning.build_plan = hang_once_planned
    plan_run(warehouse.sqlite_engine(database), "killed")


def sqlite_writers() -> list[str]:
    """The SQLite writer processes running on this machine (their pids)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if b"taxdome_qbo.services.sqlite_arrow\0append" in cmdline.read_bytes():
                found.append(cmdline.parent.name)
    return found


def test_a_plan_killed_while_it_writes_is_not_planned_and_its_retry_starts_afresh(sqlite_engine, tmp_path):
    staging.stage_export(sqlite_engine, write_export(tmp_path / "export"))
    plan = warehouse.sync_plan
    child = multiprocessing.get_context("spawn").Process(
        target=plan_and_hang, args=(sqlite_engine.url.database,)
    )
    child.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sqlite_engine.connect() as conn:
                written = conn.execute(sa.select(sa.func.count()).select_from(plan)).scalar_one()
            if written:
                break
            time.sleep(0.2)
        assert written, "the plan wrote no operation"
    finally:
        child.kill()
        child.join()
    deadline = time.monotonic() + 30
    while sqlite_writers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sqlite_writers(), "the killed plan's writer went on"
    assert runs_in(sqlite_engine)["sync_plan_runs"] == []  # written, but not planned

    again = plan_run(sqlite_engine, "killed")  # the lease of a process gone from this machine is taken over

    with sqlite_engine.connect() as conn:
        recorded = conn.execute(sa.select(sa.func.count()).select_from(plan)).scalar_one()
    assert recorded == again.operations
    assert runs_in(sqlite_engine) == {table.name: ["killed"] for table in PLAN_TABLES}
