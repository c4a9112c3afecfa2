"""`python -m taxdome_qbo repair-duplicates [--apply]`: list, then remove, the extra QuickBooks copies of
TaxDome objects.

Exit codes: 0 nothing duplicated (or every extra copy removed), 1 duplicates found by a dry run or a copy QBO
would not let go, 2 another writer keeps the company.
"""

from __future__ import annotations

import argparse
import sys

from airflow.sdk.exceptions import AirflowException

from taxdome_qbo.core.money import format_cents
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.services import company_lease, qbo_repair
from taxdome_qbo.text_table import text_table

OK, FOUND, BUSY = 0, 1, 2


def add_commands(commands: argparse._SubParsersAction) -> None:
    repair = commands.add_parser(
        "repair-duplicates",
        help="list the TaxDome objects QuickBooks holds more than once; --apply removes the later copies",
        description="Reads the company back, lists every TaxDome object QuickBooks holds more than once (same "
        "taxdome:<kind>:<id> marker) with the copy kept (the sync state's, else the oldest) and the copies "
        "to remove. With --apply, under the company's lease, deletes them (voids an invoice or payment QBO "
        "will not delete; makes a customer inactive) and records every request in qbo_requests.",
    )
    repair.add_argument("--apply", action="store_true", help="remove the later copies (default: a dry run)")
    repair.add_argument(
        "--wait",
        type=float,
        default=company_lease.COMMAND_WAIT_SECONDS,
        metavar="SECONDS",
        help="how long to wait for another writer of the company (default %(default)s)",
    )
    repair.set_defaults(handler=repair_duplicates)


def _amount(cents: int | None) -> str:
    return "" if cents is None else format_cents(cents)


def repair_duplicates(args: argparse.Namespace) -> int:
    hook = QuickBooksHook()
    try:
        session = hook.governed_session("repaired")
        report = qbo_repair.repair_duplicates(
            hook.warehouse_engine, session, apply=args.apply, wait_seconds=args.wait
        )
    except AirflowException as exc:
        print(f"repair-duplicates did not run: {exc}", file=sys.stderr)
        return FOUND
    except (company_lease.CompanyBusy, company_lease.LeaseLost) as exc:
        print(f"repair-duplicates stopped: {exc}", file=sys.stderr)
        return BUSY
    if not report.duplicates:
        print(f"QuickBooks company {report.realm_id} holds every TaxDome object once: nothing to repair")
        return OK
    rows = [
        (
            d.entity,
            f"{d.taxdome_kind}:{d.taxdome_id}",
            f"{d.kept.qbo_id} ({d.kept_because})",
            _amount(d.kept.amount_cents),
            ", ".join(f"{c.qbo_id} ({_amount(c.amount_cents)})" for c in d.extra),
        )
        for d in report.duplicates
    ]
    extra = sum(len(d.extra) for d in report.duplicates)
    print(
        f"QuickBooks company {report.realm_id}: {len(report.duplicates)} TaxDome object(s) held more than once"
    )
    print(text_table(rows, ["entity", "TaxDome object", "kept", "amount", "removed (amount)"]))
    if not report.applied:
        print(
            f"dry run: nothing changed; `python -m taxdome_qbo repair-duplicates --apply` removes {extra} copies"
        )
        return FOUND
    print(f"\nrun {report.run_id} (requests in qbo_requests):")
    print(
        text_table(
            [(r.entity, r.qbo_id, r.marker, r.outcome, r.detail or "") for r in report.removals],
            ["entity", "QuickBooks id", "marker", "outcome", "detail"],
        )
    )
    return FOUND if report.failed else OK
