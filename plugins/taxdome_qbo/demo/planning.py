"""A QuickBooks company and sync state to plan against without QuickBooks (tests, benchmarks, dry demos)."""

from __future__ import annotations

import orjson
import pandas as pd

from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.core.vocabulary import STATE_COLUMNS, Plan, StagedFirm


def demo_company(
    *,
    customers: list[tuple[str, str, bool]] = (),
    items: list[tuple[str, str, bool]] = (),
    customer_types: tuple[str, ...] = ("Individual",),
    automated_sales_tax: bool = False,
) -> QboReference:
    """The emulator's seeded chart of accounts and items, plus the given (id, name, active) customers/items."""
    accounts = [
        ("35", "Undeposited Funds", "Other Current Asset"),
        ("36", "Checking", "Bank"),
        ("37", "Stripe Clearing", "Bank"),
        ("1", "Services", "Income"),
        ("2", "Sales", "Income"),
        ("60", "Commissions & fees", "Expense"),
    ]
    return QboReference(
        realm_id="9130",
        customers=pd.DataFrame(
            [(i, n, a, "0", None) for i, n, a in customers],
            columns=["id", "display_name", "active", "sync_token", "notes"],
        ).astype({"active": bool}),
        customer_types=pd.DataFrame(
            [(str(100 + k), n) for k, n in enumerate(customer_types)], columns=["id", "name"]
        ),
        items=pd.DataFrame(
            [("1", "Services", "Service", True, "0", "1"), ("2", "Sales Tax", "Service", True, "0", "2")]
            + [(i, n, "Service", a, "0", "1") for i, n, a in items],
            columns=["id", "name", "type", "active", "sync_token", "income_account_id"],
        ),
        accounts=pd.DataFrame(
            [(i, n, t, True) for i, n, t in accounts], columns=["id", "name", "account_type", "active"]
        ),
        payment_methods=pd.DataFrame(
            [("1", "Cash", "NON_CREDIT_CARD", True)], columns=["id", "name", "type", "active"]
        ),
        automated_sales_tax=automated_sales_tax,
    )


# QuickBooks hands out one sequence of ids per company: the seeded customers' ids stay clear of those
# state_after_success hands out (from 1000, one per operation), whatever the firm's size.
SEEDED_CUSTOMER_IDS = 1_000_000_000


def company_seeded_for(staged: StagedFirm) -> QboReference:
    """The demo company as `make demo` seeds it for an export (demo/qbo_seed.py), to plan against without
    QuickBooks: the generator's service item, the items services copy (R8), and the customers accounts are
    matched to by hand (R4), which would otherwise fail for want of them."""

    def named(frame: pd.DataFrame, column: str) -> list[str]:
        names = frame[column].dropna()
        return sorted(set(names[names != ""]))

    items = named(staged.services, "qbo_item_name")
    return demo_company(
        customers=[
            (str(SEEDED_CUSTOMER_IDS + n), name, True)
            for n, name in enumerate(named(staged.accounts, "qbo_customer_name"))
        ],
        items=[("40", "Bookkeeping", True), *((str(700 + n), name, True) for n, name in enumerate(items))],
    )


def state_after_success(plan: Plan, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """The sync state a successful load of `plan` leaves: every operation done, QBO ids handed out (a link
    records the id of the object it links to, as the loader does)."""
    rows = (
        {}
        if previous is None
        else {(r.taxdome_kind, r.taxdome_id): r._asdict() for r in previous.itertuples(index=False)}
    )
    for number, op in enumerate(plan.operations.itertuples(index=False), start=1000):
        key = (op.taxdome_kind, op.taxdome_id)
        if op.action == "delete":
            rows.pop(key, None)
            continue
        known = rows.get(key)
        if op.action == "link":
            qbo_id = orjson.loads(op.payload)["Id"]
        else:
            qbo_id = known["qbo_id"] if known else str(number)
        rows[key] = {
            "taxdome_kind": op.taxdome_kind,
            "taxdome_id": op.taxdome_id,
            "qbo_entity": op.qbo_entity,
            "qbo_id": qbo_id,
            "sync_token": str(int(known["sync_token"]) + 1) if known else "0",
            "payload_hash": op.payload_hash,
            "status": "synced",
        }
    return pd.DataFrame(list(rows.values()), columns=list(STATE_COLUMNS))
