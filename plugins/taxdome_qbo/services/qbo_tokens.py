"""The OAuth tokens of one QuickBooks company, kept in the warehouse (`qbo_oauth_tokens`) for every task.

Intuit rotates the refresh token on a refresh and lets the previous one die a day later, so the rotated token
is written in the same transaction as the refresh, and refreshes are serialized per company: on PostgreSQL
by `SELECT ... FOR UPDATE` on the company's row, on SQLite (which only locks the whole database) by making a
write the transaction's first statement. The newest stored refresh token always wins; the Airflow
connection's token only seeds a company that has no row yet. Tokens never appear in logs, exceptions or reprs.

One row is the current company (`is_current`), the one the sync writes to; the others keep their tokens and
status so that going back to a company re-links to what was synced there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.services.warehouse import fetch_locked, insert_for, qbo_oauth_tokens

log = logging.getLogger(__name__)

CONNECTED = "connected"
DISCONNECTED = "disconnected"
# An access token this close to its expiry is refreshed first, so it cannot expire in the middle of a call.
ACCESS_TOKEN_SAFETY_MARGIN = timedelta(minutes=5)


class QboDisconnectedError(RuntimeError):
    """The company is not connected (disconnected on purpose, or never connected): reconnect it first."""


@dataclass(frozen=True)
class TokenGrant:
    """What Intuit's token endpoint answers to a refresh or an authorization code."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True)
class StoredTokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_token_expires_at: datetime


Refresher = Callable[[str], TokenGrant]
"""Exchanges a refresh token for a new grant at Intuit's token endpoint."""


def current_realm_id(conn: Connection) -> str | None:
    """The company the sync writes to (connected or disconnected), None before any company is stored."""
    return conn.execute(
        sa.select(qbo_oauth_tokens.c.realm_id)
        .where(qbo_oauth_tokens.c.is_current.is_(True))
        # Only one row is ever current; should a race leave two, the latest connection is the one meant.
        .order_by(qbo_oauth_tokens.c.connected_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were written in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class TokenStore:
    """The warehouse-backed OAuth tokens of the company `realm_id`.

    :param engine: the warehouse engine (SQLite or PostgreSQL) holding `qbo_oauth_tokens`.
    :param realm_id: the QuickBooks company id.
    :param safety_margin: how long before its expiry an access token stops being reused.
    """

    def __init__(
        self, engine: Engine, realm_id: str, *, safety_margin: timedelta = ACCESS_TOKEN_SAFETY_MARGIN
    ) -> None:
        self._engine = engine
        self.realm_id = realm_id
        self._safety_margin = safety_margin

    def __repr__(self) -> str:
        database = self._engine.url.render_as_string(hide_password=True)
        return f"TokenStore(realm_id={self.realm_id!r}, database={database!r})"

    def seed(self, refresh_token: str) -> None:
        """Store the connection's refresh token if the company has no row yet; a stored one always wins.

        A company seeded while no company is current becomes the current one.
        """
        now = _utc_now()
        # Decided inside the INSERT: a read first would make concurrent seeds on SQLite fail to upgrade to
        # the write lock.
        no_current_company = ~sa.exists().where(qbo_oauth_tokens.c.is_current.is_(True))
        with self._engine.begin() as conn:
            inserted = conn.execute(
                insert_for(conn)(qbo_oauth_tokens)
                .values(
                    realm_id=self.realm_id,
                    refresh_token=refresh_token,
                    refreshed_at=now,
                    status=CONNECTED,
                    is_current=no_current_company,
                    connected_at=now,
                )
                .on_conflict_do_nothing(index_elements=[qbo_oauth_tokens.c.realm_id])
            ).rowcount
        if inserted:
            log.info("QuickBooks company %s: stored the connection's first refresh token", self.realm_id)

    def tokens(self, refresh: Refresher, *, rejected_access_token: str | None = None) -> StoredTokens:
        """Tokens to call QBO with: the stored access token while it stays valid, else a fresh refresh.

        A refresh runs under the company's lock with the newest stored refresh token, and the rotated tokens
        are written before the lock is released. A caller whose access token QBO has just refused passes it
        as `rejected_access_token`: it is then refreshed even if it looks valid, unless another process has
        already stored a newer one.
        """
        with self._engine.connect() as conn:
            row = self._connected_row(conn)
        if self._reusable(row, rejected_access_token):
            return self._stored(row)
        with self._engine.begin() as conn:
            row = self._connected_row(conn, lock=True)
            # Whoever held the lock before us may have refreshed already.
            if self._reusable(row, rejected_access_token):
                return self._stored(row)
            grant = refresh(row.refresh_token)
            now = _utc_now()
            stored = StoredTokens(
                grant.access_token, grant.refresh_token, now + timedelta(seconds=grant.expires_in)
            )
            conn.execute(
                sa.update(qbo_oauth_tokens)
                .where(qbo_oauth_tokens.c.realm_id == self.realm_id)
                .values(
                    refresh_token=stored.refresh_token,
                    access_token=stored.access_token,
                    access_token_expires_at=stored.access_token_expires_at,
                    refreshed_at=now,
                )
            )
        log.info(
            "QuickBooks company %s: refreshed the access token (valid until %s) and stored the new refresh token",
            self.realm_id,
            stored.access_token_expires_at.isoformat(timespec="seconds"),
        )
        return stored

    def store_new_connection(self, refresh_token: str, access_token: str, expires_in: int) -> None:
        """Record the tokens of a (re)connection (authorization code grant) and make this the current company.

        The tokens replace whatever the company had; the other companies keep theirs but stop being current.
        """
        now = _utc_now()
        values = {
            "refresh_token": refresh_token,
            "access_token": access_token,
            "access_token_expires_at": now + timedelta(seconds=expires_in),
            "refreshed_at": now,
            "status": CONNECTED,
            "is_current": True,
            "connected_at": now,
        }
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(qbo_oauth_tokens)
                .where(qbo_oauth_tokens.c.realm_id != self.realm_id)
                .values(is_current=False)
            )
            conn.execute(
                insert_for(conn)(qbo_oauth_tokens)
                .values(realm_id=self.realm_id, **values)
                .on_conflict_do_update(index_elements=[qbo_oauth_tokens.c.realm_id], set_=values)
            )
        log.info(
            "QuickBooks company %s: stored the tokens of a new connection; it is now current", self.realm_id
        )

    def mark_disconnected(self) -> str:
        """Stop using the company's tokens until it is reconnected (the access token is forgotten).

        Runs under the company's lock, so no refresh can rotate the token afterwards. Returns the last refresh
        token, for revoking at Intuit; raises QboDisconnectedError when the company has no stored tokens.
        """
        with self._engine.begin() as conn:
            row = self._fetch(conn, lock=True)
            if row is None:
                raise QboDisconnectedError(f"QuickBooks company {self.realm_id} has no stored tokens")
            conn.execute(
                sa.update(qbo_oauth_tokens)
                .where(qbo_oauth_tokens.c.realm_id == self.realm_id)
                .values(
                    status=DISCONNECTED,
                    access_token=None,
                    access_token_expires_at=None,
                    disconnected_at=_utc_now(),
                )
            )
        log.info("QuickBooks company %s: marked disconnected", self.realm_id)
        return row.refresh_token

    def _fetch(self, conn: Connection, *, lock: bool) -> sa.Row | None:
        """The company's row; with `lock`, locked until `conn`'s transaction ends."""
        of_company = qbo_oauth_tokens.c.realm_id == self.realm_id
        if lock:
            return fetch_locked(conn, qbo_oauth_tokens, of_company)
        return conn.execute(sa.select(qbo_oauth_tokens).where(of_company)).one_or_none()

    def _connected_row(self, conn: Connection, *, lock: bool = False) -> sa.Row:
        row = self._fetch(conn, lock=lock)
        if row is None:
            raise QboDisconnectedError(
                f"QuickBooks company {self.realm_id} has no stored tokens and the connection gives no "
                "refresh token: connect the company first"
            )
        if row.status == DISCONNECTED:
            raise QboDisconnectedError(
                f"QuickBooks company {self.realm_id} is disconnected: reconnect it before syncing"
            )
        return row

    def _reusable(self, row: sa.Row, rejected_access_token: str | None) -> bool:
        expires_at = _as_utc(row.access_token_expires_at)
        return (
            row.access_token is not None
            and row.access_token != rejected_access_token
            and expires_at is not None
            and expires_at - self._safety_margin > _utc_now()
        )

    @staticmethod
    def _stored(row: sa.Row) -> StoredTokens:
        return StoredTokens(row.access_token, row.refresh_token, _as_utc(row.access_token_expires_at))
