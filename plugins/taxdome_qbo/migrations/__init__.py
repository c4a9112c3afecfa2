"""The warehouse's schema migrations (Alembic), configured here: no alembic.ini, and the scripts are found
beside this module, so they run from a checkout and from an installed distribution alike.

`upgrade(engine)` brings a warehouse to the newest revision under a lock, so two processes starting at once
never both create it: the first upgrades, the other waits and then finds nothing to do. The version lives in
a table of its own (`VERSION_TABLE`), never Airflow's `alembic_version`, in the schema the warehouse's tables
are created in (on PostgreSQL the first of the engine's search_path). Adding a revision: docs/development.md.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

VERSION_TABLE = "taxdome_qbo_schema_version"
SCRIPT_LOCATION = Path(__file__).resolve().parent

# Two numbers name a PostgreSQL advisory lock: this one says "warehouse migration", the other is the schema's.
_ADVISORY_LOCK_CLASS = 0x7A0DB


def _alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for migrating the database behind `connection` (env.py takes it from here)."""
    config = Config(stdout=sys.stdout)  # the current one: Alembic's default is the one when it was imported
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def _take_migration_lock(conn: Connection) -> None:
    """Hold the schema for the rest of `conn`'s transaction: a second migrator waits here until it ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(current_schema()))"),
            {"lock_class": _ADVISORY_LOCK_CLASS},
        )
    else:
        # SQLite's write lock, taken now rather than at the first write (others wait up to busy_timeout).
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def migrating(engine: Engine) -> Iterator[Config]:
    """Alembic's configuration over one transaction that holds the migration lock; committed on leaving."""
    with engine.begin() as conn:
        _take_migration_lock(conn)
        yield _alembic_config(conn)


def upgrade(engine: Engine) -> None:
    """Bring the warehouse to the newest revision (a database 0.1.0 created is adopted by the first)."""
    if _is_at_head(engine):
        return
    with migrating(engine) as config:
        command.upgrade(config, "head")


def _is_at_head(engine: Engine) -> bool:
    """Whether the warehouse is migrated already, read without the lock: on SQLite the lock is the one write
    lock, which a process starting while a long load writes would otherwise wait for."""
    with engine.connect() as conn, _quiet(logging.getLogger("alembic.runtime.migration")):
        recorded = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
    return set(recorded) == set(ScriptDirectory(str(SCRIPT_LOCATION)).get_heads())


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Alembic announces its dialect at INFO whenever it looks at a database: on every task's start that is
    noise in the task logs and command output; an upgrade, which does work, still logs what it runs."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
