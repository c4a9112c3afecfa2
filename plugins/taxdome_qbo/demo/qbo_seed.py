"""Give a QBO emulator company the history a firm already using QuickBooks would have, for a telling demo.

What the demo export expects of the firm's QuickBooks: the items its copied services name, the customers its
manual matches name, a sales tax item; plus customers that already bear the names of a few TaxDome accounts
(one of them inactive) and a vendor bearing another's, so the plan shows links, a reactivation and a name
conflict besides creations. Idempotent.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from quickbooks import QuickBooks
from quickbooks.objects import Account, Customer, Item, Ref, Vendor

from taxdome_qbo.demo.generator import MANIFEST_NAME
from taxdome_qbo.services.qbo_client import ACTIVE_AND_INACTIVE, query_all

ALREADY_CUSTOMERS = 3  # accounts whose name a QBO customer already has; the last of them inactive


def _rows(export_dir: Path, filename: str) -> list[dict[str, str]]:
    with (export_dir / filename).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


class _Direct:
    """`query_all` wants a session; a demo against the emulator needs no token recovery."""

    def __init__(self, qb: QuickBooks):
        self.qb = qb

    def call(self, operation):
        return operation(self.qb)


def seed_company(qb: QuickBooks, export_dir: Path, *, tax_item: str = "Sales Tax") -> dict[str, int]:
    """Create what is missing; returns how many customers and items were created."""
    session = _Direct(qb)
    customers = {c["DisplayName"] for c in query_all(session, "Customer", ACTIVE_AND_INACTIVE)}
    items = {i["Name"] for i in query_all(session, "Item", ACTIVE_AND_INACTIVE)}
    income = Account.filter(Name="Services", qb=qb)[0]

    wanted_items = {
        row["qbo_item_name"] for row in _rows(export_dir, "services.csv") if row.get("qbo_item_name")
    }
    created_items = 0
    for name in sorted((wanted_items | {tax_item}) - items):
        item = Item()
        item.Name, item.Type = name, "Service"
        item.IncomeAccountRef = Ref()
        item.IncomeAccountRef.value = income.Id
        item.save(qb=qb)
        created_items += 1

    accounts = [row for row in _rows(export_dir, "accounts.csv") if row.get("account_name")]
    matched = {row["qbo_customer_name"] for row in accounts if row.get("qbo_customer_name")}
    # Accounts that sync: they have an invoice on or after the export's suggested sync date.
    manifest = json.loads((export_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    since = manifest["firm_settings"]["sync_start_date"]
    active = {
        row["account_id"] for row in _rows(export_dir, "invoices.csv") if row.get("posted_date", "") >= since
    }
    auto_named = [
        row["account_name"]
        for row in accounts
        if row.get("qbo_sync") == "auto" and row["account_id"] in active
    ]
    same_name, vendor_name = auto_named[:ALREADY_CUSTOMERS], auto_named[ALREADY_CUSTOMERS]
    vendors = {v["DisplayName"] for v in query_all(session, "Vendor", ACTIVE_AND_INACTIVE)}
    if vendor_name not in vendors | customers:
        vendor = Vendor()
        vendor.DisplayName = vendor_name  # a supplier that is also a client: QBO names are one namespace
        vendor.save(qb=qb)
    created_customers = 0
    for name in sorted((matched | set(same_name)) - customers):
        customer = Customer()
        customer.DisplayName = name
        customer.save(qb=qb)
        if name == same_name[-1]:
            customer.Active = False
            customer.save(qb=qb)
        created_customers += 1
    return {
        "customers": created_customers,
        "items": created_items,
        "vendors": int(vendor_name not in vendors),
    }
