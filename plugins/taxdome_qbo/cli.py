"""`python -m taxdome_qbo ...`: the operator's command line (run with the project's Airflow environment)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from taxdome_qbo import connection_cli, sync_issues_cli
from taxdome_qbo.core.export_contract import EXPORT_FILES
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.services import planning, sql, warehouse


def _table(rows: Sequence[Sequence], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers], *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    lines = [
        "  ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in zip(r, widths, numeric, strict=True))
        for r in cells
    ]
    lines = [line.rstrip() for line in lines]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def staging_summary(args: argparse.Namespace) -> int:
    """Print where the warehouse is, the recent loads, and the per-file counts of the latest good load."""
    hook = WarehouseHook()
    engine = hook.get_engine()
    warehouse.create_schema(engine)
    print(f"warehouse: {hook.describe()}")
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
                        b.error,
                    )
                    for b in batches
                ],
                ["export", "status", "started", "read", "staged", "rejected", "error"],
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
        print(f"preview: {run.preview_location} (every operation: plan_operations.csv beside it)")
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
    connection_cli.add_commands(commands)
    sync_issues_cli.add_commands(commands)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
