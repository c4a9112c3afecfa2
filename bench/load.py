"""Benchmark: an initial QuickBooks load of a generated firm into the emulator with Intuit's real limits.

The emulator keeps QBO's limits (500 requests, 40 batch requests a "minute", 10 in flight) but its minute
lasts 60 x time_scale seconds, and the loader's rate governor is told the same window. Through batches of
30, the limits allow 30 x 40 = 1,200 operations per emulated minute; the target is at least 90% of that,
with no failed operation and no 429 left unrecovered. Then the same firm is planned and loaded again with
nothing changed (staged again, planned, loaded): the target is zero writes in under 30 s.

    python bench/load.py [--accounts 1600] [--time-scale 0.1] [--warehouse sqlite|postgres]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from airflow.sdk import ObjectStoragePath

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
TARGET_SHARE = 0.90
MIN_OPERATIONS = 20_000
RERUN_TARGET_SECONDS = 30.0
WRITES = ("create", "update", "delete", "void", "batch")


def _engine(kind: str, directory: Path):
    if kind == "sqlite":
        return warehouse.sqlite_engine(str(directory / "warehouse.db"))
    schema = f"bench_load_{int(time.time())}"
    return warehouse.postgres_engine(
        host="127.0.0.1", port=5432, database="test", user="root", password=None, search_path=schema
    )


def _writes(emulator, realm_id: str) -> int:
    served = emulator.admin("GET", "requests").json()["requests"]
    return sum(1 for r in served if r["realm_id"] == realm_id and r["operation"] in WRITES)


def run(accounts: int, time_scale: float, warehouse_kind: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch, running_emulator(time_scale=time_scale) as emulator:
        directory = Path(scratch)
        manifest = generate_export(directory / "export", accounts, seed=42)
        company = emulator.admin("POST", "companies").json()
        seed_company(emulator.quickbooks(company), directory / "export")
        engine = _engine(warehouse_kind, directory)
        stage_export(engine, ObjectStoragePath(str(directory / "export")))
        settings = resolve_settings(manifest["firm_settings"], None)
        credentials = QboCredentials(
            company["client_id"],
            company["client_secret"],
            company["realm_id"],
            emulator.base_url,
            "http://127.0.0.1/callback",
            company["refresh_token"],
        )
        session = open_session(credentials, TokenStore(engine, company["realm_id"], TokenCipher.generated()))
        window = 60.0 * time_scale
        session.govern(RateGovernor(engine, company["realm_id"], RateLimits(window_seconds=window)))

        planned = planning.plan_sync(
            engine, fetch_reference(session), settings, PlanOptions(), "bench-1", dry_run=False
        )
        started = time.perf_counter()
        receipt = loading.load_plan(engine, session, "bench-1", progress=print)
        elapsed = time.perf_counter() - started
        sent = sum(n for (_, outcome), n in receipt.outcomes.items() if outcome not in ("linked",))
        per_minute = sent / (elapsed / window)

        writes_before = _writes(emulator, company["realm_id"])
        rerun_started = time.perf_counter()
        stage_export(engine, ObjectStoragePath(str(directory / "export")))
        replanned = planning.plan_sync(
            engine, fetch_reference(session), settings, PlanOptions(), "bench-2", dry_run=False
        )
        rerun = loading.load_plan(engine, session, "bench-2", progress=print)
        rerun_seconds = time.perf_counter() - rerun_started
        result = {
            "warehouse": warehouse_kind,
            "accounts": accounts,
            "planned_operations": planned.operations,
            "sent_operations": sent,
            "failed": receipt.failed,
            "load_seconds": round(elapsed, 1),
            "emulated_minutes": round(elapsed / window, 2),
            "operations_per_emulated_minute": round(per_minute),
            "share_of_ceiling": round(per_minute / CEILING_PER_MINUTE, 3),
            "requests": receipt.requests,
            "throttled_429": receipt.throttled,
            "retries": receipt.retries,
            "rerun_operations": replanned.operations,
            "rerun_writes": _writes(emulator, company["realm_id"]) - writes_before,
            "rerun_seconds": round(rerun_seconds, 1),
            "rerun_failed": rerun.failed,
        }
        engine.dispose()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=1600)
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--warehouse", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    result = run(args.accounts, args.time_scale, args.warehouse)
    for key, value in result.items():
        print(f"{key:>32}: {value}")
    problems = []
    if result["planned_operations"] < MIN_OPERATIONS:
        problems.append(
            f"only {result['planned_operations']} operations (want ≥ {MIN_OPERATIONS}): raise --accounts"
        )
    if result["share_of_ceiling"] < TARGET_SHARE:
        problems.append(
            f"throughput {result['share_of_ceiling']:.0%} of the ceiling (target ≥ {TARGET_SHARE:.0%})"
        )
    if result["failed"] or result["rerun_failed"]:
        problems.append("failed operations")
    if result["rerun_writes"] or result["rerun_seconds"] >= RERUN_TARGET_SECONDS:
        problems.append("the no-change re-run wrote or took too long")
    print("OK: targets met" if not problems else "MISSED: " + "; ".join(problems))


if __name__ == "__main__":
    main()
