"""The sync's shared words: what a plan holds and reads, the statuses every TaxDome object gets, QuickBooks'
limits, and how objects are named across the planner, the loader, the read-back and the reports.

References between objects are symbolic (`@account:A1`): the loader resolves them through the sync state as
objects get their QBO ids. Because payloads never carry the QBO id of a TaxDome object, a payload's hash only
changes when the TaxDome data does, so a re-plan after a successful sync plans nothing.

Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
import pandas as pd

if TYPE_CHECKING:
    from taxdome_qbo.core.sync_period import SyncPeriod

OPERATION_COLUMNS = (
    "seq",
    "taxdome_kind",
    "taxdome_id",
    "qbo_entity",
    "action",
    "amount_cents",
    "payload",
    "payload_hash",
    "reason",
)
# `caused_by` names the failed object (`account:A1`) that keeps a not_synced object out of QuickBooks; empty
# when a sync rule does: only a rule explains an absence, a failure never does.
STATUS_COLUMNS = ("taxdome_kind", "taxdome_id", "status", "reason", "qbo_entity", "caused_by", "qbo_id")
STATE_COLUMNS = ("taxdome_kind", "taxdome_id", "qbo_entity", "qbo_id", "sync_token", "payload_hash", "status")

SYNCED, NOT_SYNCED, SKIPPED, FAILED, DO_NOT_SYNC = "synced", "not_synced", "skipped", "failed", "do_not_sync"
REAL_MONEY_METHODS = frozenset({"card", "ach", "cash", "check", "bank_transfer", "other"})
WAITING_INVOICE_STATUSES = frozenset({"Draft", "Scheduled"})
MAX_DOC_NUMBER = 21
MAX_DISPLAY_NAME = 500
MAX_ITEM_NAME = 100
MAX_PAYMENT_REF = 21
MASS_DELETE_SHARE = 0.05
_NOT_IN_NAMES = re.compile(r"[:\t\r\n]+")


class PlanRefused(ValueError):
    """The plan would do something the firm must confirm first (e.g. a mass deletion)."""


@dataclass(frozen=True)
class StagedFirm:
    """The staged TaxDome tables, as read from the warehouse (money in integer cents)."""

    accounts: pd.DataFrame
    services: pd.DataFrame
    invoices: pd.DataFrame
    invoice_lines: pd.DataFrame
    payments: pd.DataFrame
    payment_applications: pd.DataFrame
    refunds: pd.DataFrame


@dataclass(frozen=True)
class PlanOptions:
    """:param export_mode: `full`: an export lists everything, so a synced payment or refund it lacks was
    deleted in TaxDome; `incremental`: an export lists changes only, nothing is deleted for being absent.
    :param period: a backfill run's days: only what is dated in them is loaded (core/sync_period.py), and
    nothing is deleted; None: everything in scope."""

    export_mode: Literal["full", "incremental"] = "full"
    allow_mass_delete: bool = False
    period: SyncPeriod | None = None


@dataclass
class Plan:
    operations: pd.DataFrame
    statuses: pd.DataFrame


def symbolic(kind: str, taxdome_id: str) -> str:
    """A reference to the QBO object of a TaxDome object, resolved by the loader."""
    return f"@{kind}:{taxdome_id}"


def failure_key(kind: str, taxdome_id: str) -> str:
    """How `caused_by` names a failed object: its status row's kind and id."""
    return f"{kind}:{taxdome_id}"


def marker(kind: str, taxdome_id: str) -> str:
    """Written on every QBO object we create, so a lost state can be rebuilt by lookup instead of re-creating."""
    return f"taxdome:{kind}:{taxdome_id}"


def qbo_name(name: str, limit: int) -> str:
    """A name QBO accepts: no colon, tab or newline (they become ' - ' or a space), single-spaced, cut to size."""
    cleaned = _NOT_IN_NAMES.sub(lambda m: " - " if ":" in m.group() else " ", str(name))
    return " ".join(cleaned.split())[:limit].rstrip()


def canonical_json(payload: dict[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8: the same payload always gives the same text (and hash)."""
    return canonical_bytes(payload).decode()


def canonical_bytes(payload: dict[str, Any]) -> bytes:
    """The canonical JSON text encoded as UTF-8: what is hashed."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(payload)).hexdigest()


def date_text(value) -> str | None:
    """A date or timestamp (text, date, datetime) as YYYY-MM-DD."""
    if isinstance(value, str):
        return value[:10]
    if value is None or pd.isna(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]
