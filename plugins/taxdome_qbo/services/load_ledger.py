"""What a load did, written down: the sync state, the objects' statuses, the request audit, the web-app links,
the receipt and the progress reports.

The loader (services/loading.py) decides what to send and sends it; it hands every answer to the ledger,
which keeps the sync state the loader reads its decisions from. A batch's rows are buffered and written in
one transaction (`record`), so the state, the statuses and the audit of a write never disagree.

The ledger holds the sync state of the objects the loader is deciding on, not the company's: the loader
looks up the state of a window of operations (and of the objects they refer to) before deciding them
(`look_up`), so a load's memory does not grow with the company (millions of objects would take about a
GB). Every write of the load goes through the ledger, which keeps what it holds current; an object it was
not asked about is read from the warehouse when needed.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core import load_rules
from taxdome_qbo.core.kinds import KINDS
from taxdome_qbo.core.qbo_faults import Fault, finance_message, first_fault
from taxdome_qbo.core.vocabulary import FAILED, NOT_SYNCED, SYNCED, failure_key, symbolic
from taxdome_qbo.services import run_counts, sql, warehouse
from taxdome_qbo.services.qbo_client import QboSession, RawAnswer
from taxdome_qbo.services.warehouse import insert_for

# The load's messages keep the logger name operators filter a load's log on.
log = logging.getLogger("taxdome_qbo.services.loading")

PENDING, DELETED = "pending", "deleted"


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


class Operation(NamedTuple):
    """One planned operation, as the plan stores it."""

    seq: int
    kind: str
    taxdome_id: str
    entity: str
    action: str
    payload: str
    payload_hash: str
    reason: str


class SyncState(NamedTuple):
    """What the company holds of one TaxDome object, as far as the sync knows."""

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


class LoadLedger:
    """Records one run's load into one company: every answer becomes sync state, status and audit rows."""

    def __init__(
        self,
        engine: Engine,
        session: QboSession,
        run_id: str,
        progress: Callable[[str], None],
        progress_every_seconds: float,
    ) -> None:
        self.engine = engine
        self.session = session
        self.run_id = run_id
        self.realm_id = session.realm_id
        self.progress = progress
        self.progress_every_seconds = progress_every_seconds
        self.receipt = LoadReceipt(run_id, self.realm_id)
        # (kind, TaxDome id) -> its sync state (None: it has none), for the objects looked up since the last
        # `look_up` and those the load wrote since.
        self.state: dict[tuple[str, str], SyncState | None] = {}
        # "@kind:id" -> why it has no QBO object, and the failed object behind that (`caused_by`)
        self.causes: dict[str, tuple[str, str]] = {}
        self.outcomes = _Outcomes()
        self.done_in_phase: Counter = Counter()
        self.planned: dict[tuple[str, str], int] = {}
        self.last_progress = time.monotonic()

    def look_up(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read the sync state of these objects (kind, TaxDome id) in place of what the ledger held: the next
        decisions are about them. What the load decided so far is recorded first, so none of it is lost."""
        self.record()
        self.state = {}
        self._read(keys)

    def _read(self, keys: Iterable[tuple[str, str]]) -> None:
        ids_by_kind: defaultdict[str, list[str]] = defaultdict(list)
        for kind, taxdome_id in keys:
            ids_by_kind[kind].append(taxdome_id)
        statement = sql.statement("loading/select_sync_states").bindparams(
            sa.bindparam("taxdome_ids", expanding=True)
        )
        with self.engine.connect() as conn:
            for kind, ids in ids_by_kind.items():
                for part in warehouse.id_chunks(ids):
                    self.state.update(dict.fromkeys(((kind, taxdome_id) for taxdome_id in part), None))
                    found = conn.execute(
                        statement, {"realm_id": self.realm_id, "taxdome_kind": kind, "taxdome_ids": part}
                    )
                    self.state.update({(kind, row[0]): SyncState(*row[1:]) for row in found})

    def _state_of(self, key: tuple[str, str]) -> SyncState | None:
        if key not in self.state:
            self._read([key])  # not looked up: what the warehouse holds is current, the load did not write it
        return self.state[key]

    def read_planned(self) -> None:
        """The plan's operations per kind and action, the totals the progress reports count towards."""
        with self.engine.connect() as conn:
            for row in run_counts.plan_counts(conn, self.run_id):
                self.planned[(row.taxdome_kind, row.action)] = int(row.operations)

    def known(self, operation: Operation) -> SyncState | None:
        return self._state_of((operation.kind, operation.taxdome_id))

    def qbo_id_of(self, reference: str) -> str | None:
        """The QBO id of a symbolic reference ("@kind:id") once its object is synced, else None."""
        known = self._state_of(load_rules.referenced(reference))
        return known.qbo_id if known is not None and known.status == SYNCED else None

    def reached(self, operation: Operation) -> None:
        """The load got to this operation (sent, skipped or deferred), as the progress reports count it."""
        self.done_in_phase[(operation.kind, operation.action)] += 1

    def report(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_progress < self.progress_every_seconds:
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

    def mark_pending(self, writes: list[tuple[Operation, str]]) -> None:
        """Before sending: each write (with its requestid) is pending, so a crash leaves it to be looked up."""
        now = _now()
        rows = []
        for operation, request_id in writes:
            key = (operation.kind, operation.taxdome_id)
            known = self._state_of(key)
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
            base = known or SyncState(operation.entity, None, None, None, PENDING, None, None)
            self.state[key] = base._replace(
                status=rows[-1]["status"], pending_action=operation.action, last_request_id=request_id
            )
        with self.engine.begin() as conn:
            _upsert(conn, warehouse.qbo_sync_state, ("realm_id", "taxdome_kind", "taxdome_id"), rows)

    def succeeded(
        self,
        operation: Operation,
        qbo_id: str,
        sync_token: str | None,
        outcome: str,
        request_id: str | None,
        *,
        payload_hash: str | None = None,
    ) -> None:
        key = (operation.kind, operation.taxdome_id)
        known = self._state_of(key)
        deleted = operation.action == "delete"
        state = SyncState(
            operation.entity,
            qbo_id,
            sync_token,
            payload_hash if outcome == "adopted" else operation.payload_hash,
            DELETED if deleted else SYNCED,
            None,
            request_id or (known.last_request_id if known else None),
        )
        self.state[key] = state
        self.outcomes.states.append(self._state_row(operation, state, reason=None))
        self.receipt.count(operation.kind, outcome)
        if deleted:
            return
        self.causes.pop(symbolic(operation.kind, operation.taxdome_id), None)
        if KINDS[operation.kind].own_status_row:
            kind, taxdome_id = load_rules.status_key(operation.kind, operation.taxdome_id)
            self.outcomes.statuses.append(
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

    def failed(self, operation: Operation, fault: Fault) -> None:
        message = finance_message(operation.kind, operation.action, fault)
        key = (operation.kind, operation.taxdome_id)
        known = self._state_of(key)
        # An object QBO already holds stays synced (its last good version is there); a refused create failed.
        exists = known is not None and known.qbo_id is not None and known.status in (SYNCED, PENDING)
        state = (known or SyncState(operation.entity, None, None, None, FAILED, None, None))._replace(
            status=SYNCED if exists else FAILED, pending_action=None
        )
        self.state[key] = state
        self.outcomes.states.append(self._state_row(operation, state, reason=message))
        kind, taxdome_id = load_rules.status_key(operation.kind, operation.taxdome_id)
        self.causes[symbolic(operation.kind, operation.taxdome_id)] = (message, failure_key(kind, taxdome_id))
        self.outcomes.statuses.append(
            self._status_row(kind, taxdome_id, FAILED, message, operation.entity, None, None)
        )
        self.receipt.count(operation.kind, FAILED)
        log.warning("%s %s: %s", operation.kind, operation.taxdome_id, message)

    def dependency_missing(self, operation: Operation, reference: str) -> None:
        what = load_rules.describe_reference(reference)
        # A reference that failed before this load is the failure behind it itself.
        missing = failure_key(*load_rules.status_key(*load_rules.referenced(reference)))
        cause, failed = self.causes.get(reference, (None, missing))
        reason = f"its {what} is not in QuickBooks" + (f": {cause}" if cause else "")
        self.causes[symbolic(operation.kind, operation.taxdome_id)] = (reason, failed)
        kind, taxdome_id = load_rules.status_key(operation.kind, operation.taxdome_id)
        self.outcomes.statuses.append(
            self._status_row(kind, taxdome_id, NOT_SYNCED, reason, None, None, None, caused_by=failed)
        )
        self.receipt.count(operation.kind, NOT_SYNCED)

    def _state_row(self, operation: Operation, state: SyncState, *, reason: str | None) -> dict:
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

    def audit(self, answer: RawAnswer, request_id: str, items: list[tuple[str | None, Operation]]) -> None:
        self.outcomes.requests += audit_rows(
            self.realm_id,
            self.run_id,
            request_id,
            answer,
            [AuditedItem(bid, op.kind, op.taxdome_id, op.entity, op.action) for bid, op in items],
        )

    def record(self) -> None:
        """One transaction: the sync state, the objects' statuses and the request audit of a batch."""
        outcomes = self.outcomes
        if not (outcomes.states or outcomes.statuses or outcomes.requests):
            return
        with self.engine.begin() as conn:
            _upsert(
                conn, warehouse.qbo_sync_state, ("realm_id", "taxdome_kind", "taxdome_id"), outcomes.states
            )
            statuses = _last_of_each_key(run_counts.STATUS_KEY, outcomes.statuses)
            run_counts.move_statuses(conn, statuses)
            _upsert(conn, warehouse.sync_object_status, run_counts.STATUS_KEY, statuses)
            if outcomes.requests:
                conn.execute(warehouse.qbo_requests.insert(), outcomes.requests)
        outcomes.states.clear()
        outcomes.statuses.clear()
        outcomes.requests.clear()

    def finish(self, started: float) -> LoadReceipt:
        """The closing report and links, and the receipt (with what the session spent) stored with the run."""
        self.report(force=True)
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
        return self.receipt

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
    unique = _last_of_each_key(keys, rows)
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


def _last_of_each_key(keys: tuple[str, ...], rows: list[dict]) -> list[dict]:
    """The last row of each key (a batch can settle an operation twice: pending, then done)."""
    return list({tuple(row[k] for k in keys): row for row in rows}.values())
