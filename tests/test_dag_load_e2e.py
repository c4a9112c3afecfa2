"""End to end: `taxdome_qbo_sync` stages, plans and loads the QBO emulator through QuickBooksLoadOperator,
and no token or secret shows up in anything the run produces."""

from __future__ import annotations

import gzip
import json
import logging
import os

import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent, AssetModel
from airflow.models.xcom import XCOM_RETURN_KEY, XComModel
from airflow.utils.session import create_session
from export_builder import write_export
from load_harness import (
    BASE_FIRM_SETTINGS,
    assert_qbo_matches_sync_state,
    company_for_base_export,
    token_store,
    writes_since,
)

from qbo_emulator.admin import airflow_connection
from taxdome_qbo.assets import QUICKBOOKS_LOADED
from taxdome_qbo.hooks.quickbooks import deployment_token_cipher
from taxdome_qbo.services import warehouse

pytestmark = pytest.mark.airflow


def _report_text(path) -> str:
    """A report file's text; the operations file is read decompressed, as a user opens it."""
    return gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()


def xcom_values(run_id: str) -> dict[str, object]:
    """task id -> what it returned (its receipt); other XComs (an extra link's URL) are left out."""
    with create_session() as session:
        rows = session.execute(
            sa.select(XComModel.task_id, XComModel.value).where(
                XComModel.run_id == run_id, XComModel.key == XCOM_RETURN_KEY
            )
        ).all()
    return dict(rows)


def loaded_events(run_id: str) -> int:
    """The QUICKBOOKS_LOADED events the run emitted (what schedules a reconciliation)."""
    with create_session() as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == QUICKBOOKS_LOADED.name, AssetEvent.source_run_id == run_id)
        )


def test_the_sync_loads_quickbooks_and_never_shows_a_secret(
    airflow_db, emulator, warehouse_engine_from_connection, tmp_path, monkeypatch, capfd, caplog
):
    caplog.set_level(logging.DEBUG)
    engine = warehouse_engine_from_connection
    company = company_for_base_export(emulator)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(airflow_connection(emulator.base_url, company))
    )
    reports = tmp_path / "reports"
    monkeypatch.setenv("TAXDOME_QBO_REPORTS_DIR", str(reports))
    sync_dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["taxdome_qbo_sync"]
    export = write_export(tmp_path / "exports" / "2026-01-10")

    run = sync_dag.test(run_conf={"export_dir": str(export), **BASE_FIRM_SETTINGS})

    assert run.state == "success"
    load_task = sync_dag.get_task("load")
    assert load_task.pool == "qbo_api"
    receipt = xcom_values(run.run_id)["load"]
    assert receipt["outcomes"]["invoice"] == {"created": 2}
    assert receipt["outcomes"]["account"] == {"created": 2}
    assert receipt["outcomes"]["service"] == {"created": 1, "linked": 1}
    assert_qbo_matches_sync_state(engine, emulator, company["realm_id"])

    # Disconnected: the next run plans and loads nothing, and tries no write.
    token_store(engine, company["realm_id"]).mark_disconnected()
    before = len(emulator.admin("GET", "requests").json()["requests"])
    second = sync_dag.test(run_conf={"export_dir": str(export), **BASE_FIRM_SETTINGS})
    assert second.state == "success"
    states = {ti.task_id: ti.state for ti in second.get_task_instances()}
    assert states["plan"] == states["load"] == "skipped"
    assert writes_since(emulator, company["realm_id"], before) == []

    with engine.connect() as conn:
        stored = conn.execute(sa.select(warehouse.qbo_oauth_tokens)).one()
    secrets = {
        "client secret": company["client_secret"],
        "first refresh token": company["refresh_token"],
        "stored refresh token": deployment_token_cipher().decrypt(
            stored.refresh_token, realm_id=stored.realm_id
        ),
    }
    produced = {
        "task output": "".join(capfd.readouterr()),
        "log records": caplog.text,
        "xcom": json.dumps([xcom_values(run.run_id), xcom_values(second.run_id)], default=str),
        "reports": "".join(_report_text(path) for path in reports.rglob("*") if path.is_file()),
    }
    assert produced["task output"] and produced["reports"]
    leaks = [
        (secret, where)
        for secret, value in secrets.items()
        for where, text in produced.items()
        if value in text
    ]
    assert not leaks


def test_a_run_with_nothing_to_write_skips_the_load_and_starts_no_reconciliation(
    airflow_db, emulator, warehouse_engine_from_connection, tmp_path, monkeypatch
):
    company = company_for_base_export(emulator)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(airflow_connection(emulator.base_url, company))
    )
    monkeypatch.setenv("TAXDOME_QBO_REPORTS_DIR", str(tmp_path / "reports"))
    sync_dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["taxdome_qbo_sync"]
    conf = {"export_dir": str(write_export(tmp_path / "exports" / "2026-01-10")), **BASE_FIRM_SETTINGS}
    first = sync_dag.test(run_conf=conf)
    assert first.state == "success"
    assert loaded_events(first.run_id) == 1
    before = len(emulator.admin("GET", "requests").json()["requests"])

    again = sync_dag.test(run_conf=conf)  # the same export: QuickBooks already holds all of it

    assert again.state == "success"
    states = {ti.task_id: ti.state for ti in again.get_task_instances()}
    assert (states["plan"], states["load"]) == ("success", "skipped")
    assert xcom_values(again.run_id)["plan"]["operations"] == 0
    assert loaded_events(again.run_id) == 0
    assert writes_since(emulator, company["realm_id"], before) == []
