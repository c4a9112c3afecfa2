"""Lease holders run in child processes by the lease tests: a module light to import, so that a spawned child
(which imports the module of its target) starts in a second or two rather than loading Airflow."""

from __future__ import annotations

import time

from servers import engine_from_spec

from taxdome_qbo.services import company_lease
from taxdome_qbo.services.company_lease import CompanyBusy, LeaseTiming
from taxdome_qbo.services.company_lease import company_lease as lease_of

QUICK = LeaseTiming(lease_seconds=1.5, heartbeat_seconds=0.3, poll_seconds=0.05)


def hold_until_killed(spec: dict, realm_id: str, machine: str | None, ready) -> None:
    """A writer in a child process that holds the company until it is killed (kill -9: no release)."""
    if machine is not None:
        company_lease.MACHINE = machine  # as if it ran on another machine: its death cannot be seen from here
    with lease_of(engine_from_spec(spec), realm_id, "load of run killed-holder", timing=QUICK):
        ready.set()
        time.sleep(600)


def try_twice(spec: dict, realm_id: str, answer, released) -> None:
    """Ask for the lease while the parent holds it, then again once the parent says it released it."""
    engine = engine_from_spec(spec)
    for wait_seconds in (1.0, 0.0):
        try:
            with lease_of(engine, realm_id, "second writer", wait_seconds=wait_seconds, timing=QUICK):
                answer.put("acquired")
        except CompanyBusy as busy:
            answer.put(str(busy))
        released.wait(60)
