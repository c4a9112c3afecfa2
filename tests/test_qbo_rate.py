"""The per-company rate governor on SQLite and PostgreSQL: within one process, across processes sharing the
database, after a process dies holding a slot, and after a 429."""

from __future__ import annotations

import multiprocessing
import time
from typing import NamedTuple

import pytest
import sqlalchemy as sa
from servers import POSTGRES

from taxdome_qbo.services import warehouse
from taxdome_qbo.services.qbo_rate import RateGovernor, RateLimits
from taxdome_qbo.services.warehouse import qbo_rate_governor, qbo_rate_grants

REALM = "9341453000000001"
SPAWN = multiprocessing.get_context("spawn")
CHILD_TIMEOUT_SECONDS = 60  # a hung child fails the test instead of hanging it


class Taken(NamedTuple):
    """A slot as its holder saw it: from the moment it was granted until the request ended."""

    granted_at: float
    ended_at: float
    batch: bool


class RecordingClock:
    """time.time remembering its last reading, which inside a slot is the moment the slot was granted (the
    governor reads the clock once per attempt; the single-process test checks this against the stored grant)."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = time.time()
        return self.last


class FakeTime:
    """A clock that moves only when the governor sleeps (or the test says so): waits are exact and free."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def engine(warehouse_engine):
    warehouse.create_schema(warehouse_engine)
    return warehouse_engine


@pytest.fixture
def database(engine, request) -> dict:
    """How another process reaches the test's database: it builds an engine of its own from this."""
    if engine.dialect.name == "sqlite":
        return {"sqlite_path": engine.url.database}
    return {"postgres_schema": request.getfixturevalue("postgres_schema")}


def connect(database: dict) -> sa.Engine:
    if "sqlite_path" in database:
        return warehouse.sqlite_engine(database["sqlite_path"])
    return warehouse.postgres_engine(**POSTGRES, password=None, search_path=database["postgres_schema"])


def most_in_any_window(moments: list[float], window: float) -> int:
    """The most moments that fall within one window [t, t + window), wherever it starts."""
    moments = sorted(moments)
    most = first = 0
    for last, moment in enumerate(moments):
        while moment - moments[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


def most_at_once(taken: list[Taken]) -> int:
    # At equal moments an end (-1) sorts before a start (+1): a slot freed and retaken never overlaps.
    events = sorted([(t.granted_at, 1) for t in taken] + [(t.ended_at, -1) for t in taken])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


def counted_window(limits: RateLimits) -> float:
    # Grant times are compared after float arithmetic on epoch seconds: allow a microsecond of rounding.
    return limits.padded_window_seconds - 1e-6


def take_slots(
    database: dict,
    limits: RateLimits,
    batches: list[bool],
    hold_seconds: float,
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,
) -> None:
    """A worker process: take a slot per entry of `batches`, hold each for `hold_seconds`, report them."""
    engine = connect(database)
    clock = RecordingClock()
    governor = RateGovernor(engine, REALM, limits, clock=clock)
    taken = []
    start.wait(timeout=CHILD_TIMEOUT_SECONDS)
    for batch in batches:
        with governor.slot(batch=batch):
            granted_at = clock.last
            time.sleep(hold_seconds)
            taken.append(Taken(granted_at, time.time(), batch))
    results.put((taken, governor.waited_seconds))
    engine.dispose()


def stored_grants(engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(qbo_rate_grants).order_by(qbo_rate_grants.c.id)).all()


def test_one_process_keeps_every_window_within_the_limits_and_a_batch_counts_as_a_request(engine):
    limits = RateLimits(
        requests_per_window=6, batch_requests_per_window=2, max_concurrent=2, window_seconds=1.0
    )
    clock = RecordingClock()
    governor = RateGovernor(engine, REALM, limits, clock=clock)
    batches = [True, True, False, False, False, False, False, True]
    taken = []
    for batch in batches:
        with governor.slot(batch=batch):
            assert stored_grants(engine)[-1].granted_at == clock.last
            taken.append(Taken(clock.last, time.time(), batch))

    granted = [t.granted_at for t in taken]
    window = counted_window(limits)
    assert most_in_any_window(granted, window) == limits.requests_per_window
    assert most_in_any_window([t.granted_at for t in taken if t.batch], window) == 2
    # The 7th slot is only the 5th plain request, yet it waited for the first batch to leave the window.
    assert granted[6] - granted[0] >= window
    # The third batch waited for the second one, though the window then held only four requests.
    assert granted[7] - granted[1] >= window
    assert governor.waited_seconds > 0
    assert all(row.lease_expires_at is None for row in stored_grants(engine))


def test_processes_sharing_a_company_stay_within_every_limit_together(engine, database):
    limits = RateLimits(
        requests_per_window=6, batch_requests_per_window=2, max_concurrent=2, window_seconds=0.5
    )
    batches = [False, True, False, False, False]
    workers = 3
    start = SPAWN.Barrier(workers)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=take_slots, args=(database, limits, batches, 0.04, start, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=CHILD_TIMEOUT_SECONDS) for _ in processes]
    for process in processes:
        process.join(timeout=CHILD_TIMEOUT_SECONDS)
        assert process.exitcode == 0

    taken = [t for slots, _ in reports for t in slots]
    assert len(taken) == workers * len(batches)
    window = counted_window(limits)
    assert most_in_any_window([t.granted_at for t in taken], window) <= limits.requests_per_window
    assert most_in_any_window([t.granted_at for t in taken if t.batch], window) <= 2
    # Three processes holding slots for 40 ms contend for two: the in-flight limit is reached, and binds.
    assert most_at_once(taken) == limits.max_concurrent
    assert sum(waited for _, waited in reports) > 0


def test_a_slot_a_dead_process_still_holds_blocks_only_until_its_lease_expires(engine):
    limits = RateLimits(max_concurrent=1, lease_seconds=1.0)
    # What a process killed during its request leaves behind: a leased grant that nothing will release.
    granted_to_the_dead = time.time()
    lease_expires_at = granted_to_the_dead + limits.lease_seconds
    with engine.begin() as conn:
        conn.execute(
            sa.insert(qbo_rate_grants).values(
                realm_id=REALM,
                is_batch=False,
                granted_at=granted_to_the_dead,
                lease_expires_at=lease_expires_at,
            )
        )
    clock = RecordingClock()
    governor = RateGovernor(engine, REALM, limits, clock=clock)
    with governor.slot(batch=False):
        granted_at = clock.last

    assert governor.waited_seconds > 0
    assert lease_expires_at <= granted_at < lease_expires_at + 0.5


def test_a_pause_holds_back_every_instance_until_it_ends(engine, database):
    throttled = RateGovernor(engine, REALM)
    other_engine = connect(database)
    clock = RecordingClock()
    other = RateGovernor(other_engine, REALM, clock=clock)

    wait = throttled.pause(0.4)
    with other_engine.connect() as conn:
        paused_until = conn.execute(sa.select(qbo_rate_governor.c.paused_until)).scalar_one()
    with other.slot(batch=False):
        granted_at = clock.last
    other_engine.dispose()

    assert wait == pytest.approx(0.4, abs=0.01)
    assert granted_at >= paused_until
    assert other.waited_seconds > 0.3


def test_a_pause_never_shortens_a_longer_one_and_defaults_to_intuits_wait(engine):
    fake = FakeTime()
    governor = RateGovernor(engine, REALM, clock=fake.clock, sleep=fake.sleep)

    assert governor.pause(None) == RateLimits().throttle_wait_seconds == 60.0
    fake.now += 10
    assert governor.pause(5.0) == 50.0
    assert governor.pause(100.0) == 100.0
    with governor.slot(batch=False):
        pass

    assert fake.sleeps == [100.0]


def test_a_wait_ends_when_the_oldest_counted_grant_leaves_the_window_and_old_grants_are_forgotten(engine):
    fake = FakeTime()
    start = fake.now
    # A window of 8 s counted as 10 s keeps every moment an exact float.
    limits = RateLimits(
        requests_per_window=4, batch_requests_per_window=2, window_seconds=8, safety_margin=0.25
    )
    governor = RateGovernor(engine, REALM, limits, clock=fake.clock, sleep=fake.sleep)
    granted = []
    for batch, then_later_by in [(True, 1), (True, 1), (False, 1), (True, 0), (False, 0), (False, 0)]:
        with governor.slot(batch=batch):
            granted.append(fake.now - start)
        fake.now += then_later_by

    # The third batch waits for the first (0 + 10); then four requests in the window hold back the last.
    assert granted == [0, 1, 2, 10, 10, 11]
    assert fake.sleeps == [7, 1]
    assert governor.waited_seconds == 8
    assert [row.granted_at - start for row in stored_grants(engine)] == [2, 10, 10, 11]


def test_a_request_that_raises_frees_its_slot(engine):
    fake = FakeTime()
    governor = RateGovernor(engine, REALM, RateLimits(max_concurrent=1), clock=fake.clock, sleep=fake.sleep)

    with pytest.raises(RuntimeError, match="lost connection"), governor.slot(batch=True):
        raise RuntimeError("lost connection")
    with governor.slot(batch=False):
        pass

    assert fake.sleeps == []
    assert all(row.lease_expires_at is None for row in stored_grants(engine))


def test_companies_do_not_share_limits(engine):
    fake = FakeTime()
    limits = RateLimits(requests_per_window=1, max_concurrent=1)
    busy = RateGovernor(engine, REALM, limits, clock=fake.clock, sleep=fake.sleep)
    idle = RateGovernor(engine, "9341453000000002", limits, clock=fake.clock, sleep=fake.sleep)

    with busy.slot(batch=False):
        busy.pause(30.0)
        with idle.slot(batch=True):
            pass

    assert fake.sleeps == []


@pytest.mark.parametrize("limit", ["batch_requests_per_window", "max_concurrent", "window_seconds"])
def test_a_limit_that_would_stop_every_request_is_refused(limit):
    with pytest.raises(ValueError, match="must be positive"):
        RateLimits(**{limit: 0})
