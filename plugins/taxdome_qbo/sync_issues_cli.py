"""Sync issues on the command line (R19): what the latest run left unsynced, one object's status and QuickBooks
link (R16), and syncing or unsyncing one account or payment by hand."""

from __future__ import annotations

import argparse
import functools
import sys
from datetime import UTC, datetime

from taxdome_qbo.core.planner import FAILED, SYNCED
from taxdome_qbo.core.qbo_faults import CATEGORIES, CATEGORY_BY_KIND, category_of
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.services import sync_issues
from taxdome_qbo.services.sync_issues import CLI
from taxdome_qbo.text_table import text_table

TITLES = {
    "failed": "Failed",
    "not_synced": "Not synced",
    "skipped": "Skipped",
    "do_not_sync": "Do not sync",
    "synced": "Synced",
}
DEFAULT_LIMIT = 20


def add_commands(commands) -> None:
    for kind in sync_issues.OVERRIDABLE_KINDS:
        decide = commands.add_parser(
            kind,
            help=f"sync or unsync one {kind} by hand, whatever the export says",
            description=f"Decide by hand whether one {kind} syncs to QuickBooks; the decision wins over the "
            f"export until cleared, and says what the next sync will do. An id not in the staged export is "
            f"accepted with a warning (the decision applies once an export has it).",
        )
        decide.add_argument(
            "decision",
            choices=("sync", "unsync", "clear"),
            help="sync: sync it; unsync: do not sync it (what is in QuickBooks of it is deleted where TaxDome "
            "would); clear: follow the export again",
        )
        decide.add_argument("taxdome_id", metavar=f"{kind.upper()}_ID")
        decide.set_defaults(handler=functools.partial(decide_by_hand, kind))
    issues = commands.add_parser(
        "issues",
        help="what the latest sync run left failed, not synced or skipped, by category",
        description="The latest planned run's objects by TaxDome category (accounts, services, invoices, "
        "payments, refunds, expenses): counts per category and status, then the failed, not synced and "
        "skipped ones with their reasons, and what to do about the failed ones.",
        epilog="Exit status: 1 when the listing has failed objects, so a script or a monitor can alert on "
        "it; 0 otherwise (also when nothing has been planned yet).",
    )
    issues.add_argument("--category", choices=CATEGORIES, help="only this category")
    issues.add_argument(
        "--all-statuses", action="store_true", help="also list the do-not-sync and synced objects"
    )
    issues.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"objects listed per category and status (default {DEFAULT_LIMIT}); all are counted",
    )
    issues.set_defaults(handler=list_issues)
    status = commands.add_parser(
        "status",
        help="one object's latest sync status, reason and QuickBooks link",
        epilog="Exit status: 1 when no run has planned the object and it has no decision by hand.",
    )
    status.add_argument("kind", choices=tuple(CATEGORY_BY_KIND), help="the TaxDome kind")
    status.add_argument("taxdome_id", metavar="ID")
    status.set_defaults(handler=show_status)


def decide_by_hand(kind: str, args: argparse.Namespace) -> int:
    engine = WarehouseHook().get_engine()
    subject = f"{kind} {args.taxdome_id}"
    if args.decision == "clear":
        removed = sync_issues.clear_override(engine, kind, args.taxdome_id)
        head = (
            f"{subject}: no decision by hand to clear"
            if removed is None
            else f"{subject}: cleared the decision to {removed.action} it (set {_when(removed.set_at)})"
        )
    else:
        before, now = sync_issues.set_override(engine, kind, args.taxdome_id, sync=args.decision == "sync")
        if before == now:
            head = (
                f"{subject}: already set to {now.action} by hand (since {_when(now.set_at)}); nothing changed"
            )
        else:
            head = f"{subject}: set to {now.action} by hand" + (f" (was {before.action})" if before else "")
    _say(head, *sync_issues.next_sync_effect(engine, kind, args.taxdome_id))
    return 0


def list_issues(args: argparse.Namespace) -> int:
    categories = (args.category,) if args.category else CATEGORIES
    statuses = sync_issues.ALL_STATUSES if args.all_statuses else sync_issues.ISSUE_STATUSES
    report = sync_issues.latest_issues(
        WarehouseHook().get_engine(), categories=categories, statuses=statuses, limit=args.limit
    )
    if report is None:
        _say("no sync has been planned yet (is QuickBooks connected?)")
        return 0
    run = report.run
    mode = "dry run: the plan's verdicts, nothing was written to QuickBooks" if run.dry_run else "sync run"
    lines = [
        f"Sync issues of run {run.run_id} for company {run.realm_id}, planned {_when(run.planned_at)} ({mode})",
        "",
        "objects per category and status:",
        text_table(
            [(c, *(report.counts[c].get(s, 0) for s in sync_issues.ALL_STATUSES)) for c in categories],
            ["category", *(TITLES[s].lower() for s in sync_issues.ALL_STATUSES)],
        ),
    ]
    for status in statuses:
        total = report.total(status)
        lines += ["", f"{TITLES[status]}: {total}" + ("" if total else " (none)")]
        for category, objects in report.objects[status].items():
            counted = report.counts[category][status]
            shown = f", first {len(objects)} (--limit)" if len(objects) < counted else ""
            lines.append(f"  {category}: {counted}{shown}")
            lines += _indent(_listing(status, objects), 4)
    if report.total(FAILED):
        lines += [
            "",
            "Every sync run retries its failed objects, so a fixed cause clears at the next one; "
            f"`{CLI} status KIND ID` shows one object.",
        ]
    _say(*lines)
    return 1 if report.total(FAILED) else 0


def _listing(status: str, objects: list) -> list[str]:
    if status == FAILED:
        lines = []
        for row in objects:
            lines += [
                f"{row.taxdome_kind} {row.taxdome_id}: {row.reason}",
                f"  what to do: {sync_issues.what_to_do(row.taxdome_kind, row.taxdome_id, row.parent_id)}",
            ]
        return lines
    if status == SYNCED:
        rows = [(r.taxdome_kind, r.taxdome_id, _in_quickbooks(r), r.qbo_link, r.reason) for r in objects]
        return text_table(rows, ["kind", "id", "QuickBooks", "link", "reason"]).splitlines()
    rows = [(r.taxdome_kind, r.taxdome_id, r.reason) for r in objects]
    return text_table(rows, ["kind", "id", "reason"]).splitlines()


def show_status(args: argparse.Namespace) -> int:
    found = sync_issues.object_status(WarehouseHook().get_engine(), args.kind, args.taxdome_id)
    lines = [f"{args.kind} {args.taxdome_id} (category {category_of(args.kind)})"]
    latest = found.latest
    if latest is None:
        lines.append("  status:     no run has planned it (is it in the staged export?)")
    else:
        mode = ", dry run" if latest.dry_run else ""
        lines += [
            f"  status:     {TITLES.get(latest.status, latest.status)}",
            f"  reason:     {latest.reason}",
            f"  run:        {latest.run_id} (company {latest.realm_id}, planned {_when(latest.planned_at)}{mode})",
        ]
        if latest.qbo_id is not None:
            link = latest.qbo_link or "not recorded yet (the load records it)"
            lines += [f"  QuickBooks: {_in_quickbooks(latest)}", f"  link:       {link}"]
        if latest.status == FAILED:
            advice = sync_issues.what_to_do(args.kind, args.taxdome_id, latest.parent_id)
            lines.append(f"  what to do: {advice}")
    if found.override is not None:
        lines.append(
            f"  by hand:    {found.override.action} (since {_when(found.override.set_at)}); "
            f"`{CLI} {args.kind} clear {args.taxdome_id}` follows the export again"
        )
    _say(*lines)
    return 0 if latest is not None or found.override is not None else 1


def _in_quickbooks(row) -> str:
    return "" if row.qbo_id is None else f"{row.qbo_entity or ''} {row.qbo_id}".strip()


def _when(value: datetime | str) -> str:
    """A recorded UTC time to the minute; SQLite hands back text without the zone, PostgreSQL a datetime."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return f"{str(value)[:16]} UTC"


def _indent(lines: list[str], spaces: int) -> list[str]:
    return [" " * spaces + line for line in lines]


def _say(*lines: str) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
