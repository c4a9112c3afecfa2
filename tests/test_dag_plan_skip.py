"""End to end: a `taxdome_qbo_sync` run with nothing changed since the last plan (no new export, no change in
QuickBooks, the same settings, nothing left to retry) checks, plans and writes nothing, and each of those
changes makes the next run plan again (dag.test against the emulator, on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
import os
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag
from export_builder import with_rows, write_export
from load_harness import BASE_FIRM_SETTINGS, deployment_on_emulator, request_count, writes_since
from quickbooks.objects import Customer, Invoice, Item, Ref, SalesItemLine, SalesItemLineDetail
from sqlalchemy.engine import Engine
from test_dag_load_e2e import xcom_values

from taxdome_qbo.services import warehouse

pytestmark = pytest.mark.airflow

# What a run writes whatever it decides: the request slots of the company's rate governor (every QuickBooks
# read takes one) and the OAuth tokens (rotated when the access token expires).
BOOKKEEPING = {"qbo_rate_governor", "qbo_rate_grants", "qbo_oauth_tokens"}


def warehouse_contents(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every warehouse table but the request bookkeeping, in a stable order."""
    with engine.connect() as conn:
        return {
            table.name: sorted(map(tuple, conn.execute(sa.select(table)).all()), key=repr)
            for table in warehouse.metadata.sorted_tables
            if table.name not in BOOKKEEPING
        }


def task_states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def invoice_by_hand(qb, doc_number: str) -> Invoice:
    """An invoice someone keyed in QuickBooks, for a customer of their own, with the number given."""
    customer = Customer()
    customer.DisplayName = "Walk-in client"
    customer.save(qb=qb)
    line = SalesItemLine()
    line.Amount = Decimal("10.00")
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = Ref()
    line.SalesItemLineDetail.ItemRef.value = Item.filter(Name="Services", qb=qb)[0].Id
    invoice = Invoice()
    invoice.DocNumber = doc_number
    invoice.CustomerRef = customer.to_ref()
    invoice.Line = [line]
    invoice.save(qb=qb)
    return invoice


def test_a_run_with_nothing_changed_plans_nothing_and_each_change_plans_again(
    airflow_db, emulator, warehouse_engine_from_connection, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.INFO)
    engine = warehouse_engine_from_connection
    company = deployment_on_emulator(emulator, monkeypatch, tmp_path / "reports")
    realm_id = company["realm_id"]
    qb = emulator.quickbooks(company)
    # QuickBooks already holds an invoice numbered like the export's I2: the load of I2 fails (6140), and
    # the payment of I2 waits for it.
    keyed = invoice_by_hand(qb, "INV-0002")
    landing = tmp_path / "landing"
    write_export(landing / "2026-01-10")
    conf = {"landing_dir": str(landing)}
    sync_dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["taxdome_qbo_sync"]

    first = sync_dag.test(run_conf=conf)
    assert first.state == "success"
    assert xcom_values(first.run_id)["load"]["outcomes"]["invoice"] == {"created": 1, "failed": 1}

    # A failed object is due for a retry: the next run plans again, though nothing else changed.
    keyed.delete(qb=qb)  # invoices are no input of the plan: only the failure makes this run plan
    caplog.clear()
    retried = sync_dag.test(run_conf=conf)
    assert task_states(retried) == dict.fromkeys(
        ["wait_for_turn", "extract", "stage", "check", "plan", "load"], "success"
    )
    assert xcom_values(retried.run_id)["check"]["same_as_run"] == first.run_id
    assert f"the load of run {first.run_id} left work to retry: 1 failed" in caplog.text
    assert xcom_values(retried.run_id)["load"]["outcomes"]["invoice"] == {"created": 1}

    # Nothing changed since: no check, no plan, no load, nothing written to the warehouse or QuickBooks.
    contents, requests = warehouse_contents(engine), request_count(emulator, realm_id)
    caplog.clear()
    quiet = sync_dag.test(run_conf=conf)
    assert quiet.state == "success"
    assert task_states(quiet) == {
        "wait_for_turn": "success",
        "extract": "success",
        "stage": "success",
        "check": "success",
        "plan": "skipped",
        "load": "skipped",
    }
    assert xcom_values(quiet.run_id)["check"]["same_as_run"] == first.run_id
    assert f"nothing changed since run {retried.run_id}" in caplog.text
    assert warehouse_contents(engine) == contents
    assert writes_since(emulator, realm_id, requests) == []

    # Someone edits a customer in QuickBooks: the next run plans again (and finds nothing to write).
    renamed = Customer.filter(DisplayName="Walk-in client", qb=qb)[0]
    renamed.DisplayName = "Walk-in client (cash)"
    renamed.save(qb=qb)
    # QuickBooks stamps a change in whole seconds: the run's plan reads the company a second after the edit,
    # or the run after it would take the edit for one made after that read, and plan once more.
    time.sleep(1)
    caplog.clear()
    edited = sync_dag.test(run_conf=conf)
    assert (task_states(edited)["plan"], task_states(edited)["load"]) == ("success", "skipped")
    assert f"Customer {renamed.Id} 'Walk-in client (cash)' edited" in caplog.text
    assert task_states(sync_dag.test(run_conf=conf))["plan"] == "skipped"

    # A firm setting changes (the Variable): the next run plans again.
    monkeypatch.setenv(
        "AIRFLOW_VAR_TAXDOME_QBO_SETTINGS", json.dumps({**BASE_FIRM_SETTINGS, "account_scope": "all"})
    )
    caplog.clear()
    resettled = sync_dag.test(run_conf=conf)
    assert task_states(resettled)["plan"] == "success"
    assert "firm settings: account_scope 'with_activity' → 'all'" in caplog.text

    # A new export: staged, checked, planned and loaded; right after that load, nothing is left to do.
    write_export(
        landing / "2026-01-11",
        accounts_csv=with_rows(
            "accounts.csv",
            "A3,Nakamura Farms,Company,nf@example.com,2026-01-10T10:00:00Z,2026-01-10T10:00:00Z,false,auto,",
        ),
        invoices_csv=with_rows(
            "invoices.csv", "I3,INV-0003,A3,2026-01-11,,Unpaid,USD,,95.00,,2026-01-11T09:00:00Z"
        ),
        invoice_lines_csv=with_rows("invoice_lines.csv", "I3,1,S2,Bookkeeping,,95.00,1,95.00,false"),
    )
    grown = sync_dag.test(run_conf=conf)
    assert task_states(grown) == dict.fromkeys(
        ["wait_for_turn", "extract", "stage", "check", "plan", "load"], "success"
    )
    assert "same_as_run" not in xcom_values(grown.run_id)["check"]
    outcomes = xcom_values(grown.run_id)["load"]["outcomes"]
    assert (outcomes["account"], outcomes["invoice"]) == ({"created": 1}, {"created": 1})
    # The sync's own writes (the new customer) are no change in QuickBooks.
    contents = warehouse_contents(engine)
    caplog.clear()
    after = sync_dag.test(run_conf=conf)
    assert (task_states(after)["check"], task_states(after)["plan"]) == ("success", "skipped")
    assert f"nothing changed since run {grown.run_id}" in caplog.text
    assert warehouse_contents(engine) == contents
