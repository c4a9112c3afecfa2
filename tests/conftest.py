"""Test set-up: an Airflow home of its own, nothing magic from the developer's environment, and the real
databases (SQLite files and the PostgreSQL server on 127.0.0.1:5432, one throw-away schema per test)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# One Airflow home (and SQLite metadata database) per pytest-xdist worker: two `dag.test()`s never share one.
os.environ["AIRFLOW_HOME"] = str(REPO / ".airflow" / f"pytest{os.environ.get('PYTEST_XDIST_WORKER', '')}")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__LOAD_DEFAULT_CONNECTIONS"] = "False"
for inherited in ("AIRFLOW_VAR_TAXDOME_QBO_SETTINGS", "AIRFLOW_CONN_WAREHOUSE_DEFAULT"):
    os.environ.pop(inherited, None)

import json  # noqa: E402

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from servers import POSTGRES, postgres_connection  # noqa: E402

from qbo_emulator.testing import EmulatorHandle, running_emulator  # noqa: E402
from taxdome_qbo.services import warehouse  # noqa: E402


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = warehouse.sqlite_engine(str(tmp_path / "warehouse.db"))
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_schema():
    """A schema of its own on the real server, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    admin = warehouse.postgres_engine(**POSTGRES, password=None)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    admin.dispose()


@pytest.fixture
def postgres_engine(postgres_schema):
    engine = warehouse.postgres_engine(**POSTGRES, password=None, search_path=postgres_schema)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_engine(request):
    """Every staging test runs on the embedded default and on the production database."""
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata database (dag.test needs one); migrating an up-to-date one is a no-op."""
    from airflow.utils import db

    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    db.initdb()


@pytest.fixture(scope="session")
def emulator() -> EmulatorHandle:
    """One QBO emulator subprocess per test session (per xdist worker); tests that reconfigure it use their own."""
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def company(emulator: EmulatorHandle) -> dict:
    """A company of its own per test, so tests never see each other's objects or tokens."""
    return emulator.admin("POST", "companies").json()


@pytest.fixture
def warehouse_file(tmp_path, monkeypatch):
    """A SQLite warehouse as Airflow sees it: the `warehouse_default` connection in the environment."""
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_engine_from_connection(request, tmp_path, monkeypatch):
    """The warehouse as the DAG sees it (a connection in the environment) and an engine on the same data."""
    if request.param == "sqlite":
        path = tmp_path / "warehouse.db"
        connection = {"conn_type": "sqlite", "host": str(path)}
        engine = warehouse.sqlite_engine(str(path))
    else:
        schema = request.getfixturevalue("postgres_schema")
        connection = postgres_connection(schema)
        engine = warehouse.postgres_engine(**POSTGRES, password=None, search_path=schema)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps(connection))
    yield engine
    engine.dispose()
