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
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core import load_rules
from taxdome_qbo.core.kinds import ENTITIES, KINDS
from taxdome_qbo.core.load_rules import UnresolvedReference
from taxdome_qbo.core.qbo_faults import (
    Answer,
    Fault,
    category_of,
    classify_fault,
    finance_message,
    first_fault,
)
from taxdome_qbo.core.vocabulary import FAILED, NOT_SYNCED, SYNCED, failure_key, symbolic
from taxdome_qbo.services import company_lease, sql, warehouse
from taxdome_qbo.services.company_lease import CompanyLease
from taxdome_qbo.services.qbo_client import QboSession, QboUnavailableError, RawAnswer, query_all, quote
from taxdome_qbo.services.warehouse import insert_for

log = logging.getLogger(__name__)

PENDING, DELETED = "pending", "deleted"
PAGE_SIZE = 5_000
BATCH_SIZE = 30  # Intuit's recommended maximum per batch request
_OUTCOME = {"create": "created", "update": "updated", "reactivate": "reactivated", "delete": "deleted"}


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


@dataclass
class LoadReceipt:
    """Small enough for XCom: outcomes per kind, and what it took."""

    run_id: str
    realm_id: str
    outcomes: Counter = field(default_factory=Counter)  # (kind, outcome) -> operations
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    token_refreshes: int = 0
    seconds: float = 0.0

    def count(self, kind: str, outcome: str, n: int = 1) -> None:
        self.outcomes[(kind, outcome)] += n

    def by_kind(self) -> dict[str, dict[str, int]]:
        nested: dict[str, dict[str, int]] = {}
        for (kind, outcome), n in sorted(self.outcomes.items()):
            nested.setdefault(kind, {})[outcome] = n
        return nested

    @property
    def failed(self) -> int:
        return sum(n for (_, outcome), n in self.outcomes.items() if outcome == FAILED)

    def as_xcom(self) -> dict:
        return {
            "run_id": self.run_id,
            "realm_id": self.realm_id,
            "outcomes": self.by_kind(),
            "requests": self.requests,
            "throttled": self.throttled,
            "retries": self.retries,
            "token_refreshes": self.token_refreshes,
            "seconds": round(self.seconds, 1),
        }


class _Operation(NamedTuple):
    seq: int
    kind: str
    taxdome_id: str
    entity: str
    action: str
    payload: str
    payload_hash: str
    reason: str


class _State(NamedTuple):
    qbo_entity: str | None
    qbo_id: str | None
    sync_token: str | None
    payload_hash: str | None
    status: str
    pending_action: str | None
    last_request_id: str | None


@dataclass
class _Outcomes:
    """What one batch decided, written in one transaction."""

    states: list[dict] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


class _Loader:
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
        self.progress = progress
        self.receipt = LoadReceipt(run_id, self.realm_id)
        self.state = self._read_state()
        # "@kind:id" -> why it has no QBO object, and the failed object behind that (`caused_by`)
        self.causes: dict[str, tuple[str, str]] = {}
        self.unanswered: list[_Operation] = []
        self.selected_references: set[str] = set()
        self.done_in_phase: Counter = Counter()
        self.planned: dict[tuple[str, str], int] = {}
        self.last_progress = time.monotonic()

    # -- reading ---------------------------------------------------------------------------------------
    def _read_state(self) -> dict[tuple[str, str], _State]:
        table = warehouse.qbo_sync_state
        columns = [table.c.taxdome_kind, table.c.taxdome_id, *(table.c[name] for name in _State._fields)]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).where(table.c.realm_id == self.realm_id))
            return {(row[0], row[1]): _State(*row[2:]) for row in rows}

    def _operations(self) -> Iterator[_Operation]:
        after = 0
        while True:
            with self.engine.connect() as conn:
                page = sql.fetch_all(
                    conn, "loading/select_plan_page", run_id=self.run_id, after_seq=after, page_size=PAGE_SIZE
                )
            yield from (_Operation(*row) for row in page)
            if len(page) < PAGE_SIZE:
                return
            after = page[-1].seq

    def _qbo_id_of(self, reference: str) -> str | None:
        kind, taxdome_id = reference[1:].split(":", 1)
        known = self.state.get((kind, taxdome_id))
        return known.qbo_id if known is not None and known.status == SYNCED else None

    # -- the run ---------------------------------------------------------------------------------------
    def run(self) -> LoadReceipt:
        started = time.monotonic()
        with self.engine.connect() as conn:
            for row in sql.fetch_all(conn, "planning/select_plan_counts", run_id=self.run_id):
                self.planned[(row.taxdome_kind, row.action)] = int(row.operations)
        phase, chunk = None, []
        for operation in self._operations():
            operation_phase = load_rules.phase_of(operation.seq)
            if chunk and (operation_phase != phase or len(chunk) == self.options.batch_size):
                self._load_chunk(chunk)
                chunk = []
                if operation_phase != phase:
                    self._report(force=True)
            phase = operation_phase
            chunk.append(operation)
        if chunk:
            self._load_chunk(chunk)
        self._report(force=True)
        self._add_links()
        stats = self.session.stats
        self.receipt.requests, self.receipt.throttled = stats.requests, stats.throttled
        self.receipt.retries, self.receipt.token_refreshes = stats.retries, stats.token_refreshes
        self.receipt.seconds = time.monotonic() - started
        with self.engine.begin() as conn:
            conn.execute(
                warehouse.sync_plan_runs.update()
                .where(warehouse.sync_plan_runs.c.run_id == self.run_id)
                .values(loaded_at=_now(), load_receipt=json.dumps(self.receipt.as_xcom()))
            )
        if self.unanswered:
            raise UnansweredWritesError(
                f"{len(self.unanswered)} write(s) got no answer from QuickBooks (first: "
                f"{self.unanswered[0].kind} {self.unanswered[0].taxdome_id}); they stay pending and the next "
                "attempt looks each up in QuickBooks before sending it again: retry the task"
            )
        return self.receipt

    def _report(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_progress < self.options.progress_every_seconds:
            return
        self.last_progress = time.monotonic()
        done = ", ".join(
            f"{kind} {action} {self.done_in_phase[(kind, action)]}/{total}"
            for (kind, action), total in sorted(self.planned.items())
            if self.done_in_phase[(kind, action)]
        )
        stats = self.session.stats
        self.progress(
            f"QuickBooks load of {self.run_id}: {done or 'nothing done yet'} · requests {stats.requests}, "
            f"429s {stats.throttled}, retries {stats.retries}, token refreshes {stats.token_refreshes}"
        )

    def _load_chunk(self, chunk: list[_Operation]) -> None:
        outcomes = _Outcomes()
        to_send: list[tuple[_Operation, dict, str]] = []
        selection = self.options.selection
        for operation in chunk:
            self.done_in_phase[(operation.kind, operation.action)] += 1
            payload = json.loads(operation.payload, parse_float=Decimal)
            if selection is not None and not self._selected(operation, payload):
                self.receipt.count(operation.kind, "deferred")
                continue
            known = self.state.get((operation.kind, operation.taxdome_id))
            if self._already_done(operation, known):
                self.receipt.count(operation.kind, "already_done")
                continue
            if operation.action == "link":
                self._succeeded(outcomes, operation, payload["Id"], None, "linked", request_id=None)
                continue
            try:
                resolved = load_rules.resolve(payload, self._qbo_id_of)
            except UnresolvedReference as missing:
                self._dependency_missing(outcomes, operation, missing.reference)
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
                    self._succeeded(
                        outcomes,
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
            self._mark_pending(to_send)
            self._send(outcomes, to_send)
        self._record(outcomes)
        self._report()

    def _selected(self, operation: _Operation, payload: dict) -> bool:
        """Chosen, or needing a chosen object: what waited for a failed account goes with it once it syncs."""
        chosen = self.options.selection.covers(operation.kind, operation.taxdome_id) or bool(
            load_rules.references_in(payload) & self.selected_references
        )
        if chosen:
            self.selected_references.add(symbolic(operation.kind, operation.taxdome_id))
        return chosen

    def _already_done(self, operation: _Operation, known: _State | None) -> bool:
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
    def _mark_pending(self, to_send: list[tuple[_Operation, dict, str]]) -> None:
        now = _now()
        rows = []
        for operation, _, request_id in to_send:
            key = (operation.kind, operation.taxdome_id)
            known = self.state.get(key)
            rows.append(
                {
                    "realm_id": self.realm_id,
                    "taxdome_kind": operation.kind,
                    "taxdome_id": operation.taxdome_id,
                    "qbo_entity": operation.entity,
                    "status": known.status if known is not None and known.status != FAILED else PENDING,
                    "pending_action": operation.action,
                    "pending_since": now,
                    "last_request_id": request_id,
                    "updated_at": now,
                }
            )
            base = known or _State(operation.entity, None, None, None, PENDING, None, None)
            self.state[key] = base._replace(
                status=rows[-1]["status"], pending_action=operation.action, last_request_id=request_id
            )
        with self.engine.begin() as conn:
            _upsert(conn, warehouse.qbo_sync_state, ("realm_id", "taxdome_kind", "taxdome_id"), rows)

    def _send(self, outcomes: _Outcomes, to_send: list[tuple[_Operation, dict, str]]) -> None:
        if len(to_send) == 1:
            operation, resolved, request_id = to_send[0]
            answer = self._send_one(operation, resolved, request_id)
            self._audit(outcomes, answer, request_id, [(None, operation)])
            self._settle(outcomes, operation, resolved, request_id, answer.body, answer.status)
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
        self._audit(
            outcomes,
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
                self.receipt.count(operation.kind, "unanswered")
                continue
            self._settle(outcomes, operation, resolved, request_id, item, answer.status)

    def _send_one(self, operation: _Operation, resolved: dict, request_id: str) -> RawAnswer:
        params = {"requestid": request_id}
        if operation.action == "delete":
            params["operation"] = "delete"
        return self.session.send("POST", operation.entity.lower(), body=resolved, params=params)

    def _settle(
        self,
        outcomes: _Outcomes,
        operation: _Operation,
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
            self._succeeded(
                outcomes,
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
            self._retry_stale(outcomes, operation, resolved, request_id)
        elif verdict is Answer.NOT_FOUND and operation.action == "delete":
            self._succeeded(outcomes, operation, resolved["Id"], None, "deleted", request_id)
        elif verdict is Answer.COMPANY_FAULT:
            self._record(outcomes)
            raise QboUnavailableError(
                f"QuickBooks refused the company's request ({fault.describe()}): reconnect the company "
                "(`python -m taxdome_qbo reconnect`) and check its subscription"
            )
        else:
            self._failed(outcomes, operation, fault)

    def _retry_stale(
        self, outcomes: _Outcomes, operation: _Operation, resolved: dict, request_id: str
    ) -> None:
        """5010: someone changed the object since we read it. Re-read it, re-apply ours on its SyncToken, once."""
        current = self.session.send("GET", f"{operation.entity.lower()}/{resolved['Id']}")
        fresh = (current.body or {}).get(operation.entity)
        if not isinstance(fresh, dict):
            self._failed(
                outcomes, operation, first_fault(current.body) or Fault("5010", "Stale Object Error", "")
            )
            return
        again = {**resolved, "SyncToken": str(fresh["SyncToken"])}
        retry_id = "ts-" + request_id[3:]
        answer = self._send_one(operation, again, retry_id)
        self._audit(outcomes, answer, retry_id, [(None, operation)])
        self._settle(outcomes, operation, again, retry_id, answer.body, answer.status, stale_retried=True)

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

    # -- outcomes --------------------------------------------------------------------------------------
    def _succeeded(
        self,
        outcomes: _Outcomes,
        operation: _Operation,
        qbo_id: str,
        sync_token: str | None,
        outcome: str,
        request_id: str | None,
        *,
        payload_hash: str | None = None,
    ) -> None:
        key = (operation.kind, operation.taxdome_id)
        known = self.state.get(key)
        deleted = operation.action == "delete"
        state = _State(
            operation.entity,
            qbo_id,
            sync_token,
            payload_hash if outcome == "adopted" else operation.payload_hash,
            DELETED if deleted else SYNCED,
            None,
            request_id or (known.last_request_id if known else None),
        )
        self.state[key] = state
        outcomes.states.append(self._state_row(operation, state, reason=None))
        self.receipt.count(operation.kind, outcome)
        if deleted:
            return
        self.causes.pop(symbolic(operation.kind, operation.taxdome_id), None)
        if KINDS[operation.kind].own_status_row:
            kind, taxdome_id = load_rules.status_key(operation.kind, operation.taxdome_id)
            outcomes.statuses.append(
                self._status_row(
                    kind,
                    taxdome_id,
                    SYNCED,
                    operation.reason,
                    operation.entity,
                    qbo_id,
                    load_rules.app_link(self.session.app_url, operation.entity, qbo_id),
                )
            )

    def _failed(self, outcomes: _Outcomes, operation: _Operation, fault: Fault) -> None:
        message = finance_message(operation.kind, operation.action, fault)
        key = (operation.kind, operation.taxdome_id)
        known = self.state.get(key)
        # An object QBO already holds stays synced (its last good version is there); a refused create failed.
        exists = known is not None and known.qbo_id is not None and known.status in (SYNCED, PENDING)
        state = (known or _State(operation.entity, None, None, None, FAILED, None, None))._replace(
            status=SYNCED if exists else FAILED, pending_action=None
        )
        self.state[key] = state
        outcomes.states.append(self._state_row(operation, state, reason=message))
        kind, taxdome_id = load_rules.status_key(operation.kind, operation.taxdome_id)
        self.causes[symbolic(operation.kind, operation.taxdome_id)] = (message, failure_key(kind, taxdome_id))
        outcomes.statuses.append(
            self._status_row(kind, taxdome_id, FAILED, message, operation.entity, None, None)
        )
        self.receipt.count(operation.kind, FAILED)
        log.warning("%s %s: %s", operation.kind, operation.taxdome_id, message)

    def _dependency_missing(self, outcomes: _Outcomes, operation: _Operation, reference: str) -> None:
        what = load_rules.describe_reference(reference)
        # A reference that failed before this load is the failure behind it itself.
        missing = failure_key(*load_rules.status_key(*load_rules.referenced(reference)))
        cause, failed = self.causes.get(reference, (None, missing))
        reason = f"its {what} is not in QuickBooks" + (f": {cause}" if cause else "")
        self.causes[symbolic(operation.kind, operation.taxdome_id)] = (reason, failed)
        kind, taxdome_id = load_rules.status_key(operation.kind, operation.taxdome_id)
        outcomes.statuses.append(
            self._status_row(kind, taxdome_id, NOT_SYNCED, reason, None, None, None, caused_by=failed)
        )
        self.receipt.count(operation.kind, NOT_SYNCED)

    def _state_row(self, operation: _Operation, state: _State, *, reason: str | None) -> dict:
        return {
            "realm_id": self.realm_id,
            "taxdome_kind": operation.kind,
            "taxdome_id": operation.taxdome_id,
            **state._asdict(),
            "reason": reason,
            "pending_since": None,
            "updated_at": _now(),
        }

    def _status_row(self, kind, taxdome_id, status, reason, entity, qbo_id, link, *, caused_by=None) -> dict:
        return {
            "run_id": self.run_id,
            "taxdome_kind": kind,
            "taxdome_id": taxdome_id,
            "realm_id": self.realm_id,
            "status": status,
            "reason": reason,
            "qbo_entity": entity,
            "qbo_id": qbo_id,
            "qbo_link": link,
            "caused_by": caused_by,
        }

    def _audit(
        self,
        outcomes: _Outcomes,
        answer: RawAnswer,
        request_id: str,
        items: list[tuple[str | None, _Operation]],
    ) -> None:
        outcomes.requests += audit_rows(
            self.realm_id,
            self.run_id,
            request_id,
            answer,
            [AuditedItem(bid, op.kind, op.taxdome_id, op.entity, op.action) for bid, op in items],
        )

    def _record(self, outcomes: _Outcomes) -> None:
        """One transaction: the sync state, the objects' statuses and the request audit of a batch."""
        if not (outcomes.states or outcomes.statuses or outcomes.requests):
            return
        with self.engine.begin() as conn:
            _upsert(
                conn, warehouse.qbo_sync_state, ("realm_id", "taxdome_kind", "taxdome_id"), outcomes.states
            )
            _upsert(
                conn,
                warehouse.sync_object_status,
                ("run_id", "taxdome_kind", "taxdome_id"),
                outcomes.statuses,
            )
            if outcomes.requests:
                conn.execute(warehouse.qbo_requests.insert(), outcomes.requests)
        outcomes.states.clear()
        outcomes.statuses.clear()
        outcomes.requests.clear()

    def _add_links(self) -> None:
        """The web-app link of every synced object the load did not touch (unchanged since an earlier run)."""
        table = warehouse.sync_object_status
        with self.engine.begin() as conn:
            rows = sql.fetch_all(conn, "loading/select_unlinked_statuses", run_id=self.run_id)
            updates = [
                {
                    "key_kind": row.taxdome_kind,
                    "key_id": row.taxdome_id,
                    "link": load_rules.app_link(self.session.app_url, row.qbo_entity, row.qbo_id),
                }
                for row in rows
                if row.qbo_entity
            ]
            if updates:
                conn.execute(
                    table.update()
                    .where(
                        table.c.run_id == self.run_id,
                        table.c.taxdome_kind == sa.bindparam("key_kind"),
                        table.c.taxdome_id == sa.bindparam("key_id"),
                    )
                    .values(qbo_link=sa.bindparam("link")),
                    updates,
                )


class AuditedItem(NamedTuple):
    """One object a write request carried (a batch carries several, told apart by `batch_item_id`)."""

    batch_item_id: str | None
    taxdome_kind: str
    taxdome_id: str
    entity: str
    operation: str


def audit_rows(
    realm_id: str, run_id: str, request_id: str, answer: RawAnswer, items: list[AuditedItem]
) -> list[dict]:
    """`qbo_requests` rows of a write: one per attempt and item; the final attempt carries each item's QBO id
    or fault."""
    final = _item_answers(answer)
    rows = []
    for attempt_number, attempt in enumerate(answer.attempts, start=1):
        last = attempt_number == len(answer.attempts)
        for item in items:
            qbo_id, fault = final.get(item.batch_item_id, (None, None)) if last else (None, None)
            rows.append(
                {
                    "realm_id": realm_id,
                    "run_id": run_id,
                    "request_id": request_id,
                    "batch_item_id": item.batch_item_id,
                    "attempt": attempt_number,
                    "taxdome_kind": item.taxdome_kind,
                    "taxdome_id": item.taxdome_id,
                    "entity": item.entity,
                    "operation": item.operation,
                    "http_status": attempt.status,
                    "qbo_id": qbo_id,
                    "fault_code": fault.code if fault else None,
                    "error": fault.describe() if fault else attempt.error,
                    "duration_ms": attempt.duration_ms,
                    "sent_at": attempt.sent_at,
                }
            )
    return rows


def _batch_operation(action: str) -> str:
    return "delete" if action == "delete" else "create" if action == "create" else "update"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _item_answers(answer: RawAnswer) -> dict[str | None, tuple[str | None, Fault | None]]:
    """bId (None for a single request) -> (QBO id, fault) of the final answer."""
    body = answer.body or {}
    items = body.get("BatchItemResponse")
    answers = items if isinstance(items, list) else [{"bId": None, **body}]
    found: dict[str | None, tuple[str | None, Fault | None]] = {}
    for item in answers:
        written = next(
            (value for key, value in item.items() if isinstance(value, dict) and "Id" in value), None
        )
        bid = None if item.get("bId") is None else str(item["bId"])
        found[bid] = (None if written is None else str(written["Id"]), first_fault(item))
    return found


def _upsert(conn: Connection, table: sa.Table, keys: tuple[str, ...], rows: list[dict]) -> None:
    if not rows:
        return
    # The last row of a key wins (a batch can settle an operation twice: pending, then done).
    unique = list({tuple(row[k] for k in keys): row for row in rows}.values())
    for columns in {tuple(sorted(row)) for row in unique}:
        same_shape = [row for row in unique if tuple(sorted(row)) == columns]
        statement = insert_for(conn)(table)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c[k] for k in keys],
                set_={name: statement.excluded[name] for name in columns if name not in keys},
            ),
            same_shape,
        )


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
