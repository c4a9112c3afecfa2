"""Load a run's plan into QBO so that, whatever fails, QBO ends with exactly one copy of every object.

Operations run phase by phase (deletions, then customers and items, invoices, payments, credit memos and
their applications, fees, refunds: each phase only refers to objects of earlier ones), in batches of up to
30 independent operations. Every write carries a deterministic `requestid` that its retries reuse, so QBO
answers a repeated request with its first answer instead of writing twice. The sync state records each
write as pending before it is sent and as done (with the QBO id) after, in the same transaction as the
object's status and the request audit: a crash leaves a known set of writes whose outcome is unknown, and
before re-creating one of those the loader looks for it in QBO (by its marker or natural key) and adopts
what it finds.

QBO's refusal of one object (a data fault) becomes that object's `failed` status with a message finance
understands, and the objects that need it become `not_synced` with the cause; the run goes on. Only
infrastructure or authorization errors that outlast the retries stop the run.

This module decides what to send and sends it; `load_ledger.py` records every answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taxdome_qbo.core import load_rules
from taxdome_qbo.core.kinds import ENTITIES
from taxdome_qbo.core.load_rules import UnresolvedReference
from taxdome_qbo.core.qbo_faults import Answer, Fault, category_of, classify_fault, first_fault
from taxdome_qbo.core.vocabulary import SYNCED, symbolic
from taxdome_qbo.services import company_lease, sql, warehouse
from taxdome_qbo.services.company_lease import CompanyLease
from taxdome_qbo.services.load_ledger import DELETED, LoadLedger, LoadReceipt, Operation, SyncState
from taxdome_qbo.services.load_ledger import AuditedItem as AuditedItem  # re-exported: qbo_repair audits too
from taxdome_qbo.services.load_ledger import audit_rows as audit_rows
from taxdome_qbo.services.qbo_client import QboSession, QboUnavailableError, RawAnswer, query_all, quote

log = logging.getLogger(__name__)

PAGE_SIZE = 5_000
BATCH_SIZE = 30  # Intuit's recommended maximum per batch request
# The sync state is looked up for this many operations at a time (a few queries every 33 batches): the load
# holds the state of a window, never the company's.
WINDOW_OPERATIONS = 1_000
_OUTCOME = {"create": "created", "update": "updated", "reactivate": "reactivated", "delete": "deleted"}


Planned = tuple[Operation, dict]  # an operation of the plan and its payload, read


class LoadRefused(RuntimeError):
    """The run's plan cannot be loaded as it is (no plan, a dry run, another company)."""


class UnansweredWritesError(QboUnavailableError):
    """Some writes got no answer: their outcome is unknown until the next attempt looks them up."""


@dataclass(frozen=True)
class Selection:
    """Load only these objects (`(kind, id)` of their status) or categories, and what needs them; None
    loads everything."""

    objects: frozenset[tuple[str, str]] = frozenset()
    categories: frozenset[str] = frozenset()

    def covers(self, kind: str, taxdome_id: str) -> bool:
        return load_rules.status_key(kind, taxdome_id) in self.objects or category_of(kind) in self.categories


@dataclass(frozen=True)
class LoadOptions:
    batch_size: int = BATCH_SIZE
    progress_every_seconds: float = 30.0
    selection: Selection | None = None
    lease_wait_seconds: float = company_lease.TASK_WAIT_SECONDS  # for another writer of the company


class _Loader:
    """Decides, operation by operation, what to send and sends it; the ledger records every answer."""

    def __init__(
        self,
        engine: Engine,
        session: QboSession,
        run_id: str,
        options: LoadOptions,
        progress: Callable[[str], None],
        lease: CompanyLease,
    ) -> None:
        self.engine = engine
        self.session = session
        self.lease = lease
        self.run_id = run_id
        self.realm_id = session.realm_id
        self.options = options
        self.ledger = LoadLedger(engine, session, run_id, progress, options.progress_every_seconds)
        self.unanswered: list[Operation] = []
        self.selected_references: set[str] = set()

    def _operations(self) -> Iterator[Operation]:
        after = 0
        while True:
            with self.engine.connect() as conn:
                page = sql.fetch_all(
                    conn, "loading/select_plan_page", run_id=self.run_id, after_seq=after, page_size=PAGE_SIZE
                )
            yield from (Operation(*row) for row in page)
            if len(page) < PAGE_SIZE:
                return
            after = page[-1].seq

    def _chunks(self) -> Iterator[list[Planned]]:
        """The plan in batches: up to `batch_size` operations of one phase, each with its payload read."""
        chunk: list[Planned] = []
        for operation in self._operations():
            if chunk and (
                load_rules.phase_of(operation.seq) != load_rules.phase_of(chunk[0][0].seq)
                or len(chunk) == self.options.batch_size
            ):
                yield chunk
                chunk = []
            chunk.append((operation, json.loads(operation.payload, parse_float=Decimal)))
        if chunk:
            yield chunk

    def _windows(self) -> Iterator[list[list[Planned]]]:
        """The batches, grouped into windows of at least WINDOW_OPERATIONS operations (the last: the rest)."""
        window: list[list[Planned]] = []
        size = 0
        for chunk in self._chunks():
            window.append(chunk)
            size += len(chunk)
            if size >= WINDOW_OPERATIONS:
                yield window
                window, size = [], 0
        if window:
            yield window

    def run(self) -> LoadReceipt:
        started = time.monotonic()
        self.ledger.read_planned()
        phase = None
        for window in self._windows():
            self.ledger.look_up(_state_keys(window))
            for chunk in window:
                chunk_phase = load_rules.phase_of(chunk[0][0].seq)
                if phase is not None and chunk_phase != phase:
                    self.ledger.report(force=True)
                phase = chunk_phase
                self._load_chunk(chunk)
        receipt = self.ledger.finish(started)
        if self.unanswered:
            raise UnansweredWritesError(
                f"{len(self.unanswered)} write(s) got no answer from QuickBooks (first: "
                f"{self.unanswered[0].kind} {self.unanswered[0].taxdome_id}); they stay pending and the next "
                "attempt looks each up in QuickBooks before sending it again: retry the task"
            )
        return receipt

    def _load_chunk(self, chunk: list[Planned]) -> None:
        ledger = self.ledger
        to_send: list[tuple[Operation, dict, str]] = []
        selection = self.options.selection
        for operation, payload in chunk:
            ledger.reached(operation)
            if selection is not None and not self._selected(operation, payload):
                ledger.receipt.count(operation.kind, "deferred")
                continue
            known = ledger.known(operation)
            if self._already_done(operation, known):
                ledger.receipt.count(operation.kind, "already_done")
                continue
            if operation.action == "link":
                ledger.succeeded(operation, payload["Id"], None, "linked", request_id=None)
                continue
            try:
                resolved = load_rules.resolve(payload, ledger.qbo_id_of)
            except UnresolvedReference as missing:
                ledger.dependency_missing(operation, missing.reference)
                continue
            request_id = load_rules.operation_request_id(
                self.realm_id,
                self.run_id,
                operation.kind,
                operation.taxdome_id,
                operation.action,
                operation.payload_hash,
            )
            if operation.action == "create" and known is not None and known.pending_action == "create":
                found = self._find_created(operation.entity, resolved)
                if found is not None:
                    # The earlier attempt wrote it: adopt it (with its hash only if it sent this very payload).
                    same = known.last_request_id == request_id
                    ledger.succeeded(
                        operation,
                        str(found["Id"]),
                        str(found.get("SyncToken")),
                        "adopted",
                        request_id=None,
                        payload_hash=operation.payload_hash if same else None,
                    )
                    continue
            to_send.append((operation, resolved, request_id))
        if to_send:
            self.lease.verify()
            ledger.mark_pending([(operation, request_id) for operation, _, request_id in to_send])
            self._send(to_send)
        ledger.record()
        ledger.report()

    def _selected(self, operation: Operation, payload: dict) -> bool:
        """Chosen, or needing a chosen object: what waited for a failed account goes with it once it syncs."""
        chosen = self.options.selection.covers(operation.kind, operation.taxdome_id) or bool(
            load_rules.references_in(payload) & self.selected_references
        )
        if chosen:
            self.selected_references.add(symbolic(operation.kind, operation.taxdome_id))
        return chosen

    def _already_done(self, operation: Operation, known: SyncState | None) -> bool:
        """True when an earlier attempt of this run (or an identical plan) already did this operation."""
        if known is None or known.pending_action is not None:
            return False
        if operation.action == "delete":
            return known.status == DELETED
        if operation.action == "create":
            # Planned before another run (a retry, another load) created it: never a second copy. The next
            # plan compares that run's payload with TaxDome's and updates the object if they differ.
            return known.status == SYNCED and known.qbo_id is not None
        return known.status == SYNCED and known.payload_hash == operation.payload_hash

    # -- sending ---------------------------------------------------------------------------------------
    def _send(self, to_send: list[tuple[Operation, dict, str]]) -> None:
        if len(to_send) == 1:
            operation, resolved, request_id = to_send[0]
            answer = self._send_one(operation, resolved, request_id)
            self.ledger.audit(answer, request_id, [(None, operation)])
            self._settle(operation, resolved, request_id, answer.body, answer.status)
            return
        request_ids = [request_id for _, _, request_id in to_send]
        batch_id = load_rules.batch_request_id(request_ids)
        items = [
            {
                "bId": str(position),
                "operation": _batch_operation(operation.action),
                operation.entity: resolved,
            }
            for position, (operation, resolved, _) in enumerate(to_send, start=1)
        ]
        answer = self.session.send(
            "POST", "batch", body={"BatchItemRequest": items}, params={"requestid": batch_id}, batch=True
        )
        self.ledger.audit(
            answer,
            batch_id,
            [(str(position), op) for position, (op, _, _) in enumerate(to_send, 1)],
        )
        if answer.answer is not Answer.OK:
            fault = first_fault(answer.body)
            raise QboUnavailableError(
                f"QuickBooks refused a whole batch ({fault.describe() if fault else f'HTTP {answer.status}'})"
            )
        by_bid = {str(item.get("bId")): item for item in answer.body.get("BatchItemResponse", [])}
        for position, (operation, resolved, request_id) in enumerate(to_send, start=1):
            item = by_bid.get(str(position))
            if item is None:
                self.unanswered.append(operation)
                self.ledger.receipt.count(operation.kind, "unanswered")
                continue
            self._settle(operation, resolved, request_id, item, answer.status)

    def _send_one(self, operation: Operation, resolved: dict, request_id: str) -> RawAnswer:
        params = {"requestid": request_id}
        if operation.action == "delete":
            params["operation"] = "delete"
        return self.session.send("POST", operation.entity.lower(), body=resolved, params=params)

    def _settle(
        self,
        operation: Operation,
        resolved: dict,
        request_id: str,
        answer: dict | None,
        status: int,
        *,
        stale_retried: bool = False,
    ) -> None:
        """Record one operation's answer: its object, or its fault (a stale object is re-read and retried
        once)."""
        written = (answer or {}).get(operation.entity)
        if isinstance(written, dict):
            self.ledger.succeeded(
                operation,
                str(written["Id"]),
                _text(written.get("SyncToken")),
                _OUTCOME[operation.action],
                request_id,
            )
            return
        fault = first_fault(answer) or Fault(str(status), "No object in the answer", "")
        verdict = classify_fault(fault)
        if verdict is Answer.STALE and operation.action != "create" and not stale_retried:
            self._retry_stale(operation, resolved, request_id)
        elif verdict is Answer.NOT_FOUND and operation.action == "delete":
            self.ledger.succeeded(operation, resolved["Id"], None, "deleted", request_id)
        elif verdict is Answer.COMPANY_FAULT:
            self.ledger.record()
            raise QboUnavailableError(
                f"QuickBooks refused the company's request ({fault.describe()}): reconnect the company "
                "(`python -m taxdome_qbo reconnect`) and check its subscription"
            )
        else:
            self.ledger.failed(operation, fault)

    def _retry_stale(self, operation: Operation, resolved: dict, request_id: str) -> None:
        """5010: someone changed the object since we read it. Re-read it, re-apply ours on its SyncToken, once."""
        current = self.session.send("GET", f"{operation.entity.lower()}/{resolved['Id']}")
        fresh = (current.body or {}).get(operation.entity)
        if not isinstance(fresh, dict):
            self.ledger.failed(
                operation, first_fault(current.body) or Fault("5010", "Stale Object Error", "")
            )
            return
        again = {**resolved, "SyncToken": str(fresh["SyncToken"])}
        retry_id = "ts-" + request_id[3:]
        answer = self._send_one(operation, again, retry_id)
        self.ledger.audit(answer, retry_id, [(None, operation)])
        self._settle(operation, again, retry_id, answer.body, answer.status, stale_retried=True)

    def _find_created(self, entity: str, resolved: dict) -> dict | None:
        """The object an earlier attempt may have created: searched by natural key, told apart by marker."""
        conditions = [
            f"{name} = {quote(value)}" for name, value in load_rules.lookup_conditions(entity, resolved)
        ]
        if ENTITIES[entity].name_list:
            conditions.append("Active IN (true, false)")
        candidates = query_all(self.session, entity, " AND ".join(conditions))
        return next(
            (found for found in candidates if load_rules.is_same_object(entity, resolved, found)), None
        )


def _state_keys(window: Sequence[Sequence[Planned]]) -> set[tuple[str, str]]:
    """The objects whose sync state a window's decisions read: its operations' and those they refer to."""
    keys = set()
    for chunk in window:
        for operation, payload in chunk:
            keys.add((operation.kind, operation.taxdome_id))
            keys.update(map(load_rules.referenced, load_rules.references_in(payload)))
    return keys


def _batch_operation(action: str) -> str:
    return "delete" if action == "delete" else "create" if action == "create" else "update"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class LoadSummary:
    run_id: str
    realm_id: str
    loaded_at: datetime
    receipt: dict
    requests: list[sa.Row]  # entity, operation, http_status, items


def latest_load(engine: Engine) -> LoadSummary | None:
    """What the most recent load did: its receipt and its write requests by entity, operation and status."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        found = sql.fetch_all(conn, "loading/select_latest_loaded_run")
        if not found:
            return None
        run = found[0]
        requests = sql.fetch_all(conn, "loading/select_request_counts", run_id=run.run_id)
    return LoadSummary(run.run_id, run.realm_id, run.loaded_at, json.loads(run.load_receipt), requests)


def plan_run(engine: Engine, run_id: str) -> sa.Row | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(warehouse.sync_plan_runs).where(warehouse.sync_plan_runs.c.run_id == run_id)
        ).one_or_none()


def load_plan(
    engine: Engine,
    session: QboSession,
    run_id: str,
    *,
    options: LoadOptions | None = None,
    progress: Callable[[str], None] = log.info,
) -> LoadReceipt:
    """Execute the run's plan against the session's company; returns the outcomes.

    Safe to repeat: an operation an earlier attempt finished is not sent again, one whose outcome is
    unknown is looked up first, and every request reuses its requestid. The company's lease is held
    throughout (waiting up to `options.lease_wait_seconds` for another writer) and verified before every
    batch, so no other plan or load can write to the company meanwhile. Raises LoadRefused when the plan is
    missing, a dry run, or for another company; CompanyBusy when another writer keeps the company;
    LeaseLost when the lease was lost midway; QboUnavailableError / QboAuthorizationError when QBO stays
    unreachable or refuses the company.
    """
    warehouse.create_schema(engine)
    run = plan_run(engine, run_id)
    if run is None:
        raise LoadRefused(f"run {run_id} has no plan: the plan task must run first")
    if run.dry_run:
        raise LoadRefused(f"run {run_id} is a dry run: nothing is written to QuickBooks")
    if run.realm_id != session.realm_id:
        raise LoadRefused(
            f"run {run_id} was planned for QuickBooks company {run.realm_id}, but company "
            f"{session.realm_id} is connected now: plan again"
        )
    options = options or LoadOptions()
    with company_lease.company_lease(
        engine, session.realm_id, f"load of run {run_id}", wait_seconds=options.lease_wait_seconds
    ) as lease:
        return _Loader(engine, session, run_id, options, progress, lease).run()
