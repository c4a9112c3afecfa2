"""The sync planner: TaxDome's QuickBooks rules (docs/sync-rules.md, R1-R16) applied to the staged export.

Pure: staged frames + firm settings + QBO reference data + sync state in, a plan out. The plan is every QBO
write needed, in execution order, each with its reason, and a status with a reason for every staged TaxDome
object (account, service, invoice, payment, refund). Nothing here talks to QBO or a database.

References between objects are symbolic (`@account:A1`): the loader resolves them through the sync state as
objects get their QBO ids. Because payloads never carry the QBO id of a TaxDome object, a payload's hash only
changes when the TaxDome data does, so a re-plan after a successful sync plans nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from taxdome_qbo.core.kinds import DELETE_ORDER, KINDS, PHASES, READ_COLUMNS, STAGED_TABLES
from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.core.settings import FirmSettings

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
PHASE_SEQ_SPAN = 100_000_000  # 13 phases stay below 2**31: seq fits a 32-bit column
INVOICE_CHUNK = 50_000  # invoices (with their lines) turned into Python objects at a time
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NOT_IN_NAMES = re.compile(r"[:\t\r\n]+")


_LOGGED = pa.schema(
    [
        ("taxdome_id", pa.string()),
        ("qbo_entity", pa.string()),
        ("action", pa.string()),
        ("amount_cents", pa.int64()),
        ("payload", pa.string()),
        ("payload_hash", pa.string()),
        ("reason", pa.string()),
        ("sort_key", pa.string()),
    ]
)
_OPERATIONS_SCHEMA = pa.schema(
    [("seq", pa.int64()), ("taxdome_kind", pa.string()), *(f for f in _LOGGED if f.name != "sort_key")]
)
# Write phases planned in execution order, so they can be sent while planning goes on.
_STREAMED = frozenset((name, False) for name, kind in KINDS.items() if kind.planned_in_order)
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' own `str`: Arrow buffers, no object per value


class _Known(NamedTuple):
    """What the last sync left of one TaxDome object."""

    qbo_entity: str | None
    qbo_id: str | None
    sync_token: str | None
    payload_hash: bytes | str | None  # the digest its hex text encodes (see _digest_of)
    status: str | None


class _Application(NamedTuple):
    """What a payment pays of one invoice."""

    invoice_id: str
    amount_cents: int


class _OperationLog:
    """The planned operations of each execution phase, moved to Arrow columns every FLUSH_ROWS operations:
    as Python objects, the payload texts of millions of operations would take several times the memory.

    An operation's seq is its phase's number times PHASE_SEQ_SPAN plus its place in the phase, so a phase can
    be numbered (and handed to a sink) before the phases planned after it are known. With a sink, the phases
    planned in execution order (`_STREAMED`) go out as they are planned; the others once planning is done.
    """

    FLUSH_ROWS = 20_000

    def __init__(self, sink: Callable[[pd.DataFrame], None] | None, asked_kinds: frozenset[str]) -> None:
        """:param asked_kinds: the kinds `planned_ids` will be asked about."""
        self._sink = sink
        self._asked_kinds = asked_kinds
        self._pending: dict[tuple[str, bool], list[tuple]] = defaultdict(list)
        self._batches: dict[tuple[str, bool], list[pa.RecordBatch]] = defaultdict(list)
        self._sent: dict[tuple[str, bool], tuple[int, tuple[str, str]]] = {}  # rows sent, last (key, id)
        self._sent_ids: dict[str, set[str]] = defaultdict(set)  # of the asked kinds

    def add(self, kind: str, row: tuple) -> None:
        """`row` holds the `_LOGGED` columns of one operation."""
        phase = (kind, row[2] == "delete")
        pending = self._pending[phase]
        pending.append(row)
        if len(pending) >= self.FLUSH_ROWS:
            self._flush(phase)

    def _flush(self, phase: tuple[str, bool]) -> None:
        rows = self._pending.pop(phase, None)
        if not rows:
            return
        if self._sink is not None and phase in _STREAMED:
            self._send_in_order(phase, rows)
        else:
            self._batches[phase].append(_logged_batch(rows))

    def _send_in_order(self, phase: tuple[str, bool], rows: list[tuple]) -> None:
        sent, last = self._sent.get(phase, (0, ("", "")))
        keys = [(row[7], row[0]) for row in rows]
        if keys[0] < last or keys != sorted(keys):
            raise RuntimeError(f"{phase[0]} operations were planned out of execution order")
        self._sent[phase] = (sent + len(rows), keys[-1])
        if phase[0] in self._asked_kinds:
            self._sent_ids[phase[0]].update(key[1] for key in keys)
        self._sink(self._numbered(phase, pa.Table.from_batches([_logged_batch(rows)]), sent))

    def planned_ids(self, kind: str) -> set[str]:
        """The TaxDome ids of `kind` with an operation (any action)."""
        ids = set(self._sent_ids[kind])
        for deleting in (True, False):
            self._flush((kind, deleting))
            for batch in self._batches.get((kind, deleting), []):
                ids.update(batch.column("taxdome_id").to_pylist())
        return ids

    def _numbered(self, phase: tuple[str, bool], table: pa.Table, before: int) -> pd.DataFrame:
        """The operations of `table` (the phase's, after `before` others) as plan rows."""
        first = PHASES.index(phase) * PHASE_SEQ_SPAN + before + 1
        table = table.drop_columns(["sort_key"])
        table = table.add_column(0, "taxdome_kind", pa.array([phase[0]] * table.num_rows, pa.string()))
        table = table.add_column(0, "seq", pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)))
        return _operations_frame(table)

    def finish(self) -> pd.DataFrame:
        """What is not sent yet, phase by phase, within a phase by sort key and TaxDome id: to the sink, or
        (without one) returned as one frame in execution order."""
        frames = []
        for phase in PHASES:
            self._flush(phase)
            batches = self._batches.pop(phase, [])
            if not batches:
                continue
            table = pa.Table.from_batches(batches)
            del batches
            order = pc.sort_indices(table, [("sort_key", "ascending"), ("taxdome_id", "ascending")])
            if not pc.all(pc.equal(order, pa.array(np.arange(len(order))))).as_py():
                table = table.take(order)
            operations = self._numbered(phase, table, 0)
            del table
            if self._sink is None:
                frames.append(operations)
            else:
                self._sink(operations)
        if not frames:
            return _operations_frame(_OPERATIONS_SCHEMA.empty_table())
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _logged_batch(rows: list[tuple]) -> pa.RecordBatch:
    columns = zip(*rows, strict=True)
    return pa.record_batch(
        [pa.array(values, f.type) for values, f in zip(columns, _LOGGED, strict=True)], schema=_LOGGED
    )


def _operations_frame(table: pa.Table) -> pd.DataFrame:
    """Plan rows with the texts left in Arrow buffers (pandas' `str`) and amounts as nullable integers."""
    mapped = {pa.string(): _TEXT, pa.int64(): pd.Int64Dtype()}
    operations = table.to_pandas(types_mapper=mapped.get, self_destruct=True)
    return operations.astype({"seq": "int64"})[list(OPERATION_COLUMNS)]


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
    deleted in TaxDome; `incremental`: an export lists changes only, nothing is deleted for being absent."""

    export_mode: Literal["full", "incremental"] = "full"
    allow_mass_delete: bool = False


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
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()


def payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def _ref(value: str) -> dict[str, str]:
    return {"value": value}


def _date_text(value) -> str | None:
    """A date or timestamp (text, date, datetime) as YYYY-MM-DD."""
    if isinstance(value, str):
        return value[:10]
    if value is None or pd.isna(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]


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


class _Planner:
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
        self.automated_tax = settings.automated_sales_tax or reference.automated_sales_tax
        self.state = _index_state(state)
        # Deletions ask which synced objects have an operation: only of the kinds the sync state holds.
        self.operations = _OperationLog(
            sink, frozenset(kind for kind in DELETE_ORDER if self.state.get(kind))
        )
        # kind -> TaxDome id -> (status, reason, QBO entity, caused_by)
        self.statuses: dict[str, dict[str, tuple[str, str, str | None, str | None]]] = defaultdict(dict)
        self.synced_accounts: set[str] = set()
        self.synced_services: set[str] = set()
        self.synced_invoices: set[str] = set()
        self.synced_payments: set[str] = set()  # real-money payments that are (or will be) in QBO
        self.refs = resolve_setting_ids(settings, reference)

    # -- bookkeeping -----------------------------------------------------------------------------------
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
        known = self.state[kind].get(taxdome_id)
        if known is None or known.qbo_id is None or known.status != SYNCED:
            return None
        return str(known.qbo_id)

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
        text = canonical_json(payload)
        digest = hashlib.sha256(text.encode()).digest()
        known = self.state[kind].get(taxdome_id)
        qbo_id = self.known_qbo_id(kind, taxdome_id)
        if qbo_id is not None and known.payload_hash == digest:
            return "unchanged since the last sync"
        action = "create"
        if qbo_id is not None:
            action = "update"
            text = canonical_json(
                {**payload, "Id": qbo_id, "SyncToken": str(known.sync_token), "sparse": False}
            )
            reason = f"changed since the last sync: {reason}"
        self._append(kind, taxdome_id, entity, action, amount_cents, text, digest.hex(), reason, sort_key)
        return reason

    def _append_body(
        self, kind, taxdome_id, entity, action, body: dict[str, Any], reason: str, sort_key: str
    ) -> None:
        """An operation whose body is not TaxDome data (link, reactivate, delete): hashed as sent."""
        text = canonical_json(body)
        digest = hashlib.sha256(text.encode()).hexdigest()
        self._append(kind, taxdome_id, entity, action, None, text, digest, reason, sort_key)

    def _append(
        self, kind, taxdome_id, entity, action, amount_cents, payload_text, digest, reason, sort_key
    ) -> None:
        self.operations.add(
            kind, (taxdome_id, entity, action, amount_cents, payload_text, digest, reason, sort_key)
        )

    # -- accounts (R1-R5) ------------------------------------------------------------------------------
    def plan(self) -> Plan:
        accounts_in_scope = self._scope_accounts()
        self._plan_customers(accounts_in_scope)
        self._plan_services()
        self._plan_invoices()
        credit_use = self._allocate_credit_balance()
        self._plan_payments(credit_use)
        self._plan_refunds()
        self._plan_deletions()
        return self._result()

    def _before_sync_date(self, day) -> bool:
        text = _date_text(day)
        return self.sync_date is not None and text is not None and text < self.sync_date.isoformat()

    def _scope_accounts(self) -> dict[str, Any]:
        """The accounts that become QBO customers (R3, R4, R5); every other account gets its status here."""
        staged = self.staged
        opted_out = set(staged.accounts.loc[staged.accounts["qbo_sync"] == "do_not_sync", "account_id"])
        self.opted_out = opted_out
        since = self.sync_date.isoformat() if self.sync_date else None
        issued = staged.invoices[~staged.invoices["status"].isin(WAITING_INVOICE_STATUSES)]
        dated_invoices = issued if since is None else issued[issued["posted_date"].map(_date_text) >= since]
        payments = staged.payments
        dated_payments = (
            payments if since is None else payments[payments["payment_date"].map(_date_text) >= since]
        )
        active = _distinct(dated_invoices["account_id"]) | _distinct(dated_payments["account_id"])

        in_scope = {}
        for account in staged.accounts.itertuples(index=False):
            account_id = account.account_id
            if account_id in opted_out:
                self.status("account", account_id, DO_NOT_SYNC, "set to Do not sync in TaxDome")
                continue
            created = _date_text(account.created_at)
            forced = account.qbo_sync == "sync"
            everything = self.settings.account_scope == "all" and not bool(account.archived)
            new_enough = since is None or (created is not None and created >= since)
            if (
                forced
                or account_id in active
                or (everything and new_enough)
                or self.known_qbo_id("account", account_id)
            ):
                in_scope[account_id] = account
            elif self.settings.account_scope == "all" and bool(account.archived):
                self.status("account", account_id, SKIPPED, "archived, with no invoice or payment to sync")
            elif since is not None:
                self.status(
                    "account", account_id, SKIPPED, f"no invoice or payment on or after the sync date {since}"
                )
            else:
                self.status("account", account_id, SKIPPED, "no invoice or payment yet")
        return in_scope

    def _plan_customers(self, accounts: dict[str, Any]) -> None:
        """R1, R2: link by manual match or exact DisplayName, reactivate an inactive match, else create."""
        customers = self.reference.customers
        by_name = {row.display_name: row for row in customers.itertuples(index=False)}
        people = self.reference.vendors_and_employees
        other_people = dict(zip(people["display_name"].str.casefold(), people["entity"], strict=True))
        taken: dict[str, str] = {}
        ordered = sorted(accounts.values(), key=lambda a: (_date_text(a.created_at) or "", a.account_id))
        for account in ordered:
            account_id = account.account_id
            if self.known_qbo_id("account", account_id):
                self.synced_accounts.add(account_id)
                self.status("account", account_id, SYNCED, "linked to its QuickBooks customer", "Customer")
                continue
            display_name = qbo_name(account.account_name, MAX_DISPLAY_NAME)
            manual = account.qbo_customer_name if isinstance(account.qbo_customer_name, str) else None
            folded = (manual or display_name).casefold()
            if folded in taken:
                self.status(
                    "account",
                    account_id,
                    FAILED,
                    f"account {taken[folded]} already syncs to the QuickBooks customer '{manual or display_name}'",
                )
                continue
            taken[folded] = account_id
            if manual:
                match = by_name.get(manual)
                if match is None:
                    self.status(
                        "account",
                        account_id,
                        FAILED,
                        f"the matched QuickBooks customer '{manual}' does not exist",
                    )
                    continue
                self._link_customer(
                    account_id, match, f"matched by hand to the QuickBooks customer '{manual}'"
                )
                continue
            match = by_name.get(display_name)
            if match is not None:
                self._link_customer(
                    account_id, match, f"same name as the QuickBooks customer '{display_name}'"
                )
                continue
            if (entity := other_people.get(display_name.casefold())) is not None:
                self.status(
                    "account",
                    account_id,
                    FAILED,
                    f"the name '{display_name}' belongs to a QuickBooks {entity.lower()}, and customers cannot "
                    "share it: rename the account in TaxDome or match it by hand to a customer",
                )
                continue
            payload: dict[str, Any] = {"DisplayName": display_name, "Notes": marker("account", account_id)}
            if self.refs.ids["customer_type"]:
                payload["CustomerTypeRef"] = _ref(self.refs.ids["customer_type"])
            if isinstance(account.email, str) and _EMAIL.match(account.email) and len(account.email) <= 100:
                payload["PrimaryEmailAddr"] = {"Address": account.email}
            if account.account_type == "Company":
                payload["CompanyName"] = display_name[:100]
            reason = self.write(
                "account",
                account_id,
                "Customer",
                payload,
                None,
                f"new customer '{display_name}'",
                sort_key=account_id,
            )
            self.synced_accounts.add(account_id)
            self.status("account", account_id, SYNCED, reason, "Customer")

    def _link_customer(self, account_id: str, customer, why: str) -> None:
        active = bool(customer.active)
        payload = {"Id": str(customer.id)}
        action = "link"
        if not active:
            action = "reactivate"
            payload = {
                "Id": str(customer.id),
                "SyncToken": str(customer.sync_token),
                "sparse": True,
                "Active": True,
            }
            why = f"{why}, which is inactive: reactivate it"
        self._append_body("account", account_id, "Customer", action, payload, why, account_id)
        self.synced_accounts.add(account_id)
        self.status("account", account_id, SYNCED, why, "Customer")

    # -- services (R8, R9) -----------------------------------------------------------------------------
    def _plan_services(self) -> None:
        items = self.reference.items
        by_name = {row.name: row for row in items.itertuples(index=False)}
        integration = self.settings.integration_date.isoformat() if self.settings.integration_date else None
        for service in self.staged.services.itertuples(index=False):
            service_id = service.service_id
            if self.known_qbo_id("service", service_id):
                self.synced_services.add(service_id)
                self.status("service", service_id, SYNCED, "linked to its QuickBooks item", "Item")
                continue
            copied = service.qbo_item_name if isinstance(service.qbo_item_name, str) else None
            if copied:
                match = by_name.get(copied)
                if match is None:
                    self.status(
                        "service",
                        service_id,
                        FAILED,
                        f"copied from the QuickBooks item '{copied}', which does not exist",
                    )
                    continue
                self._link_item(service_id, match, f"copied from the QuickBooks item '{copied}'")
                continue
            created = _date_text(service.created_at)
            if integration is not None and created is not None and created < integration:
                self.status(
                    "service",
                    service_id,
                    SKIPPED,
                    f"created before the integration date {integration}: its lines use the default sales item",
                )
                continue
            name = qbo_name(service.name, MAX_ITEM_NAME)
            match = by_name.get(name)
            if match is not None:
                self._link_item(service_id, match, f"same name as the QuickBooks item '{name}'")
                continue
            if "service_income_account" in self.refs.missing:
                self.status("service", service_id, FAILED, self.refs.missing["service_income_account"])
                continue
            payload: dict[str, Any] = {
                "Name": name,
                "Type": "Service",
                "UnitPrice": format_cents(int(service.rate_cents)),
                "IncomeAccountRef": _ref(self.refs.ids["service_income_account"]),
            }
            if isinstance(service.rate_type, str):
                payload["Sku"] = service.rate_type[:100]
            if isinstance(service.description, str):
                payload["Description"] = service.description[:4000]
            reason = self.write(
                "service",
                service_id,
                "Item",
                payload,
                None,
                f"new service item '{name}'",
                sort_key=service_id,
            )
            self.synced_services.add(service_id)
            self.status("service", service_id, SYNCED, reason, "Item")

    def _link_item(self, service_id: str, item, why: str) -> None:
        payload = {"Id": str(item.id)}
        self._append_body("service", service_id, "Item", "link", payload, why, service_id)
        self.synced_services.add(service_id)
        self.status("service", service_id, SYNCED, why, "Item")

    # -- invoices (R6, R14) ----------------------------------------------------------------------------
    def _account_gate(self, kind: str, taxdome_id: str, account_id: str, day, what: str) -> bool:
        """Shared scope rules of an account's transaction; False (with the status set) when it cannot sync."""
        if account_id in self.opted_out:
            self.status(kind, taxdome_id, DO_NOT_SYNC, f"its account {account_id} is set to Do not sync")
            return False
        if self._before_sync_date(day):
            self.status(
                kind, taxdome_id, SKIPPED, f"{what} {_date_text(day)}, before the sync date {self.sync_date}"
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

    def _plan_invoices(self) -> None:
        services = {s.service_id: s for s in self.staged.services.itertuples(index=False)}
        invoices = self.staged.invoices
        # By posting day, then id: the execution order of their operations (see _STREAMED).
        days = [_date_text(day) for day in invoices["posted_date"].to_numpy(dtype=object, na_value=None)]
        invoice_ids = pa.array(invoices["invoice_id"], pa.string())
        keys = pa.table({"day": pa.array(days, pa.string()), "id": invoice_ids})
        del days
        order = pc.sort_indices(keys, [("day", "ascending"), ("id", "ascending")])
        del keys
        # Each line ranked by its invoice's place in that order, once: a chunk's lines are then one slice.
        lines = self.staged.invoice_lines
        rank = pc.index_in(pa.array(lines["invoice_id"], pa.string()), value_set=invoice_ids.take(order))
        rank = pc.fill_null(rank, len(invoices))  # lines of no staged invoice come last, in no chunk
        line_order = pc.sort_indices(
            pa.table({"rank": rank, "line_no": pa.array(lines["line_no"])}),
            [("rank", "ascending"), ("line_no", "ascending")],
        )
        line_ranks = rank.take(line_order).to_numpy()
        line_order, order = line_order.to_numpy(), order.to_numpy()
        for start in range(0, len(invoices), INVOICE_CHUNK):
            chunk = _plain(invoices.iloc[order[start : start + INVOICE_CHUNK]])
            first, last = np.searchsorted(line_ranks, [start, start + INVOICE_CHUNK])
            lines_by_invoice: dict[str, list] = defaultdict(list)
            for line in _plain(lines.iloc[line_order[first:last]]).itertuples(index=False):
                lines_by_invoice[line.invoice_id].append(line)
            self._plan_invoice_chunk(chunk, lines_by_invoice, services)

    def _plan_invoice_chunk(
        self, invoices: pd.DataFrame, lines_by_invoice: dict[str, list], services: dict
    ) -> None:
        for invoice in invoices.itertuples(index=False):
            invoice_id = invoice.invoice_id
            if not self._account_gate(
                "invoice", invoice_id, invoice.account_id, invoice.posted_date, "posted"
            ):
                continue
            if invoice.status in WAITING_INVOICE_STATUSES:
                self.status("invoice", invoice_id, SKIPPED, f"{invoice.status}: waits until it is issued")
                continue
            if len(invoice.invoice_number) > MAX_DOC_NUMBER:
                self.status(
                    "invoice",
                    invoice_id,
                    FAILED,
                    f"invoice number {invoice.invoice_number} is longer than the {MAX_DOC_NUMBER} characters QuickBooks allows",
                )
                continue
            payload_lines, problem = self._invoice_lines(
                lines_by_invoice[invoice_id], services, int(invoice.tax_amount_cents)
            )
            if problem:
                self.status("invoice", invoice_id, FAILED, problem)
                continue
            payload: dict[str, Any] = {
                "DocNumber": invoice.invoice_number,
                "TxnDate": _date_text(invoice.posted_date),
                "CustomerRef": _ref(symbolic("account", invoice.account_id)),
                "Line": payload_lines,
                "PrivateNote": marker("invoice", invoice_id),
            }
            if (due := _date_text(invoice.due_date)) is not None:
                payload["DueDate"] = due
            if self.automated_tax:
                payload["TxnTaxDetail"] = {"TotalTax": format_cents(int(invoice.tax_amount_cents))}
            reason = self.write(
                "invoice",
                invoice_id,
                "Invoice",
                payload,
                int(invoice.total_cents),
                f"invoice {invoice.invoice_number} of {format_cents(int(invoice.total_cents))}",
                sort_key=f"{_date_text(invoice.posted_date)}|{invoice_id}",
            )
            self.synced_invoices.add(invoice_id)
            self.status("invoice", invoice_id, SYNCED, reason, "Invoice")

    def _invoice_lines(self, lines: list, services: dict, tax_cents: int) -> tuple[list[dict], str | None]:
        """One SalesItemLine per TaxDome line with the same amount; the tax as its own line unless QBO computes it."""
        built = []
        for line in lines:
            service_id = line.service_id if isinstance(line.service_id, str) else None
            description_parts = []
            if service_id in self.synced_services:
                item = _ref(symbolic("service", service_id))
            else:
                if "default_sales_item" in self.refs.missing:
                    return [], self.refs.missing["default_sales_item"]
                item = _ref(self.refs.ids["default_sales_item"])
                name = line.service_name if isinstance(line.service_name, str) else None
                if name is None and service_id in services:
                    name = services[service_id].name
                if name:
                    description_parts.append(name)
            if isinstance(line.description, str):
                description_parts.append(line.description)
            detail: dict[str, Any] = {"ItemRef": item}
            amount = int(line.amount_cents)
            exact = _exact_unit_price(line.rate_cents, line.quantity, amount)
            if exact is not None:
                detail["Qty"], detail["UnitPrice"] = exact
            if self.automated_tax:
                detail["TaxCodeRef"] = _ref("TAX" if bool(line.taxable) else "NON")
            entry: dict[str, Any] = {
                "DetailType": "SalesItemLineDetail",
                "Amount": format_cents(amount),
                "SalesItemLineDetail": detail,
            }
            if description_parts:
                entry["Description"] = " - ".join(description_parts)[:4000]
            built.append(entry)
        if tax_cents and not self.automated_tax:
            if "tax_item" in self.refs.missing:
                return [], self.refs.missing["tax_item"]
            built.append(
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": format_cents(tax_cents),
                    "Description": "Sales tax",
                    "SalesItemLineDetail": {"ItemRef": _ref(self.refs.ids["tax_item"])},
                }
            )
        return built, None

    # -- payments, credits, fees (R7, R10, R11, R12, R15, R20) -------------------------------------------
    def _payment_gate(self, payment) -> bool:
        payment_id = payment.payment_id
        if not self._account_gate("payment", payment_id, payment.account_id, payment.payment_date, "paid on"):
            return False
        if not self.settings.sync_payments:
            self.status("payment", payment_id, SKIPPED, "payment sync is switched off in the firm settings")
            return False
        if not bool(payment.sync_to_qbo):
            self.status("payment", payment_id, SKIPPED, "this payment is set not to sync to QuickBooks")
            return False
        return True

    def _applications(self) -> dict[str, list[_Application]]:
        by_payment: dict[str, list[_Application]] = defaultdict(list)
        applications = self.staged.payment_applications.sort_values(["payment_id", "invoice_id"])
        for payment_id, invoice_id, cents in zip(
            applications["payment_id"].tolist(),
            applications["invoice_id"].tolist(),
            applications["amount_cents"].tolist(),
            strict=True,
        ):
            by_payment[payment_id].append(_Application(invoice_id, cents))
        return by_payment

    @functools.cached_property
    def payments_by_date(self) -> pd.DataFrame:
        return self.staged.payments.sort_values(["payment_date", "payment_id"])

    def _allocate_credit_balance(self) -> dict[str, list[tuple[str, str, int, str]]]:
        """R7: what each credit-balance payment consumes, oldest credit first.

        Returns, per source (a real-money payment or a promotional credit), the (credit payment, invoice, cents,
        source kind) it pays. Fails a credit-balance payment when the client's credit falls short.
        """
        applications = self._applications()
        self.applications_by_payment = applications
        uses: dict[str, list[tuple[str, str, int, str]]] = defaultdict(list)
        payments = self.payments_by_date
        self.credit_failures: dict[str, str] = {}
        with_credit_use = set(payments.loc[payments["method"] == "credit_balance", "account_id"])
        by_account: dict[str, list] = defaultdict(list)
        for payment in payments[payments["account_id"].isin(with_credit_use)].itertuples(index=False):
            by_account[payment.account_id].append(payment)
        for account_payments in by_account.values():
            available: list[list] = []  # [source id, kind, cents left], oldest first
            for payment in account_payments:
                applied_to_synced = sum(
                    int(a.amount_cents)
                    for a in applications[payment.payment_id]
                    if a.invoice_id in self.synced_invoices
                )
                if payment.method in REAL_MONEY_METHODS or payment.method == "promotional_credit":
                    left = int(payment.amount_cents) - applied_to_synced
                    kind = "payment" if payment.method in REAL_MONEY_METHODS else "credit_memo"
                    if left > 0 and self._would_sync(payment):
                        available.append([payment.payment_id, kind, left])
                    continue
                if payment.method != "credit_balance" or not self._would_sync(payment):
                    continue
                wanted = [a for a in applications[payment.payment_id] if a.invoice_id in self.synced_invoices]
                needed = sum(int(a.amount_cents) for a in wanted)
                on_hand = sum(source[2] for source in available)
                if needed > on_hand:
                    self.credit_failures[payment.payment_id] = (
                        f"the client's credit in QuickBooks is {format_cents(on_hand)}, short of the {format_cents(needed)} applied"
                    )
                    continue
                for application in wanted:
                    remaining = int(application.amount_cents)
                    for source in available:
                        if remaining == 0:
                            break
                        take = min(remaining, source[2])
                        if take:
                            uses[source[0]].append(
                                (payment.payment_id, application.invoice_id, take, source[1])
                            )
                            source[2] -= take
                            remaining -= take
        return uses

    def _would_sync(self, payment) -> bool:
        return (
            payment.account_id in self.synced_accounts
            and not self._before_sync_date(payment.payment_date)
            and self.settings.sync_payments
            and bool(payment.sync_to_qbo)
        )

    def _plan_payments(self, credit_use: dict[str, list[tuple[str, str, int, str]]]) -> None:
        for payment in self.payments_by_date.itertuples(index=False):
            payment_id = payment.payment_id
            if not self._payment_gate(payment):
                continue
            applications = self.applications_by_payment[payment.payment_id]
            if payment.method == "credit_balance":
                self._credit_balance_status(payment, applications)
                continue
            if payment.method == "promotional_credit":
                self._plan_credit_memo(payment, applications, credit_use.get(payment_id, []))
                continue
            if "deposit_to_account" in self.refs.missing:
                self.status("payment", payment_id, FAILED, self.refs.missing["deposit_to_account"])
                continue
            self._plan_money_payment(payment, applications, credit_use.get(payment_id, []))

    def _linked_lines(self, applications: list, extra_uses: list) -> tuple[list[dict], list[str], int]:
        lines, notes, applied = [], [], 0
        for application in applications:
            cents = int(application.amount_cents)
            if application.invoice_id in self.synced_invoices:
                lines.append(_linked_line(cents, symbolic("invoice", application.invoice_id), "Invoice"))
                applied += cents
            else:
                invoice_status = self.statuses["invoice"].get(application.invoice_id)
                why = "it is not in the export" if invoice_status is None else invoice_status[1]
                notes.append(
                    f"{format_cents(cents)} for invoice {application.invoice_id} stays unapplied ({why})"
                )
        for credit_payment, invoice_id, cents, _kind in extra_uses:
            lines.append(_linked_line(cents, symbolic("invoice", invoice_id), "Invoice"))
            applied += cents
            notes.append(
                f"{format_cents(cents)} of its credit pays invoice {invoice_id} (credit balance payment {credit_payment})"
            )
        return lines, notes, applied

    def _plan_money_payment(self, payment, applications: list, credit_use: list) -> None:
        payment_id = payment.payment_id
        lines, notes, applied = self._linked_lines(applications, credit_use)
        gross = int(payment.amount_cents)
        reference = payment.processor_txn_id if isinstance(payment.processor_txn_id, str) else payment_id
        payload: dict[str, Any] = {
            "TotalAmt": format_cents(gross),
            "TxnDate": _date_text(payment.payment_date),
            "CustomerRef": _ref(symbolic("account", payment.account_id)),
            "DepositToAccountRef": _ref(self.refs.ids["deposit_to_account"]),
            "PaymentRefNum": reference[:MAX_PAYMENT_REF],
            "Line": lines,
            "PrivateNote": marker("payment", payment_id),
        }
        if gross > applied:
            notes.append(f"{format_cents(gross - applied)} stays unapplied as client credit")
        summary = f"{payment.method} payment of {format_cents(gross)}" + (
            f"; {'; '.join(notes)}" if notes else ""
        )
        reason = self.write(
            "payment",
            payment_id,
            "Payment",
            payload,
            gross,
            summary,
            sort_key=f"{_date_text(payment.payment_date)}|{payment_id}",
        )
        self.synced_payments.add(payment_id)
        self.status("payment", payment_id, SYNCED, reason, "Payment")
        fee = int(payment.processing_fee_cents or 0)
        if fee > 0:
            self._plan_fee(payment, fee)

    def _plan_fee(self, payment, fee: int) -> None:
        for setting in ("fee_paid_from_account", "fee_expense_account"):
            if setting in self.refs.missing:
                self.status(
                    "payment",
                    payment.payment_id,
                    FAILED,
                    f"its processing fee cannot be recorded: {self.refs.missing[setting]}",
                )
                return
        payload = {
            "PaymentType": "Cash",
            "TxnDate": _date_text(payment.payment_date),
            "AccountRef": _ref(self.refs.ids["fee_paid_from_account"]),
            "TotalAmt": format_cents(fee),
            "Line": [
                {
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "Amount": format_cents(fee),
                    "Description": f"{payment.processor} processing fee of payment {payment.payment_id}",
                    "AccountBasedExpenseLineDetail": {
                        "AccountRef": _ref(self.refs.ids["fee_expense_account"])
                    },
                }
            ],
            "PrivateNote": marker("fee", payment.payment_id),
        }
        self.write(
            "fee",
            payment.payment_id,
            "Purchase",
            payload,
            fee,
            f"{payment.processor} processing fee of {format_cents(fee)}",
            sort_key=f"{_date_text(payment.payment_date)}|{payment.payment_id}",
        )

    def _plan_credit_memo(self, payment, applications: list, credit_use: list) -> None:
        """R11: a promotional credit is a credit memo; what it pays is a zero-amount payment linking both."""
        payment_id = payment.payment_id
        if "default_sales_item" in self.refs.missing:
            self.status("payment", payment_id, FAILED, self.refs.missing["default_sales_item"])
            return
        amount = int(payment.amount_cents)
        day = _date_text(payment.payment_date)
        payload = {
            "TxnDate": day,
            "CustomerRef": _ref(symbolic("account", payment.account_id)),
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": format_cents(amount),
                    "Description": "Promotional credit",
                    "SalesItemLineDetail": {"ItemRef": _ref(self.refs.ids["default_sales_item"])},
                }
            ],
            "PrivateNote": marker("credit_memo", payment_id),
        }
        reason = self.write(
            "credit_memo",
            payment_id,
            "CreditMemo",
            payload,
            amount,
            f"promotional credit of {format_cents(amount)}",
            sort_key=f"{day}|{payment_id}",
        )
        uses = [
            (payment_id, a.invoice_id, int(a.amount_cents), "own")
            for a in applications
            if a.invoice_id in self.synced_invoices
        ]
        uses += [
            (credit_payment, invoice_id, cents, "credit_balance")
            for credit_payment, invoice_id, cents, _ in credit_use
        ]
        for credit_payment, invoice_id, cents, _origin in uses:
            application_id = f"{credit_payment}:{invoice_id}:{payment_id}"
            link = {
                "TotalAmt": "0.00",
                "TxnDate": day,
                "CustomerRef": _ref(symbolic("account", payment.account_id)),
                "Line": [
                    _linked_line(cents, symbolic("invoice", invoice_id), "Invoice"),
                    _linked_line(cents, symbolic("credit_memo", payment_id), "CreditMemo"),
                ],
                "PrivateNote": marker("credit_application", application_id),
            }
            self.write(
                "credit_application",
                application_id,
                "Payment",
                link,
                cents,
                f"applies {format_cents(cents)} of promotional credit {payment_id} to invoice {invoice_id}",
                sort_key=f"{day}|{application_id}",
            )
        self.status("payment", payment_id, SYNCED, reason, "CreditMemo")

    def _credit_balance_status(self, payment, applications: list) -> None:
        payment_id = payment.payment_id
        if payment_id in self.credit_failures:
            self.status("payment", payment_id, FAILED, self.credit_failures[payment_id])
            return
        synced = [a for a in applications if a.invoice_id in self.synced_invoices]
        if not synced:
            failures = (self.failure_behind("invoice", a.invoice_id) for a in applications)
            self.status(
                "payment",
                payment_id,
                NOT_SYNCED,
                "paid from credit, but none of the invoices it pays is synced",
                caused_by=next((failure for failure in failures if failure), None),
            )
            return
        total = sum(int(a.amount_cents) for a in synced)
        self.status(
            "payment",
            payment_id,
            SYNCED,
            f"paid {format_cents(total)} from the client's QuickBooks credit (no new money)",
        )

    # -- refunds (R13) ---------------------------------------------------------------------------------
    def _plan_refunds(self) -> None:
        for refund in self.staged.refunds.sort_values(["refund_date", "refund_id"]).itertuples(index=False):
            refund_id = refund.refund_id
            if not self._account_gate(
                "refund", refund_id, refund.account_id, refund.refund_date, "refunded on"
            ):
                continue
            if refund.payment_id not in self.synced_payments:
                payment_status = self.statuses["payment"].get(
                    refund.payment_id, (None, "it is not in the export")
                )
                self.status(
                    "refund",
                    refund_id,
                    NOT_SYNCED,
                    f"its payment {refund.payment_id} is not synced as money received: {payment_status[1]}",
                    caused_by=self.failure_behind("payment", refund.payment_id),
                )
                continue
            amount = int(refund.amount_cents)
            day = _date_text(refund.refund_date)
            reason_text = refund.reason if isinstance(refund.reason, str) else "Refund"
            payload = {
                "TxnDate": day,
                "CustomerRef": _ref(symbolic("account", refund.account_id)),
                "DepositToAccountRef": _ref(self.refs.ids["deposit_to_account"]),
                "TotalAmt": format_cents(amount),
                "PaymentRefNum": refund_id[:MAX_PAYMENT_REF],
                "Line": [
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": format_cents(amount),
                        "Description": f"{reason_text} (payment {refund.payment_id})"[:4000],
                        "SalesItemLineDetail": {"ItemRef": _ref(self.refs.ids["default_sales_item"])},
                    }
                ],
                "PrivateNote": marker("refund", refund_id),
            }
            reason = self.write(
                "refund",
                refund_id,
                "RefundReceipt",
                payload,
                amount,
                f"refund of {format_cents(amount)} from payment {refund.payment_id}",
                sort_key=f"{day}|{refund_id}",
            )
            self.status("refund", refund_id, SYNCED, reason, "RefundReceipt")

    # -- deletions -------------------------------------------------------------------------------------
    def _plan_deletions(self) -> None:
        """Delete from QBO what TaxDome deleted (full exports) or what was unsynced since (any export)."""
        staged_payments = set(self.staged.payments["payment_id"])
        staged_refunds = set(self.staged.refunds["refund_id"])
        deletions = []
        for kind in DELETE_ORDER:
            recorded = self.state.get(kind)
            if not recorded:
                continue
            planned = self.operations.planned_ids(kind)
            for taxdome_id, known in recorded.items():
                if known.status != SYNCED or known.qbo_id is None:
                    continue
                if taxdome_id in planned or self._still_synced(kind, taxdome_id):
                    continue
                owner = self._owning_payment(kind, taxdome_id)
                present = taxdome_id in staged_refunds if kind == "refund" else owner in staged_payments
                if present:
                    why = f"its TaxDome {'refund' if kind == 'refund' else 'payment'} is no longer synced"
                elif self.options.export_mode == "full":
                    why = f"deleted in TaxDome: no longer in the export ({kind} {taxdome_id})"
                else:
                    continue
                deletions.append((kind, taxdome_id, known, why))
        synced_total = sum(
            1 for by_id in self.state.values() for known in by_id.values() if known.status == SYNCED
        )
        if (
            deletions
            and not self.options.allow_mass_delete
            and len(deletions) > MASS_DELETE_SHARE * synced_total
        ):
            raise PlanRefused(
                f"the plan would delete {len(deletions)} of {synced_total} synced objects in QuickBooks "
                f"(more than {MASS_DELETE_SHARE:.0%}); if TaxDome really deleted them, run with allow_mass_delete=true"
            )
        for kind, taxdome_id, known, why in deletions:
            payload = {"Id": str(known.qbo_id), "SyncToken": str(known.sync_token)}
            self._append_body(kind, taxdome_id, known.qbo_entity, "delete", payload, why, "")

    def _still_synced(self, kind: str, taxdome_id: str) -> bool:
        """Unchanged objects plan no operation; they are still synced when their owner still is."""
        if kind == "refund":
            return self.statuses["refund"].get(taxdome_id, (None,))[0] == SYNCED
        owner = self._owning_payment(kind, taxdome_id)
        owner_status = self.statuses["payment"].get(owner, (None,))[0]
        if kind == "fee":
            return owner_status == SYNCED and owner in self.synced_payments
        return owner_status == SYNCED

    @staticmethod
    def _owning_payment(kind: str, taxdome_id: str) -> str:
        """fee and payment ids are the payment id; a credit application is `credit payment:invoice:memo`."""
        return taxdome_id.split(":")[-1] if kind == "credit_application" else taxdome_id

    # -- result ----------------------------------------------------------------------------------------
    def _result(self) -> Plan:
        kinds: list[str] = []
        ids: list[str] = []
        verdicts: list[tuple] = []
        qbo_ids: list[str | None] = []
        for kind, by_id in self.statuses.items():
            kinds += [kind] * len(by_id)
            ids += by_id.keys()
            verdicts += by_id.values()
            known = self.state[kind]
            qbo_ids += [
                state.qbo_id
                if verdict[0] == SYNCED and (state := known.get(taxdome_id)) is not None
                else None
                for taxdome_id, verdict in by_id.items()
            ]
        self.statuses.clear()
        self.state.clear()
        verdict_columns = zip(*verdicts, strict=True) if verdicts else [[]] * 4
        statuses = pd.DataFrame(
            dict(zip(STATUS_COLUMNS, (kinds, ids, *verdict_columns, qbo_ids), strict=True)), dtype=object
        )
        del kinds, ids, verdicts, qbo_ids
        return Plan(self.operations.finish(), statuses)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Python objects with None for missing values, dates as YYYY-MM-DD: what the row-by-row rules read fastest."""

    return pd.DataFrame(
        {
            column: _python_values(frame[column], dates=column.endswith(("_date", "_at")))
            for column in frame.columns
        },
        index=frame.index,
        dtype=object,  # pandas 3 would otherwise infer Arrow strings again
    )


def _python_values(values: pd.Series, *, dates: bool = False) -> np.ndarray | list:
    """A column as Python objects, None where missing, dates as YYYY-MM-DD. A text column gets one object per
    distinct text, shared by its rows: kinds, methods, days and statuses repeat a lot."""
    if isinstance(values.dtype, pd.StringDtype):
        arrow = pa.array(values)
        encoded = pc.dictionary_encode(
            arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow
        )
        texts = encoded.dictionary.to_pylist()
        if dates:
            texts = [_date_text(text) for text in texts]
        lookup = np.array([*texts, None], dtype=object)
        return lookup[pc.fill_null(encoded.indices, len(texts)).to_numpy()]
    objects = values.to_numpy(dtype=object, na_value=None)
    return [_date_text(value) for value in objects] if dates else objects


def _index_state(state: pd.DataFrame) -> defaultdict[str, dict[str, _Known]]:
    """kind -> TaxDome id -> what the last sync left. Built from columns with the repeated texts shared: a
    namedtuple per row from itertuples, with its own copy of every text, costs several times the memory."""

    def column(name: str, *, repeated: bool = False) -> list:
        values = state[name].to_numpy(dtype=object, na_value=None).tolist()
        if repeated:
            shared: dict = {}
            values = [shared.setdefault(value, value) for value in values]
        return values

    index: defaultdict[str, dict[str, _Known]] = defaultdict(dict)
    known = map(
        _Known._make,
        zip(
            column("qbo_entity", repeated=True),
            column("qbo_id"),
            column("sync_token"),
            map(_digest_of, column("payload_hash")),
            column("status", repeated=True),
            strict=True,
        ),
    )
    kinds = column("taxdome_kind", repeated=True)
    for kind, taxdome_id, row in zip(kinds, column("taxdome_id"), known, strict=True):
        index[kind][taxdome_id] = row
    return index


@functools.lru_cache(maxsize=1024)
def _verdict(
    status: str, reason: str, entity: str | None, caused_by: str | None
) -> tuple[str, str, str | None, str | None]:
    """An object's status: the same tuple for the same verdict, as millions of unchanged objects share one."""
    return (status, reason, entity, caused_by)


def _digest_of(payload_hash: str | None) -> bytes | str | None:
    """A recorded hash as the digest its hex text encodes (half the memory of the text, for millions of
    objects); anything else as it is, which then matches no payload's digest, as it matched no hex text."""
    try:
        digest = bytes.fromhex(payload_hash)
    except (TypeError, ValueError):
        return payload_hash
    return digest if digest.hex() == payload_hash else payload_hash


def _distinct(values: pd.Series) -> set:
    """The distinct values, found in Arrow rather than by iterating a million Arrow strings one by one."""
    return set(pc.unique(pa.array(values)).to_pylist())


def _isin(values: pd.Series, wanted) -> np.ndarray:
    """Membership without pandas' element-by-element path for Arrow strings."""
    found = pc.is_in(pa.array(values, pa.string()), value_set=pa.array(list(wanted), pa.string()))
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


def _linked_line(cents: int, target: str, txn_type: str) -> dict[str, Any]:
    return {"Amount": format_cents(cents), "LinkedTxn": [{"TxnId": target, "TxnType": txn_type}]}


@functools.cache
def _quantity(text: str) -> tuple[Decimal, str]:
    """A staged quantity ('2.2500' or Decimal) as an exact number and as QBO text ('2.25'); few distinct values."""
    exact = Decimal(text)
    return exact, str(exact.normalize())


def _exact_unit_price(rate_cents, quantity, amount_cents: int) -> tuple[str, str] | None:
    """Qty and UnitPrice only when their product is the amount to the cent: QBO rejects a mismatch (6070)."""
    if rate_cents is None or quantity is None:
        return None
    exact, text = _quantity(str(quantity))
    if int(rate_cents) * exact != amount_cents:
        return None
    return text, format_cents(int(rate_cents))


def _split_absent(staged: StagedFirm) -> tuple[StagedFirm, list[tuple[str, str]]]:
    """Rows the latest full export no longer lists were deleted in TaxDome: plan without them."""

    def present(frame: pd.DataFrame) -> pd.Series:
        if "_absent_since_batch" not in frame:
            return pd.Series(True, index=frame.index)
        return frame["_absent_since_batch"].isna()

    absent = []
    kept = {}
    for kind in KINDS.values():
        if kind.id_column is None:
            continue
        name = kind.staged[0].name
        frame = getattr(staged, name)
        keep = present(frame)
        absent += [(kind.name, taxdome_id) for taxdome_id in frame.loc[~keep, kind.id_column]]
        kept[name] = frame[keep]
    invoices, payments = set(kept["invoices"]["invoice_id"]), set(kept["payments"]["payment_id"])
    lines = staged.invoice_lines
    kept["invoice_lines"] = lines[_isin(lines["invoice_id"], invoices)]
    applications = staged.payment_applications
    kept["payment_applications"] = applications[
        applications["invoice_id"].isin(invoices) & applications["payment_id"].isin(payments)
    ]
    return StagedFirm(**kept), absent


def build_plan(
    staged: StagedFirm,
    settings: FirmSettings,
    reference: QboReference,
    state: pd.DataFrame,
    options: PlanOptions | None = None,
    *,
    sink: Callable[[pd.DataFrame], None] | None = None,
) -> Plan:
    """Decide every QBO write for the staged export. Raises PlanRefused for a mass deletion not allowed.

    Operations are numbered by `seq` in execution order (increasing, not contiguous). Without a sink, the
    plan holds them all; with one, the sink gets them in frames as they are decided (not in seq order) and the
    plan returned holds none: a firm's operations need not all be in memory at once. A plan refused still
    sent some operations: record them in a transaction that the refusal rolls back.
    """
    options = options or PlanOptions()
    read = {}
    for name in StagedFirm.__dataclass_fields__:
        frame = getattr(staged, name)
        frame = frame[[c for c in (*READ_COLUMNS[name], "_absent_since_batch") if c in frame.columns]]
        read[name] = frame if STAGED_TABLES[name].chunked else _plain(frame)
    staged = StagedFirm(**read)
    absent: list[tuple[str, str]] = []
    if options.export_mode == "full":
        staged, absent = _split_absent(staged)
    planner = _Planner(staged, settings, reference, state, options, sink)
    for kind, taxdome_id in absent:
        planner.status(kind, taxdome_id, NOT_SYNCED, "no longer in TaxDome's export: deleted in TaxDome")
    # Millions of small payload dicts set off the cyclic collector again and again; freezing what exists
    # keeps each collection from re-walking the staged firm, and a higher first threshold makes collections
    # rarer (the payload dicts are freed by reference counting anyway). New garbage is still collected.
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, *thresholds[1:])
    try:
        return planner.plan()
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
