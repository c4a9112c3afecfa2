"""What the planner needs to know about the QuickBooks company: its name lists and whether QBO computes tax.

Fetched by the QBO reader (services) and frozen here, so the planner stays a pure function of its inputs.
Every frame has the columns listed, one row per QBO object, inactive ones included (`active` False).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

CUSTOMER_COLUMNS = ("id", "display_name", "active", "sync_token", "notes")
CUSTOMER_TYPE_COLUMNS = ("id", "name")
ITEM_COLUMNS = ("id", "name", "type", "active", "sync_token", "income_account_id")
ACCOUNT_COLUMNS = ("id", "name", "account_type", "active")
PAYMENT_METHOD_COLUMNS = ("id", "name", "type", "active")
PERSON_COLUMNS = ("id", "display_name", "active", "entity")  # vendors and employees


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="bool" if c == "active" else "str") for c in columns})


@dataclass(frozen=True)
class QboReference:
    realm_id: str
    customers: pd.DataFrame
    customer_types: pd.DataFrame
    items: pd.DataFrame
    accounts: pd.DataFrame
    payment_methods: pd.DataFrame
    automated_sales_tax: bool
    # DisplayNames are one namespace across customers, vendors and employees (a clash is QBO error 6240).
    vendors_and_employees: pd.DataFrame = field(default_factory=lambda: _empty(PERSON_COLUMNS))
