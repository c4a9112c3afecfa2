"""End to end: the sync loads the emulator, then `taxdome_qbo_reconcile` reads QBO back, reconciles, writes
its reports, and gives its verdict: clean after a sync; failed, with the report written first, after a
bookkeeper edits an invoice in QuickBooks."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from export_builder import write_export
from extra_links import served_extra_links
from load_harness import (
    BASE_FIRM_SETTINGS,
    company_for_base_export,
    set_invoice_amount,
    stage,
)

from qbo_emulator.admin import airflow_connection
from taxdome_qbo import reconcile_tasks
from taxdome_qbo.cli import main as cli_main
from taxdome_qbo.services import reconciliation, warehouse

pytestmark = pytest.mark.airflow


def test_the_reconciliation_reports_then_judges(
    airflow_db, emulator, warehouse_engine_from_connection, tmp_path, monkeypatch, capsys
):
    engine = warehouse_engine_from_connection
    company = company_for_base_export(emulator)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(airflow_connection(emulator.base_url, company))
    )
    monkeypatch.setenv("AIRFLOW_VAR_TAXDOME_QBO_SETTINGS", json.dumps(BASE_FIRM_SETTINGS))
    reports = tmp_path / "reports"
    monkeypatch.setenv("TAXDOME_QBO_REPORTS_DIR", str(reports))
    dags = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags
    sync, reconcile = dags["taxdome_qbo_sync"], dags["taxdome_qbo_reconcile"]
    assert sync.test(run_conf={"export_dir": str(write_export(tmp_path / "export"))}).state == "success"

    clean = reconcile.test()

    assert clean.state == "success"
    written = {path.name for path in reports.rglob("*") if path.is_file()}
    assert {"reconciliation.html", "reconciliation.xlsx", "exceptions.csv", "summary.csv"} <= written
    with engine.connect() as conn:
        run = conn.execute(sa.select(warehouse.reconciliation_runs)).one()
    assert (run.verdict, run.unexplained) == ("clean", 0)
    assert run.report_location.endswith("reconciliation.html")
    # The task that wrote the report links to it in the TaxDome ↔ QuickBooks view (no [api] base_url here:
    # relative to the UI's host), the run id one path segment (its `:` and `+` kept, as RFC 3986 allows).
    report_page = "/taxdome-qbo/reconciliation/" + clean.run_id
    assert served_extra_links(reconcile, clean) == {
        "wait_for_sync": {},
        "read_back": {},
        "reconcile": {},
        "report": {"Reconciliation report": report_page},
        "verdict": {},
    }

    set_invoice_amount(emulator, company, "taxdome:invoice:I2", "260.00")

    differing = reconcile.test()

    assert differing.state == "failed"
    states = {ti.task_id: ti.state for ti in differing.get_task_instances()}
    assert states == {
        "wait_for_sync": "success",  # no sync run queued or running: the first poke passes
        "read_back": "success",
        "reconcile": "success",
        "report": "success",
        "verdict": "failed",
    }
    with engine.connect() as conn:
        latest = conn.execute(
            sa.select(warehouse.reconciliation_runs).where(
                warehouse.reconciliation_runs.c.recon_run_id == differing.run_id
            )
        ).one()
    assert (latest.verdict, latest.unexplained) == (
        "differences",
        2,
    )  # the invoice, and its customer's balance
    html = Path(latest.report_location).read_text(encoding="utf-8")
    assert "I2" in html and "2 unexplained differences" in html
    assert cli_main(["reconciliation-summary"]) == 1
    out = capsys.readouterr().out
    assert "2 unexplained" in out and latest.report_location in out
    assert "data quality of sync run" in out and "checks, 0 failed (0 critical)" in out


def test_a_verdict_over_data_a_sync_changed_meanwhile_is_skipped_not_failed(
    warehouse_engine_from_connection, tmp_path
):
    engine = warehouse_engine_from_connection
    read = {"realm_id": "9130", "sync_fingerprint": reconciliation.sync_fingerprint(engine, "9130")}
    written = {"html": str(tmp_path / "reports" / "reconciliation.html")}
    differing = {"recon_run_id": "recon-2", "unexplained": 29, "exceptions_by_class": {"missing_in_qbo": 29}}
    runs = warehouse.reconciliation_runs
    with engine.begin() as conn:
        for number, verdict in ((1, "clean"), (2, "differences")):
            conn.execute(
                runs.insert().values(
                    recon_run_id=f"recon-{number}",
                    realm_id="9130",
                    started_at=datetime(2026, 12, 1, number, tzinfo=UTC),
                    verdict=verdict,
                    unexplained=0 if verdict == "clean" else 29,
                )
            )
    clean = {"recon_run_id": "recon-1", "unexplained": 0, "exceptions_by_class": {}}
    assert reconcile_tasks.verdict(clean, written, read) is None
    with pytest.raises(AirflowFailException, match="29 unexplained difference"):
        reconcile_tasks.verdict(differing, written, read)

    stage(engine, write_export(tmp_path / "export"))  # a sync run started by hand stages meanwhile

    with pytest.raises(AirflowSkipException, match="a sync changed the data during this comparison") as skip:
        reconcile_tasks.verdict(differing, written, read)
    assert "the reconciliation the sync's load triggers will judge" in str(skip.value)
    assert written["html"] in str(skip.value)
    with engine.connect() as conn:
        assert conn.execute(sa.select(runs.c.verdict).where(runs.c.recon_run_id == "recon-2")).scalar() == (
            "superseded"
        )
    assert reconciliation.latest_run(engine).run.recon_run_id == "recon-1", "a superseded run judged nothing"


@pytest.fixture
def sync_run_no_scheduler_will_finish(airflow_db):
    """A sync run left `running` in the metadata database, as a deployment stopped mid-run leaves it."""
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    with create_session() as session:
        run = DagRun(
            dag_id="taxdome_qbo_sync",
            run_id=f"stale__{uuid.uuid4().hex}",
            run_type=DagRunType.MANUAL,
            state=DagRunState.RUNNING,
            run_after=timezone.utcnow(),
        )
        session.add(run)
    yield run.run_id
    with create_session() as session:
        session.query(DagRun).filter(DagRun.run_id == run.run_id).delete()


def test_wait_for_sync_off_compares_despite_a_run_no_scheduler_will_finish(
    sync_run_no_scheduler_will_finish, monkeypatch, caplog
):
    monkeypatch.delenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", raising=False)
    reconcile = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["taxdome_qbo_reconcile"]

    run = reconcile.test(run_conf={"wait_for_sync": False})

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["wait_for_sync"] == "success"
    assert states["read_back"] == "skipped", "not connected to QuickBooks: nothing to read, nothing judged"
    assert "compared anyway (wait_for_sync is off)" in caplog.text
