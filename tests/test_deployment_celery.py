"""The scale-out deployment, run for real: CeleryExecutor on the local Redis (a db index of its own), PostgreSQL
metadata and Celery result backend (databases made and dropped here), the warehouse on PostgreSQL, and
api-server, scheduler, dag-processor, triggerer and two Celery workers as separate processes. Driven through
the REST API with a JWT from /auth/token, as a client would.

One deployment, one story: the hourly run finds nothing and loads nothing; a manual sync of a generated firm
starts, a second trigger queues behind it, a reconciliation triggered by hand waits for both; the worker
running `load` is killed mid-load (SIGKILL of its whole session); the scheduler notices the silence, the
retry finishes on the other worker; every object is in QuickBooks once and both reconciliations are clean.
No pool is created by hand: the project's plugin must create `qbo_api`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from load_harness import (
    assert_qbo_matches_sync_state,
    generated_firm,
    marker_of,
    qbo_objects,
    request_count,
    seeded_company,
    writes_since,
)
from quickbooks.objects import Vendor
from servers import POSTGRES, engine_from_spec, postgres_connection

from qbo_emulator.admin import airflow_connection
from qbo_emulator.testing import free_port, running_emulator
from taxdome_qbo import deployment as deploy
from taxdome_qbo.services import warehouse

pytestmark = [pytest.mark.postgres, pytest.mark.deployment]

REDIS = ("127.0.0.1", 6379)
SYNC, RECONCILE = "taxdome_qbo_sync", "taxdome_qbo_reconcile"
FINISHED = {"success", "failed"}
KEPT_LOGS = Path(__file__).resolve().parents[1] / ".airflow" / "deployment-test-logs"


def _server_url(database: str, scheme: str = "postgresql+psycopg2") -> str:
    return f"{scheme}://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{database}"


@pytest.fixture
def postgres_databases():
    """The metadata and the result-backend databases, made for this test and dropped after it."""
    names = {role: f"tdq_{role}_{uuid.uuid4().hex[:10]}" for role in ("metadata", "results")}
    admin = sa.create_engine(_server_url(POSTGRES["database"]), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield names
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def redis_db():
    """An empty Redis db index, flushed afterwards: the broker shares the server with nothing of ours."""
    for index in range(15, 0, -1):
        client = redis.Redis(*REDIS, db=index)
        if client.dbsize() == 0 and client.set("taxdome-qbo-test-claim", "1", nx=True):
            yield index
            client.flushdb()
            return
    pytest.fail("no empty Redis db index to use as the broker")


@pytest.fixture
def firm(tmp_path, emulator_for_deployment):
    """A generated firm and its seeded company, without the demo's planted vendor conflict: the
    reconciliations must come out clean."""
    firm = generated_firm(tmp_path / "export", accounts=12, seed=11)
    company = seeded_company(emulator_for_deployment, firm)
    qb = emulator_for_deployment.quickbooks(company)
    for vendor in Vendor.all(qb=qb):
        vendor.DisplayName = f"{vendor.DisplayName} (supplier)"
        vendor.save(qb=qb)
    return firm, company


@pytest.fixture
def emulator_for_deployment():
    # Each request takes a while, so that the load lasts long enough to be killed in the middle.
    with running_emulator(latency_seconds=0.25) as handle:
        yield handle


@pytest.fixture
def celery_deployment(
    request, tmp_path, postgres_databases, redis_db, postgres_schema, firm, emulator_for_deployment
):
    home = tmp_path / "airflow"
    home.mkdir()
    firm_, company = firm
    api_port = free_port()
    environment = (
        {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "TAXDOME"))}
        | deploy.project_settings(home)
        | deploy.celery_settings(
            metadata_url=_server_url(postgres_databases["metadata"]),
            result_backend_url=_server_url(postgres_databases["results"], "db+postgresql"),
            broker_url=f"redis://{REDIS[0]}:{REDIS[1]}/{redis_db}",
        )
        | deploy.api_settings(api_port)
        | {
            # Waits shortened for the test: the killed worker's task is declared dead after 20 s of silence and
            # retried 5 s later.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "TAXDOME_QBO_RETRY_DELAY_SECONDS": "5",
            "AIRFLOW__LOGGING__TRIGGERER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW_CONN_QUICKBOOKS_DEFAULT": json.dumps(
                airflow_connection(emulator_for_deployment.base_url, company)
            ),
            "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps(postgres_connection(postgres_schema)),
            "AIRFLOW_VAR_TAXDOME_QBO_SETTINGS": json.dumps(firm_.settings),
            "TAXDOME_QBO_REPORTS_DIR": str(tmp_path / "reports"),
        }
    )
    password = uuid.uuid4().hex
    (home / "passwords.json").write_text(json.dumps({deploy.ADMIN_USER: password}))
    cluster = deploy.Deployment(home, environment)
    failed_before = request.session.testsfailed
    try:
        cluster.run("db", "migrate")
        for name in deploy.LOCAL_COMPONENTS:
            cluster.start(deploy.Component.airflow(name, name))
        for number in (1, 2):
            cluster.start(deploy.celery_worker(number, log_server_port=free_port()))
        api = deploy.AirflowApi(f"http://127.0.0.1:{api_port}", deploy.ADMIN_USER, password)
        deploy.wait_for(api.answering, "the api-server", 240, cluster)
        api.log_in()
        deploy.wait_for(lambda: api.registered((SYNC, RECONCILE)), "DAGs parsed", 240, cluster)
        yield cluster, api, engine_from_spec({"postgres": postgres_schema}), company
    finally:
        cluster.stop()
        if request.session.testsfailed > failed_before:
            kept = KEPT_LOGS / time.strftime("%Y%m%dT%H%M%S")
            shutil.copytree(cluster.log_dir.parent, kept, dirs_exist_ok=True)
            print(f"component and task logs kept in {kept}")


def _finished(api, dag_id: str, run_id: str):
    state = api.run_state(dag_id, run_id)
    return state if state in FINISHED else None


def _load_running_in(api, run_id: str):
    ti = api.task_instance(SYNC, run_id, "load")
    return ti if ti["state"] == "running" else None


def _worker_running(cluster: deploy.Deployment, ti_id: str) -> str:
    """The worker whose process tree holds the task process (its title names the task instance)."""
    workers = {p.pid: name for name, p in cluster.processes.items() if name.startswith("worker-")}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if ti_id not in (proc / "cmdline").read_text(errors="replace"):
                continue
        except OSError:
            continue
        pid = int(proc.name)
        while pid > 1:
            if pid in workers:
                return workers[pid]
            pid = int(deploy.process_stat(pid)[1])
    raise AssertionError(f"no worker runs task instance {ti_id}")


def _synced_objects(emulator, realm: str) -> int:
    return sum(
        1
        for entity, rows in qbo_objects(emulator, realm).items()
        for obj in rows
        if (marker_of(entity, obj) or "").startswith("taxdome:")
    )


def test_celery_deployment_survives_a_killed_worker_and_reconciles_clean(
    celery_deployment, emulator_for_deployment
):
    cluster, api, engine, company = celery_deployment
    realm = company["realm_id"]
    started = time.monotonic()
    served_before = request_count(emulator_for_deployment, realm)
    api.unpause((SYNC, RECONCILE))

    first = api.trigger(SYNC, {"export_dir": str(Path(cluster.home).parent / "export")})
    deploy.wait_for(lambda: api.run_state(SYNC, first) == "running", "the sync running", 300, cluster)
    again = api.trigger(SYNC, {"export_dir": str(Path(cluster.home).parent / "export")})
    assert api.run_state(SYNC, again) == "queued", "max_active_runs=1: a second trigger waits"

    load = deploy.wait_for(lambda: _load_running_in(api, first), "load running", 300, cluster, interval=0.5)
    by_hand = api.trigger(RECONCILE)
    deploy.wait_for(
        lambda: writes_since(emulator_for_deployment, realm, served_before),
        "the load writing",
        120,
        cluster,
        0.2,
    )
    killed = _worker_running(cluster, load["id"])
    cluster.kill(killed)
    in_qbo_when_killed = _synced_objects(emulator_for_deployment, realm)
    survivor = next(n for n in cluster.processes if n.startswith("worker-") and n != killed)

    assert deploy.wait_for(lambda: _finished(api, SYNC, first), "the first sync", 420, cluster) == "success"
    retried = api.task_instance(SYNC, first, "load")
    assert retried["try_number"] >= 2, retried
    assert deploy.wait_for(lambda: _finished(api, SYNC, again), "the queued sync", 300, cluster) == "success"
    assert api.task_instances(SYNC, again)["load"]["state"] == "skipped", "nothing new: nothing loaded"
    sync_end = api.get(f"dags/{SYNC}/dagRuns/{again}")["end_date"]

    assert deploy.wait_for(
        lambda: _finished(api, RECONCILE, by_hand), "the manual reconciliation", 420, cluster
    ) == ("success")
    read_back = api.task_instances(RECONCILE, by_hand)["read_back"]
    assert read_back["start_date"] >= sync_end, "a reconciliation never reads while a sync is in flight"

    def asset_triggered_runs():
        return [r for r in api.runs(RECONCILE) if r["run_type"] == "asset_triggered"]

    [after_load] = deploy.wait_for(
        asset_triggered_runs, "the reconciliation the load triggered", 300, cluster
    )
    assert (
        deploy.wait_for(
            lambda: _finished(api, RECONCILE, after_load["dag_run_id"]),
            "the triggered reconciliation",
            420,
            cluster,
        )
        == "success"
    )

    scheduled = [r for r in api.runs(SYNC) if r["run_type"] == "scheduled"]
    for run_id in (run["dag_run_id"] for run in scheduled):
        assert (
            deploy.wait_for(lambda r=run_id: _finished(api, SYNC, r), "the hourly run", 300, cluster)
            == "success"
        )
        assert api.task_instances(SYNC, run_id)["load"]["state"] == "skipped"
    assert len(asset_triggered_runs()) == 1, "only the run that loaded something asks for a reconciliation"

    assert_qbo_matches_sync_state(engine, emulator_for_deployment, realm)
    assert in_qbo_when_killed < _synced_objects(emulator_for_deployment, realm), (
        "killed in the middle of the load"
    )
    with engine.connect() as conn:
        verdicts = conn.execute(sa.select(warehouse.reconciliation_runs.c.verdict)).scalars().all()
    assert verdicts and set(verdicts) == {"clean"}, verdicts
    assert cluster.processes[survivor].poll() is None
    for worker in (killed, survivor):
        assert "Executing workload in Celery" in (cluster.log_dir / f"{worker}.log").read_text(), worker
    print(
        f"Celery deployment: the first sync took {api.run_seconds(SYNC, first):.0f} s (with the kill and the retry), "
        f"the queued one {api.run_seconds(SYNC, again):.0f} s, the triggered reconciliation "
        f"{api.run_seconds(RECONCILE, after_load['dag_run_id']):.0f} s"
    )
    print(
        f"Celery deployment: two syncs, a killed worker and two reconciliations in {time.monotonic() - started:.0f} s"
    )
