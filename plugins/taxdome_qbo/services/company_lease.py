"""One writer per QuickBooks company: an exclusive, crash-safe lease kept in the warehouse.

Whatever plans, loads or otherwise changes a company (the sync's `plan` and `load` tasks, `retry`, `connect`,
`disconnect`, `repair-duplicates`) holds the company's lease, a row of `qbo_company_leases`. It is taken by a
compare-and-swap (an INSERT ... ON CONFLICT that only replaces the holder it saw), atomic on PostgreSQL (the
row lock) and SQLite (the database's write lock), so two writers never hold it together, whichever processes
or machines they run on. A heartbeat thread renews it while it is held and it is released at the end. A holder
that dies stops renewing: its lease expires and the next writer takes it over; one that died on this machine
(kill -9, a crash) is taken over at once, since its process is visibly gone.

Expiry is judged by PostgreSQL's clock, so machines with skewed clocks agree on it (a SQLite warehouse is a
file of this machine). Fencing: a holder whose heartbeat could not renew the lease before it expired, or whose
lease another writer took over, must stop writing; `CompanyLease.verify()` raises LeaseLost then, and the
loader calls it before every batch it sends.

A thread that already holds a company's lease re-enters it (`retry` holds it across check, plan and load, and
each of those asks for it again); another thread of the same process waits like any other writer.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.services import warehouse
from taxdome_qbo.services.warehouse import insert_for, qbo_company_leases

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0  # a holder not heard of for this long is presumed dead
HEARTBEAT_SECONDS = 20.0  # several renewals per lease, so a slow database round trip loses nothing
POLL_SECONDS = 1.0
# How long a writer waits for the company: the sync's tasks wait for a load to finish, people do not.
TASK_WAIT_SECONDS = 900.0
COMMAND_WAIT_SECONDS = 10.0

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _machine() -> str:
    """This machine: its host name, and its boot id where the OS has one (a reused host name or a reboot
    makes another machine)."""
    boot_id = _BOOT_ID.read_text().strip() if _BOOT_ID.exists() else ""
    return f"{socket.gethostname()}/{boot_id}" if boot_id else socket.gethostname()


MACHINE = _machine()


@dataclass(frozen=True)
class LeaseTiming:
    lease_seconds: float = LEASE_SECONDS
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    poll_seconds: float = POLL_SECONDS


class CompanyBusy(RuntimeError):
    """Another writer holds the company's lease (the message says who, where and since when)."""


class LeaseLost(RuntimeError):
    """The lease expired unrenewed or was taken over: the holder must stop writing to the company."""


def _when(moment: datetime) -> str:
    return warehouse.as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_holder(row: sa.Row) -> str:
    """Who holds a lease, for the message of whoever has to wait for it."""
    return (
        f"{row.holder} (process {row.pid} on {row.host.split('/')[0]}), holding it since {_when(row.acquired_at)}; "
        f"last renewed {_when(row.renewed_at)}, it expires {_when(row.expires_at)} unless renewed"
    )


def _database_now(conn: Connection) -> datetime:
    """PostgreSQL's clock when the warehouse is there (shared by every machine); this machine's for SQLite."""
    if conn.dialect.name == "postgresql":
        return conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
    return datetime.now(UTC)


def _current(conn: Connection, realm_id: str) -> sa.Row | None:
    return conn.execute(
        sa.select(qbo_company_leases).where(qbo_company_leases.c.realm_id == realm_id)
    ).one_or_none()


def _gone_from_this_machine(row: sa.Row) -> bool:
    """A holder on this machine whose process no longer exists: it died without releasing."""
    if row.host != MACHINE or "/" not in MACHINE:
        return False
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


class CompanyLease:
    """A held lease: renewed in the background until released; `verify()` before every write."""

    def __init__(self, engine: Engine, realm_id: str, holder: str, token: str, timing: LeaseTiming) -> None:
        self.engine = engine
        self.realm_id = realm_id
        self.holder = holder
        self.token = token
        self.timing = timing
        self._renewed = time.monotonic()
        self._lost: str | None = None
        self._stopping = threading.Event()
        self._heartbeat = threading.Thread(
            target=self._renew_until_released, name=f"lease heartbeat {realm_id}", daemon=True
        )
        self._heartbeat.start()

    def __repr__(self) -> str:
        return f"CompanyLease(realm_id={self.realm_id!r}, holder={self.holder!r})"

    def verify(self) -> None:
        """Raise LeaseLost unless this lease still holds the company (call it before writing to QBO)."""
        if self._lost is None and time.monotonic() - self._renewed > self.timing.lease_seconds:
            self._lost = (
                f"it was not renewed for {self.timing.lease_seconds:.0f} s (the warehouse did not answer), "
                "so another writer may have taken the company over"
            )
        if self._lost is None:
            with self.engine.connect() as conn:
                row = _current(conn, self.realm_id)
            if row is None or row.token != self.token:
                self._lost = "it was taken over" + ("" if row is None else f" by {describe_holder(row)}")
        if self._lost is not None:
            raise LeaseLost(
                f"{self.holder} lost the lease of QuickBooks company {self.realm_id}: {self._lost}. It stopped "
                "before its next write; what it sent is recorded, and a new attempt resumes from there."
            )

    def still_held(self) -> sa.Select:
        """A query selecting a row while this lease holds the company: for a writer that cannot call verify(),
        to run after its own writes, before it commits (then on SQLite no one can take the lease over before
        the commit)."""
        leases = qbo_company_leases
        return sa.select(leases.c.token).where(
            leases.c.realm_id == self.realm_id, leases.c.token == self.token
        )

    def _renew(self) -> bool:
        with self.engine.begin() as conn:
            now = _database_now(conn)
            renewed = conn.execute(
                sa.update(qbo_company_leases)
                .where(
                    qbo_company_leases.c.realm_id == self.realm_id, qbo_company_leases.c.token == self.token
                )
                .values(renewed_at=now, expires_at=now + timedelta(seconds=self.timing.lease_seconds))
            ).rowcount
        return renewed == 1

    def _renew_until_released(self) -> None:
        while not self._stopping.wait(self.timing.heartbeat_seconds):
            started = time.monotonic()
            try:
                renewed = self._renew()
            except sa.exc.SQLAlchemyError as error:
                # verify() stops the holder once the lease may have expired; until then, try again.
                log.warning("could not renew the lease of QuickBooks company %s: %s", self.realm_id, error)
                continue
            if not renewed:
                self._lost = "another writer took it over after it expired"
                return
            self._renewed = started

    def release(self) -> None:
        self._stopping.set()
        self._heartbeat.join()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    qbo_company_leases.delete().where(
                        qbo_company_leases.c.realm_id == self.realm_id,
                        qbo_company_leases.c.token == self.token,
                    )
                )
        except sa.exc.SQLAlchemyError as error:
            log.warning(
                "could not release the lease of QuickBooks company %s (%s): it expires in %.0f s",
                self.realm_id,
                error,
                self.timing.lease_seconds,
            )


def _take(
    engine: Engine, realm_id: str, holder: str, token: str, timing: LeaseTiming, seen: sa.Row | None
) -> bool:
    """Become the holder if the lease is still as `seen` (free, or that holder's, expired or gone)."""
    table = qbo_company_leases
    # The write is the transaction's first statement on SQLite: a read first could not upgrade to the write
    # lock once another writer committed.
    with engine.begin() as conn:
        now = _database_now(conn)
        values = {
            "token": token,
            "holder": holder,
            "host": MACHINE,
            "pid": os.getpid(),
            "acquired_at": now,
            "renewed_at": now,
            "expires_at": now + timedelta(seconds=timing.lease_seconds),
        }
        statement = insert_for(conn)(table).values(realm_id=realm_id, **values)
        if seen is None:
            statement = statement.on_conflict_do_nothing(index_elements=[table.c.realm_id])
        else:
            still_as_seen = table.c.token == seen.token
            if not _gone_from_this_machine(seen):
                still_as_seen &= table.c.expires_at <= now
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.realm_id],
                set_={name: statement.excluded[name] for name in values},
                where=still_as_seen,
            )
        conn.execute(statement)
        return _current(conn, realm_id).token == token


def _acquire(
    engine: Engine, realm_id: str, holder: str, wait_seconds: float, timing: LeaseTiming
) -> CompanyLease:
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_seconds
    while True:
        with engine.connect() as conn:
            now = _database_now(conn)
            seen = _current(conn, realm_id)
        free = seen is None or warehouse.as_utc(seen.expires_at) <= now or _gone_from_this_machine(seen)
        if free and _take(engine, realm_id, holder, token, timing, seen):
            if seen is not None:
                log.warning(
                    "QuickBooks company %s: took over the lease of %s, which ended without releasing it",
                    realm_id,
                    describe_holder(seen),
                )
            return CompanyLease(engine, realm_id, holder, token, timing)
        if free:
            continue  # another writer took it between the look and the swap: look again
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CompanyBusy(
                f"QuickBooks company {realm_id} is being written by {describe_holder(seen)}. {holder} waited "
                f"{wait_seconds:.0f} s and wrote nothing; run it again once that is done."
            )
        time.sleep(min(timing.poll_seconds, remaining))


_held_by_thread = threading.local()


def _leases_of_this_thread() -> list[CompanyLease]:
    if not hasattr(_held_by_thread, "leases"):
        _held_by_thread.leases = []
    return _held_by_thread.leases


def _held_here(engine: Engine, realm_id: str) -> CompanyLease | None:
    """This thread's lease of the company in this warehouse, if it holds one."""
    mine = [lease for lease in _leases_of_this_thread() if lease.realm_id == realm_id]
    if not mine:
        return None
    with engine.connect() as conn:
        row = _current(conn, realm_id)
    return next((lease for lease in mine if row is not None and row.token == lease.token), None)


@contextmanager
def company_lease(
    engine: Engine,
    realm_id: str,
    holder: str,
    *,
    wait_seconds: float = TASK_WAIT_SECONDS,
    timing: LeaseTiming | None = None,
) -> Iterator[CompanyLease]:
    """Hold the company's lease for the block: the only writer of QuickBooks company `realm_id`.

    `holder` says what writes (shown to whoever waits, with this process and machine). Waits up to
    `wait_seconds` for another holder, then raises CompanyBusy naming it. Re-entered by a thread that holds it.
    """
    warehouse.create_schema(engine)
    held = _held_here(engine, realm_id)
    if held is not None:
        yield held
        return
    lease = _acquire(engine, realm_id, holder, wait_seconds, timing or LeaseTiming())
    leases = _leases_of_this_thread()
    leases.append(lease)
    try:
        yield lease
    finally:
        leases.remove(lease)
        lease.release()
