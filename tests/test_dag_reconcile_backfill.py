"""A real backfill of the reconciliation, month by month: the firm is synced into the emulator, then a
scheduler, a dag-processor and an api-server (LocalExecutor, SQLite metadata) run what
`airflow backfill create` makes over three months. Each month is a run of its own: its period is its data
interval's days (an invoice of January 31 in January, its payment of February 1 in February), with its own
summary, exceptions, report and verdict; only February, whose invoice a bookkeeper changed in QuickBooks,
fails. Once QuickBooks is put right, February is backfilled again through the REST API the UI's backfill
form calls, and nothing of January's or March's reconciliation changes."""

from __future__ import annotations

import io
import itertools
import json
import os
import time
from pathlib import Path

import openpyxl
import pendulum
import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag
from cryptography.fernet import Fernet
from export_builder import with_rows, write_export
from load_harness import BASE_FIRM_SETTINGS, company_for_base_export, set_invoice_amount
from local_cluster import local_cluster

from qbo_emulator.admin import airflow_connection
from taxdome_qbo import deployment as deploy
from taxdome_qbo.services import warehouse

pytestmark = [pytest.mark.airflow, pytest.mark.deployment]

RECONCILE = "taxdome_qbo_reconcile"
FINISHED = {"success", "failed"}

# The base export (January) and, at the edges of the months: an invoice of January 31 paid on February 1,
# an invoice of February 1, one of March 31.
EDGE_EXPORT = {
    "invoices_csv": with_rows(
        "invoices.csv",
        "I3,INV-0003,A2,2026-01-31,,Paid,USD,,250.00,,2026-01-31T09:00:00Z",
        "I4,INV-0004,A1,2026-02-01,,Unpaid,USD,,95.00,,2026-02-01T09:00:00Z",
        "I5,INV-0005,A2,2026-03-31,,Unpaid,USD,,95.00,,2026-03-31T09:00:00Z",
    ),
    "invoice_lines_csv": with_rows(
        "invoice_lines.csv",
        "I3,1,S1,Tax return,,250.00,1,250.00,false",
        "I4,1,S2,Bookkeeping,,95.00,1,95.00,false",
        "I5,1,S2,Bookkeeping,,95.00,1,95.00,false",
    ),
    "payments_csv": with_rows(
        "payments.csv", "P3,A2,2026-02-01,250.00,cash,none,,0,USD,true,,2026-02-01T09:00:00Z"
    ),
    "payment_applications_csv": with_rows("payment_applications.csv", "P3,I3,250.00"),
}
MONTHS = {
    "2026-01-01": ("2026-01-01", "2026-01-31"),
    "2026-02-01": ("2026-02-01", "2026-02-28"),
    "2026-03-01": ("2026-03-01", "2026-03-31"),
}


def _backfill_runs(api: deploy.AirflowApi) -> dict[str, dict]:
    """The backfill's runs by the month they start, once all three have finished."""
    runs = {r["logical_date"][:10]: r for r in api.runs(RECONCILE) if r["run_type"] == "backfill"}
    if set(runs) == set(MONTHS) and all(r["state"] in FINISHED for r in runs.values()):
        return runs
    return {}


def _recorded(engine, run_ids) -> dict[str, dict]:
    """Each run's row, summary and exceptions as the warehouse holds them, and its report files' bytes."""
    runs = warehouse.reconciliation_runs
    recorded = {}
    with engine.connect() as conn:
        for run_id in run_ids:
            run = dict(conn.execute(sa.select(runs).where(runs.c.recon_run_id == run_id)).one()._mapping)
            rows = {
                name: [
                    dict(r._mapping)
                    for r in conn.execute(
                        sa.select(t).where(t.c.recon_run_id == run_id).order_by(*t.primary_key.columns)
                    )
                ]
                for name, t in (
                    ("summary", warehouse.rpt_reconciliation_summary),
                    ("exceptions", warehouse.rpt_reconciliation_exceptions),
                )
            }
            folder = Path(run["report_location"]).parent
            files = {p.name: p.read_bytes() for p in folder.iterdir()}
            recorded[run_id] = {"run": run, **rows, "files": files}
    return recorded


def create_backfill(cluster: deploy.Deployment, dag_id: str, *arguments: str, attempts: int = 5) -> str:
    """`airflow backfill create` for `dag_id`. On SQLite metadata, a command that read before it
    writes is refused at once ("database is locked", whatever the busy timeout) when the scheduler wrote in
    between; its transaction is rolled back whole, so it is simply run again, as a user would."""
    command = ("backfill", "create", "--dag-id", dag_id, *arguments)
    for attempt in range(1, attempts):
        try:
            return cluster.run(*command)
        except RuntimeError as refused:
            if "database is locked" not in str(refused):
                raise
            time.sleep(attempt)
    return cluster.run(*command)


def one_at_a_time(api: deploy.AirflowApi, dag_id: str, task_id: str, run_ids) -> bool:
    """Whether the runs' tries of `task_id` ran one after the other, never two at once."""
    instances = [api.task_instance(dag_id, run_id, task_id) for run_id in run_ids]
    spans = sorted((instance["start_date"], instance["end_date"]) for instance in instances)
    return all(ended <= next_started for (_, ended), (next_started, _) in itertools.pairwise(spans))


def _total(recorded: dict, measure: str) -> tuple[int, int]:
    """TaxDome's and QuickBooks' total of `measure`, in cents."""
    [row] = [
        r
        for r in recorded["summary"]
        if (r["measure"], r["period"], r["dimension"]) == (measure, "total", "")
    ]
    return row["taxdome_cents"], row["qbo_cents"]


def _unexplained(recorded: dict) -> list[tuple]:
    return [
        (e["difference_class"], e["taxdome_id"], e["taxdome_cents"], e["qbo_cents"])
        for e in recorded["exceptions"]
        if not e["explained"]
    ]


def test_a_backfill_reconciles_month_by_month_and_a_month_rerun_leaves_the_others(
    airflow_db, emulator, tmp_path, monkeypatch
):
    started = time.monotonic()
    company = company_for_base_export(emulator)
    warehouse_path = tmp_path / "warehouse.db"
    settings = {
        # The sync here and the deployment's tasks encrypt and decrypt the company's tokens with one key.
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(warehouse_path)}),
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT": json.dumps(airflow_connection(emulator.base_url, company)),
        "AIRFLOW_VAR_TAXDOME_QBO_SETTINGS": json.dumps(BASE_FIRM_SETTINGS),
        "TAXDOME_QBO_REPORTS_DIR": str(tmp_path / "reports"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    sync = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["taxdome_qbo_sync"]
    export = write_export(tmp_path / "export", **EDGE_EXPORT)
    assert sync.test(run_conf={"export_dir": str(export)}).state == "success"
    set_invoice_amount(emulator, company, "taxdome:invoice:I4", "96.00")  # February's invoice, changed in QBO

    engine = warehouse.sqlite_engine(str(warehouse_path))
    try:
        with local_cluster(tmp_path / "airflow", settings, (RECONCILE,)) as (cluster, api):
            ready = time.monotonic()

            # The backfill may run its three months at once (`--max-active-runs` defaults to 10).
            created = create_backfill(
                cluster, RECONCILE, "--from-date", "2026-01-01", "--to-date", "2026-03-01"
            )
            runs = deploy.wait_for(lambda: _backfill_runs(api), "the backfill's three runs", 300, cluster, 2)
            backfilled = time.monotonic()

            assert {month: run["state"] for month, run in runs.items()} == {
                "2026-01-01": "success",
                "2026-02-01": "failed",  # the changed invoice: an unexplained difference of February alone
                "2026-03-01": "success",
            }, created
            by_month = {month: run["dag_run_id"] for month, run in runs.items()}
            for task_id in (
                "read_back",
                "reconcile",
            ):  # yet one run at a time reads QuickBooks back, compares
                assert one_at_a_time(api, RECONCILE, task_id, by_month.values()), task_id
            before = _recorded(engine, by_month.values())
            for month, (first, last) in MONTHS.items():
                recorded = before[by_month[month]]
                run = recorded["run"]
                assert (str(run["period_from"]), str(run["period_to"])) == (first, last)
                assert {"reconciliation.html", "summary.csv", "exceptions.csv", "reconciliation.xlsx"} <= set(
                    recorded["files"]
                )
                page = recorded["files"]["reconciliation.html"].decode()
                assert f"Period: <strong>{first} to {last}</strong>" in page
                assert "Customer balances, invoices&#x27; open balances" in page  # a closed month: left out
                assert not any(r["measure"] == "customer_balance" for r in recorded["summary"])
                run_sheet = openpyxl.load_workbook(io.BytesIO(recorded["files"]["reconciliation.xlsx"]))[
                    "Run"
                ]
                notes = [
                    value
                    for item, value in run_sheet.iter_rows(min_row=2, values_only=True)
                    if item == "Note"
                ]
                assert [note[:31] for note in notes] == ["Customer balances, invoices' op"]
            # January has I1, I2 and I3 of January 31; February I4 and the payment of February 1; March I5.
            january, february, march = (before[by_month[m]] for m in MONTHS)
            assert _total(january, "invoiced") == (46469 + 25000 + 25000,) * 2
            assert _total(february, "invoiced") == (9500, 9600) and _total(march, "invoiced") == (9500, 9500)
            assert _total(february, "collected_gross") == (25000, 25000)
            assert _total(january, "collected_gross") == (46469 + 10000,) * 2  # P1 and P2; P3 is February's
            assert _unexplained(january) == _unexplained(march) == []
            assert _unexplained(february) == [("amount_mismatch", "I4", 9500, 9600)]
            assert (january["run"]["verdict"], february["run"]["verdict"]) == ("clean", "differences")
            # Unpaused, the DAG's schedule reconciles the month just closed.
            this_month = pendulum.now("UTC").start_of("month")
            [scheduled] = [r for r in api.runs(RECONCILE) if r["run_type"] == "scheduled"]
            assert (scheduled["data_interval_start"][:10], scheduled["data_interval_end"][:10]) == (
                this_month.subtract(months=1).to_date_string(),
                this_month.to_date_string(),
            )

            set_invoice_amount(emulator, company, "taxdome:invoice:I4", "95.00")
            # A DAG has one backfill at a time: the scheduler closes the first once its runs have finished.
            deploy.wait_for(
                lambda: all(b["completed_at"] for b in api.get("backfills", dag_id=RECONCILE)["backfills"]),
                "the first backfill completed",
                60,
                cluster,
            )
            api.post(  # what the UI's backfill form sends
                "backfills",
                {
                    "dag_id": RECONCILE,
                    "from_date": "2026-02-01T00:00:00Z",
                    "to_date": "2026-02-01T00:00:00Z",
                    "reprocess_behavior": "failed",
                    "max_active_runs": 1,
                },
            )
            deploy.wait_for(
                lambda: api.run_state(RECONCILE, by_month["2026-02-01"]) == "success",
                "February reconciled again",
                180,
                cluster,
                2,
            )
            after = _recorded(engine, by_month.values())
    finally:
        engine.dispose()

    for month in ("2026-01-01", "2026-03-01"):
        assert after[by_month[month]] == before[by_month[month]], f"the {month} reconciliation changed"
    february = after[by_month["2026-02-01"]]
    assert _unexplained(february) == [] and _total(february, "invoiced") == (9500, 9500)
    assert february["run"]["verdict"] == "clean"
    print(
        f"backfill test: set-up {ready - started:.0f} s, three months {backfilled - ready:.0f} s, "
        f"February again {time.monotonic() - backfilled:.0f} s"
    )
