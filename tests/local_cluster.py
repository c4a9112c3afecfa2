"""Airflow's components as processes, the way `make up` runs them, for the tests of a real scheduler."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from qbo_emulator.testing import free_port
from taxdome_qbo import deployment as deploy

COMPONENTS = ("api-server", "scheduler", "dag-processor")
PASSWORD = "local-cluster"


@contextmanager
def local_cluster(
    home: Path, settings: Mapping[str, str], dag_ids: Iterable[str]
) -> Iterator[tuple[deploy.Deployment, deploy.AirflowApi]]:
    """An api-server, a scheduler and a dag-processor (LocalExecutor, SQLite metadata in `home`), with
    `settings` added to their environment and none of this process's Airflow settings; yields the deployment
    and its REST API, logged in as the admin, once `dag_ids` are parsed. Stops them all on the way out."""
    home.mkdir(parents=True, exist_ok=True)
    api_port = free_port()
    environment = (
        {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "TAXDOME"))}
        | deploy.SHARED_SETTINGS
        | deploy.local_settings(home)
        | deploy.project_settings(home)
        | deploy.api_settings(api_port)
        | dict(settings)
        | {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            # A task that lost its api-server while the 2 cores start everything is retried in seconds.
            "TAXDOME_QBO_RETRY_DELAY_SECONDS": "5",
        }
    )
    (home / "passwords.json").write_text(json.dumps({deploy.ADMIN_USER: PASSWORD}))
    cluster = deploy.Deployment(home, environment)
    try:
        cluster.run("db", "migrate")
        for name in COMPONENTS:
            cluster.start(deploy.Component.airflow(name, name))
        api = deploy.AirflowApi(f"http://127.0.0.1:{api_port}", deploy.ADMIN_USER, PASSWORD)
        deploy.wait_for(api.answering, "the api-server", deploy.STARTUP_TIMEOUT_SECONDS, cluster)
        api.log_in()
        deploy.wait_for(lambda: api.registered(dag_ids), "the DAGs parsed", 240, cluster)
        yield cluster, api
    finally:
        cluster.stop()
