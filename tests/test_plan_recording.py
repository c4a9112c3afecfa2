"""How a plan reaches the warehouse: its rows through the drivers' bulk paths exactly as given, and on SQLite
without holding the database's single write lock while the planner works."""

from __future__ import annotations

import sqlite3

import pyarrow as pa
import pytest
import sqlalchemy as sa
from export_builder import write_export

from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.demo.planning import demo_company
from taxdome_qbo.services import planning, staging, warehouse

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
        warehouse.append_arrow(
            conn, warehouse.sync_object_status, [statuses.slice(0, 3), statuses.slice(3)], **run
        )
        warehouse.append_arrow(conn, warehouse.sync_plan, [operations], **run)
        warehouse.append_arrow(conn, warehouse.sync_plan, [])  # nothing to append: nothing written

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


def test_appending_refuses_columns_it_would_write_without_their_type(sqlite_engine):
    warehouse.create_schema(sqlite_engine)
    with sqlite_engine.begin() as conn, pytest.raises(TypeError, match="planned_at"):
        warehouse.append_arrow(
            conn, warehouse.sync_plan_runs, [pa.table({"planned_at": ["2026-01-01"]})], run_id="r"
        )


def test_the_warehouse_takes_other_writes_while_a_plan_is_made(sqlite_engine, tmp_path, monkeypatch):
    """SQLite has one write lock: a plan that held it while the planner worked kept every other writer out
    (at 1M invoices for minutes, the company lease's heartbeat too, and the plan lost its lease)."""
    staging.stage_export(sqlite_engine, write_export(tmp_path / "export"))
    planned = planning.build_plan
    written_meanwhile = []

    def plan_while_another_writer_writes(*args, **kwargs):
        plan = planned(*args, **kwargs)
        other = sqlite3.connect(sqlite_engine.url.database, timeout=0)  # no waiting for the lock
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
