"""DAG policy: every DAG parses, retries, is tagged, runs one at a time, declares its firm-setting params, and
links to the TaxDome ↔ QuickBooks view."""

from __future__ import annotations

import os
import time

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization

from taxdome_qbo.core.settings import SETTING_NAMES


@pytest.fixture(scope="module")
def dagbag():
    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "taxdome_qbo_sync" in dagbag.dag_ids


def test_every_dag_follows_the_policy(dagbag):
    for dag in dagbag.dags.values():
        assert dag.tags, dag.dag_id
        assert dag.max_active_runs == 1, dag.dag_id
        assert dag.catchup is False, dag.dag_id
        assert dag.doc_md and "When it fails" in dag.doc_md, dag.dag_id
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag.dag_id}.{task.task_id}"


def test_sync_dag_declares_the_settings_and_export_params(dagbag):
    dag = dagbag.dags["taxdome_qbo_sync"]
    assert set(SETTING_NAMES) | {
        "export_dir",
        "landing_dir",
        "dry_run",
        "export_mode",
        "allow_mass_delete",
        "period_from",
        "period_to",
    } == set(dag.params)
    assert all(dag.params[name] is None for name in SETTING_NAMES)  # unset: the Variable then defaults decide
    assert [t.task_id for t in dag.topological_sort()] == [
        "wait_for_turn",
        "extract",
        "stage",
        "check",
        "plan",
        "load",
    ]
    wait = dag.get_task("wait_for_turn")
    assert dag.get_task("extract").upstream_task_ids == {"wait_for_turn"}
    assert (wait.mode, wait.poke_interval) == ("reschedule", 30)


def test_sync_dag_runs_hourly_and_backfills_by_month_unless_configured(dagbag):
    sync = dagbag.dags["taxdome_qbo_sync"]
    assert (sync.timetable.schedule, sync.timetable.history_period) == ("@hourly", "@monthly")
    # What the scheduler and the api-server get: the plugin registers the timetable, so it round-trips.
    restored = DagSerialization.from_dict(DagSerialization.to_dict(sync)).timetable
    assert restored.serialize() == sync.timetable.serialize()
    assert restored.summary == "@hourly, backfills @monthly"


def test_parsing_does_no_io(monkeypatch):
    """A DAG file that touched the warehouse or an export at parse time would fail here or be slow."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", '{"conn_type": "postgres", "host": "192.0.2.1"}')
    started = time.perf_counter()
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    assert time.perf_counter() - started < 10


def test_the_reconciliation_runs_after_each_load_and_reports_before_its_verdict(dagbag):
    sync, reconcile = dagbag.dags["taxdome_qbo_sync"], dagbag.dags["taxdome_qbo_reconcile"]
    (emitted,) = sync.get_task("load").outlets
    assert reconcile.timetable.asset_condition.objects == (emitted,)
    assert [t.task_id for t in reconcile.topological_sort()][-1] == "verdict"
    assert reconcile.get_task("verdict").upstream_task_ids == {"read_back", "reconcile", "report"}
    assert set(reconcile.params.keys()) == {"period_from", "period_to", "full_read", "wait_for_sync"}
    assert reconcile.is_paused_upon_creation is False  # unpausing the sync alone must reconcile


def test_the_reconciliation_first_waits_for_every_sync_run_to_finish(dagbag):
    reconcile = dagbag.dags["taxdome_qbo_reconcile"]
    wait = reconcile.get_task("wait_for_sync")
    assert [t.task_id for t in reconcile.roots] == ["wait_for_sync"]
    assert reconcile.get_task("read_back").upstream_task_ids == {"wait_for_sync"}
    assert (wait.mode, wait.poke_interval) == ("reschedule", 15)
    assert wait.timeout > 6 * 3600


def test_the_load_and_the_report_link_to_the_taxdome_quickbooks_view_in_the_serialized_dags(dagbag):
    """The api-server shows a task's links from the serialized DAG: each task's names, nothing else."""
    links = {
        (dag_id, task.task_id): task.extra_links
        for dag_id in ("taxdome_qbo_sync", "taxdome_qbo_reconcile")
        for task in DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags[dag_id])).tasks
        if task.extra_links
    }
    assert links == {
        ("taxdome_qbo_sync", "load"): ["TaxDome ↔ QuickBooks run"],
        ("taxdome_qbo_reconcile", "report"): ["Reconciliation report"],
    }
