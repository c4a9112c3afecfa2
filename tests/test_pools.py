"""The pool the load runs in exists wherever the plugins folder is loaded: the taxdome_qbo plugin's listener
creates it in the real metadata database of the test Airflow home, and never changes one that exists."""

from __future__ import annotations

import threading
import uuid

import pytest
from airflow import plugins_manager, settings
from airflow.jobs.job import Job
from airflow.listeners.listener import get_listener_manager
from airflow.models.dagrun import DagRun
from airflow.models.pool import Pool
from airflow.sdk.execution_time.task_runner import TaskRunnerMarker
from airflow.utils.session import create_session
from airflow.utils.sqlalchemy import prohibit_commit
from airflow.utils.state import DagRunState
from sqlalchemy import delete, event

import taxdome_qbo.listeners
from taxdome_qbo.pools import QBO_API

pytestmark = pytest.mark.airflow


def _delete_qbo_api_pool() -> None:
    with create_session() as session:
        session.execute(delete(Pool).where(Pool.pool == QBO_API.name))


@pytest.fixture
def fresh_deployment(airflow_db):
    """A metadata database without the pool, as on a deployment nobody set up by hand."""
    _delete_qbo_api_pool()
    yield
    _delete_qbo_api_pool()


@pytest.fixture
def dag_run_of(airflow_db):
    """A queued DAG run of the given DAG in a session, deleted afterwards."""
    created = []

    def dag_run(session, dag_id: str) -> DagRun:
        run = DagRun(
            dag_id, f"pools-test-{uuid.uuid4().hex[:12]}", run_type="manual", state=DagRunState.QUEUED
        )
        session.add(run)
        session.flush()
        created.append(run.run_id)
        return run

    yield dag_run
    with create_session() as session:
        session.execute(delete(DagRun).where(DagRun.run_id.in_(created)))


def _created_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == taxdome_qbo.listeners.__name__]


def test_airflow_loads_the_plugin_and_registers_its_listener(airflow_db):
    assert not [path for path in plugins_manager.get_import_errors() if "taxdome" in path]
    plugin = next(p for p in plugins_manager.get_plugin_info() if p["name"] == "taxdome_qbo")
    assert plugin["listeners"] == ["taxdome_qbo.listeners"]
    assert get_listener_manager().has_listeners
    assert get_listener_manager().pm.is_registered(taxdome_qbo.listeners)


def test_a_starting_component_creates_the_missing_pool(fresh_deployment, caplog):
    caplog.set_level("INFO", logger=taxdome_qbo.listeners.__name__)
    Job()  # what the scheduler, the triggerer and the DAG processor construct as they start

    pool = Pool.get_pool(QBO_API.name)
    assert (pool.slots, pool.description, pool.include_deferred) == (
        QBO_API.slots,
        QBO_API.description,
        False,
    )
    [created] = _created_messages(caplog)
    assert "qbo_api" in created


def test_an_existing_pool_keeps_the_slots_an_operator_gave_it(fresh_deployment, caplog):
    Pool.create_or_update_pool(QBO_API.name, slots=7, description="tuned", include_deferred=True)
    caplog.set_level("INFO", logger=taxdome_qbo.listeners.__name__)
    Job()

    pool = Pool.get_pool(QBO_API.name)
    assert (pool.slots, pool.description, pool.include_deferred) == (7, "tuned", True)
    assert not _created_messages(caplog)


def test_a_task_process_starting_leaves_the_metadata_database_alone(fresh_deployment):
    get_listener_manager().hook.on_starting(component=TaskRunnerMarker())
    assert Pool.get_pool(QBO_API.name) is None


@pytest.mark.parametrize(("dag_id", "creates"), [("taxdome_qbo_sync", True), ("someone_elses_dag", False)])
def test_a_project_dag_run_starting_creates_the_pool_in_the_schedulers_transaction(
    fresh_deployment, dag_run_of, dag_id, creates
):
    with create_session() as session, prohibit_commit(session) as guard:
        run = dag_run_of(session, dag_id)
        run.state = DagRunState.RUNNING  # as the scheduler starts a queued run, then tells the listeners
        run.notify_dagrun_state_changed(msg="started")
        guard.commit()  # the listener committed nothing itself: the guard raises on any other commit

    assert (Pool.get_pool(QBO_API.name) is not None) is creates


def test_a_component_that_loses_the_race_to_create_the_pool_carries_on(fresh_deployment, dag_run_of):
    """Both look before either commits; the second insert is a unique violation, which is fine."""
    loser_is_inserting = threading.Event()
    loser_outcome = []

    def note_the_losers_insert(_conn, _cursor, statement, *_):
        if statement.lstrip().upper().startswith("INSERT INTO SLOT_POOL"):
            loser_is_inserting.set()

    def start_another_component():
        try:
            with create_session() as session:
                taxdome_qbo.listeners.ensure_project_pools(session)
            loser_outcome.append("carried on")
        except Exception as error:  # the outcome under test
            loser_outcome.append(error)

    loser = threading.Thread(target=start_another_component)
    with create_session() as winner:
        dag_run_of(winner, "taxdome_qbo_sync")  # the winner's transaction is open, as the scheduler's is
        taxdome_qbo.listeners.ensure_project_pools(winner)
        event.listen(settings.engine, "before_cursor_execute", note_the_losers_insert)
        try:
            loser.start()
            assert loser_is_inserting.wait(timeout=10)  # it found no pool: the winner has not committed
        finally:
            event.remove(settings.engine, "before_cursor_execute", note_the_losers_insert)
    loser.join(timeout=30)

    assert loser_outcome == ["carried on"]
    assert Pool.get_pool(QBO_API.name).slots == QBO_API.slots
