"""End to end: a dry run of `taxdome_qbo_sync` against the QBO emulator plans and writes nothing to QBO."""

from __future__ import annotations

import csv
import gzip
import json
import os

import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag
from export_builder import with_rows, write_export
from load_harness import company_for_base_export
from quickbooks.objects import Customer, Vendor

from qbo_emulator.admin import airflow_connection
from qbo_emulator.testing import EmulatorHandle
from taxdome_qbo.cli import main as cli_main
from taxdome_qbo.services import warehouse

pytestmark = pytest.mark.airflow


def company_with_history(emulator: EmulatorHandle) -> tuple[dict, dict[str, str]]:
    """A company that already has a customer of the same name, an inactive one, and the firm's items."""
    company = company_for_base_export(emulator)
    qb = emulator.quickbooks(company)
    existing = Customer()
    existing.DisplayName = "O'Brien & Sons"
    existing.save(qb=qb)
    inactive = Customer()
    inactive.DisplayName = "Zoë Müller"
    inactive.save(qb=qb)
    inactive.Active = False
    inactive.save(qb=qb)
    supplier = Vendor()
    supplier.DisplayName = (
        "Stripe Payments"  # also the name of a TaxDome account: QBO names are one namespace
    )
    supplier.save(qb=qb)
    return company, {"O'Brien & Sons": str(existing.Id), "Zoë Müller": str(inactive.Id)}


def test_a_dry_run_plans_against_the_company_and_writes_nothing(
    airflow_db, emulator, warehouse_engine_from_connection, tmp_path, monkeypatch, capsys
):
    company, customer_ids = company_with_history(emulator)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(airflow_connection(emulator.base_url, company))
    )
    monkeypatch.setenv("TAXDOME_QBO_REPORTS_DIR", str(tmp_path / "reports"))
    export = write_export(
        tmp_path / "exports" / "2026-01-10",
        accounts_csv=with_rows("accounts.csv", "A3,Stripe Payments,Company,,,,false,sync,"),
    )
    writes_before = [
        r
        for r in emulator.admin("GET", "requests").json()["requests"]
        if r["realm_id"] == company["realm_id"]
    ]
    sync_dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["taxdome_qbo_sync"]

    run = sync_dag.test(run_conf={"export_dir": str(export), "dry_run": True})

    assert run.state == "success"
    engine = warehouse_engine_from_connection
    with engine.connect() as conn:
        plan = conn.execute(
            sa.select(warehouse.sync_plan).where(warehouse.sync_plan.c.run_id == run.run_id)
        ).all()
        statuses = conn.execute(
            sa.select(warehouse.sync_object_status).where(warehouse.sync_object_status.c.run_id == run.run_id)
        ).all()
        planned_run = conn.execute(sa.select(warehouse.sync_plan_runs)).one()
    actions = {(op.taxdome_kind, op.taxdome_id): (op.action, json.loads(op.payload)) for op in plan}
    assert actions[("account", "A1")] == ("link", {"Id": customer_ids["O'Brien & Sons"]})
    assert actions[("account", "A2")][0] == "reactivate"
    assert actions[("service", "S2")][0] == "link"  # copied from the QBO item "Bookkeeping"
    assert {kind for kind, _ in actions} == {"account", "service", "invoice", "payment", "fee", "refund"}
    verdicts = {(s.taxdome_kind, s.taxdome_id): (s.status, s.reason) for s in statuses}
    assert verdicts.pop(("account", "A3"))[1].startswith(
        "the name 'Stripe Payments' belongs to a QuickBooks vendor"
    )
    assert {status for status, _ in verdicts.values()} == {"synced"} and len(verdicts) == 9
    assert (planned_run.realm_id, planned_run.dry_run, planned_run.operations) == (
        company["realm_id"],
        True,
        len(plan),
    )
    (preview,) = (tmp_path / "reports").glob("*/plan_preview.md")
    assert "dry run: nothing will be written to QuickBooks" in preview.read_text()
    assert "| account | reactivate | 1 |  |" in preview.read_text()
    assert not (preview.parent / "plan_operations.csv.gz").exists(), "written on demand only"
    assert cli_main(["plan-summary"]) == 0
    summary = capsys.readouterr().out
    assert "belongs to a QuickBooks vendor" in summary
    assert "every operation: `python -m taxdome_qbo plan-operations` writes them" in summary
    assert cli_main(["plan-operations"]) == 0
    assert (
        f"{len(plan)} operations of run {planned_run.run_id}: {preview.parent / 'plan_operations.csv.gz'}"
        in (capsys.readouterr().out)
    )
    with gzip.open(preview.parent / "plan_operations.csv.gz", "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["seq"]) for row in rows] == sorted(op.seq for op in plan)
    assert cli_main(["plan-operations", "--run-id", "no-such-run"]) == 1

    served = [
        r
        for r in emulator.admin("GET", "requests").json()["requests"]
        if r["realm_id"] == company["realm_id"]
    ]
    assert {r["operation"] for r in served[len(writes_before) :]} <= {"read", "query"}
