"""Benchmark: the bytes of a plan's operations file, the plain CSV the plan task wrote until issue 15 (every
column of `sync_plan`'s operations) against the file it writes now (`plan_operations.csv.gz`: gzip, without
the payload hashes), on the same plan.

A generated firm (10,000 accounts by default: about 100,000 invoices) is staged into a SQLite warehouse and
planned as a first sync against the company `make demo` seeds (nearly everything is created), as the plan
task records it; then its operations are written both ways. Targets: the file the plan writes is at most 10 %
of the plain CSV's bytes, and once decompressed it holds the same rows, the hash column aside.

    .venv/bin/python bench/operations_file.py [--accounts 10000]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import shutil
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from airflow.sdk import ObjectStoragePath

from taxdome_qbo.core.escaping import write_csv
from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.vocabulary import OPERATION_COLUMNS
from taxdome_qbo.demo.planning import company_seeded_for
from taxdome_qbo.services import pipeline, planning, warehouse
from taxdome_qbo.services.staging import stage_export

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import OUT, ensure_export, firm_settings_of  # the staging benchmark's export

TARGET_SHARE = 0.10
RUN_ID = "bench-operations-file"
HASH = OPERATION_COLUMNS.index("payload_hash")


def _write_plain(engine, path: Path) -> None:
    """The file as the plan task wrote it until issue 15: every column, streamed, uncompressed."""
    plan = warehouse.sync_plan
    with engine.connect() as conn, path.open("w", encoding="utf-8", newline="") as handle:
        rows = conn.execution_options(stream_results=True, yield_per=planning.READ_CHUNK_ROWS).execute(
            sa.select(*(plan.c[c] for c in OPERATION_COLUMNS))
            .where(plan.c.run_id == RUN_ID)
            .order_by(plan.c.seq)
        )
        write_csv(handle, OPERATION_COLUMNS, rows, numeric=planning.NUMERIC_OPERATION_COLUMNS)


def _same_rows(plain: Path, compressed: Path) -> bool:
    """Row for row, the plain CSV's cells but the hash are the compressed file's."""
    with plain.open(newline="", encoding="utf-8") as before, gzip.open(compressed, "rt", newline="") as after:
        return all(
            old[:HASH] + old[HASH + 1 :] == new
            for old, new in zip(csv.reader(before), csv.reader(after), strict=True)
        )


def run(accounts: int) -> dict:
    export, _ = ensure_export(accounts, seed=1)
    scratch = OUT / f"operations-file-{accounts}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        engine = warehouse.sqlite_engine(str(scratch / "warehouse.db"))
        stage_export(engine, ObjectStoragePath(str(export)))
        settings = firm_settings_of(export)
        company = company_seeded_for(planning.read_staged_firm(engine))
        planned = planning.plan_sync(engine, company, settings, PlanOptions(), RUN_ID, dry_run=False)

        plain = scratch / "plan_operations.csv"
        started = time.perf_counter()
        _write_plain(engine, plain)
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
            "same_rows_once_decompressed": _same_rows(plain, compressed),
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
    met = result["share_of_plain"] <= TARGET_SHARE and result["same_rows_once_decompressed"]
    print(
        f"\n{'bytes written':<16} {result['written_bytes']:,} of {result['plain_csv_bytes']:,} "
        f"({result['share_of_plain']:.1%})   target <= {TARGET_SHARE:.0%}, same rows   {'OK' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
