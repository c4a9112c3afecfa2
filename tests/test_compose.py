"""docker-compose.yaml cannot run here (no Docker engine), so it is held to the deployment the Celery test tier
proves: the same executor, brokers, settings and components (plugins/taxdome_qbo/deployment.py)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from taxdome_qbo import deployment
from taxdome_qbo.hooks.warehouse import WarehouseHook

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def airflow_services(compose) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items() if name.startswith("airflow-")}


def test_every_airflow_service_runs_with_the_proven_settings(airflow_services):
    tier = deployment.celery_settings(
        metadata_url="postgresql+psycopg2://u@h/metadata",
        result_backend_url="db+postgresql://u@h/results",
        broker_url="redis://h:6379/0",
    )
    for name, service in airflow_services.items():
        environment = service["environment"]
        assert set(tier) <= set(environment), f"{name} lacks {sorted(set(tier) - set(environment))}"
        for key, value in tier.items():
            if key.endswith(("_CONN", "_BACKEND", "_URL")):
                assert urlsplit(environment[key]).scheme == urlsplit(value).scheme, (name, key)
            else:
                assert str(environment[key]) == value, (name, key)
        secrets = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
        assert all(environment[key].startswith("${") for key in secrets), "keys come from the environment"


def test_metadata_and_result_backend_are_databases_of_their_own(airflow_services, compose):
    environment = airflow_services["airflow-scheduler"]["environment"]
    databases = {
        urlsplit(environment[key]).path
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND")
    }
    assert len(databases) == 2
    created = (COMPOSE.parent / "include/sql/compose/create_databases.sql").read_text()
    assert "CREATE DATABASE celery_results" in created and "CREATE DATABASE warehouse" in created
    mounts = compose["services"]["postgres"]["volumes"]
    assert any("create_databases.sql:/docker-entrypoint-initdb.d/" in mount for mount in mounts)


def test_the_components_the_tier_starts_are_all_services(airflow_services, compose):
    commands = {str(service.get("command")): name for name, service in airflow_services.items()}
    for component in deployment.LOCAL_COMPONENTS:
        assert component in commands, f"no service runs `airflow {component}`"
    worker = airflow_services[commands["celery worker"]]
    assert worker["deploy"]["replicas"] == 2, "two Celery workers, as the tier proves"
    assert {"redis", "postgres"} <= set(compose["services"])
    broker = urlsplit(worker["environment"]["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis")


def mounts(service: dict) -> dict[str, str]:
    """Host folder -> container folder, of the service's bind mounts."""
    return dict(volume.split(":")[:2] for volume in service["volumes"] if volume.startswith("./"))


def test_the_plugin_that_creates_the_pool_is_mounted_and_nothing_resets_it(airflow_services):
    for name, service in airflow_services.items():
        assert mounts(service)["./plugins"] == service["environment"]["AIRFLOW__CORE__PLUGINS_FOLDER"], name
        assert mounts(service)["./dags"] == service["environment"]["AIRFLOW__CORE__DAGS_FOLDER"], name
    assert "pools set" not in " ".join(airflow_services["airflow-init"]["command"])


def test_the_image_installs_the_project_where_the_services_mount_it(compose, airflow_services):
    """The distribution is installed (editable, its dependencies from the lock), so nothing needs PYTHONPATH
    and the mounted folders are the code that runs."""
    assert "PYTHONPATH" not in COMPOSE.read_text()
    dockerfile = compose["x-airflow-common"]["build"]["dockerfile_inline"].splitlines()
    install = next(line for line in dockerfile if "pip install" in line and " -e " in line)
    project = install.split(" -e ")[1].strip()
    assert "--no-deps" in install
    copied = {
        source
        for line in dockerfile
        if line.startswith("COPY") and project in line
        for source in line.split()[1:-1]
        if not source.startswith("--")
    }
    assert {"pyproject.toml", "requirements-runtime.in", "plugins", "include", "qbo_emulator"} <= copied
    for name, service in airflow_services.items():
        for folder in ("plugins", "include", "qbo_emulator", "dags"):
            assert mounts(service)[f"./{folder}"] == f"{project}/{folder}", (name, folder)
    connection = json.loads(
        airflow_services["airflow-scheduler"]["environment"]["AIRFLOW_CONN_WAREHOUSE_DEFAULT"]
    )
    assert connection["conn_type"] == WarehouseHook.conn_type
