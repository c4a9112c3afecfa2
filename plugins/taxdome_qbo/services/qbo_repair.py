"""Repair duplicates: several QuickBooks objects carrying the same TaxDome marker (`taxdome:<kind>:<id>`), left
by concurrent loads of earlier versions or made by hand. One copy is kept, the one the sync state names (else
the oldest), and the later copies are removed as QBO allows: transactions deleted (an Invoice or Payment QBO
refuses to delete is voided), customers made inactive (QBO deletes no name-list object).

Duplicates are found in the read-back copies of the company (read incrementally first), so no entity is
scanned in QuickBooks twice. Each copy is read again right before it is removed, so what is removed is what
QuickBooks holds now, with its SyncToken. Every write carries a requestid derived from the copy and its
SyncToken (a lost answer is replayed, not repeated) and is recorded in `qbo_requests` under the repair's run.
Removing happens under the company's lease. When the sync state knows the object but names none of the copies
(it failed, or its create's outcome is unknown), the kept one becomes its synced copy, so the next sync updates
it instead of creating yet another. A second repair finds nothing to do.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taxdome_qbo.core.load_rules import MAX_REQUEST_ID, marker_field
from taxdome_qbo.core.qbo_faults import Answer, Fault, classify_fault, first_fault
from taxdome_qbo.core.vocabulary import SYNCED
from taxdome_qbo.services import company_lease, qbo_readback, sql, warehouse
from taxdome_qbo.services.loading import AuditedItem, audit_rows
from taxdome_qbo.services.qbo_client import QboSession

log = logging.getLogger(__name__)

# Payments before the invoices and credit memos they apply to: QBO refuses to delete a linked transaction.
REMOVAL_ORDER = ("Payment", "RefundReceipt", "Purchase", "CreditMemo", "Invoice", "Customer")
REMOVED, VOIDED, INACTIVE, GONE, FAILED = "deleted", "voided", "made inactive", "already gone", "failed"


@dataclass(frozen=True)
class QboCopy:
    qbo_id: str
    amount_cents: int | None
    sync_token: str | None


@dataclass(frozen=True)
class Duplicate:
    """One TaxDome object held more than once in QuickBooks: the copy kept and the later ones to remove."""

    entity: str
    marker: str
    kept: QboCopy
    extra: tuple[QboCopy, ...]
    in_sync_state: bool  # the sync state names the kept copy; else it is the oldest
    known_to_sync: bool  # the sync state has a row for the object (failed or pending when it names no copy)

    @property
    def kept_because(self) -> str:
        return "the sync state's" if self.in_sync_state else "the oldest"

    @property
    def taxdome_kind(self) -> str:
        return self.marker.split(":", 2)[1]

    @property
    def taxdome_id(self) -> str:
        return self.marker.split(":", 2)[2]


@dataclass(frozen=True)
class Removal:
    entity: str
    qbo_id: str
    marker: str
    outcome: str  # deleted, voided, made inactive, already gone, failed
    detail: str | None = None


@dataclass
class RepairReport:
    realm_id: str
    run_id: str
    applied: bool
    duplicates: list[Duplicate]
    removals: list[Removal] = field(default_factory=list)

    @property
    def failed(self) -> list[Removal]:
        return [removal for removal in self.removals if removal.outcome == FAILED]


def _numeric_order(qbo_id: str) -> tuple[int, str]:
    """QBO ids are increasing integers: the lowest is the oldest copy."""
    return (int(qbo_id), qbo_id) if qbo_id.isdigit() else (2**63, qbo_id)


def find_duplicates(engine: Engine, session: QboSession) -> list[Duplicate]:
    """The company's duplicated objects, in the order they can be removed (payments before what they pay)."""
    qbo_readback.read_back(engine, session, incremental=True)
    with engine.connect() as conn:
        rows = sql.fetch_all(conn, "repair/select_duplicates", realm_id=session.realm_id)
    duplicates = []
    for (entity, marker), group in groupby(rows, key=lambda row: (row.entity, row.marker)):
        copies = sorted(group, key=lambda row: _numeric_order(row.qbo_id))
        synced_id = copies[0].synced_qbo_id
        kept = next((row for row in copies if row.qbo_id == synced_id), copies[0])
        duplicates.append(
            Duplicate(
                entity=entity,
                marker=marker,
                kept=_copy(kept),
                extra=tuple(_copy(row) for row in copies if row is not kept),
                in_sync_state=kept.qbo_id == synced_id,
                known_to_sync=copies[0].state_status is not None,
            )
        )
    return sorted(duplicates, key=lambda d: (REMOVAL_ORDER.index(d.entity), d.marker))


def _copy(row: sa.Row) -> QboCopy:
    amount = None if row.amount_cents is None else int(row.amount_cents)
    return QboCopy(row.qbo_id, amount, row.sync_token)


def repair_duplicates(
    engine: Engine,
    session: QboSession,
    *,
    apply: bool,
    wait_seconds: float = company_lease.COMMAND_WAIT_SECONDS,
) -> RepairReport:
    """List the duplicates (`apply=False`: nothing changes in QuickBooks), or remove their later copies
    under the company's lease (CompanyBusy when another writer keeps it longer than `wait_seconds`)."""
    run_id = f"repair__{datetime.now(UTC):%Y-%m-%dT%H%M%S.%f}"
    if not apply:
        return RepairReport(session.realm_id, run_id, False, find_duplicates(engine, session))
    with company_lease.company_lease(
        engine, session.realm_id, f"repair-duplicates {run_id}", wait_seconds=wait_seconds
    ) as lease:
        report = RepairReport(session.realm_id, run_id, True, find_duplicates(engine, session))
        for duplicate in report.duplicates:
            for extra in duplicate.extra:
                lease.verify()
                report.removals.append(_remove(engine, session, run_id, duplicate, extra))
            if duplicate.known_to_sync and not duplicate.in_sync_state:
                _adopt(engine, session.realm_id, duplicate)
        # The copies as they are now, so a reconciliation or a second repair starts from them.
        qbo_readback.read_back(engine, session, incremental=True)
    return report


def _request_id(realm_id: str, entity: str, qbo_id: str, action: str, sync_token: str) -> str:
    """The same for a repeated removal of the same version of a copy, so a lost answer is replayed."""
    digest = hashlib.sha256("|".join((realm_id, "repair", entity, qbo_id, action, sync_token)).encode())
    return "rp-" + digest.hexdigest()[: MAX_REQUEST_ID - 3]


def _removals(entity: str, key: dict) -> Iterator[tuple[str, str, dict, dict]]:
    """How QBO lets a copy go, in order of preference: (outcome, audited operation, body, query parameters)."""
    if entity == "Customer":
        yield INACTIVE, "update", {**key, "sparse": True, "Active": False}, {}
        return
    yield REMOVED, "delete", key, {"operation": "delete"}
    if entity == "Invoice":
        yield VOIDED, "void", key, {"operation": "void"}
    elif entity == "Payment":
        yield VOIDED, "void", {**key, "sparse": True}, {"operation": "update", "include": "void"}


def _remove(
    engine: Engine, session: QboSession, run_id: str, duplicate: Duplicate, extra: QboCopy
) -> Removal:
    entity, qbo_id = duplicate.entity, extra.qbo_id
    current = session.send("GET", f"{entity.lower()}/{qbo_id}")
    found = (current.body or {}).get(entity)
    if not isinstance(found, dict):
        fault = first_fault(current.body) or Fault(str(current.status), "No object in the answer", "")
        if classify_fault(fault) is Answer.NOT_FOUND:
            return Removal(entity, qbo_id, duplicate.marker, GONE)
        return Removal(entity, qbo_id, duplicate.marker, FAILED, fault.describe())
    note = found.get(marker_field(entity))
    if note != duplicate.marker or found.get("Active") is False:
        return Removal(entity, qbo_id, duplicate.marker, GONE, "no longer a copy (changed since it was read)")
    key = {"Id": qbo_id, "SyncToken": str(found["SyncToken"])}
    refusals = []
    for outcome, operation, body, params in _removals(entity, key):
        request_id = _request_id(session.realm_id, entity, qbo_id, operation, key["SyncToken"])
        answer = session.send("POST", entity.lower(), body=body, params={"requestid": request_id, **params})
        item = AuditedItem(None, duplicate.taxdome_kind, duplicate.taxdome_id, entity, operation)
        with engine.begin() as conn:
            conn.execute(
                warehouse.qbo_requests.insert(),
                audit_rows(session.realm_id, run_id, request_id, answer, [item]),
            )
        if isinstance((answer.body or {}).get(entity), dict):
            log.info(
                "QuickBooks company %s: %s %s %s (%s)",
                session.realm_id,
                outcome,
                entity,
                qbo_id,
                duplicate.marker,
            )
            return Removal(entity, qbo_id, duplicate.marker, outcome)
        fault = first_fault(answer.body) or Fault(str(answer.status), "No object in the answer", "")
        refusals.append(f"{operation}: {fault.describe()}")
    return Removal(entity, qbo_id, duplicate.marker, FAILED, "; ".join(refusals))


def _adopt(engine: Engine, realm_id: str, duplicate: Duplicate) -> None:
    """The kept copy becomes the object's synced copy; no payload hash, so the next plan updates it with
    TaxDome's data."""
    table = warehouse.qbo_sync_state
    values = {
        "qbo_entity": duplicate.entity,
        "qbo_id": duplicate.kept.qbo_id,
        "sync_token": duplicate.kept.sync_token,
        "payload_hash": None,
        "status": SYNCED,
        "reason": f"kept by repair-duplicates ({duplicate.kept_because} of {len(duplicate.extra) + 1} copies)",
        "pending_action": None,
        "pending_since": None,
        "updated_at": datetime.now(UTC),
    }
    with engine.begin() as conn:
        statement = warehouse.insert_for(conn)(table).values(
            realm_id=realm_id, taxdome_kind=duplicate.taxdome_kind, taxdome_id=duplicate.taxdome_id, **values
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.realm_id, table.c.taxdome_kind, table.c.taxdome_id],
                set_={name: statement.excluded[name] for name in values},
            )
        )
