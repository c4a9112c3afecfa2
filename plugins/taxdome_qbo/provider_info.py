"""What the distribution tells Airflow as a provider (entry point `apache_airflow_provider` in pyproject.toml):
its two connection types and the fields of their forms in the UI.

Airflow reads this without importing the hooks (Airflow 3.3 declares connection forms as data, `conn-fields`
and `ui-field-behaviour`, as the providers' provider.yaml does), so it imports nothing. The extras' names are
those the hooks read: `QuickBooksHook`, `rate_limits` in dag_tasks.py, `WarehouseHook`.
"""

from __future__ import annotations

from typing import Any

QUICKBOOKS_CONNECTION_TYPE = "quickbooks"
WAREHOUSE_CONNECTION_TYPE = "taxdome_qbo_warehouse"


def _text(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}


def _number(label: str, description: str, kind: str = "number") -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], "minimum": 0}}


_QUICKBOOKS = {
    "connection-type": QUICKBOOKS_CONNECTION_TYPE,
    "hook-class-name": "taxdome_qbo.hooks.quickbooks.QuickBooksHook",
    "hook-name": "QuickBooks Online",
    "ui-field-behaviour": {
        "hidden-fields": ["host", "port", "schema"],
        "relabeling": {"login": "Client ID", "password": "Client secret"},
        "placeholders": {
            "login": "the Intuit app's client id (developer.intuit.com, Keys & credentials)",
            "password": "the Intuit app's client secret",
        },
    },
    "conn-fields": {
        "environment": _text(
            "Environment",
            "sandbox or production (Intuit), or the base URL of a QBO emulator such as http://127.0.0.1:8765.",
        ),
        "realm_id": _text(
            "Company (realm) id",
            "The QuickBooks company to write to until `python -m taxdome_qbo connect` makes one current "
            "in the warehouse.",
        ),
        "refresh_token": _text(
            "First refresh token",
            "Only seeds the token of the realm id above: the warehouse keeps the rotated tokens, and the "
            "newest stored one wins.",
            format="password",
        ),
        "redirect_uri": _text(
            "Redirect URI",
            "The app's redirect URI, used only by the connect command's authorization flow "
            "(default: Intuit's OAuth 2 playground).",
        ),
        "token_encryption_key": _text(
            "Token encryption keys",
            "Fernet keys (comma-separated) that encrypt the stored tokens; the first encrypts, all decrypt. "
            "Default: Airflow's [core] fernet_key, else taxdome_qbo.key in the Airflow home.",
            format="password",
        ),
        "rate_window_seconds": _number(
            "Rate window (seconds)",
            "How long QuickBooks' rate-limit minute lasts: 60 for Intuit, less for a time-scaled emulator.",
        ),
        "throttle_wait_seconds": _number(
            "Wait after a 429 (seconds)",
            "How long the loader pauses after a 429 that names no Retry-After (Intuit's advice: 60).",
        ),
        "requests_per_minute": _number(
            "Requests per window", "Intuit's 500 per company unless set.", kind="integer"
        ),
        "batch_requests_per_minute": _number(
            "Batch requests per window", "Intuit's 40 per company unless set.", kind="integer"
        ),
        "max_concurrent_requests": _number(
            "Concurrent requests", "Intuit's 10 per company unless set.", kind="integer"
        ),
    },
}

_WAREHOUSE = {
    "connection-type": WAREHOUSE_CONNECTION_TYPE,
    "hook-class-name": "taxdome_qbo.hooks.warehouse.WarehouseHook",
    "hook-name": "TaxDome staging warehouse (PostgreSQL)",
    "ui-field-behaviour": {
        "hidden-fields": [],
        "relabeling": {"schema": "Database"},
        "placeholders": {
            "host": "the PostgreSQL server",
            "port": "5432",
            "schema": "the database (default postgres)",
            "login": "the user the sync writes as",
        },
    },
    "conn-fields": {
        "search_path": _text(
            "Schema (search_path)",
            "The PostgreSQL schema to stage into (default public), created if missing: one plain name, a "
            "letter or _ then letters, digits, _ or $.",
        ),
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "taxdome-qbo",
        "name": "TaxDome to QuickBooks Online",
        "description": "Syncs TaxDome billing exports to QuickBooks Online and reconciles them.",
        "connection-types": [_QUICKBOOKS, _WAREHOUSE],
    }
