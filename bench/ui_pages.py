"""UI pages benchmark: every call of services/ui_reports.py timed on a warehouse of about 1,000,000 invoices.

The warehouse is made as the product makes it: a generated export of the benchmark firm with 1 % bad rows of
every kind is staged (its rejected rows fill the quarantine), its data-quality checks run, and the firm is
reconciled against the QBO side a perfect load would leave (bench/reconcile.py prepares it), recorded
(`reconciliation.record`) with its reports written and their location recorded. Each service call is then
timed (the best of three, after one warm-up call). Target: every page under a second. The CSV stream of
the whole quarantine and a report regenerated from the warehouse are not pages (a download of everything);
they are timed and printed apart.

    .venv/bin/python bench/ui_pages.py                         # 100,000 accounts ≈ 1M invoices
    .venv/bin/python bench/ui_pages.py --accounts 10000 --backends sqlite
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from taxdome_qbo.core.reconciliation import QboSide, ReconciliationSettings, TaxDomeSide, reconcile
from taxdome_qbo.demo import generate_export
from taxdome_qbo.services import quality, reconciliation, reports, ui_reports
from taxdome_qbo.services.staging import stage_export
from taxdome_qbo.services.ui_reports import QuarantineFilter, ReportFormat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reconcile import DEPOSIT_ACCOUNT, FEE_ACCOUNT, TAX_ITEM  # the reconciliation benchmark's QBO side
from stage import OUT, engine_for, firm_arguments, run_in_own_process  # the staging benchmark's warehouses

SYNC_RUN, RECON_RUN, REALM = "bench-sync", "bench-recon", "9130000000000000"
BAD_ROWS = 0.01
PAGE_TARGET_SECONDS = 1.0


def ensure_export(accounts: int, seed: int) -> Path:
    """The benchmark firm with bad rows (the staging benchmark's export has none), generated once."""
    export = OUT / f"export-{accounts}-accounts-seed-{seed}-bad-rows"
    if not (export / "_generator_manifest.json").exists():
        partial = export.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        generate_export(partial, accounts=accounts, seed=seed, bad_rows=BAD_ROWS)
        partial.rename(export)
    return export


def record_reconciliation(engine, export: Path, reports_folder: Path) -> int:
    """Compare the prepared sides (bench/reconcile.py) and record the run and its reports as the
    reconciliation does; the number of exceptions."""
    folder = OUT / f"{export.name}-reconcile"

    def read(name: str) -> pd.DataFrame:
        return pd.read_parquet(folder / f"{name}.parquet")

    settings = ReconciliationSettings(
        period_from=dt.date.fromisoformat(json.loads((folder / "settings.json").read_text())["period_from"]),
        tax_item_id=TAX_ITEM,
        fee_expense_account_id=FEE_ACCOUNT,
        deposit_account_id=DEPOSIT_ACCOUNT,
        app_url="http://127.0.0.1:8765/app",
    )
    result = reconcile(
        TaxDomeSide(**{name: read(name) for name in TaxDomeSide.__dataclass_fields__}),
        QboSide(**{name: read(f"qbo_{name}") for name in QboSide.__dataclass_fields__}),
        read("verdicts"),
        read("state"),
        settings,
    )
    reconciliation.record(engine, RECON_RUN, REALM, SYNC_RUN, result, settings)
    written = reports.write_reports(engine, RECON_RUN, reports_folder, dq_run_id=SYNC_RUN)
    reconciliation.record_report_location(engine, RECON_RUN, written["html"])
    return len(result.exceptions)


def best_of_three(call: Callable[[], object]) -> float:
    call()
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return min(timings)


def run_one(backend: str, export: Path) -> dict:
    engine = engine_for(backend)
    built = time.perf_counter()
    staged = stage_export(engine, export)
    quality.run_quality_checks(engine, SYNC_RUN, export_mode="full", home_currency="USD")
    reports_folder = OUT / f"ui-pages-reports-{backend}"
    shutil.rmtree(reports_folder, ignore_errors=True)
    exceptions = record_reconciliation(engine, export, reports_folder)
    built = time.perf_counter() - built

    rejected = ui_reports.rejected_rows(engine, page_size=1).total
    exception_pages = ui_reports.reconciliation_exceptions(engine, RECON_RUN, page_size=100).pages
    [busiest] = ui_reports.exception_classes(engine, RECON_RUN)[:1]
    [reason] = ui_reports.quarantine_reasons(engine)[:1]
    failing = next((c for c in ui_reports.quality_checks(engine, SYNC_RUN) if c.unexpected_ids), None)
    pages: dict[str, Callable[[], object]] = {
        "quarantine: first page of 100": lambda: ui_reports.rejected_rows(engine),
        "quarantine: last page of 100": lambda: ui_reports.rejected_rows(engine, page=-(-rejected // 100)),
        "quarantine: one batch, page 1": lambda: ui_reports.rejected_rows(
            engine, QuarantineFilter(batch_id=staged.batch_id)
        ),
        "quarantine: one file, page 1": lambda: ui_reports.rejected_rows(
            engine, QuarantineFilter(source_file=reason.source_file)
        ),
        "quarantine: reason contains, page 1": lambda: ui_reports.rejected_rows(
            engine, QuarantineFilter(reason_contains=reason.reason[:12])
        ),
        "quarantine: batches (filter)": lambda: ui_reports.quarantine_batches(engine),
        "quarantine: files and reasons (filter)": lambda: ui_reports.quarantine_reasons(engine),
        "reconciliation: runs, page 1": lambda: ui_reports.reconciliation_runs(engine),
        "reconciliation: one run": lambda: ui_reports.reconciliation_run(engine, RECON_RUN),
        "reconciliation: classes (filter)": lambda: ui_reports.exception_classes(engine, RECON_RUN),
        "reconciliation: exceptions, page 1 of 100": lambda: ui_reports.reconciliation_exceptions(
            engine, RECON_RUN
        ),
        "reconciliation: exceptions, last page of 100": lambda: ui_reports.reconciliation_exceptions(
            engine, RECON_RUN, page=exception_pages
        ),
        "reconciliation: one class, unexplained, page 1": lambda: ui_reports.reconciliation_exceptions(
            engine, RECON_RUN, difference_class=busiest.difference_class, explained=False
        ),
        "reconciliation: stored HTML": lambda: ui_reports.report_document(
            engine, RECON_RUN, ReportFormat.HTML, Path
        ),
        "reconciliation: stored XLSX": lambda: ui_reports.report_document(
            engine, RECON_RUN, ReportFormat.XLSX, Path
        ),
        "data quality: runs, page 1": lambda: ui_reports.quality_runs(engine),
        "data quality: one run's checks": lambda: ui_reports.quality_checks(engine, SYNC_RUN),
    }
    if failing is not None:
        pages["data quality: failing ids of a check"] = lambda: ui_reports.failing_ids(
            engine, SYNC_RUN, failing.check_name
        )
    downloads: dict[str, Callable[[], object]] = {
        f"quarantine CSV, all {rejected:,} rows": lambda: sum(map(len, ui_reports.rejected_rows_csv(engine))),
    }
    timings = {name: round(best_of_three(call), 4) for name, call in pages.items()}
    shutil.rmtree(reports_folder)  # the stored files are gone: the exceptions CSV is made from the warehouse
    downloads["exceptions CSV regenerated from the warehouse"] = lambda: ui_reports.report_document(
        engine, RECON_RUN, ReportFormat.EXCEPTIONS_CSV, Path
    )
    download_timings = {}
    for name, call in downloads.items():
        started = time.perf_counter()
        call()
        download_timings[name] = round(time.perf_counter() - started, 2)
    return {
        "backend": backend,
        "built_seconds": round(built, 1),
        "invoices": next(f.rows_staged for f in staged.files if f.source_file == "invoices.csv"),
        "rejected": rejected,
        "exceptions": exceptions,
        "pages": timings,
        "downloads": download_timings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> int:
    args = firm_arguments(__doc__, run_one=("BACKEND", "EXPORT"), backends=True).parse_args()
    if args.run_one:
        print(json.dumps(run_one(args.run_one[0], Path(args.run_one[1]))))
        return 0
    OUT.mkdir(exist_ok=True)
    export = ensure_export(args.accounts, args.seed)
    # The QBO side a perfect load leaves, as parquet, shared by both databases (in a process of its own).
    run_in_own_process(str(Path(__file__).resolve().parent / "reconcile.py"), "prepare", export)
    slow = []
    for backend in args.backends:
        run = run_in_own_process(__file__, backend, export)
        print(
            f"\n{backend}: {run['invoices']:,} invoices staged, {run['rejected']:,} rows quarantined, "
            f"{run['exceptions']:,} reconciliation exceptions (warehouse built in {run['built_seconds']} s, "
            f"peak RSS {run['peak_rss_mb']} MB)"
        )
        for name, seconds in run["pages"].items():
            verdict = "OK" if seconds < PAGE_TARGET_SECONDS else "OVER TARGET"
            print(f"  {name:<50} {seconds * 1000:8.1f} ms  [{verdict}]")
            if seconds >= PAGE_TARGET_SECONDS:
                slow.append(f"{backend}: {name}")
        for name, seconds in run["downloads"].items():
            print(f"  {name:<50} {seconds:8.2f} s   (a download, not a page)")
    if slow:
        print("\npages over a second: " + "; ".join(slow))
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
