"""Benchmark: an initial QuickBooks load of a generated firm into the emulator with Intuit's real limits.

The emulator keeps QBO's limits (500 requests, 40 batch requests a "minute", 10 in flight) but its minute
lasts 60 x time_scale seconds, and the loader's rate governor is told the same window. Through batches of
30, the limits allow 30 x 40 = 1,200 operations per emulated minute. Targets: at least 100,000 operations,
at least 95% of that ceiling, no failed operation and no 429 left unrecovered, and a load whose memory does
not grow with the sync state (the load runs in a process of its own: its peak RSS, and how much it grew
from the moment the load started, at most LOAD_GROWTH_TARGET_MB whatever the plan's size). Then the same
firm is planned and loaded again with nothing changed (staged again, planned, loaded): the target is zero
writes in under 30 s.

    python bench/load.py [--accounts 7500] [--time-scale 0.1] [--warehouse sqlite|postgres]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from airflow.sdk import ObjectStoragePath
from cryptography.fernet import Fernet

from qbo_emulator.testing import running_emulator
from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.settings import resolve_settings
from taxdome_qbo.demo.generator import generate_export
from taxdome_qbo.demo.qbo_seed import seed_company
from taxdome_qbo.services import loading, planning, warehouse
from taxdome_qbo.services.qbo_client import QboCredentials, fetch_reference, open_session
from taxdome_qbo.services.qbo_rate import RateGovernor, RateLimits
from taxdome_qbo.services.qbo_tokens import TokenStore
from taxdome_qbo.services.staging import stage_export
from taxdome_qbo.services.token_cipher import TokenCipher

CEILING_PER_MINUTE = 30 * 40
TARGET_SHARE = 0.95
MIN_OPERATIONS = 100_000
LOAD_GROWTH_TARGET_MB = 64
RERUN_TARGET_SECONDS = 30.0
WRITES = ("create", "update", "delete", "void", "batch")


@dataclass(frozen=True)
class Company:
    """What a process needs to reach the warehouse and the emulated company (picklable for the load's own
    process)."""

    warehouse_kind: str
    location: str  # the SQLite file, or the PostgreSQL schema
    token_key: str
    credentials: QboCredentials
    window_seconds: float

    def engine(self):
        if self.warehouse_kind == "sqlite":
            return warehouse.sqlite_engine(self.location)
        return warehouse.postgres_engine(
            host="127.0.0.1",
            port=5432,
            database="test",
            user="root",
            password=None,
            search_path=self.location,
        )

    def session(self, engine):
        cipher = TokenCipher([(self.token_key, "the benchmark's key")])
        session = open_session(self.credentials, TokenStore(engine, self.credentials.realm_id, cipher))
        # Intuit's advice after a 429 is to wait a minute: the emulated one, as the limits' window is.
        limits = RateLimits(window_seconds=self.window_seconds, throttle_wait_seconds=self.window_seconds)
        session.govern(RateGovernor(engine, self.credentials.realm_id, limits))
        return session


def _peak_rss_mb() -> int:
    """This process's peak RSS. Not getrusage's ru_maxrss: Linux carries that over from the parent, whose
    peak (the plan) the new process would report as its own."""
    status = Path("/proc/self/status").read_text()
    return round(
        int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
    )


def _load_in_own_process(company: Company, run_id: str, results) -> None:
    """The load task as it runs: a process that opens the warehouse and the session, then loads the plan."""
    engine = company.engine()
    session = company.session(engine)
    fetch_reference(session)  # the session is open (its token refreshed) before the load is measured
    before = _peak_rss_mb()
    started = time.perf_counter()
    receipt = loading.load_plan(engine, session, run_id, progress=print)
    elapsed = time.perf_counter() - started
    peak = _peak_rss_mb()
    engine.dispose()
    results.put({"receipt": receipt, "seconds": elapsed, "rss_before_mb": before, "peak_rss_mb": peak})


def _load(company: Company, run_id: str) -> dict:
    spawned = multiprocessing.get_context("spawn")
    results = spawned.Queue()
    process = spawned.Process(target=_load_in_own_process, args=(company, run_id, results))
    process.start()
    result = results.get()
    process.join()
    return result


def _writes(emulator, realm_id: str) -> int:
    served = emulator.admin("GET", "requests").json()["requests"]
    return sum(1 for r in served if r["realm_id"] == realm_id and r["operation"] in WRITES)


def run(accounts: int, time_scale: float, warehouse_kind: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch, running_emulator(time_scale=time_scale) as emulator:
        directory = Path(scratch)
        manifest = generate_export(directory / "export", accounts, seed=42)
        emulated = emulator.admin("POST", "companies").json()
        seed_company(emulator.quickbooks(emulated), directory / "export")
        location = (
            str(directory / "warehouse.db")
            if warehouse_kind == "sqlite"
            else f"bench_load_{int(time.time())}"
        )
        company = Company(
            warehouse_kind,
            location,
            Fernet.generate_key().decode(),
            QboCredentials(
                emulated["client_id"],
                emulated["client_secret"],
                emulated["realm_id"],
                emulator.base_url,
                "http://127.0.0.1/callback",
                emulated["refresh_token"],
            ),
            60.0 * time_scale,
        )
        engine = company.engine()
        try:
            return _measure(engine, company, emulator, directory / "export", manifest, accounts)
        finally:
            if warehouse_kind == "postgres":
                with engine.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{location}" CASCADE'))
            engine.dispose()


def _measure(engine, company: Company, emulator, export: Path, manifest: dict, accounts: int) -> dict:
    stage_export(engine, ObjectStoragePath(str(export)))
    settings = resolve_settings(manifest["firm_settings"], None)
    session = company.session(engine)
    planned = planning.plan_sync(
        engine, fetch_reference(session), settings, PlanOptions(), "bench-1", dry_run=False
    )
    loaded = _load(company, "bench-1")
    receipt, elapsed = loaded["receipt"], loaded["seconds"]
    sent = sum(n for (_, outcome), n in receipt.outcomes.items() if outcome not in ("linked",))
    per_minute = sent / (elapsed / company.window_seconds)

    realm_id = company.credentials.realm_id
    writes_before = _writes(emulator, realm_id)
    rerun_started = time.perf_counter()
    stage_export(engine, ObjectStoragePath(str(export)))
    replanned = planning.plan_sync(
        engine, fetch_reference(session), settings, PlanOptions(), "bench-2", dry_run=False
    )
    rerun = loading.load_plan(engine, session, "bench-2", progress=print)
    rerun_seconds = time.perf_counter() - rerun_started
    return {
        "warehouse": company.warehouse_kind,
        "accounts": accounts,
        "planned_operations": planned.operations,
        "sent_operations": sent,
        "failed": receipt.failed,
        "load_seconds": round(elapsed, 1),
        "emulated_minutes": round(elapsed / company.window_seconds, 2),
        "operations_per_emulated_minute": round(per_minute),
        "share_of_ceiling": round(per_minute / CEILING_PER_MINUTE, 3),
        "load_rss_before_mb": loaded["rss_before_mb"],
        "load_peak_rss_mb": loaded["peak_rss_mb"],
        "load_rss_growth_mb": loaded["peak_rss_mb"] - loaded["rss_before_mb"],
        "requests": receipt.requests,
        "throttled_429": receipt.throttled,
        "retries": receipt.retries,
        "rerun_operations": replanned.operations,
        "rerun_writes": _writes(emulator, realm_id) - writes_before,
        "rerun_seconds": round(rerun_seconds, 1),
        "rerun_failed": rerun.failed,
    }


def _targets(result: dict) -> list[tuple[str, str, str, bool]]:
    """Each judged figure with its target: (figure, measured, target, met)."""
    return [
        (
            "planned operations",
            f"{result['planned_operations']:,}",
            f">= {MIN_OPERATIONS:,}",
            result["planned_operations"] >= MIN_OPERATIONS,
        ),
        (
            "share of the ceiling",
            f"{result['share_of_ceiling']:.1%} ({result['operations_per_emulated_minute']:,}/min)",
            f">= {TARGET_SHARE:.0%} of {CEILING_PER_MINUTE:,}/min",
            result["share_of_ceiling"] >= TARGET_SHARE,
        ),
        (
            "load memory growth",
            f"{result['load_rss_growth_mb']:,} MB (peak RSS {result['load_peak_rss_mb']:,} MB)",
            f"<= {LOAD_GROWTH_TARGET_MB} MB",
            result["load_rss_growth_mb"] <= LOAD_GROWTH_TARGET_MB,
        ),
        (
            "failed operations",
            str(result["failed"] + result["rerun_failed"]),
            "0",
            not result["failed"] + result["rerun_failed"],
        ),
        (
            "no-change re-run",
            f"{result['rerun_writes']} writes, {result['rerun_seconds']} s",
            f"0 writes, < {RERUN_TARGET_SECONDS:.0f} s",
            not result["rerun_writes"] and result["rerun_seconds"] < RERUN_TARGET_SECONDS,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=7500, help="about 14 operations per account")
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--warehouse", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    result = run(args.accounts, args.time_scale, args.warehouse)
    for key, value in result.items():
        print(f"{key:>32}: {value}")
    judged = _targets(result)
    print(f"\n{'figure':<22}  {'measured':<40}  {'target':<26}")
    for figure, measured, target, met in judged:
        print(f"{figure:<22}  {measured:<40}  {target:<26}  {'OK' if met else 'MISSED'}")
    missed = [figure for figure, _, _, met in judged if not met]
    print("OK: targets met" if not missed else "MISSED: " + ", ".join(missed))


if __name__ == "__main__":
    main()
