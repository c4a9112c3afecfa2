"""Airflow listeners of the project (registered by plugins/taxdome_qbo_plugin.py): the pools its tasks run
in exist on any deployment that loads the plugins folder, not only on those set up by `make airflow-home`.

A task in a pool that does not exist stays `scheduled` forever, and only the scheduler's log says why. The
pools are created when a component with metadata-database access starts (scheduler, triggerer, DAG
processor) and again when a run of one of the project's DAGs starts, so a pool deleted meanwhile is back
before the run's tasks are scheduled. An existing pool is never changed: its slots are the operator's.
"""

from __future__ import annotations

import logging

from airflow.jobs.job import Job
from airflow.listeners import hookimpl
from airflow.models.dagrun import DagRun
from airflow.models.pool import Pool
from airflow.utils.session import create_session
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from taxdome_qbo.pools import PROJECT_POOLS

log = logging.getLogger(__name__)

PROJECT_DAG_ID_PREFIX = "taxdome_qbo_"


@hookimpl
def on_starting(component) -> None:
    # Task processes announce themselves too (a TaskRunnerMarker), and they have no database access.
    if isinstance(component, Job):
        with create_session() as session:
            ensure_project_pools(session)


@hookimpl
def on_dag_run_running(dag_run: DagRun, msg: str) -> None:
    if dag_run.dag_id.startswith(PROJECT_DAG_ID_PREFIX):
        # The scheduler's own transaction, which it commits before scheduling the run's tasks: a session of
        # our own would wait for the write lock that transaction holds on SQLite.
        ensure_project_pools(object_session(dag_run))


def ensure_project_pools(session: Session) -> None:
    """Create the project's pools that `session` does not find; the caller commits."""
    names = [spec.name for spec in PROJECT_POOLS]
    existing = set(session.scalars(select(Pool.pool).where(Pool.pool.in_(names))))
    connection = session.connection()
    for spec in PROJECT_POOLS:
        if spec.name in existing:
            continue
        try:
            # A savepoint, so losing the race below does not undo the rest of the caller's transaction; the
            # connection's, not the session's: the scheduler refuses any commit of its session, nested ones too.
            with connection.begin_nested():
                connection.execute(
                    insert(Pool).values(
                        pool=spec.name, slots=spec.slots, description=spec.description, include_deferred=False
                    )
                )
        except IntegrityError:
            continue  # another component created it in the meantime
        log.info(
            "Created the Airflow pool %s with %d slot(s), which the taxdome_qbo tasks need; "
            "change its slots with `airflow pools set` or in the UI, they are kept from then on",
            spec.name,
            spec.slots,
        )
