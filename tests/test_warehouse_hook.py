"""The warehouse hook against real servers: a PostgreSQL that refuses or does not answer fails the task with
a message saying what to check; the test PostgreSQL gives a working engine."""

from __future__ import annotations

import json
import socket

import pytest
from airflow.sdk.exceptions import AirflowFailException
from servers import POSTGRES, postgres_connection

from taxdome_qbo.hooks.warehouse import WarehouseHook, WarehouseUnreachableError

PASSWORD = "never-in-a-message"


def use_warehouse_connection(monkeypatch, **connection) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps(connection))


@pytest.fixture
def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (taken from the system, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_warehouse_nobody_listens_for_names_the_connection_the_target_and_what_to_check(
    monkeypatch, closed_port
):
    use_warehouse_connection(
        monkeypatch,
        conn_type="postgres",
        host="127.0.0.1",
        port=closed_port,
        schema="billing",
        login="etl",
        password=PASSWORD,
    )

    with pytest.raises(WarehouseUnreachableError) as raised:
        WarehouseHook().get_engine()

    message = str(raised.value)
    assert f"connection warehouse_default: PostgreSQL at 127.0.0.1:{closed_port}/billing as etl" in message
    assert "Connection refused" in message  # the driver's own words
    assert "`airflow connections get warehouse_default`" in message
    assert "server is running" in message
    assert "\n" not in message and PASSWORD not in message
    assert not isinstance(raised.value, AirflowFailException)  # the task's retries take it again


@pytest.mark.postgres
def test_a_warehouse_that_refuses_the_login_says_so(monkeypatch):
    use_warehouse_connection(
        monkeypatch,
        conn_type="postgres",
        host=POSTGRES["host"],
        port=POSTGRES["port"],
        schema=POSTGRES["database"],
        login="no_such_etl_role",
        password=PASSWORD,
    )

    with pytest.raises(WarehouseUnreachableError, match='role "no_such_etl_role" does not exist'):
        WarehouseHook().get_engine()


@pytest.mark.postgres
def test_a_warehouse_that_answers_gives_its_engine(monkeypatch, postgres_schema):
    use_warehouse_connection(monkeypatch, **postgres_connection(postgres_schema))

    engine = WarehouseHook().get_engine()

    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW search_path").scalar_one() == postgres_schema
    engine.dispose()


@pytest.mark.postgres
def test_a_connection_of_the_hooks_own_type_gives_its_engine(monkeypatch, postgres_schema):
    """`taxdome_qbo_warehouse`, the type the UI's form creates, is PostgreSQL like `postgres`."""
    use_warehouse_connection(
        monkeypatch, **postgres_connection(postgres_schema) | {"conn_type": WarehouseHook.conn_type}
    )

    engine = WarehouseHook().get_engine()

    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW search_path").scalar_one() == postgres_schema
    engine.dispose()


def test_a_connection_of_another_type_is_refused_naming_the_types_that_work(monkeypatch):
    use_warehouse_connection(monkeypatch, conn_type="mysql", host="127.0.0.1")

    with pytest.raises(
        ValueError, match="has type 'mysql'; the warehouse is taxdome_qbo_warehouse, postgres or sqlite"
    ):
        WarehouseHook().get_engine()
