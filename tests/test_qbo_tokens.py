"""The warehouse token store against the real emulator's token endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from servers import POSTGRES

from qbo_emulator.testing import EmulatorHandle
from taxdome_qbo.services import warehouse
from taxdome_qbo.services.qbo_client import intuit_refresher
from taxdome_qbo.services.qbo_tokens import QboDisconnectedError, StoredTokens, TokenStore
from taxdome_qbo.services.token_cipher import TokenCipher
from taxdome_qbo.services.warehouse import qbo_oauth_tokens

CIPHER = TokenCipher.generated()


@pytest.fixture
def engine(warehouse_engine):
    warehouse.create_schema(warehouse_engine)
    return warehouse_engine


@pytest.fixture
def another_engine(engine, request):
    """An engine of its own on the same database, as another worker process would have."""
    if engine.dialect.name == "sqlite":
        other = warehouse.sqlite_engine(engine.url.database)
    else:
        other = warehouse.postgres_engine(
            **POSTGRES, password=None, search_path=request.getfixturevalue("postgres_schema")
        )
    yield other
    other.dispose()


def refresh_grants(emulator: EmulatorHandle) -> int:
    return emulator.admin("GET", "requests").json()["counts_by_operation"].get("refresh_token", 0)


def current_refresh_token(emulator: EmulatorHandle, company: dict) -> str:
    """The emulator's newest live refresh token of the company."""
    return next(c for c in emulator.companies() if c["realm_id"] == company["realm_id"])["refresh_token"]


def stored_row(engine) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(sa.select(qbo_oauth_tokens)).one()


def stored_tokens(engine) -> StoredTokens:
    """The stored tokens in clear."""
    row = stored_row(engine)
    return StoredTokens(
        row.access_token and CIPHER.decrypt(row.access_token, realm_id=row.realm_id),
        CIPHER.decrypt(row.refresh_token, realm_id=row.realm_id),
        row.access_token_expires_at,
    )


def token_store(engine, company: dict, **options) -> TokenStore:
    return TokenStore(engine, company["realm_id"], CIPHER, **options)


def access_token_works(emulator: EmulatorHandle, company: dict, access_token: str) -> bool:
    realm_id = company["realm_id"]
    response = httpx.get(
        f"{emulator.api_url}/company/{realm_id}/companyinfo/{realm_id}",
        params={"minorversion": 75},
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    return response.status_code == 200


def refresher(emulator: EmulatorHandle, company: dict):
    return intuit_refresher(emulator.auth_client(company), company["realm_id"])


def test_the_connection_token_seeds_the_store_once_then_the_newest_stored_token_wins(
    emulator, company, engine
):
    store = token_store(engine, company)
    store.seed(company["refresh_token"])
    tokens = store.tokens(refresher(emulator, company))

    assert tokens.refresh_token != company["refresh_token"]
    assert access_token_works(emulator, company, tokens.access_token)
    # The connection still holds its first token; seeding again must not bring it back.
    store.seed(company["refresh_token"])
    assert (
        stored_tokens(engine).refresh_token
        == tokens.refresh_token
        == current_refresh_token(emulator, company)
    )


def test_every_refresh_persists_the_rotated_token(emulator, company, engine, another_engine):
    store = token_store(engine, company)
    store.seed(company["refresh_token"])
    refresh = refresher(emulator, company)
    seen_refresh_tokens = {company["refresh_token"]}
    rejected = None
    for _ in range(3):
        tokens = store.tokens(refresh, rejected_access_token=rejected)
        row = stored_tokens(another_engine)
        assert row.refresh_token == tokens.refresh_token == current_refresh_token(emulator, company)
        assert row.access_token == tokens.access_token
        assert row.refresh_token not in seen_refresh_tokens
        seen_refresh_tokens.add(row.refresh_token)
        rejected = tokens.access_token


def test_no_transaction_is_open_while_refreshing_and_a_failed_refresh_stores_nothing(
    company, engine, another_engine
):
    store = token_store(engine, company)
    store.seed("first-refresh-token")
    probes = []

    def refresh_while_probing(refresh_token: str):
        # Another connection can lock the row (PostgreSQL: FOR UPDATE NOWAIT; SQLite: write at once), and
        # sees this process's claim, committed before the call.
        probes.append((lock_is_free(another_engine, company["realm_id"]), stored_row(another_engine)))
        raise RuntimeError("Intuit is down")

    with pytest.raises(RuntimeError, match="Intuit is down"):
        store.tokens(refresh_while_probing)

    [(lock_was_free, row_during_refresh)] = probes
    assert lock_was_free
    assert row_during_refresh.refresh_claimed_by is not None
    row = stored_row(another_engine)
    assert (row.refresh_claimed_by, row.refresh_claimed_at) == (None, None)  # released on failure
    tokens = stored_tokens(another_engine)
    assert (tokens.refresh_token, tokens.access_token) == ("first-refresh-token", None)


def lock_is_free(engine, realm_id: str) -> bool:
    """Whether another connection could take the company's token lock right now, without waiting."""
    with engine.connect() as conn:
        try:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA busy_timeout=0")
                conn.execute(
                    sa.update(qbo_oauth_tokens)
                    .where(qbo_oauth_tokens.c.realm_id == realm_id)
                    .values(status=qbo_oauth_tokens.c.status)
                )
            else:
                conn.execute(
                    sa.select(qbo_oauth_tokens)
                    .where(qbo_oauth_tokens.c.realm_id == realm_id)
                    .with_for_update(nowait=True)
                )
        except sa.exc.OperationalError:
            return False
        finally:
            conn.rollback()
    return True


def test_a_valid_access_token_is_reused_without_a_refresh(emulator, company, engine, another_engine):
    store = token_store(engine, company)
    store.seed(company["refresh_token"])
    grants_before = refresh_grants(emulator)

    first = store.tokens(refresher(emulator, company))
    again = store.tokens(refresher(emulator, company))
    from_another_process = token_store(another_engine, company).tokens(refresher(emulator, company))

    assert refresh_grants(emulator) - grants_before == 1
    assert first.access_token == again.access_token == from_another_process.access_token


def test_an_access_token_within_the_safety_margin_is_refreshed(emulator, company, engine):
    emulator_ttl = timedelta(hours=1)
    store = token_store(engine, company, safety_margin=emulator_ttl)
    store.seed(company["refresh_token"])
    grants_before = refresh_grants(emulator)

    first = store.tokens(refresher(emulator, company))
    second = store.tokens(refresher(emulator, company))

    assert refresh_grants(emulator) - grants_before == 2
    assert first.access_token != second.access_token


def test_two_concurrent_refreshers_refresh_once_and_both_get_a_working_token(
    emulator, company, engine, another_engine
):
    token_store(engine, company).seed(company["refresh_token"])
    grants_before = refresh_grants(emulator)
    start = threading.Barrier(2)
    results: dict[str, str] = {}

    def worker(name: str, worker_engine) -> None:
        refresh = refresher(emulator, company)

        def slow_refresh(refresh_token: str):
            time.sleep(0.3)  # long enough for the other worker to reach the lock
            return refresh(refresh_token)

        store = token_store(worker_engine, company)
        start.wait()
        results[name] = store.tokens(slow_refresh).access_token

    threads = [
        threading.Thread(target=worker, args=(name, worker_engine))
        for name, worker_engine in (("first", engine), ("second", another_engine))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert refresh_grants(emulator) - grants_before == 1
    assert results["first"] == results["second"]
    assert access_token_works(emulator, company, results["first"])
    assert stored_tokens(engine).refresh_token == current_refresh_token(emulator, company)


def test_a_disconnected_company_raises_until_it_is_reconnected(emulator, company, engine):
    store = token_store(engine, company)
    store.seed(company["refresh_token"])
    store.tokens(refresher(emulator, company))
    store.mark_disconnected()

    with pytest.raises(QboDisconnectedError, match="disconnected: reconnect it"):
        store.tokens(refresher(emulator, company))

    auth_client = emulator.auth_client(company)
    auth_client.refresh(refresh_token=current_refresh_token(emulator, company))
    store.store_new_connection(
        auth_client.refresh_token, auth_client.access_token, int(auth_client.expires_in)
    )
    grants_before = refresh_grants(emulator)
    assert store.tokens(refresher(emulator, company)).access_token == auth_client.access_token
    assert refresh_grants(emulator) == grants_before


def test_a_company_without_any_token_asks_to_be_connected(company, engine):
    with pytest.raises(QboDisconnectedError, match="connect the company first"):
        token_store(engine, company).tokens(lambda refresh_token: pytest.fail("no token to refresh"))


def test_tokens_never_reach_reprs_exceptions_or_logs(emulator, company, engine, caplog):
    caplog.set_level(logging.DEBUG)
    store = token_store(engine, company)
    store.seed(company["refresh_token"])
    tokens = store.tokens(refresher(emulator, company))
    store.mark_disconnected()
    with pytest.raises(QboDisconnectedError) as disconnected:
        store.tokens(refresher(emulator, company))

    visible = [repr(store), str(store), repr(tokens), str(tokens), str(disconnected.value), caplog.text]
    assert "refreshed the access token" in caplog.text
    for secret in (company["refresh_token"], tokens.refresh_token, tokens.access_token):
        assert not [text for text in visible if secret in text]


def test_a_refresher_that_died_mid_refresh_is_taken_over_once_its_claim_expires(emulator, company, engine):
    store = token_store(engine, company, refresh_claim_lease=timedelta(seconds=1))
    store.seed(company["refresh_token"])
    # A process claimed the refresh, had Intuit rotate the token, and was killed before storing the result.
    with engine.begin() as conn:
        conn.execute(
            sa.update(qbo_oauth_tokens).values(
                refresh_claimed_by="gone-host pid 1 (dead)", refresh_claimed_at=datetime.now(UTC)
            )
        )
    emulator.auth_client(company).refresh(refresh_token=company["refresh_token"])
    grants_before = refresh_grants(emulator)
    started = time.monotonic()

    tokens = store.tokens(refresher(emulator, company))

    assert time.monotonic() - started >= 0.9  # the dead claim held until its lease ran out
    # The stored token was superseded by the dead process's refresh; Intuit's grace period still honours it.
    assert refresh_grants(emulator) - grants_before == 1
    assert access_token_works(emulator, company, tokens.access_token)
    assert (
        stored_tokens(engine).refresh_token
        == tokens.refresh_token
        == current_refresh_token(emulator, company)
    )
    assert stored_row(engine).refresh_claimed_by is None
