"""Benchmark: the bytes of a plan's operations file, the plain CSV the plan task wrote until issue 15 against
the gzip file it writes now (`plan_operations.csv.gz`), on the same plan.

A generated firm (10,000 accounts by default: about 100,000 invoices) is staged into a SQLite warehouse and
planned as a first sync against the company `make demo` seeds (nearly everything is created), as the plan
task records it; then its operations are written both ways. Targets: the file the plan writes is at most 10 %
of the plain CSV's bytes, and it decompresses to exactly the plain CSV.

    .venv/bin/python bench/operations_file.py [--accounts 10000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import time
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.settings import resolve_settings
from taxdome_qbo.demo.planning import company_seeded_for
from taxdome_qbo.services import pipeline, planning, warehouse
from taxdome_qbo.services.staging import stage_export

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import OUT, ensure_export  # the staging benchmark's export

TARGET_SHARE = 0.10
RUN_ID = "bench-operations-file"
READ_BYTES = 1 << 20


def _same_bytes(plain: Path, compressed: Path) -> bool:
    with plain.open("rb") as expected, gzip.open(compressed, "rb") as actual:
        while True:
            want, got = expected.read(READ_BYTES), actual.read(READ_BYTES)
            if want != got:
                return False
            if not want:
                return True


def run(accounts: int) -> dict:
    export, _ = ensure_export(accounts, seed=1)
    scratch = OUT / f"operations-file-{accounts}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        engine = warehouse.sqlite_engine(str(scratch / "warehouse.db"))
        stage_export(engine, ObjectStoragePath(str(export)))
        settings = resolve_settings(
            json.loads((export / "_generator_manifest.json").read_text())["firm_settings"], None
        )
        company = company_seeded_for(planning.read_staged_firm(engine))
        planned = planning.plan_sync(engine, company, settings, PlanOptions(), RUN_ID, dry_run=False)

        plain = scratch / "plan_operations.csv"
        started = time.perf_counter()
        with plain.open("w", encoding="utf-8", newline="") as handle:
            planning.write_operations_csv(engine, RUN_ID, handle)
        plain_seconds = time.perf_counter() - started
        started = time.perf_counter()
        compressed = Path(pipeline.write_plan_operations(engine, RUN_ID, scratch))
        compressed_seconds = time.perf_counter() - started
        engine.dispose()
        return {
            "accounts": accounts,
            "operations": planned.operations,
            "plain_csv_bytes": plain.stat().st_size,
            "plain_csv_seconds": round(plain_seconds, 1),
            "written_file": compressed.name,
            "written_bytes": compressed.stat().st_size,
            "written_seconds": round(compressed_seconds, 1),
            "share_of_plain": round(compressed.stat().st_size / plain.stat().st_size, 4),
            "decompresses_to_the_plain_csv": _same_bytes(plain, compressed),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=10_000)
    result = run(parser.parse_args().accounts)
    for key, value in result.items():
        print(f"{key:>32}: {value}")
    met = result["share_of_plain"] <= TARGET_SHARE and result["decompresses_to_the_plain_csv"]
    print(
        f"\n{'bytes written':<16} {result['written_bytes']:,} of {result['plain_csv_bytes']:,} "
        f"({result['share_of_plain']:.1%})   target <= {TARGET_SHARE:.0%}, same rows   {'OK' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
