"""The OAuth tokens of one QuickBooks company, kept in the warehouse (`qbo_oauth_tokens`) for every task.

Intuit rotates the refresh token on a refresh and keeps the previous one valid for a grace period (a day).
Refreshes are serialized per company across processes and machines by a claim on the company's row
(`refresh_claimed_by`, `refresh_claimed_at`), taken and released in short transactions of their own, so no
database transaction (nor lock) is open during the HTTP call to Intuit: a refresher claims the row, asks
Intuit, then writes the rotated tokens only if the claim is still its own. Others wait for the claim to end
and reuse the fresh token. A process that dies mid-refresh leaves a claim that expires after
`REFRESH_CLAIM_LEASE`; the next refresher takes it over with the stored refresh token, which Intuit still
honours within the grace period even if the dead process had used it.

The newest stored refresh token always wins; the Airflow connection's token only seeds a company that has no
row yet. Tokens are stored encrypted (a `TokenCipher`); rows written before encryption are encrypted when
next used. Tokens never appear in logs, exceptions or reprs.

One row is the current company (`is_current`), the one the sync writes to; the others keep their tokens and
status so that going back to a company re-links to what was synced there.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.services import warehouse
from taxdome_qbo.services.token_cipher import TokenCipher
from taxdome_qbo.services.warehouse import fetch_locked, insert_for, qbo_oauth_tokens

log = logging.getLogger(__name__)

CONNECTED = "connected"
DISCONNECTED = "disconnected"
# An access token this close to its expiry is refreshed first, so it cannot expire in the middle of a call.
ACCESS_TOKEN_SAFETY_MARGIN = timedelta(minutes=5)
# How long a refresh claim holds: longer than a refresh call may take (qbo_client bounds it at 30 s).
REFRESH_CLAIM_LEASE = timedelta(seconds=60)
REFRESH_CLAIM_POLL_SECONDS = 0.1


class QboDisconnectedError(RuntimeError):
    """The company is not connected (disconnected on purpose, or never connected): reconnect it first."""


class QboTokenRefreshBusyError(RuntimeError):
    """Another process kept the company's refresh claim for longer than claims last."""


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


def _claim_holder() -> str:
    """Who claims a refresh: the machine and process, and a nonce telling apart the threads of one process."""
    return f"{socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"


_NO_CLAIM = {"refresh_claimed_by": None, "refresh_claimed_at": None}


class TokenStore:
    """The warehouse-backed OAuth tokens of the company `realm_id`.

    :param engine: the warehouse engine (SQLite or PostgreSQL) holding `qbo_oauth_tokens`.
    :param realm_id: the QuickBooks company id.
    :param cipher: encrypts the tokens at rest (the deployment's key, resolved by the hook).
    :param safety_margin: how long before its expiry an access token stops being reused.
    :param refresh_claim_lease: how long a refresh claim of a process that died stops others from refreshing.
    """

    def __init__(
        self,
        engine: Engine,
        realm_id: str,
        cipher: TokenCipher,
        *,
        safety_margin: timedelta = ACCESS_TOKEN_SAFETY_MARGIN,
        refresh_claim_lease: timedelta = REFRESH_CLAIM_LEASE,
    ) -> None:
        self._engine = engine
        self.realm_id = realm_id
        self._cipher = cipher
        self._safety_margin = safety_margin
        self._claim_lease = refresh_claim_lease

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
                    refresh_token=self._cipher.encrypt(refresh_token),
                    tokens_encrypted=True,
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

        A refresh runs under the company's refresh claim with the newest stored refresh token, and the
        rotated tokens are written before the claim is released; while another process holds the claim,
        this one waits for its tokens. A caller whose access token QBO has just refused passes it as
        `rejected_access_token`: it is then refreshed even if it looks valid, unless another process has
        already stored a newer one.
        """
        holder = _claim_holder()
        waited_for = None
        give_up_at = time.monotonic() + 2 * self._claim_lease.total_seconds()
        while True:
            with self._engine.connect() as conn:
                row = self._connected_row(conn)
            stored = self._readable(row)
            if self._reusable(stored, rejected_access_token):
                return stored
            if self._claim(holder):
                break
            if time.monotonic() > give_up_at and row.refresh_claimed_at is not None:
                raise QboTokenRefreshBusyError(
                    f"QuickBooks company {self.realm_id}: {row.refresh_claimed_by} has been refreshing the "
                    f"tokens since {warehouse.as_utc(row.refresh_claimed_at):%Y-%m-%d %H:%M:%S} UTC; retry later"
                )
            if row.refresh_claimed_by not in (None, waited_for):
                waited_for = row.refresh_claimed_by
                log.info(
                    "QuickBooks company %s: waiting for %s, which is refreshing the tokens",
                    self.realm_id,
                    waited_for,
                )
            time.sleep(REFRESH_CLAIM_POLL_SECONDS)
        try:
            with self._engine.connect() as conn:
                # Whoever held the claim before us may have refreshed between our read and our claim.
                stored = self._readable(self._connected_row(conn))
            if self._reusable(stored, rejected_access_token):
                self._release(holder)
                return stored
            return self._store_refreshed(refresh(stored.refresh_token), holder)
        except BaseException:
            # The stored refresh token stays usable (Intuit's grace period) for whoever refreshes next.
            self._release(holder)
            raise

    def _claim(self, holder: str) -> bool:
        """Claim the company's refresh if no live claim exists (a claim older than the lease is dead)."""
        now = _utc_now()
        columns = qbo_oauth_tokens.c
        with self._engine.begin() as conn:
            return (
                conn.execute(
                    sa.update(qbo_oauth_tokens)
                    .where(
                        columns.realm_id == self.realm_id,
                        columns.status == CONNECTED,
                        sa.or_(
                            columns.refresh_claimed_at.is_(None),
                            columns.refresh_claimed_at < now - self._claim_lease,
                        ),
                    )
                    .values(refresh_claimed_by=holder, refresh_claimed_at=now)
                ).rowcount
                == 1
            )

    def _release(self, holder: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(qbo_oauth_tokens)
                .where(
                    qbo_oauth_tokens.c.realm_id == self.realm_id,
                    qbo_oauth_tokens.c.refresh_claimed_by == holder,
                )
                .values(_NO_CLAIM)
            )

    def _store_refreshed(self, grant: TokenGrant, holder: str) -> StoredTokens:
        """Write the rotated tokens and release the claim, only if the claim is still ours."""
        now = _utc_now()
        stored = StoredTokens(
            grant.access_token, grant.refresh_token, now + timedelta(seconds=grant.expires_in)
        )
        with self._engine.begin() as conn:
            written = conn.execute(
                sa.update(qbo_oauth_tokens)
                .where(
                    qbo_oauth_tokens.c.realm_id == self.realm_id,
                    qbo_oauth_tokens.c.status == CONNECTED,
                    qbo_oauth_tokens.c.refresh_claimed_by == holder,
                )
                .values(
                    **self._encrypted(stored.refresh_token, stored.access_token),
                    access_token_expires_at=stored.access_token_expires_at,
                    refreshed_at=now,
                    **_NO_CLAIM,
                )
            ).rowcount
        if not written:
            with self._engine.connect() as conn:
                self._connected_row(conn)  # a disconnection while refreshing raises here
            log.warning(
                "QuickBooks company %s: refreshed the access token, but the refresh claim was taken over "
                "meanwhile (a reconnection, or a refresh slower than the claim's lease): this process uses "
                "the new tokens without storing them",
                self.realm_id,
            )
            return stored
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
            **self._encrypted(refresh_token, access_token),
            "access_token_expires_at": now + timedelta(seconds=expires_in),
            "refreshed_at": now,
            "status": CONNECTED,
            "is_current": True,
            "connected_at": now,
            **_NO_CLAIM,
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

        A refresh under way when this runs stores nothing afterwards. Returns the last refresh token, for
        revoking at Intuit; raises QboDisconnectedError when the company has no stored tokens.
        """
        with self._engine.begin() as conn:
            row = fetch_locked(conn, qbo_oauth_tokens, qbo_oauth_tokens.c.realm_id == self.realm_id)
            if row is None:
                raise QboDisconnectedError(f"QuickBooks company {self.realm_id} has no stored tokens")
            refresh_token = self._plain(row, row.refresh_token)
            conn.execute(
                sa.update(qbo_oauth_tokens)
                .where(qbo_oauth_tokens.c.realm_id == self.realm_id)
                .values(
                    **self._encrypted(refresh_token, None),
                    status=DISCONNECTED,
                    access_token_expires_at=None,
                    disconnected_at=_utc_now(),
                    **_NO_CLAIM,
                )
            )
        log.info("QuickBooks company %s: marked disconnected", self.realm_id)
        return refresh_token

    def _connected_row(self, conn: Connection) -> sa.Row:
        row = conn.execute(
            sa.select(qbo_oauth_tokens).where(qbo_oauth_tokens.c.realm_id == self.realm_id)
        ).one_or_none()
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

    def _encrypted(self, refresh_token: str, access_token: str | None) -> dict:
        """The token columns of a write: both tokens encrypted."""
        return {
            "refresh_token": self._cipher.encrypt(refresh_token),
            "access_token": None if access_token is None else self._cipher.encrypt(access_token),
            "tokens_encrypted": True,
        }

    def _plain(self, row: sa.Row, value: str | None) -> str | None:
        """A token column of `row` in clear (rows written before encryption hold it in clear already)."""
        if value is None or not row.tokens_encrypted:
            return value
        return self._cipher.decrypt(value, realm_id=self.realm_id)

    def _readable(self, row: sa.Row) -> StoredTokens:
        """The row's tokens in clear; a row written before encryption is encrypted now (unless it changed)."""
        stored = StoredTokens(
            self._plain(row, row.access_token),
            self._plain(row, row.refresh_token),
            warehouse.as_utc(row.access_token_expires_at),
        )
        if not row.tokens_encrypted:
            with self._engine.begin() as conn:
                conn.execute(
                    sa.update(qbo_oauth_tokens)
                    .where(
                        qbo_oauth_tokens.c.realm_id == self.realm_id,
                        qbo_oauth_tokens.c.tokens_encrypted.is_not(True),
                        qbo_oauth_tokens.c.refresh_token == row.refresh_token,
                    )
                    .values(self._encrypted(stored.refresh_token, stored.access_token))
                )
            log.info(
                "QuickBooks company %s: encrypted the tokens stored in clear by an older version",
                self.realm_id,
            )
        return stored

    def _reusable(self, stored: StoredTokens, rejected_access_token: str | None) -> bool:
        expires_at = stored.access_token_expires_at
        return (
            stored.access_token is not None
            and stored.access_token != rejected_access_token
            and expires_at is not None
            and expires_at - self._safety_margin > _utc_now()
        )
