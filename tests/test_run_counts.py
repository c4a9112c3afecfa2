"""A run's counts as the view shows them (kept by the plan and the load, never counted on a visit) are its rows
counted afresh: after the plan, after every batch of the load, after the load and after a retry, on SQLite and
PostgreSQL; the migration that adds them counts the runs already in the warehouse."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from export_builder import write_export
from load_harness import (
    BASE_FIRM_SETTINGS,
    Firm,
    company_for_base_export,
    deployment_on_emulator,
    plan,
    session_for,
    stage,
)
from quickbooks.objects import Vendor

from taxdome_qbo import migrations
from taxdome_qbo.cli import main as cli_main
from taxdome_qbo.services import loading, ui_pages, warehouse


def _whole(value) -> int | None:
    return None if value is None else int(value)


def counted_afresh(engine: sa.Engine, run_id: str) -> tuple[dict, dict]:
    """The run's operations (and amounts) per kind and action and its objects per kind and status, grouped
    from its rows now."""
    plan_rows, status = warehouse.sync_plan, warehouse.sync_object_status
    with engine.connect() as conn:
        operations = conn.execute(
            sa.select(
                plan_rows.c.taxdome_kind,
                plan_rows.c.action,
                sa.func.count(),
                sa.func.sum(plan_rows.c.amount_cents),
            )
            .where(plan_rows.c.run_id == run_id)
            .group_by(plan_rows.c.taxdome_kind, plan_rows.c.action)
        )
        objects = conn.execute(
            sa.select(status.c.taxdome_kind, status.c.status, sa.func.count())
            .where(status.c.run_id == run_id)
            .group_by(status.c.taxdome_kind, status.c.status)
        )
        return (
            {(kind, action): (int(n), _whole(amount)) for kind, action, n, amount in operations},
            {(kind, verdict): int(n) for kind, verdict, n in objects},
        )


def shown(engine: sa.Engine, run_id: str) -> tuple[dict, dict]:
    """The same counts as the sync-run page shows them."""
    view = ui_pages.sync_run(engine, run_id)
    return (
        {(r.taxdome_kind, r.action): (int(r.operations), _whole(r.amount_cents)) for r in view.plan_counts},
        {(r.taxdome_kind, r.status): int(r.objects) for r in view.status_counts},
    )


def test_the_counts_are_the_rows_after_the_plan_a_replanning_every_batch_of_the_load_and_the_load(
    warehouse_engine, emulator, tmp_path
):
    engine = warehouse_engine
    company = company_for_base_export(emulator)
    export = write_export(tmp_path / "export")
    stage(engine, export)
    session = session_for(engine, emulator, company)
    firm = Firm(export, BASE_FIRM_SETTINGS)
    plan(engine, session, firm, "run-1")
    planned = shown(engine, "run-1")
    assert planned == counted_afresh(engine, "run-1")
    assert planned[1][("account", "synced")] == 2
    plan(engine, session, firm, "run-1")  # planned again: the counts replaced, not added to
    assert shown(engine, "run-1") == planned
    vendor = Vendor()
    vendor.DisplayName = "Zoë Müller"  # the name of account A2: QBO refuses it, its invoice and payment wait
    vendor.save(qb=emulator.quickbooks(company))

    mid_load = []

    def compare_while_loading(_message: str) -> None:
        mid_load.append((shown(engine, "run-1"), counted_afresh(engine, "run-1")))

    loading.load_plan(
        engine,
        session,
        "run-1",
        options=loading.LoadOptions(batch_size=1, progress_every_seconds=0),
        progress=compare_while_loading,
    )

    assert len(mid_load) > 3
    assert all(view == afresh for view, afresh in mid_load)
    assert len({str(view) for view, _ in mid_load}) > 1  # the statuses moved during the load
    loaded = shown(engine, "run-1")
    assert loaded == counted_afresh(engine, "run-1")
    assert loaded[0] == planned[0]  # the plan's operations are the plan's, whatever the load did
    assert (loaded[1][("account", "failed")], loaded[1][("invoice", "not_synced")]) == (1, 1)
    assert ("account", "synced") in loaded[1] and loaded[1][("account", "synced")] == 1
    issues = ui_pages.issue_page(engine, category=None, status=None, page=1, page_size=50)
    assert issues.total == sum(n for (_, verdict), n in loaded[1].items() if verdict != "synced")
    assert issues.total == len(issues.rows)


@pytest.mark.airflow
def test_a_retry_counts_its_own_run_and_leaves_the_earlier_runs_counts_as_their_rows(
    emulator, warehouse_engine_from_connection, tmp_path, monkeypatch
):
    engine = warehouse_engine_from_connection
    company = deployment_on_emulator(emulator, monkeypatch, tmp_path / "reports")
    stage(engine, write_export(tmp_path / "export"))
    vendor = Vendor()
    vendor.DisplayName = "Zoë Müller"
    vendor.save(qb=emulator.quickbooks(company))
    assert cli_main(["retry", "--all"]) == 1  # account A2 fails
    vendor.DisplayName = "Zoë Müller (supplier)"
    vendor.save(qb=emulator.quickbooks(company))

    assert cli_main(["retry", "--object", "account:A2"]) == 0

    with engine.connect() as conn:
        runs = list(conn.execute(sa.select(warehouse.sync_plan_runs.c.run_id)).scalars())
    assert len(runs) == 2
    for run_id in runs:
        assert shown(engine, run_id) == counted_afresh(engine, run_id)
    retried = shown(engine, ui_pages.overview(engine).latest_load.run.run_id)[1]
    assert retried[("account", "synced")] == 2 and ("account", "failed") not in retried


def test_the_migration_counts_the_runs_already_in_the_warehouse(warehouse_engine):
    with migrations.migrating(warehouse_engine) as config:
        command.upgrade(config, "0004")
    operation = {
        "realm_id": "9130",
        "qbo_entity": "Invoice",
        "payload": "{}",
        "payload_hash": "h",
        "reason": "new",
    }
    with warehouse_engine.begin() as conn:
        conn.execute(
            warehouse.sync_plan_runs.insert().values(
                run_id="r1", realm_id="9130", planned_at=dt.datetime.now(dt.UTC), dry_run=True, operations=3
            )
        )
        conn.execute(
            warehouse.sync_plan.insert(),
            [
                {"run_id": "r1", "seq": 1, "taxdome_kind": "invoice", "taxdome_id": "I1", "action": "create"}
                | operation
                | {"amount_cents": 1250},
                {"run_id": "r1", "seq": 2, "taxdome_kind": "invoice", "taxdome_id": "I2", "action": "create"}
                | operation
                | {"amount_cents": 750},
                {"run_id": "r1", "seq": 3, "taxdome_kind": "account", "taxdome_id": "A1", "action": "create"}
                | operation
                | {"qbo_entity": "Customer", "amount_cents": None},
            ],
        )
        conn.execute(
            warehouse.sync_object_status.insert(),
            [
                {"run_id": "r1", "taxdome_kind": kind, "taxdome_id": taxdome_id, "realm_id": "9130"}
                | {"status": verdict, "reason": "planned"}
                for kind, taxdome_id, verdict in (
                    ("invoice", "I1", "synced"),
                    ("invoice", "I2", "failed"),
                    ("account", "A1", "synced"),
                )
            ],
        )

    warehouse.create_schema(warehouse_engine)

    assert shown(warehouse_engine, "r1") == counted_afresh(warehouse_engine, "r1")
    assert shown(warehouse_engine, "r1")[0] == {
        ("invoice", "create"): (2, 2000),
        ("account", "create"): (1, None),
    }


@pytest.mark.postgres
def test_a_plan_has_postgresql_sample_its_run_tables_again(
    postgres_engine, postgres_schema, emulator, tmp_path
):
    """Planned on statistics that had not seen a plan's rows, the Sync issues page scanned the whole run."""
    engine = postgres_engine
    company = company_for_base_export(emulator)
    export = write_export(tmp_path / "export")
    stage(engine, export)
    plan(engine, session_for(engine, emulator, company), Firm(export, BASE_FIRM_SETTINGS), "run-1")

    with engine.connect() as conn:
        analyzed = conn.execute(
            sa.text(
                "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables"
                " WHERE schemaname = :schema AND relname IN ('sync_plan', 'sync_object_status')"
            ),
            {"schema": postgres_schema},
        ).all()
    assert sorted(analyzed) == [("sync_object_status", True), ("sync_plan", True)]
