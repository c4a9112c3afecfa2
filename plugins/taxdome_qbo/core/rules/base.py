"""What every rule reads and records through: the staged firm, the settings' QBO ids, the sync state, the
statuses decided so far, and the operation log a write goes to.

Pure: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from taxdome_qbo.core.kinds import DELETE_ORDER
from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.operation_log import OperationLog
from taxdome_qbo.core.plan_memory import Known, index_state
from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.core.vocabulary import (
    DO_NOT_SYNC,
    FAILED,
    NOT_SYNCED,
    SKIPPED,
    SYNCED,
    PlanOptions,
    StagedFirm,
    canonical_bytes,
    date_text,
    failure_key,
)


def ref(value: str) -> dict[str, str]:
    return {"value": value}


def linked_line(cents: int, target: str, txn_type: str) -> dict[str, Any]:
    return {"Amount": format_cents(cents), "LinkedTxn": [{"TxnId": target, "TxnType": txn_type}]}


@dataclass
class SettingIds:
    """QBO ids of the names the settings give, and why a missing one stops what needs it."""

    ids: dict[str, str | None] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def resolve_setting_ids(settings: FirmSettings, reference: QboReference) -> SettingIds:
    """The QBO ids of the accounts, items and customer type the firm settings name."""
    resolved = SettingIds()
    accounts = reference.accounts
    items = reference.items
    wanted = {
        "deposit_to_account": (accounts, settings.deposit_to_account, "account"),
        "fee_paid_from_account": (accounts, settings.effective_fee_paid_from_account, "account"),
        "fee_expense_account": (accounts, settings.fee_expense_account, "account"),
        "service_income_account": (accounts, settings.service_income_account, "account"),
        "default_sales_item": (items, settings.default_sales_item, "item"),
        "tax_item": (items, settings.tax_item, "item"),
    }
    for setting, (frame, name, what) in wanted.items():
        found = frame[(frame["name"] == name) & frame["active"].astype(bool)]
        resolved.ids[setting] = None if found.empty else str(found["id"].iloc[0])
        if found.empty:
            resolved.missing[setting] = (
                f"the {what} '{name}' ({setting}) is not an active {what} in QuickBooks"
            )
    types = reference.customer_types
    match = types[types["name"] == settings.customer_type]
    resolved.ids["customer_type"] = None if match.empty else str(match["id"].iloc[0])
    return resolved


def _synced_qbo_id(known: Known | None) -> str | None:
    """The QBO id of an object the last sync left synced, else None."""
    if known is None or known.qbo_id is None or known.status != SYNCED:
        return None
    return str(known.qbo_id)


@functools.lru_cache(maxsize=1024)
def _verdict(
    status: str, reason: str, entity: str | None, caused_by: str | None
) -> tuple[str, str, str | None, str | None]:
    """An object's status: the same tuple for the same verdict, as millions of unchanged objects share one."""
    return (status, reason, entity, caused_by)


class RuleBook:
    """The planner's state the rules share, and the bookkeeping they record through."""

    def __init__(
        self,
        staged: StagedFirm,
        settings: FirmSettings,
        reference: QboReference,
        state: pd.DataFrame,
        options: PlanOptions,
        sink: Callable[[pd.DataFrame], None] | None,
    ):
        self.staged = staged
        self.settings = settings
        self.reference = reference
        self.options = options
        self.sync_date = settings.sync_start_date
        self._sync_day = None if self.sync_date is None else self.sync_date.isoformat()
        self.automated_tax = settings.automated_sales_tax or reference.automated_sales_tax
        self.state = index_state(state)
        # Deletions ask which synced objects have an operation: only of the kinds the sync state holds.
        self.operations = OperationLog(sink, frozenset(kind for kind in DELETE_ORDER if self.state.get(kind)))
        # kind -> TaxDome id -> (status, reason, QBO entity, caused_by)
        self.statuses: dict[str, dict[str, tuple[str, str, str | None, str | None]]] = defaultdict(dict)
        self.synced_accounts: set[str] = set()
        self.synced_services: set[str] = set()
        self.synced_invoices: set[str] = set()
        self.synced_payments: set[str] = set()  # real-money payments that are (or will be) in QBO
        self.refs = resolve_setting_ids(settings, reference)

    def status(
        self,
        kind: str,
        taxdome_id: str,
        status: str,
        reason: str,
        entity: str | None = None,
        *,
        caused_by: str | None = None,
    ) -> None:
        self.statuses[kind][taxdome_id] = _verdict(status, reason, entity, caused_by)

    def failure_behind(self, kind: str, taxdome_id: str) -> str | None:
        """The failed object that keeps this one out of QBO: itself when it failed, else the one its own
        not_synced verdict names; None when only the sync rules keep it out (or it has no verdict)."""
        verdict = self.statuses[kind].get(taxdome_id)
        if verdict is None:
            return None
        return failure_key(kind, taxdome_id) if verdict[0] == FAILED else verdict[3]

    def known_qbo_id(self, kind: str, taxdome_id: str) -> str | None:
        return _synced_qbo_id(self.state[kind].get(taxdome_id))

    def write(
        self,
        kind: str,
        taxdome_id: str,
        entity: str,
        payload: dict[str, Any],
        amount_cents: int | None,
        reason: str,
        *,
        sort_key: str = "",
    ) -> str:
        """Plan a create, or an update when the TaxDome data changed since the last sync; returns a reason."""
        text = canonical_bytes(payload)
        digest = hashlib.sha256(text).digest()
        known = self.state[kind].get(taxdome_id)
        qbo_id = _synced_qbo_id(known)
        if qbo_id is not None and known.payload_hash == digest:
            return "unchanged since the last sync"
        action = "create"
        if qbo_id is not None:
            action = "update"
            text = canonical_bytes(
                {**payload, "Id": qbo_id, "SyncToken": str(known.sync_token), "sparse": False}
            )
            reason = f"changed since the last sync: {reason}"
        self.operations.add(
            kind, (taxdome_id, entity, action, amount_cents, text.decode(), digest.hex(), reason, sort_key)
        )
        return reason

    def _append_body(
        self, kind, taxdome_id, entity, action, body: dict[str, Any], reason: str, sort_key: str
    ) -> None:
        """An operation whose body is not TaxDome data (link, reactivate, delete): hashed as sent."""
        text = canonical_bytes(body)
        digest = hashlib.sha256(text).hexdigest()
        self.operations.add(kind, (taxdome_id, entity, action, None, text.decode(), digest, reason, sort_key))

    def _before_sync_date(self, day) -> bool:
        if self._sync_day is None:
            return False
        text = date_text(day)
        return text is not None and text < self._sync_day

    def _account_gate(self, kind: str, taxdome_id: str, account_id: str, day, what: str) -> bool:
        """Shared scope rules of an account's transaction; False (with the status set) when it cannot sync."""
        if account_id in self.opted_out:
            self.status(kind, taxdome_id, DO_NOT_SYNC, f"its account {account_id} is set to Do not sync")
            return False
        if self._before_sync_date(day):
            self.status(
                kind, taxdome_id, SKIPPED, f"{what} {date_text(day)}, before the sync date {self.sync_date}"
            )
            return False
        if account_id not in self.synced_accounts:
            why = self.statuses["account"].get(account_id, (None, "it is not in the export"))[1]
            self.status(
                kind,
                taxdome_id,
                NOT_SYNCED,
                f"its account {account_id} is not synced: {why}",
                caused_by=self.failure_behind("account", account_id),
            )
            return False
        return True
