"""The real servers the tests use: the PostgreSQL of this machine (and of CI)."""

from __future__ import annotations

import os

from sqlalchemy.engine import Engine

from taxdome_qbo.services import warehouse

POSTGRES = {"host": "127.0.0.1", "port": 5432, "database": "test", "user": os.environ.get("PGUSER", "root")}


def postgres_connection(search_path: str) -> dict:
    """An Airflow `warehouse_default` connection to the test PostgreSQL, in the schema `search_path`."""
    return {
        "conn_type": "postgres",
        "host": POSTGRES["host"],
        "port": POSTGRES["port"],
        "schema": POSTGRES["database"],
        "login": POSTGRES["user"],
        "extra": {"search_path": search_path},
    }


def engine_from_spec(spec: dict) -> Engine:
    """An engine on the warehouse a test uses, rebuilt in another process (`{"sqlite": path}` or
    `{"postgres": schema}`)."""
    if "sqlite" in spec:
        return warehouse.sqlite_engine(spec["sqlite"])
    return warehouse.postgres_engine(**POSTGRES, password=None, search_path=spec["postgres"])
