"""One rate governor per QuickBooks company, shared by every process that calls it.

Intuit limits each company (realm) to 500 requests a minute (batch requests included), 40 batch requests a
minute and 10 requests in flight, and answers 429 beyond them. Several Airflow tasks may call one company at
once, so the bookkeeping lives in the warehouse: `qbo_rate_grants` holds a row per request sent in the
current window (and per request still in flight), `qbo_rate_governor` a row per company that serializes the
grants. On PostgreSQL that row is locked with `SELECT ... FOR UPDATE`; SQLite has only a database-wide write
lock, which a transaction takes at its first write, so the transaction starts with a no-op update of the row.

Times are wall-clock epoch seconds, so every process must share one clock (one machine, or NTP-synced ones
within the safety margin).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.services import warehouse
from taxdome_qbo.services.warehouse import qbo_rate_governor, qbo_rate_grants

# How often a request waiting for a free in-flight slot looks again: nothing announces a finished request,
# and 20 ms is short next to a QBO request while costing the database only a few small transactions.
IN_FLIGHT_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class RateLimits:
    """Intuit's limits per company; an emulator with time-scaled minutes uses `window_seconds=60 * scale`."""

    requests_per_window: int = 500
    batch_requests_per_window: int = 40
    max_concurrent: int = 10
    window_seconds: float = 60.0
    # Windows are counted this much longer, so timing jitter between us and QBO never crosses a limit.
    safety_margin: float = 0.02
    # A slot still held after this is from a dead process (QBO times requests out at 120 s).
    lease_seconds: float = 130.0
    # Intuit's advice after a 429 that names no Retry-After.
    throttle_wait_seconds: float = 60.0

    def __post_init__(self) -> None:
        # A zero limit would make every request wait forever.
        positive = (
            self.requests_per_window,
            self.batch_requests_per_window,
            self.max_concurrent,
            self.window_seconds,
            self.lease_seconds,
            self.throttle_wait_seconds,
        )
        if min(positive) <= 0 or self.safety_margin < 0:
            raise ValueError(
                f"rate limits and times must be positive, the safety margin not negative: {self}"
            )

    @property
    def padded_window_seconds(self) -> float:
        return self.window_seconds * (1 + self.safety_margin)


@dataclass(frozen=True)
class _Usage:
    """The company's grants as one acquiring transaction sees them."""

    requests: int
    oldest_request_at: float | None
    batch_requests: int
    oldest_batch_request_at: float | None
    in_flight: int
    first_lease_expiry: float | None


class RateGovernor:
    """Request slots of the company `realm_id` within `limits`, for every process using the warehouse `engine`.

    Each request runs inside `slot()`, which waits until every limit allows it and holds an in-flight lease
    while it runs; after a 429, `pause()` makes every process of the company wait. `waited_seconds` is how
    long this instance has waited so far.
    """

    def __init__(
        self,
        engine: Engine,
        realm_id: str,
        limits: RateLimits = RateLimits(),
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        warehouse.create_schema(engine)
        self._engine = engine
        self.realm_id = realm_id
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self.waited_seconds = 0.0

    def __repr__(self) -> str:
        database = self._engine.url.render_as_string(hide_password=True)
        return f"RateGovernor(realm_id={self.realm_id!r}, database={database!r})"

    @contextmanager
    def slot(self, *, batch: bool) -> Iterator[None]:
        """Wait until a request (a batch request if `batch`) may be sent; it counts as in flight until the
        block exits, also on an exception."""
        grant_id = self._acquire(batch)
        try:
            yield
        finally:
            with self._engine.begin() as conn:
                conn.execute(
                    sa.update(qbo_rate_grants)
                    .where(qbo_rate_grants.c.id == grant_id)
                    .values(lease_expires_at=None)
                )

    def pause(self, retry_after: float | None) -> float:
        """After a 429: hold back every process of the company for `retry_after` seconds (Intuit's
        `throttle_wait_seconds` if QBO named none), or longer if a longer pause is already set.
        Returns the seconds until the pause ends; the waiting happens in the next `slot()`."""
        wait = self.limits.throttle_wait_seconds if retry_after is None else max(retry_after, 0.0)
        with self._engine.begin() as conn:
            paused_until = self._lock_company(conn)
            now = self._clock()
            resume_at = max(now + wait, paused_until or 0.0)
            conn.execute(
                sa.update(qbo_rate_governor)
                .where(qbo_rate_governor.c.realm_id == self.realm_id)
                .values(paused_until=resume_at)
            )
        return resume_at - now

    def _acquire(self, batch: bool) -> int:
        """The id of a grant taken as soon as the limits allow, sleeping (outside any transaction) until then."""
        while True:
            with self._engine.begin() as conn:
                paused_until = self._lock_company(conn)
                now = self._clock()
                usage = self._usage(conn, now)
                retry_at = self._retry_at(usage, paused_until, now, batch)
                if retry_at is None:
                    return conn.execute(
                        sa.insert(qbo_rate_grants).values(
                            realm_id=self.realm_id,
                            is_batch=batch,
                            granted_at=now,
                            lease_expires_at=now + self.limits.lease_seconds,
                        )
                    ).inserted_primary_key[0]
            self._sleep(retry_at - now)
            self.waited_seconds += retry_at - now

    def _lock_company(self, conn: Connection) -> float | None:
        """Lock the company's governor row until `conn`'s transaction ends (creating it the first time);
        returns its `paused_until`."""
        of_company = qbo_rate_governor.c.realm_id == self.realm_id
        row = warehouse.fetch_locked(conn, qbo_rate_governor, of_company, qbo_rate_governor.c.paused_until)
        if row is None:
            conn.execute(
                warehouse.insert_for(conn)(qbo_rate_governor)
                .values(realm_id=self.realm_id, created_at=datetime.fromtimestamp(self._clock(), UTC))
                .on_conflict_do_nothing(index_elements=[qbo_rate_governor.c.realm_id])
            )
            row = warehouse.fetch_locked(
                conn, qbo_rate_governor, of_company, qbo_rate_governor.c.paused_until
            )
        return row.paused_until

    def _usage(self, conn: Connection, now: float) -> _Usage:
        """Forget the grants that no longer count, then count the rest (under the company's lock)."""
        grants = qbo_rate_grants.c
        in_window = grants.granted_at > now - self.limits.padded_window_seconds
        in_flight = grants.lease_expires_at > now
        of_company = grants.realm_id == self.realm_id
        conn.execute(
            sa.delete(qbo_rate_grants).where(
                of_company,
                sa.not_(in_window),
                sa.or_(grants.lease_expires_at.is_(None), sa.not_(in_flight)),
            )
        )
        batch_in_window = sa.and_(in_window, grants.is_batch)
        row = conn.execute(
            sa.select(
                sa.func.count().filter(in_window),
                sa.func.min(grants.granted_at).filter(in_window),
                sa.func.count().filter(batch_in_window),
                sa.func.min(grants.granted_at).filter(batch_in_window),
                sa.func.count().filter(in_flight),
                sa.func.min(grants.lease_expires_at).filter(in_flight),
            ).where(of_company)
        ).one()
        return _Usage(*row)

    def _retry_at(self, usage: _Usage, paused_until: float | None, now: float, batch: bool) -> float | None:
        """None if a request may be sent now, else the earliest moment every limit in the way could free."""
        limits = self.limits
        frees_at = []
        if paused_until is not None and paused_until > now:
            frees_at.append(paused_until)
        if usage.requests >= limits.requests_per_window:
            frees_at.append(usage.oldest_request_at + limits.padded_window_seconds)
        if batch and usage.batch_requests >= limits.batch_requests_per_window:
            frees_at.append(usage.oldest_batch_request_at + limits.padded_window_seconds)
        if usage.in_flight >= limits.max_concurrent:
            # Any request may end at any moment: look again soon, and no later than a dead one's lease ends.
            frees_at.append(min(now + IN_FLIGHT_POLL_SECONDS, usage.first_lease_expiry))
        return max(frees_at, default=None)
