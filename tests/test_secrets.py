"""Issue 10, cases 6, 9 and 10: tokens never echoed by a database error nor stored in clear, the warehouse
file private, and the warehouse connection's search_path one schema name, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import stat
import traceback
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from servers import POSTGRES, postgres_connection
from test_qbo_tokens import access_token_works, refresh_grants, refresher

from taxdome_qbo.hooks.quickbooks import deployment_token_cipher
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.services import warehouse
from taxdome_qbo.services.qbo_tokens import TokenGrant, TokenStore
from taxdome_qbo.services.token_cipher import TokenCipher, TokenDecryptionError, TokenKeyError
from taxdome_qbo.services.warehouse import qbo_oauth_tokens

FERNET_PREFIX = "gAAAAA"  # every Fernet token starts with its version byte and timestamp


@pytest.fixture
def engine(warehouse_engine):
    warehouse.create_schema(warehouse_engine)
    return warehouse_engine


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher.generated()


@pytest.fixture
def usual_umask():
    """The common umask (022), under which files are created world-readable unless created private."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def raw_row(engine) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(sa.select(qbo_oauth_tokens)).one()


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def refuse_token_writes(engine) -> None:
    """Make the database refuse to store an access token (as a full disk or a broken schema would)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_tokens BEFORE UPDATE OF access_token ON qbo_oauth_tokens "
                "WHEN NEW.access_token IS NOT NULL BEGIN SELECT RAISE(ABORT, 'tokens refused'); END"
            )
        else:
            # A CHECK violation's DETAIL repeats the whole failing row: the nastiest message to leak through.
            conn.exec_driver_sql(
                "ALTER TABLE qbo_oauth_tokens ADD CONSTRAINT refuse_tokens CHECK (length(access_token) < 20)"
            )


def accept_token_writes(engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER refuse_tokens")
        else:
            conn.exec_driver_sql("ALTER TABLE qbo_oauth_tokens DROP CONSTRAINT refuse_tokens")


# --- case 6: no token in a database error, no transaction during the refresh -------------------------------


def test_engines_never_echo_bound_parameters(warehouse_engine):
    secret = "RT1-a-bound-secret"
    with pytest.raises(sa.exc.DBAPIError) as failed, warehouse_engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM no_such_table WHERE token = :token"), {"token": secret})

    assert "parameters hidden" in str(failed.value)
    assert secret not in "".join(traceback.format_exception(failed.value))


def test_a_failed_token_write_shows_no_token_and_the_next_refresh_recovers(
    emulator, company, engine, cipher, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    store = TokenStore(engine, company["realm_id"], cipher)
    store.seed(company["refresh_token"])
    refresh = refresher(emulator, company)
    grants: list[TokenGrant] = []

    def refresh_and_keep(refresh_token: str) -> TokenGrant:
        grants.append(refresh(refresh_token))
        return grants[-1]

    refuse_token_writes(engine)
    with pytest.raises(sa.exc.DBAPIError) as failed:
        store.tokens(refresh_and_keep)

    [lost_grant] = grants
    captured = capsys.readouterr()
    visible = "".join(traceback.format_exception(failed.value)) + caplog.text + captured.out + captured.err
    assert "refuse_tokens" in visible or "tokens refused" in visible  # the failure itself is told
    for secret in (lost_grant.refresh_token, lost_grant.access_token, company["refresh_token"]):
        assert secret not in visible
    row = raw_row(engine)
    assert (row.access_token, row.refresh_claimed_by) == (None, None)  # nothing stored, the claim released

    # The stored refresh token was superseded by the lost grant; Intuit's grace period still takes it.
    accept_token_writes(engine)
    tokens = store.tokens(refresh)
    assert access_token_works(emulator, company, tokens.access_token)


# --- case 10: tokens encrypted at rest ---------------------------------------------------------------------


def test_the_stored_tokens_are_encrypted(emulator, company, engine, cipher):
    store = TokenStore(engine, company["realm_id"], cipher)
    store.seed(company["refresh_token"])
    tokens = store.tokens(refresher(emulator, company))

    row = raw_row(engine)
    assert row.tokens_encrypted
    for column, plain in ((row.refresh_token, tokens.refresh_token), (row.access_token, tokens.access_token)):
        assert column.startswith(FERNET_PREFIX) and plain not in column
        assert cipher.decrypt(column, realm_id=company["realm_id"]) == plain


def test_tokens_stored_in_clear_by_an_older_version_are_used_then_encrypted(
    emulator, company, engine, cipher
):
    auth_client = emulator.auth_client(company)
    auth_client.refresh(refresh_token=company["refresh_token"])
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(qbo_oauth_tokens).values(
                realm_id=company["realm_id"],
                refresh_token=auth_client.refresh_token,
                access_token=auth_client.access_token,
                access_token_expires_at=now + timedelta(hours=1),
                refreshed_at=now,
                status="connected",
                is_current=True,
                connected_at=now,
            )
        )
    grants_before = refresh_grants(emulator)

    tokens = TokenStore(engine, company["realm_id"], cipher).tokens(refresher(emulator, company))

    assert refresh_grants(emulator) == grants_before  # the old row's access token is still good
    assert (tokens.access_token, tokens.refresh_token) == (
        auth_client.access_token,
        auth_client.refresh_token,
    )
    row = raw_row(engine)
    assert row.tokens_encrypted
    assert cipher.decrypt(row.refresh_token, realm_id=company["realm_id"]) == auth_client.refresh_token
    assert cipher.decrypt(row.access_token, realm_id=company["realm_id"]) == auth_client.access_token


def test_a_wrong_key_fails_clearly_without_showing_a_token(emulator, company, engine, cipher):
    TokenStore(engine, company["realm_id"], cipher).seed(company["refresh_token"])
    tokens = TokenStore(engine, company["realm_id"], cipher).tokens(refresher(emulator, company))

    with pytest.raises(TokenDecryptionError, match="cannot be decrypted with the configured key") as failed:
        TokenStore(engine, company["realm_id"], TokenCipher.generated()).tokens(
            lambda refresh_token: pytest.fail("nothing to refresh with")
        )

    shown = "".join(traceback.format_exception(failed.value))
    row = raw_row(engine)
    for secret in (tokens.refresh_token, tokens.access_token, row.refresh_token, row.access_token):
        assert secret not in shown


def test_a_new_key_put_first_reads_the_old_rows_and_encrypts_the_next_refresh(emulator, company, engine):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old = TokenStore(engine, company["realm_id"], TokenCipher([(old_key, "the old key")]))
    old.seed(company["refresh_token"])
    first = old.tokens(refresher(emulator, company))
    rotating = TokenCipher([(new_key, "the new key"), (old_key, "the old key")])

    again = TokenStore(engine, company["realm_id"], rotating).tokens(
        refresher(emulator, company), rejected_access_token=first.access_token
    )

    new_only = TokenCipher([(new_key, "the new key")])
    assert (
        new_only.decrypt(raw_row(engine).refresh_token, realm_id=company["realm_id"]) == again.refresh_token
    )


def test_the_deployment_key_is_the_connections_then_airflows(monkeypatch):
    airflow_key, connection_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", airflow_key)

    by_airflow = deployment_token_cipher().encrypt("token")
    by_connection = deployment_token_cipher({"token_encryption_key": connection_key}).encrypt("token")

    assert Fernet(airflow_key).decrypt(by_airflow.encode()) == b"token"
    assert Fernet(connection_key).decrypt(by_connection.encode()) == b"token"
    # Adding the connection's key keeps what Airflow's key encrypted readable.
    both = deployment_token_cipher({"token_encryption_key": connection_key})
    assert both.decrypt(by_airflow, realm_id="1") == "token"


def test_without_any_configured_key_one_is_generated_once_in_the_airflow_home(
    tmp_path, monkeypatch, caplog, usual_umask
):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY", raising=False)
    caplog.set_level(logging.INFO)

    encrypted = deployment_token_cipher().encrypt("token")
    again = deployment_token_cipher()

    key_file = tmp_path / "taxdome_qbo.key"
    assert mode(key_file) == 0o600
    assert again.decrypt(encrypted, realm_id="1") == "token"
    assert [f"generated one in {key_file}" in r.getMessage() for r in caplog.records].count(True) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taxdome_qbo.key"]  # no draft left behind


def test_a_key_that_is_not_a_fernet_key_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "not-a-key-s3cr3t")

    with pytest.raises(TokenKeyError, match="Airflow's \\[core\\] fernet_key is not a Fernet key") as refused:
        deployment_token_cipher()

    assert "s3cr3t" not in str(refused.value)


# --- case 10: private files --------------------------------------------------------------------------------


def test_a_new_sqlite_warehouse_and_its_folder_are_readable_by_their_owner_only(tmp_path, usual_umask):
    path = tmp_path / "new-folder" / "warehouse.db"
    engine = warehouse.sqlite_engine(str(path))
    warehouse.create_schema(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(warehouse.sync_overrides).values(
                taxdome_kind="account", taxdome_id="A1", sync=False, set_at=datetime.now(UTC)
            )
        )

    assert mode(path.parent) == 0o700
    for file in (path, path.with_name("warehouse.db-wal"), path.with_name("warehouse.db-shm")):
        assert mode(file) == 0o600, file
    engine.dispose()


def test_the_default_warehouse_in_the_airflow_home_is_private(tmp_path, monkeypatch, usual_umask):
    home = tmp_path / "airflow-home"
    monkeypatch.setenv("AIRFLOW_HOME", str(home))

    engine = WarehouseHook().get_engine()
    warehouse.create_schema(engine)

    assert (mode(home), mode(home / "warehouse.db")) == (0o700, 0o600)
    engine.dispose()


# --- case 9: the search_path is one schema name ------------------------------------------------------------


@pytest.mark.parametrize(
    "search_path",
    [
        "stg -c default_transaction_read_only=on",
        "stg,public",
        'stg"; DROP SCHEMA public; --',
        "1stg",
        "s" * 64,
    ],
)
def test_a_search_path_that_is_not_one_schema_name_is_refused(search_path):
    with pytest.raises(ValueError, match="extra search_path"):
        warehouse.postgres_engine(**POSTGRES, password=None, search_path=search_path)


@pytest.mark.postgres
def test_the_warehouse_connection_refuses_an_injected_search_path(monkeypatch):
    connection = postgres_connection("stg -c default_transaction_read_only=on")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps(connection))

    with pytest.raises(ValueError, match="not a plain PostgreSQL schema name"):
        WarehouseHook().get_engine()


@pytest.mark.postgres
def test_a_plain_schema_name_is_created_and_used_by_every_pooled_connection(postgres_schema):
    engine = warehouse.postgres_engine(**POSTGRES, password=None, search_path=postgres_schema)
    warehouse.create_schema(engine)

    for _ in range(2):  # the second checkout reuses the pooled connection, after the pool's rollback
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW search_path").scalar_one() == postgres_schema
            assert conn.exec_driver_sql("SHOW default_transaction_read_only").scalar_one() == "off"
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :schema"),
            {"schema": postgres_schema},
        ).scalar_one()
    assert tables == len(warehouse.metadata.tables) + 1  # and the migrations' version table
    engine.dispose()
