"""Run the SQL kept in `include/sql/` with bound parameters (values never go into the text)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SQL_DIR = Path(__file__).resolve().parents[3] / "include" / "sql"


@cache
def statement(name: str) -> sa.TextClause:
    """`staging/select_batch_file_counts` -> the parsed statement of include/sql/staging/select_batch_file_counts.sql."""
    return sa.text((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"))


def fetch_all(conn: Connection, name: str, **params) -> list[sa.Row]:
    return list(conn.execute(statement(name), params).all())
