"""`python -m taxdome_qbo ...`: the operator's command line (run with the project's Airflow environment)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from taxdome_qbo import connection_cli, dag_tasks, repair_cli, sync_issues_cli
from taxdome_qbo.core.export_contract import EXPORT_FILES
from taxdome_qbo.core.qbo_faults import CATEGORIES
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.services import company_lease, loading, pipeline, planning, reconciliation, sql, warehouse
from taxdome_qbo.text_table import text_table as _table


def _deletion_proof(batch) -> str:
    """Whether a staged export may say that a row it lacks was deleted in TaxDome (empty when not staged)."""
    if batch.deletion_proof is None:
        return ""
    return "yes" if batch.deletion_proof else f"no: {batch.deletion_proof_reason}"


def staging_summary(args: argparse.Namespace) -> int:
    """Print where the warehouse is, the recent loads, and the per-file counts of the latest good load."""
    hook = WarehouseHook()
    engine = hook.get_engine()
    warehouse.create_schema(engine)
    print(f"warehouse: {warehouse.describe(engine)}")
    with engine.connect() as conn:
        batches = sql.fetch_all(conn, "staging/select_recent_batches", batch_limit=args.batches)
        if not batches:
            print("no export has been staged yet")
            return 0
        print("\nrecent loads (newest first):")
        print(
            _table(
                [
                    (
                        b.export_name,
                        b.status,
                        b.started_at,
                        b.rows_read,
                        b.rows_staged,
                        b.rows_rejected,
                        _deletion_proof(b),
                        b.error,
                    )
                    for b in batches
                ],
                ["export", "status", "started", "read", "staged", "rejected", "proves deletions", "error"],
            )
        )
        latest = next((b for b in batches if b.status == "succeeded"), None)
        if latest is None:
            return 1
        in_contract_order = {f.filename: i for i, f in enumerate(EXPORT_FILES)}
        counts = sorted(
            sql.fetch_all(conn, "staging/select_batch_file_counts", batch_id=latest.batch_id),
            key=lambda row: in_contract_order.get(row.source_file, len(in_contract_order)),
        )
        print(f"\nlatest load of {latest.export_location} (batch {latest.batch_id}), per file:")
        print(
            _table(
                [tuple(r) for r in counts],
                ["file", "read", "staged", "quarantined", "inserted", "updated", "unchanged"],
            )
        )
        fingerprint = (
            conn.execute(
                warehouse.export_batches.select().where(
                    warehouse.export_batches.c.batch_id == latest.batch_id
                )
            )
            .one()
            .export_fingerprint
        )
        reasons = sql.fetch_all(
            conn,
            "staging/select_rejection_reasons",
            export_fingerprint=fingerprint,
            reason_limit=args.reasons,
        )
        if reasons:
            print("\nquarantined rows, most frequent reasons (all in stg_taxdome__rejected):")
            print(
                _table(
                    [(r.source_file, r.first_line, r.row_count, r.reason) for r in reasons],
                    ["file", "first line", "rows", "reason"],
                )
            )
    return 0


def plan_summary(args: argparse.Namespace) -> int:
    """Print the preview of the most recent plan and where its files are."""
    engine = WarehouseHook().get_engine()
    run = planning.latest_plan_run(engine)
    if run is None:
        print("no sync has been planned yet (is QuickBooks connected?)")
        return 0
    mode = "dry run: nothing will be written to QuickBooks" if run.dry_run else "plan"
    title = f"Sync plan of run {run.run_id} for company {run.realm_id} ({mode})"
    print(planning.preview_markdown(engine, run.run_id, title=title, examples=args.examples))
    if run.preview_location:
        print(f"preview: {run.preview_location}")
    print(
        "every operation: `python -m taxdome_qbo plan-operations` writes them "
        f"(`--run-id {shlex.quote(run.run_id)}` for this run's)"
    )
    return 0


def plan_operations(args: argparse.Namespace) -> int:
    """Write every operation of a run's plan (the most recent plan by default) to `plan_operations.csv.gz`:
    in the run's report folder beside its preview, or in `--folder`."""
    engine = WarehouseHook().get_engine()
    warehouse.create_schema(engine)
    run = planning.latest_plan_run(engine) if args.run_id is None else loading.plan_run(engine, args.run_id)
    if run is None:
        print(
            "no sync has been planned yet (is QuickBooks connected?)"
            if args.run_id is None
            else f"run {args.run_id} has no plan in the warehouse"
        )
        return 1
    if args.folder is not None:
        folder = dag_tasks.folder_at(args.folder)
    elif run.preview_location:
        folder = dag_tasks.folder_at(run.preview_location).parent
    else:
        folder = pipeline.run_folder(dag_tasks.reports_root(), run.run_id)
    location = pipeline.write_plan_operations(engine, run.run_id, folder)
    print(
        f"{run.operations:,} operations of run {run.run_id}: {location} "
        f"(gzip; `gunzip -k {pipeline.PLAN_OPERATIONS}` gives the CSV a spreadsheet opens)"
    )
    return 0


def load_summary(args: argparse.Namespace) -> int:
    """Print what the most recent load did: outcomes per kind, and its write requests by HTTP status."""
    summary = loading.latest_load(WarehouseHook().get_engine())
    if summary is None:
        print("nothing has been loaded into QuickBooks yet")
        return 0
    receipt = summary.receipt
    print(
        f"QuickBooks load of run {summary.run_id} into company {summary.realm_id} at {summary.loaded_at}: "
        f"{receipt['requests']} requests, {receipt['throttled']} throttled (429) and waited out, "
        f"{receipt['retries']} retried, {receipt['token_refreshes']} token refreshes, {receipt['seconds']} s"
    )
    outcomes = sorted({outcome for by_kind in receipt["outcomes"].values() for outcome in by_kind})
    rows = [
        (kind, *(by_kind.get(outcome, 0) for outcome in outcomes))
        for kind, by_kind in receipt["outcomes"].items()
    ]
    print(_table(rows, ["kind", *outcomes]) if rows else "nothing to write: QuickBooks was already in step")
    if summary.requests:
        print("\nwrite requests (a row per batch item and attempt; in qbo_requests):")
        print(
            _table(
                [
                    (r.entity, r.operation, "no answer" if r.http_status is None else r.http_status, r.items)
                    for r in summary.requests
                ],
                ["entity", "operation", "HTTP status", "items"],
            )
        )
    return 0


def reconciliation_summary(args: argparse.Namespace) -> int:
    """Print the latest reconciliation's verdict, its differences by class and where its report is."""
    engine = WarehouseHook().get_engine()
    latest = reconciliation.latest_run(engine)
    if latest is None:
        print("no reconciliation has run yet")
        return 0
    run, by_class = latest.run, latest.differences_by_class
    period = f"{run.period_from or 'the start'} to {run.period_to or 'today'}"
    if run.verdict == "clean":
        print(
            f"Reconciliation {run.recon_run_id} ({period}): clean, TaxDome and QuickBooks agree to the cent"
        )
    else:
        print(f"Reconciliation {run.recon_run_id} ({period}): {run.unexplained} unexplained difference(s)")
    if by_class:
        print(
            _table(
                [(r.difference_class, "yes" if r.explained else "no", r.differences) for r in by_class],
                ["class", "explained", "differences"],
            )
        )
    if latest.first_unexplained:
        print(f"unexplained (first {reconciliation.UNEXPLAINED_LISTED}):")
        print(
            _table(
                [
                    (r.difference_class, r.object_kind, r.taxdome_id or "", r.measure or "", r.detail)
                    for r in latest.first_unexplained
                ],
                ["class", "kind", "TaxDome id", "measure", "what differs"],
            )
        )
    if latest.quality is not None:
        quality = latest.quality
        print(
            f"data quality of sync run {run.sync_run_id}: {quality.checks} checks, {quality.failed} failed "
            f"({quality.critical_failed} critical); every result in dq_results and in the report"
        )
    print(f"report: {run.report_location}")
    return 0 if run.verdict == "clean" else 1


def _selection(args: argparse.Namespace) -> loading.Selection | None:
    if args.all:
        return None
    objects = set()
    for text in args.object:
        kind, _, taxdome_id = text.partition(":")
        objects.add((kind, taxdome_id))
    return loading.Selection(frozenset(objects), frozenset(args.category))


def retry(args: argparse.Namespace) -> int:
    """Plan again from the staged exports and load the chosen objects now."""
    if not (args.all or args.object or args.category):
        print("say what to retry: --object KIND:ID, --category CATEGORY or --all", file=sys.stderr)
        return 2
    try:
        planned, loaded = dag_tasks.retry_now(
            _selection(args), export_mode=args.export_mode, wait_seconds=args.wait
        )
    except dag_tasks.RETRY_NOT_RUN as exc:
        print(f"retry did not run: {exc}", file=sys.stderr)
        return 1
    except company_lease.LeaseLost as exc:
        print(f"retry stopped: {exc}", file=sys.stderr)
        return 1
    print(f"planned {planned['operations']} operation(s) in run {planned['run_id']}")
    for kind, outcomes in loaded.by_kind().items():
        print(f"  {kind}: {', '.join(f'{outcome} {n}' for outcome, n in outcomes.items())}")
    # Objects the plan refuses have no operation to load; both kinds of failure count.
    failed = planned["statuses"].get("failed", 0) + loaded.failed
    if failed:
        print(f"{failed} object(s) failed: `python -m taxdome_qbo issues` says why and what to do")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taxdome_qbo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser(
        "staging-summary", help="what the latest export loads staged and quarantined"
    )
    summary.add_argument("--batches", type=int, default=5, help="how many recent loads to list")
    summary.add_argument("--reasons", type=int, default=15, help="how many rejection reasons to list")
    summary.set_defaults(handler=staging_summary)
    plan = commands.add_parser("plan-summary", help="the preview of the most recent sync plan")
    plan.add_argument("--examples", type=int, default=2, help="examples per kind and action")
    plan.set_defaults(handler=plan_summary)
    operations = commands.add_parser(
        "plan-operations", help="write every operation of a plan to plan_operations.csv.gz"
    )
    operations.add_argument("--run-id", help="the run whose plan (default: the most recent plan)")
    operations.add_argument(
        "--folder", help="where to write the file (default: the run's report folder, beside its preview)"
    )
    operations.set_defaults(handler=plan_operations)
    loaded = commands.add_parser("load-summary", help="what the most recent QuickBooks load did")
    loaded.set_defaults(handler=load_summary)
    reconciled = commands.add_parser(
        "reconciliation-summary",
        help="the latest reconciliation's verdict and report (exit 1 while differences are unexplained)",
    )
    reconciled.set_defaults(handler=reconciliation_summary)
    again = commands.add_parser(
        "retry",
        help="plan again and load failed or skipped objects now (one object, a category, or all)",
        description="Plans again from what is staged (firm settings from the taxdome_qbo_settings Variable) and "
        "loads only what is chosen; the rest waits for the next sync. Exit 1 if something fails again.",
    )
    again.add_argument(
        "--object", action="append", default=[], metavar="KIND:ID", help="e.g. account:A1, fee:P7"
    )
    again.add_argument("--category", action="append", default=[], choices=CATEGORIES)
    again.add_argument("--all", action="store_true", help="load everything the new plan holds")
    again.add_argument(
        "--export-mode",
        choices=["incremental", "full"],
        default="incremental",
        help="full also deletes what the latest export lacks (default incremental: never by absence)",
    )
    again.add_argument(
        "--wait",
        type=float,
        default=company_lease.COMMAND_WAIT_SECONDS,
        metavar="SECONDS",
        help="how long to wait while another writer (a sync run, another retry) holds the company "
        "(default %(default)s; then it refuses, naming the writer)",
    )
    again.set_defaults(handler=retry)
    connection_cli.add_commands(commands)
    sync_issues_cli.add_commands(commands)
    repair_cli.add_commands(commands)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
