"""UI pages benchmark: every call of services/ui_reports.py timed on a warehouse of about 1,000,000 invoices.

The warehouse is made as the product makes it: a generated export of the benchmark firm with 1 % bad rows of
every kind is staged (its rejected rows fill the quarantine), its data-quality checks run, and the firm is
reconciled against the QBO side a perfect load would leave (bench/reconcile.py prepares it), recorded
(`reconciliation.record`) with its reports written and their location recorded. Each service call is then
timed (the best of three, after one warm-up call). The sync pages (services/ui_pages.py: the Overview, a sync
run, the Sync issues page) are timed at their first view, one call each: after the firm is planned as the
plan task plans it (a dry run), and after a second run is planned and its first 30,000 operations recorded
by the load ledger as a load records QBO's answers (a run being loaded). Target: every page under a second. The CSV stream of
the whole quarantine and a report regenerated from the warehouse are not pages (a download of everything);
they are timed and printed apart.

    .venv/bin/python bench/ui_pages.py                         # 100,000 accounts ≈ 1M invoices
    .venv/bin/python bench/ui_pages.py --accounts 10000 --backends sqlite
"""

from __future__ import annotations

import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

from taxdome_qbo.core.qbo_faults import Fault
from taxdome_qbo.core.reconciliation import reconcile
from taxdome_qbo.core.vocabulary import PlanOptions
from taxdome_qbo.demo.planning import demo_company
from taxdome_qbo.services import planning, quality, reconciliation, reports, ui_pages, ui_reports, warehouse
from taxdome_qbo.services.load_ledger import LoadLedger, Operation
from taxdome_qbo.services.qbo_client import RequestStats
from taxdome_qbo.services.staging import stage_export
from taxdome_qbo.services.ui_reports import QuarantineFilter, ReportFormat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reconcile import prepared_sides  # the reconciliation benchmark's prepared sides
from stage import (  # the staging benchmark's warehouses
    OUT,
    engine_for,
    ensure_export,
    firm_command_line,
    firm_settings_of,
    run_in_own_process,
)

SYNC_RUN, RECON_RUN, REALM = "bench-sync", "bench-recon", "9130000000000000"
LOADING_RUN = "bench-sync-loading"
BAD_ROWS = 0.01
PAGE_TARGET_SECONDS = 1.0
ISSUES_PAGE_SIZE = 50  # the view's page size
# The part of the loading run's plan the load has got through, in QBO batches of 30 writes; one write in 50
# is refused.
LOADED_OPERATIONS, QBO_BATCH, ONE_REFUSED_IN = 30_000, 30, 50
OPERATION_FIELDS = (
    "seq",
    "taxdome_kind",
    "taxdome_id",
    "qbo_entity",
    "action",
    "payload",
    "payload_hash",
    "reason",
)
REFUSAL = Fault("6240", "Duplicate Name Exists Error", "The name supplied already exists.")


def record_reconciliation(engine, export: Path, reports_folder: Path) -> int:
    """Compare the prepared sides (bench/reconcile.py) and record the run and its reports as the
    reconciliation does; the number of exceptions."""
    taxdome, qbo, verdicts, state, settings = prepared_sides(export)
    result = reconcile(taxdome, qbo, verdicts, state, settings)
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


def plan(engine, export: Path, run_id: str, *, dry_run: bool) -> float:
    """The firm planned as the plan task plans it, with the firm's settings (a first sync: everything is
    created); the seconds taken."""
    settings = firm_settings_of(export)
    started = time.perf_counter()
    planning.plan_sync(
        engine,
        demo_company(items=[("40", "Bookkeeping", True)]),
        settings,
        PlanOptions(),
        run_id,
        dry_run=dry_run,
    )
    return time.perf_counter() - started


def load_part(engine, run_id: str) -> tuple[int, float]:
    """The run's first operations answered as a load records them (the load ledger, a QBO batch per
    transaction): most created, some refused; how many, and the seconds the ledger took to record them."""
    realm_id = demo_company().realm_id
    session = SimpleNamespace(realm_id=realm_id, app_url="https://app.qbo.example", stats=RequestStats())
    ledger = LoadLedger(engine, session, run_id, progress=lambda _: None, progress_every_seconds=3600)
    plan_table = warehouse.sync_plan
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(*(plan_table.c[name] for name in OPERATION_FIELDS))
            .where(plan_table.c.run_id == run_id)
            .order_by(plan_table.c.seq)
            .limit(LOADED_OPERATIONS)
        )
        operations = [Operation(*row) for row in rows]
    recording = 0.0
    for start in range(0, len(operations), QBO_BATCH):
        for operation in operations[start : start + QBO_BATCH]:
            if operation.seq % ONE_REFUSED_IN:
                ledger.succeeded(operation, f"q{operation.seq}", "0", "created", f"rq-{operation.seq}")
            else:
                ledger.failed(operation, REFUSAL)
        started = time.perf_counter()
        ledger.record()
        recording += time.perf_counter() - started
    return len(operations), recording


def first_views(engine, run_id: str) -> dict[str, float]:
    """Each sync page as a person first opening it sees it (one call each, nothing kept from an earlier one)."""
    views: dict[str, Callable[[], object]] = {
        "overview": lambda: ui_pages.overview(engine),
        "sync run": lambda: ui_pages.sync_run(engine, run_id),
        "sync issues: all, page 1": lambda: ui_pages.issue_page(
            engine, category=None, status=None, page=1, page_size=ISSUES_PAGE_SIZE
        ),
        "sync issues: failed invoices, page 1": lambda: ui_pages.issue_page(
            engine, category="invoices", status="failed", page=1, page_size=ISSUES_PAGE_SIZE
        ),
    }
    timings = {}
    for name, call in views.items():
        started = time.perf_counter()
        call()
        timings[name] = round(time.perf_counter() - started, 4)
    return timings


def run_one(backend: str, export: Path) -> dict:
    engine = engine_for(backend)
    built = time.perf_counter()
    staged = stage_export(engine, export)
    quality.run_quality_checks(engine, SYNC_RUN, export_mode="full", home_currency="USD")
    reports_folder = OUT / f"ui-pages-reports-{backend}"
    shutil.rmtree(reports_folder, ignore_errors=True)
    exceptions = record_reconciliation(engine, export, reports_folder)
    built = time.perf_counter() - built
    plan_seconds = plan(engine, export, SYNC_RUN, dry_run=True)
    sync_pages = {f"planned run (dry run): {name}": t for name, t in first_views(engine, SYNC_RUN).items()}
    loading_plan_seconds = plan(engine, export, LOADING_RUN, dry_run=False)
    answers, ledger_seconds = load_part(engine, LOADING_RUN)
    sync_pages |= {f"run being loaded: {name}": t for name, t in first_views(engine, LOADING_RUN).items()}

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
        "plan_seconds": [round(plan_seconds, 1), round(loading_plan_seconds, 1)],
        "ledger_answers": answers,
        "ledger_seconds": round(ledger_seconds, 2),
        "sync_pages": sync_pages,
        "pages": timings,
        "downloads": download_timings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> int:
    args = firm_command_line(__doc__, run_one, case="BACKEND", backends=True)
    if args is None:
        return 0
    # The staging benchmark's export has no bad rows; the Quarantine page needs some.
    export, _ = ensure_export(args.accounts, args.seed, bad_rows=BAD_ROWS)
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
        print(
            f"  planned twice in {run['plan_seconds'][0]} s and {run['plan_seconds'][1]} s; the ledger recorded "
            f"{run['ledger_answers']:,} answers of the second run in {run['ledger_seconds']} s"
        )
        for name, seconds in (run["sync_pages"] | run["pages"]).items():
            verdict = "OK" if seconds < PAGE_TARGET_SECONDS else "OVER TARGET"
            print(f"  {name:<58} {seconds * 1000:8.1f} ms  [{verdict}]")
            if seconds >= PAGE_TARGET_SECONDS:
                slow.append(f"{backend}: {name}")
        for name, seconds in run["downloads"].items():
            print(f"  {name:<58} {seconds:8.2f} s   (a download, not a page)")
    if slow:
        print("\npages over a second: " + "; ".join(slow))
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
