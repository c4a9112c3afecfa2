"""The warehouse's Alembic migrations on SQLite and the real PostgreSQL: from an empty database and from the
schema release 0.1.0 created (tests/fixtures), to a schema equal to the metadata, with no row lost; twice is
a no-op; two processes at once never both migrate."""

from __future__ import annotations

import datetime as dt
import importlib
import multiprocessing
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from servers import engine_from_spec

from taxdome_qbo import migrations
from taxdome_qbo.migrations.__main__ import main as migrations_command
from taxdome_qbo.services import warehouse

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPAWN = multiprocessing.get_context("spawn")
WRITES = ("CREATE", "ALTER", "DROP", "COMMENT", "INSERT", "UPDATE", "DELETE")
NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def head_revision() -> str:
    return ScriptDirectory(str(migrations.SCRIPT_LOCATION)).get_current_head()


def recorded_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(
            conn, opts={"version_table": migrations.VERSION_TABLE}
        ).get_current_revision()


def differences(engine: sa.Engine) -> list:
    """What autogenerate would change to make the database match the metadata (nothing, when migrated)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": migrations.VERSION_TABLE, "compare_type": True}
        )
        return compare_metadata(context, warehouse.metadata)


def release_0_1_0_ddl(engine: sa.Engine) -> list[str]:
    """The statements with which release 0.1.0 created its warehouse on this engine's database."""
    text = (FIXTURES / f"warehouse_0_1_0.{engine.dialect.name}.sql").read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [statement.strip().removesuffix(";") for statement in text.split(";\n\n") if statement.strip()]


def create_as_release_0_1_0(engine: sa.Engine, statements: list[str] | None = None) -> None:
    with engine.begin() as conn:
        for statement in statements or release_0_1_0_ddl(engine):
            conn.exec_driver_sql(statement)


def insert_rows_of_a_run(engine: sa.Engine) -> dict[str, list[tuple]]:
    """A row in tables of every sort (staging, batches, tokens, sync state, audit), as 0.1.0 wrote them."""
    rows = {
        "taxdome_export_batches": [
            {
                "batch_id": "b1",
                "export_location": "/exports/2026-12-01",
                "export_name": "2026-12-01",
                "status": "loaded",
                "started_at": NOW,
                "rows_read": 1,
            }
        ],
        "stg_taxdome__accounts": [
            {
                "account_id": "A1",
                "account_name": "Acme LLC",
                "archived": False,
                "qbo_sync": "yes",
                "_batch_id": "b1",
                "_loaded_at": NOW,
                "_row_hash": -42,
            }
        ],
        "qbo_oauth_tokens": [
            {"realm_id": "9130", "refresh_token": "encrypted", "refreshed_at": NOW, "status": "connected"}
        ],
        "qbo_sync_state": [
            {
                "realm_id": "9130",
                "taxdome_kind": "account",
                "taxdome_id": "A1",
                "qbo_entity": "Customer",
                "qbo_id": "58",
                "status": "synced",
                "updated_at": NOW,
            }
        ],
        "qbo_requests": [
            {
                "realm_id": "9130",
                "request_id": "r1",
                "attempt": 1,
                "entity": "Customer",
                "operation": "create",
                "duration_ms": 120,
                "sent_at": NOW,
            }
        ],
    }
    with engine.begin() as conn:
        for table, values in rows.items():
            conn.execute(warehouse.metadata.tables[table].insert(), values)
    return all_rows(engine, rows)


def all_rows(engine: sa.Engine, tables) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(sa.select(warehouse.metadata.tables[table]))]
            for table in tables
        }


def fresh_engine_on(engine: sa.Engine) -> sa.Engine:
    """Another engine on the same database (as the next process would have): `create_schema` looks again."""
    if engine.dialect.name == "sqlite":
        return warehouse.sqlite_engine(engine.url.database)
    return engine_from_spec({"postgres": current_schema(engine)})


def current_schema(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT current_schema()")).scalar_one()


def spec_of(engine: sa.Engine) -> dict:
    if engine.dialect.name == "sqlite":
        return {"sqlite": engine.url.database}
    return {"postgres": current_schema(engine)}


def test_an_empty_database_is_migrated_to_the_schema_the_code_describes(warehouse_engine):
    warehouse.create_schema(warehouse_engine)

    assert differences(warehouse_engine) == []
    assert recorded_revision(warehouse_engine) == head_revision()
    assert set(sa.inspect(warehouse_engine).get_table_names()) == {
        *warehouse.metadata.tables,
        migrations.VERSION_TABLE,
    }


@pytest.mark.postgres
def test_the_version_table_is_the_warehouses_own_in_its_schema(postgres_engine, postgres_schema):
    warehouse.create_schema(postgres_engine)

    inspector = sa.inspect(postgres_engine)
    assert inspector.has_table(migrations.VERSION_TABLE, schema=postgres_schema)
    assert not inspector.has_table(migrations.VERSION_TABLE, schema="public")
    assert "alembic_version" not in inspector.get_table_names()


@pytest.mark.parametrize("url", ["sqlite://", "postgresql+psycopg://"])
def test_the_baseline_creates_what_release_0_1_0_created(url):
    """The revision's frozen tables are the fixture's statements, to the letter, on both databases."""
    baseline = importlib.import_module("taxdome_qbo.migrations.versions.0001_baseline")
    statements = []
    engine = sa.create_mock_engine(
        url, lambda ddl, *_: statements.append(str(ddl.compile(dialect=engine.dialect)))
    )

    baseline.BASELINE.create_all(engine, checkfirst=False)

    written = [
        "\n".join(line.rstrip() for line in statement.strip().splitlines()) for statement in statements
    ]
    assert sorted(written) == sorted(release_0_1_0_ddl(engine))


def test_a_database_release_0_1_0_created_is_adopted_with_every_row(warehouse_engine):
    create_as_release_0_1_0(warehouse_engine)
    before = insert_rows_of_a_run(warehouse_engine)

    warehouse.create_schema(warehouse_engine)

    assert all_rows(warehouse_engine, before) == before
    assert differences(warehouse_engine) == []
    assert recorded_revision(warehouse_engine) == head_revision()


def test_an_older_database_gains_what_the_old_start_up_routine_would_have_added(warehouse_engine):
    """An earlier build lacked a column, a table and an index: they are added, nothing else is touched."""
    statements = [
        statement.replace("\tpending_action VARCHAR(16),\n", "")
        for statement in release_0_1_0_ddl(warehouse_engine)
        if "ix_qbo_requests_run" not in statement and "sync_overrides" not in statement
    ]
    create_as_release_0_1_0(warehouse_engine, statements)
    assert "pending_action" not in {
        c["name"] for c in sa.inspect(warehouse_engine).get_columns("qbo_sync_state")
    }
    with warehouse_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO qbo_sync_state (realm_id, taxdome_kind, taxdome_id, status, updated_at) "
                "VALUES ('9130', 'account', 'A1', 'synced', :now)"
            ),
            {"now": NOW},
        )

    warehouse.create_schema(warehouse_engine)

    assert differences(warehouse_engine) == []
    with warehouse_engine.connect() as conn:
        state = conn.execute(sa.select(warehouse.qbo_sync_state)).mappings().one()
    assert (state["taxdome_id"], state["status"], state["pending_action"]) == ("A1", "synced", None)


@pytest.mark.postgres
def test_an_adopted_table_gets_the_baselines_comment(postgres_engine):
    create_as_release_0_1_0(postgres_engine)
    with postgres_engine.begin() as conn:
        conn.execute(sa.text("COMMENT ON TABLE sync_plan IS 'an older wording'"))

    warehouse.create_schema(postgres_engine)

    assert sa.inspect(postgres_engine).get_table_comment("sync_plan")["text"] == warehouse.sync_plan.comment


def test_upgrading_a_migrated_database_again_changes_nothing(warehouse_engine):
    warehouse.create_schema(warehouse_engine)
    again = fresh_engine_on(warehouse_engine)
    statements = []
    sa.event.listen(again, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))

    warehouse.create_schema(again)
    warehouse.create_schema(again)  # the second call for an engine does not even look

    writes = [sql for sql in statements if sql.lstrip().upper().startswith(WRITES)]
    assert writes == []
    assert not [sql for sql in statements if "BEGIN IMMEDIATE" in sql or "advisory" in sql], (
        "it took the lock"
    )
    assert statements, "a new engine looks at the database once"
    assert recorded_revision(again) == head_revision()
    again.dispose()


def test_a_process_starting_while_a_load_writes_to_sqlite_does_not_wait_for_it(sqlite_engine):
    warehouse.create_schema(sqlite_engine)
    with sqlite_engine.connect() as writer:
        # SQLite's one write lock, as a long staging transaction holds it.
        writer.exec_driver_sql("BEGIN IMMEDIATE")
        writer.execute(sa.delete(warehouse.sync_plan))
        starting = fresh_engine_on(sqlite_engine)
        started = time.monotonic()

        warehouse.create_schema(starting)

        assert time.monotonic() - started < 5, "it waited for the write lock (busy_timeout is 30 s)"
        writer.rollback()
    starting.dispose()


def test_downgrading_to_nothing_removes_the_warehouse_and_upgrading_rebuilds_it(warehouse_engine):
    warehouse.create_schema(warehouse_engine)
    with migrations.migrating(warehouse_engine) as config:
        command.downgrade(config, "base")
    assert set(sa.inspect(warehouse_engine).get_table_names()) == {migrations.VERSION_TABLE}

    migrations.upgrade(warehouse_engine)

    assert differences(warehouse_engine) == []


def test_the_copy_numbers_revision_keeps_the_copies_and_has_the_newly_numbered_entities_read_in_full(
    warehouse_engine,
):
    """The copies gain the numbers (and an expense's payee) empty; the read marks of the entities whose
    number was not kept are dropped, so the next read-back reads them in full and fills the numbers in."""
    with migrations.migrating(warehouse_engine) as config:
        command.upgrade(config, "0002")
    entities = ("Payment", "Invoice", "CreditMemo", "Purchase", "RefundReceipt", "Customer")
    with warehouse_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO stg_qbo__purchases (realm_id, qbo_id, txn_date, total_cents, _read_at)"
                " VALUES ('9130', '31', :day, 99, :now)"
            ),
            {"day": NOW.date(), "now": NOW},
        )
        conn.execute(
            sa.text(
                "INSERT INTO qbo_readbacks (realm_id, entity, read_at, mode, objects)"
                " VALUES ('9130', :entity, :now, 'full', 1)"
            ),
            [{"entity": entity, "now": NOW} for entity in entities],
        )

    warehouse.create_schema(warehouse_engine)

    assert differences(warehouse_engine) == []
    with warehouse_engine.connect() as conn:
        purchase = conn.execute(sa.select(warehouse.stg_qbo_purchases)).one()
        still_read = set(conn.execute(sa.select(warehouse.qbo_readbacks.c.entity)).scalars())
    assert (purchase.qbo_id, purchase.total_cents, purchase.doc_number, purchase.payee_name) == (
        "31",
        99,
        None,
        None,
    )
    assert still_read == {"Payment", "Invoice", "Customer"}


def upgrade_in_child(spec: dict, ready, go, results) -> None:
    """A process starting up: says it is ready, waits for the signal, then `create_schema`; reports the tables
    it created."""
    engine = engine_from_spec(spec)
    created = []
    sa.event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_: created.append(sql) if sql.lstrip().startswith("CREATE TABLE") else None,
    )
    ready.release()
    go.wait(60)
    warehouse.create_schema(engine)
    results.put(len(created))


def start_children(spec: dict, count: int):
    """`count` processes started and ready to migrate the warehouse once `go` is set."""
    ready, go, results = SPAWN.Semaphore(0), SPAWN.Event(), SPAWN.Queue()
    children = [SPAWN.Process(target=upgrade_in_child, args=(spec, ready, go, results)) for _ in range(count)]
    for child in children:
        child.start()
    for _ in children:
        assert ready.acquire(timeout=120)
    return children, go, results


def test_two_processes_upgrading_an_empty_database_at_once_migrate_it_once(warehouse_engine):
    children, go, results = start_children(spec_of(warehouse_engine), 2)
    go.set()
    tables_created = sorted(results.get(timeout=120) for _ in children)
    for child in children:
        child.join(30)
        assert child.exitcode == 0

    assert tables_created == [0, len(warehouse.metadata.tables) + 1]  # and the version table
    assert differences(warehouse_engine) == []
    assert recorded_revision(warehouse_engine) == head_revision()


def test_a_process_starting_while_another_migrates_waits_for_it(warehouse_engine):
    children, go, results = start_children(spec_of(warehouse_engine), 1)
    with migrations.migrating(warehouse_engine) as config:
        command.upgrade(config, "head")
        go.set()
        time.sleep(2)
        assert results.empty(), "the second process went on while the first held the migration lock"
    assert results.get(timeout=60) == 0  # it found the database migrated: nothing to create
    children[0].join(30)
    assert children[0].exitcode == 0


def test_the_command_line_runs_alembic_on_the_migrations(tmp_path, capfd):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    migrations_command(["--url", url, "upgrade", "head"])
    migrations_command(["--url", url, "current"])
    assert capfd.readouterr().out.strip() == f"{head_revision()} (head)"

    migrations_command(["check"])  # the newest revision creates what the metadata describes
    assert "No new upgrade operations detected" in capfd.readouterr().out
