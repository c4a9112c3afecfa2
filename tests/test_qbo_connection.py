"""`python -m taxdome_qbo connect | disconnect | reconnect` against the real emulator (R17, R18, R21).

The emulator's authorization page approves at once and redirects with a code, as Intuit does after the
firm owner approves; the tests follow that redirect and hand its address to the command.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from intuitlib.exceptions import AuthClientError

from qbo_emulator.testing import REDIRECT_URI, free_port
from taxdome_qbo.cli import main
from taxdome_qbo.hooks.quickbooks import QuickBooksHook, deployment_token_cipher
from taxdome_qbo.services import qbo_client, warehouse
from taxdome_qbo.services.qbo_tokens import QboDisconnectedError
from taxdome_qbo.services.warehouse import qbo_oauth_tokens, qbo_sync_state

AUTHORIZE_URL = re.compile(r"^https?://\S+/connect/oauth2\?\S+$", re.MULTILINE)


@pytest.fixture
def engine(warehouse_engine_from_connection):
    """The warehouse as the commands see it (`warehouse_default` in the environment), and an engine on it."""
    warehouse.create_schema(warehouse_engine_from_connection)
    return warehouse_engine_from_connection


@pytest.fixture
def sqlite_only_engine(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )
    engine = warehouse.sqlite_engine(str(path))
    warehouse.create_schema(engine)
    yield engine
    engine.dispose()


def set_quickbooks_connection(monkeypatch, app: dict, environment: str, **extra) -> None:
    """`quickbooks_default` of the emulator's app, without a company unless `extra` names one."""
    connection = {
        "conn_type": "quickbooks",
        "login": app["client_id"],
        "password": app["client_secret"],
        "extra": {"environment": environment, "redirect_uri": REDIRECT_URI, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(connection))


def set_seeding_connection(monkeypatch, emulator, company: dict) -> None:
    """`quickbooks_default` naming the company and its refresh token, so the connection seeds the company."""
    set_quickbooks_connection(
        monkeypatch,
        company,
        emulator.base_url,
        realm_id=company["realm_id"],
        refresh_token=company["refresh_token"],
    )


@pytest.fixture
def app(emulator, company, monkeypatch) -> dict:
    set_quickbooks_connection(monkeypatch, company, emulator.base_url)
    return company


def approve(authorize_url: str) -> str:
    """What the browser is redirected to once the owner approves at the (emulated) authorization page."""
    response = httpx.get(authorize_url, follow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def query_value(url: str, name: str) -> str:
    return parse_qs(urlsplit(url).query)[name][0]


class Owner:
    """The firm owner at the terminal: opens the printed address, approves, pastes the redirect back.

    `choose` edits the authorization URL before opening it (the owner picks another company on the page),
    `tamper` edits the redirect address before pasting it; `gives_up` answers the prompt with end of input.
    """

    def __init__(self, capsys, monkeypatch) -> None:
        self._capsys = capsys
        self.choose = self.tamper = lambda url: url
        self.gives_up = False
        self.authorize_urls: list[str] = []
        self.codes: list[str] = []
        self._printed = ""
        monkeypatch.setattr("builtins.input", self._answer)

    def _answer(self, prompt: str) -> str:
        self._printed += self._capsys.readouterr().out + prompt
        self.authorize_urls.append(AUTHORIZE_URL.findall(self._printed)[-1])
        if self.gives_up:
            raise EOFError
        redirect_url = approve(self.choose(self.authorize_urls[-1]))
        self.codes.append(query_value(redirect_url, "code"))
        return self.tamper(redirect_url)

    def run(self, *argv: str) -> tuple[int, str, str]:
        """The command's exit code, standard output and standard error."""
        self._printed = ""
        exit_code = main(list(argv))
        captured = self._capsys.readouterr()
        return exit_code, self._printed + captured.out, captured.err


@pytest.fixture
def owner(capsys, monkeypatch) -> Owner:
    return Owner(capsys, monkeypatch)


def logged_by_the_project(caplog) -> str:
    """What was logged, except by httpx, which plays the browser here (it sees the code, as a browser does)."""
    return "\n".join(
        record.getMessage() for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))
    )


def token_rows(engine) -> dict[str, SimpleNamespace]:
    """The stored rows, their tokens decrypted with the deployment's key (the commands encrypted them)."""
    cipher = deployment_token_cipher()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(qbo_oauth_tokens)).all()
    return {
        row.realm_id: SimpleNamespace(
            **{
                **row._asdict(),
                **{
                    token: getattr(row, token) and cipher.decrypt(getattr(row, token), realm_id=row.realm_id)
                    for token in ("refresh_token", "access_token")
                },
            }
        )
        for row in rows
    }


def company_name_through_the_hook() -> str:
    return qbo_client.fetch_company_info(QuickBooksHook().get_session())["CompanyName"]


def test_connect_stores_the_tokens_and_makes_the_company_current(app, engine, owner, caplog):
    caplog.set_level(logging.DEBUG)

    exit_code, out, err = owner.run("connect", "--realm", app["realm_id"])

    assert exit_code == 0, err
    assert f"connected to QuickBooks company '{app['company_name']}' (realm {app['realm_id']})" in out
    authorize_url = owner.authorize_urls[0]
    assert query_value(authorize_url, "scope") == "com.intuit.quickbooks.accounting"
    assert query_value(authorize_url, "realm_id") == app["realm_id"]
    stored = token_rows(engine)[app["realm_id"]]
    assert (stored.status, stored.is_current, stored.tokens_encrypted) == ("connected", True, True)
    assert stored.connected_at is not None and stored.access_token is not None
    assert QuickBooksHook().get_credentials().realm_id == app["realm_id"]  # no realm_id in the connection
    assert company_name_through_the_hook() == app["company_name"]
    visible = out + err + logged_by_the_project(caplog)
    secrets = (app["client_secret"], owner.codes[0], stored.refresh_token, stored.access_token)
    assert not [secret for secret in secrets if secret in visible]


def test_disconnect_revokes_the_token_and_stops_the_sync(emulator, app, engine, owner, caplog):
    caplog.set_level(logging.DEBUG)
    assert owner.run("connect", "--realm", app["realm_id"])[0] == 0
    connected = token_rows(engine)[app["realm_id"]]

    exit_code, out, err = owner.run("disconnect")

    assert exit_code == 0, err
    assert f"disconnected QuickBooks company {app['realm_id']} and revoked its token at Intuit" in out
    stored = token_rows(engine)[app["realm_id"]]
    assert (stored.status, stored.access_token, stored.is_current) == ("disconnected", None, True)
    assert stored.disconnected_at is not None
    with pytest.raises(AuthClientError) as refused:
        emulator.auth_client(app).refresh(refresh_token=connected.refresh_token)
    assert b"invalid_grant" in refused.value.content
    with pytest.raises(QboDisconnectedError, match="disconnected: reconnect it"):
        QuickBooksHook().get_session()
    secrets = (app["client_secret"], connected.refresh_token, connected.access_token)
    assert not [secret for secret in secrets if secret in out + err + logged_by_the_project(caplog)]


def test_disconnect_before_any_sync_revokes_the_connections_token(
    emulator, company, sqlite_only_engine, owner, monkeypatch
):
    set_seeding_connection(monkeypatch, emulator, company)

    exit_code, _, err = owner.run("disconnect")

    assert exit_code == 0, err
    assert token_rows(sqlite_only_engine)[company["realm_id"]].status == "disconnected"
    with pytest.raises(AuthClientError):
        emulator.auth_client(company).refresh(refresh_token=company["refresh_token"])
    # The connection's token does not seed the company again.
    with pytest.raises(QboDisconnectedError):
        QuickBooksHook().get_session()


def test_disconnect_still_stops_the_sync_when_intuit_cannot_be_reached(
    emulator, app, sqlite_only_engine, owner, monkeypatch
):
    assert owner.run("connect", "--realm", app["realm_id"])[0] == 0
    refresh_token = token_rows(sqlite_only_engine)[app["realm_id"]].refresh_token
    set_quickbooks_connection(monkeypatch, app, f"http://127.0.0.1:{free_port()}")

    exit_code, out, err = owner.run("disconnect")

    assert exit_code == 0
    assert f"disconnected QuickBooks company {app['realm_id']}: the sync stops" in out
    assert "token may still be valid at Intuit" in err
    assert token_rows(sqlite_only_engine)[app["realm_id"]].status == "disconnected"
    set_quickbooks_connection(monkeypatch, app, emulator.base_url)
    with pytest.raises(QboDisconnectedError):
        QuickBooksHook().get_session()
    emulator.auth_client(app).refresh(refresh_token=refresh_token)  # the warning was true: not revoked


def test_reconnecting_the_same_company_resumes_the_sync(app, engine, owner):
    assert owner.run("connect", "--realm", app["realm_id"])[0] == 0
    assert owner.run("disconnect")[0] == 0

    exit_code, out, err = owner.run("reconnect", "--realm", app["realm_id"])

    assert exit_code == 0, err
    assert f"(realm {app['realm_id']})" in out
    stored = token_rows(engine)[app["realm_id"]]
    assert (stored.status, stored.is_current) == ("connected", True)
    assert company_name_through_the_hook() == app["company_name"]


def test_moving_the_sync_to_another_company_needs_accept(emulator, app, engine, owner):
    first = app["realm_id"]
    assert owner.run("connect", "--realm", first)[0] == 0
    with engine.begin() as conn:
        conn.execute(
            sa.insert(qbo_sync_state).values(
                realm_id=first,
                taxdome_kind="account",
                taxdome_id="A1",
                qbo_entity="Customer",
                qbo_id="58",
                status="synced",
                updated_at=datetime.now(UTC),
            )
        )
    first_tokens = token_rows(engine)[first]
    second = emulator.admin("POST", "companies").json()

    for refused_confirmation in ([], ["--confirm", "accept"]):
        exit_code, out, err = owner.run("reconnect", "--realm", second["realm_id"], *refused_confirmation)
        assert exit_code == 2
        assert (
            f"everything: all customers, invoices, payments and refunds in scope are synced to company {second['realm_id']}"
            in err
        )
        assert "re-links to what was synced there instead of duplicating it" in err
        assert len(owner.authorize_urls) == 1  # refused before anything is asked of Intuit
        assert set(token_rows(engine)) == {first}

    exit_code, out, err = owner.run("reconnect", "--realm", second["realm_id"], "--confirm", "ACCEPT")

    assert exit_code == 0, err
    assert f"connected to QuickBooks company '{second['company_name']}' (realm {second['realm_id']})" in out
    rows = token_rows(engine)
    assert (rows[second["realm_id"]].is_current, rows[first].is_current) == (True, False)
    assert (rows[first].status, rows[first].refresh_token) == ("connected", first_tokens.refresh_token)
    with engine.connect() as conn:
        assert conn.execute(sa.select(qbo_sync_state.c.realm_id)).scalars().all() == [first]
    assert company_name_through_the_hook() == second["company_name"]


def test_connect_refuses_a_company_other_than_the_current_one(emulator, app, sqlite_only_engine, owner):
    assert owner.run("connect", "--realm", app["realm_id"])[0] == 0
    other = emulator.admin("POST", "companies").json()
    owner.choose = lambda url: f"{url}&realm_id={other['realm_id']}"

    exit_code, _, err = owner.run("connect")

    assert exit_code == 2
    assert f"--realm {other['realm_id']} --confirm ACCEPT" in err
    assert set(token_rows(sqlite_only_engine)) == {app["realm_id"]}


def test_a_redirect_for_another_company_than_asked_is_refused(emulator, app, sqlite_only_engine, owner):
    other = emulator.admin("POST", "companies").json()
    owner.choose = lambda url: url.replace(app["realm_id"], other["realm_id"])

    exit_code, _, err = owner.run("reconnect", "--realm", app["realm_id"])

    assert exit_code == 2
    assert f"company {other['realm_id']} was authorized, not {app['realm_id']} as asked" in err
    assert token_rows(sqlite_only_engine) == {}


def test_a_redirect_answering_another_request_is_refused(app, sqlite_only_engine, owner):
    owner.tamper = lambda url: re.sub(r"state=[^&]+", "state=forged", url)

    exit_code, _, err = owner.run("connect", "--realm", app["realm_id"])

    assert exit_code == 2
    assert "its state differs" in err
    assert token_rows(sqlite_only_engine) == {}


@pytest.mark.parametrize(
    ("redirect_url", "reason"),
    [
        (f"{REDIRECT_URI}?error=access_denied&state=x", "not granted at Intuit: access_denied"),
        (f"{REDIRECT_URI}?state=x", "lacks code and realmId"),
    ],
)
def test_a_redirect_without_a_grant_is_refused(app, sqlite_only_engine, owner, redirect_url, reason):
    exit_code, _, err = owner.run("connect", "--redirect-url", redirect_url)

    assert exit_code == 2
    assert reason in err


def test_the_redirect_url_can_come_from_an_earlier_run(app, sqlite_only_engine, owner):
    owner.gives_up = True
    exit_code, _, err = owner.run("connect", "--realm", app["realm_id"])
    assert exit_code == 2
    assert "no redirect address was given: nothing changed" in err
    redirect_url = approve(owner.authorize_urls[0])

    exit_code, out, err = owner.run("connect", "--realm", app["realm_id"], "--redirect-url", redirect_url)

    assert exit_code == 0, err
    assert f"(realm {app['realm_id']})" in out
    assert token_rows(sqlite_only_engine)[app["realm_id"]].is_current


def test_a_used_code_fails_without_showing_it(app, sqlite_only_engine, owner):
    assert owner.run("connect", "--realm", app["realm_id"])[0] == 0
    replayed = approve(owner.authorize_urls[0])
    assert owner.run("connect", "--redirect-url", replayed)[0] == 0

    exit_code, out, err = owner.run("connect", "--redirect-url", replayed)

    assert exit_code == 1
    assert "Intuit refused the authorization code" in err
    assert query_value(replayed, "code") not in out + err


def test_the_connections_company_is_seeded_as_current_until_another_is_connected(
    emulator, company, sqlite_only_engine, owner, monkeypatch
):
    set_seeding_connection(monkeypatch, emulator, company)
    assert company_name_through_the_hook() == company["company_name"]
    assert token_rows(sqlite_only_engine)[company["realm_id"]].is_current
    other = emulator.admin("POST", "companies").json()

    assert owner.run("reconnect", "--realm", other["realm_id"], "--confirm", "ACCEPT")[0] == 0

    credentials = QuickBooksHook().get_credentials()
    assert (credentials.realm_id, credentials.initial_refresh_token) == (other["realm_id"], None)
    assert company_name_through_the_hook() == other["company_name"]
