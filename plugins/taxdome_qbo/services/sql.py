"""Run the SQL kept in `include/sql/` with bound parameters (values never go into the text).

The SQL ships as package data `taxdome_qbo/sql/` (in the project, a symlink to include/sql), so it is found
the same way in the project, an editable install and an installed wheel.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SQL_DIR = files("taxdome_qbo") / "sql"


@cache
def statement(name: str) -> sa.TextClause:
    """`staging/select_batch_file_counts` -> the parsed statement of include/sql/staging/select_batch_file_counts.sql."""
    return sa.text(SQL_DIR.joinpath(*f"{name}.sql".split("/")).read_text(encoding="utf-8"))


def fetch_all(conn: Connection, name: str, **params) -> list[sa.Row]:
    return list(conn.execute(statement(name), params).all())
