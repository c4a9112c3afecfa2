"""The staging warehouse as an Airflow hook: connection `warehouse_default`, or SQLite in the Airflow home."""

from __future__ import annotations

import sqlalchemy as sa
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from sqlalchemy.engine import Engine

from taxdome_qbo.paths import default_warehouse_path
from taxdome_qbo.services import warehouse


class WarehouseUnreachableError(RuntimeError):
    """The warehouse's PostgreSQL refused the connection or did not answer; a retry of the task may find it."""


class WarehouseHook(BaseHook):
    """Builds the SQLAlchemy engine of the staging warehouse.

    The connection (`AIRFLOW_CONN_WAREHOUSE_DEFAULT`, JSON) is PostgreSQL, of this hook's type
    `taxdome_qbo_warehouse` (its form in the UI) or `postgres` (host, port, schema = database, login,
    password; extra `search_path`, one plain schema name, to stage into a schema other than `public`), or
    `sqlite` (host = the database file). Without the connection, the warehouse is `warehouse.db` in the
    Airflow home. A SQLite file (and its folder) created here is readable by its owner only. A PostgreSQL
    warehouse that refuses or does not answer fails `get_engine` with WarehouseUnreachableError, which says
    what to check.

    :param warehouse_conn_id: the connection id.
    """

    conn_name_attr = "warehouse_conn_id"
    default_conn_name = "warehouse_default"
    # A type of its own, so the Postgres provider's hook keeps `postgres`; those connections still work.
    conn_type = "taxdome_qbo_warehouse"
    hook_name = "TaxDome staging warehouse (PostgreSQL)"
    postgres_conn_types = (conn_type, "postgres", "postgresql")

    def __init__(self, warehouse_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id

    def get_engine(self) -> Engine:
        try:
            conn = self.get_connection(self.warehouse_conn_id)
        except AirflowNotFoundException:
            return warehouse.sqlite_engine(str(default_warehouse_path()))
        if conn.conn_type == "sqlite":
            return warehouse.sqlite_engine(conn.host)
        if conn.conn_type not in self.postgres_conn_types:
            raise ValueError(
                f"connection {self.warehouse_conn_id} has type {conn.conn_type!r}; the warehouse is "
                f"{self.conn_type}, postgres or sqlite"
            )
        engine = warehouse.postgres_engine(
            host=conn.host,
            port=conn.port,
            database=conn.schema or "postgres",
            user=conn.login,
            password=conn.password,
            search_path=conn.extra_dejson.get("search_path"),
        )
        self._check_answers(engine)
        return engine

    def _check_answers(self, engine: Engine) -> None:
        """One connection and `SELECT 1`: a warehouse that is down or refuses us fails the task here, saying
        what to check, rather than deep inside a step. No retry loop: the task's retries ride out outages."""
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as error:
            url = engine.url
            driver_error = " ".join(str(error.orig).split())
            raise WarehouseUnreachableError(
                f"The warehouse (connection {self.warehouse_conn_id}: PostgreSQL at "
                f"{url.host}:{url.port}/{url.database} as {url.username or 'the default user'}) cannot be "
                f"used ({driver_error}). Check the connection's host, port, schema (the database), login and "
                f"password with `airflow connections get {self.warehouse_conn_id}`, and that the PostgreSQL "
                "server is running and accepts connections from this machine."
            ) from error

    def get_conn(self) -> Engine:
        return self.get_engine()
