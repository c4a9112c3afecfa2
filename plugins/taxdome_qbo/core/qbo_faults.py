"""What a QBO answer means for the sync: TaxDome's sync-issue categories and how each fault is handled.

Pure: no I/O. The loader classifies every answer (HTTP status and body) with this module.
"""

from __future__ import annotations

# TaxDome groups sync issues by these categories (R19); each TaxDome object kind and loader kind has one.
CATEGORY_BY_KIND = {
    "account": "accounts",
    "service": "services",
    "invoice": "invoices",
    "payment": "payments",
    "credit_memo": "payments",
    "credit_application": "payments",
    "fee": "expenses",
    "refund": "refunds",
}
CATEGORIES = ("accounts", "services", "invoices", "payments", "refunds", "expenses")


def category_of(kind: str) -> str:
    return CATEGORY_BY_KIND[kind]
