"""QuickBooksLoadOperator's template fields: rendered from a DAG run's params, they choose the connection, the
plan and the batch size the load service gets (a real `dag.test()` against the emulator); and its extra link
to the run's page in the TaxDome ↔ QuickBooks view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
from export_builder import write_export
from extra_links import served_extra_links
from load_harness import (
    BASE_FIRM_SETTINGS,
    Firm,
    assert_everything_planned_is_done,
    company_for_base_export,
    plan,
    session_for,
    stage,
)

from qbo_emulator.admin import airflow_connection
from taxdome_qbo.operators.quickbooks_load import QuickBooksLoadOperator
from taxdome_qbo.services import warehouse

pytestmark = pytest.mark.airflow


TEMPLATED_LOAD_DAG = """
import pendulum
from airflow.sdk import DAG, Param

from taxdome_qbo.operators.quickbooks_load import QuickBooksLoadOperator

with DAG(
    "templated_quickbooks_load",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={
        "quickbooks_conn_id": Param("quickbooks_default", type="string"),
        "plan_run_id": Param("", type="string"),
        "batch_size": Param(30, type="integer"),
    },
):
    QuickBooksLoadOperator(
        task_id="load",
        quickbooks_conn_id="{{ params.quickbooks_conn_id }}",
        plan_run_id="{{ params.plan_run_id }}",
        batch_size="{{ params.batch_size }}",
    )
"""


def templated_load_dag(dags_folder: Path, monkeypatch):
    """A DAG using every template field, in a DAG bundle of its own (`dag.test()` runs a bundle's DAGs),
    configured beside the project's."""
    dags_folder.mkdir()
    (dags_folder / "templated_load.py").write_text(TEMPLATED_LOAD_DAG, encoding="utf-8")
    local_bundle = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [
        {"name": "operator-test", "classpath": local_bundle, "kwargs": {"path": str(dags_folder)}},
        {"name": "dags-folder", "classpath": local_bundle, "kwargs": {}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    bag = DagBag(dag_folder=str(dags_folder))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["templated_quickbooks_load"]


def test_the_operator_declares_what_a_user_templates():
    assert set(QuickBooksLoadOperator.template_fields) == {
        "quickbooks_conn_id",
        "warehouse_conn_id",
        "plan_run_id",
        "batch_size",
    }


def test_rendered_fields_choose_the_connection_the_plan_and_the_batch_size(
    airflow_db, emulator, warehouse_engine_from_connection, tmp_path, monkeypatch
):
    engine = warehouse_engine_from_connection
    company = company_for_base_export(emulator)
    export = write_export(tmp_path / "export")
    stage(engine, export)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), "planned-elsewhere")
    # Only the connection the run's params name reaches the company.
    monkeypatch.delenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QUICKBOOKS_TEMPLATED", json.dumps(airflow_connection(emulator.base_url, company))
    )

    run = templated_load_dag(tmp_path / "dags", monkeypatch).test(
        run_conf={
            "quickbooks_conn_id": "quickbooks_templated",
            "plan_run_id": "planned-elsewhere",
            "batch_size": 2,
        }
    )

    assert run.state == "success"
    assert_everything_planned_is_done(engine, company["realm_id"], "planned-elsewhere")
    requests = warehouse.qbo_requests
    with engine.connect() as conn:
        batches = conn.execute(
            sa.select(requests.c.run_id, sa.func.count().label("items"))
            .where(requests.c.batch_item_id.is_not(None))
            .group_by(requests.c.run_id, requests.c.request_id)
        ).all()
    assert batches, "the plan was loaded in batches"
    assert {batch.run_id for batch in batches} == {"planned-elsewhere"}
    assert max(batch.items for batch in batches) == 2


def test_the_extra_link_is_serialized_with_the_dag(monkeypatch, tmp_path):
    dag = templated_load_dag(tmp_path / "dags", monkeypatch)

    serialized = DagSerialization.to_dict(dag)

    [load_task] = serialized["dag"]["tasks"]
    assert load_task["__var"]["_operator_extra_links"] == {"TaxDome ↔ QuickBooks run": "_link_SyncRunLink"}
    assert DagSerialization.from_dict(serialized).get_task("load").extra_links == ["TaxDome ↔ QuickBooks run"]


def test_a_load_links_to_its_runs_page_even_when_it_had_nothing_to_load(
    airflow_db, warehouse_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/airflow/")
    dag = templated_load_dag(tmp_path / "dags", monkeypatch)

    run = dag.test(run_conf={"plan_run_id": "never planned"})

    assert run.state == "success"
    [load_ti] = run.get_task_instances()
    assert load_ti.state == "skipped"  # no plan: nothing was sent to QuickBooks
    assert ":" in run.run_id and "%" not in run.run_id  # kept as it is: the UI would decode `%3A` and reload
    assert served_extra_links(dag, run) == {
        "load": {
            "TaxDome ↔ QuickBooks run": f"https://airflow.example.com/airflow/taxdome-qbo/sync-runs/{run.run_id}"
        }
    }
