"""The real servers the tests use: the PostgreSQL of this machine (and of CI)."""

from __future__ import annotations

import os

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
