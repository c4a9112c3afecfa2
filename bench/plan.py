"""Planning benchmark: a generated firm of about 1,000,000 invoices planned against a sync state of its size.

Targets on the 2-core reference machine: at most 60 s and 3 GB peak RSS. Two plans are timed: the first one
(nothing synced yet: every object is created) and the steady state (the state of a successful sync of the
first plan: every payload is rebuilt and compared by hash, nothing is written).

    make bench
    .venv/bin/python bench/plan.py --accounts 10000
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import pandas as pd

from taxdome_qbo.core.planner import STATE_COLUMNS, StagedFirm, build_plan
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.core.validation import validate_export
from taxdome_qbo.demo.planning import demo_company, state_after_success
from taxdome_qbo.services.export_reader import ExportReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import ensure_export  # the same cached export as the staging benchmark


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100_000, help="about 10 invoices per account")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    export, _ = ensure_export(args.accounts, args.seed)
    started = time.perf_counter()
    validated = {v.export_file.name: v.staged for v in validate_export(ExportReader(export).read)}
    staged = StagedFirm(**{name: validated[name] for name in StagedFirm.__dataclass_fields__})
    print(
        f"staged firm read and validated in {time.perf_counter() - started:.1f} s: "
        f"{len(staged.invoices):,} invoices, {len(staged.invoice_lines):,} lines, {len(staged.payments):,} payments"
    )

    settings = FirmSettings(sync_start_date=None, integration_date=None)
    company = demo_company(items=[("40", "Bookkeeping", True)])
    started = time.perf_counter()
    first = build_plan(staged, settings, company, pd.DataFrame(columns=list(STATE_COLUMNS)))
    first_seconds = time.perf_counter() - started
    state = state_after_success(first)
    started = time.perf_counter()
    steady = build_plan(staged, settings, company, state)
    steady_seconds = time.perf_counter() - started
    assert steady.operations.empty

    verdict = "OK" if max(first_seconds, steady_seconds) <= 60 and peak_rss_mb() <= 3072 else "OVER TARGET"
    print(
        f"first plan: {len(first.operations):,} operations, {len(first.statuses):,} statuses in {first_seconds:.1f} s"
    )
    print(
        f"steady state against a sync state of {len(state):,} objects: 0 operations in {steady_seconds:.1f} s"
    )
    print(f"peak RSS {peak_rss_mb()} MB  [{verdict}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
