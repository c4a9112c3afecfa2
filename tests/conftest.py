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

import contextlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from browser import (  # noqa: E402
    AirflowUi,
    artifacts_folder,
    headless_chromium,
    open_pages,
    running_api_server,
    screenshot_at,
)
from demo_firm import DemoFirm, prepare_demo_firm  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from servers import POSTGRES, postgres_connection  # noqa: E402

from qbo_emulator.testing import EmulatorHandle, running_emulator  # noqa: E402
from taxdome_qbo.services import warehouse  # noqa: E402

# The api-server app with the plugin and its users, for the UI tests.
pytest_plugins = ["ui_server"]


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


@pytest.fixture(scope="session")
def demo_firm(emulator, tmp_path_factory) -> DemoFirm:
    """The demo firm synced into an emulator company and reconciled, in a warehouse of its own (tests/demo_firm.py)."""
    firm = prepare_demo_firm(emulator, tmp_path_factory.mktemp("demo-firm"))
    yield firm
    firm.engine.dispose()


@pytest.fixture(scope="session")
def airflow_ui(demo_firm, tmp_path_factory) -> AirflowUi:
    """One api-server for the session's browser tests (starting one takes 25-50 s on 2 shared cores), with `editor` and
    `viewer` (tests/browser.py), deployed on the demo firm: its warehouse, QuickBooks company and reports."""
    with running_api_server(tmp_path_factory.mktemp("airflow-ui"), demo_firm.settings) as ui:
        yield ui


@pytest.fixture(scope="session")
def _chromium_process():
    with headless_chromium() as browser:
        yield browser


@pytest.fixture
def chromium(request, _chromium_process):
    """The session's headless Chromium, with an empty artifacts folder for this test; the browser contexts
    (cookies, pages) the test opens are closed after it, so no test inherits another's login."""
    shutil.rmtree(artifacts_folder(request.node.nodeid), ignore_errors=True)
    yield _chromium_process
    for context in _chromium_process.contexts:
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A browser test that fails keeps a screenshot of each page it had open, and its report lists every
    screenshot of the test."""
    if call.when == "call" and call.excinfo is not None and "chromium" in item.funcargs:
        for number, page in enumerate(open_pages(item.funcargs["chromium"]), 1):
            with contextlib.suppress(PlaywrightError):
                screenshot_at(page, artifacts_folder(item.nodeid) / f"at-failure-{number}.png")
    report = (yield).get_result()
    folder = artifacts_folder(item.nodeid)
    if report.failed and folder.is_dir():
        report.sections.append(("screenshots", "\n".join(str(p) for p in sorted(folder.glob("*.png")))))
