"""Plan a sync run: read the staged firm and the sync state, build the plan, and record it for the loader.

The plan of a run replaces any earlier plan of the same run, so retrying the plan task is safe.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core.escaping import markdown_code, write_csv
from taxdome_qbo.core.kinds import READ_COLUMNS
from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.operation_log import phase_seqs
from taxdome_qbo.core.planner import PlanOptions, build_plan
from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.core.sync_period import PeriodSelection
from taxdome_qbo.core.vocabulary import OPERATION_COLUMNS, STATE_COLUMNS, STATUS_COLUMNS, StagedFirm
from taxdome_qbo.services import company_lease, run_counts, sql, sync_issues, warehouse

log = logging.getLogger(__name__)

READ_CHUNK_ROWS = 50_000
WRITE_CHUNK_ROWS = 50_000  # operations or statuses turned into Arrow (and the driver's values) at a time
PREVIEW_EXAMPLES = 3
NUMERIC_OPERATION_COLUMNS = frozenset({"seq", "amount_cents"})  # written from numbers, never escaped


@dataclass(frozen=True)
class PlanReceipt:
    """Small enough for XCom: what the plan of a run holds."""

    run_id: str
    realm_id: str
    operations: int
    operations_by_kind_and_action: dict[str, int]
    statuses: dict[str, int]

    def as_xcom(self) -> dict:
        return {
            "run_id": self.run_id,
            "realm_id": self.realm_id,
            "operations": self.operations,
            "operations_by_kind_and_action": self.operations_by_kind_and_action,
            "statuses": self.statuses,
        }


# Text as pandas' Arrow strings, integers and flags nullable (a missing one stays missing, not a float).
_PANDAS_TYPES = {
    pa.string(): warehouse.PANDAS_TEXT,
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def read_staged_firm(engine: Engine) -> StagedFirm:
    """The columns of each staged table the plan reads (the rules', and whether the export still lists the
    row), in one snapshot, read as Arrow: millions of rows without a Python object per value, and without the
    lineage columns, which would cost as much to read and hold as the rules' own."""
    warehouse.create_schema(engine)
    selects = {}
    for name in StagedFirm.__dataclass_fields__:
        table = warehouse.STAGING_TABLES[name]
        selects[name] = sa.select(*(table.c[c] for c in (*READ_COLUMNS[name], "_absent_since_batch")))
    tables = warehouse.read_arrow(engine, selects)
    return StagedFirm(
        **{name: table.to_pandas(types_mapper=_PANDAS_TYPES.get) for name, table in tables.items()}
    )


def read_sync_state(engine: Engine, realm_id: str) -> pd.DataFrame:
    table = warehouse.qbo_sync_state
    with engine.connect() as conn:
        result = conn.execute(
            sa.select(*(table.c[c] for c in STATE_COLUMNS)).where(table.c.realm_id == realm_id)
        )
        return pd.DataFrame.from_records([tuple(row) for row in result], columns=list(STATE_COLUMNS))


def plan_sync(
    engine: Engine,
    reference: QboReference,
    settings: FirmSettings,
    options: PlanOptions,
    run_id: str,
    *,
    dry_run: bool,
    lease_wait_seconds: float = company_lease.TASK_WAIT_SECONDS,
) -> PlanReceipt:
    """Plan the run against the company in `reference` and record it: its operations and statuses, replacing
    the run's earlier plan; a plan refused (PlanRefused) or failed leaves nothing of it. The operations are
    written as the planner decides them, by a thread of their own (`_OperationWriter`); the run is recorded
    as planned (`sync_plan_runs`) only once all of it is written.
    Accounts and payments synced or unsynced by hand (sync_overrides) are planned as decided, not as exported.
    With `options.period` (a backfill run), the whole firm is planned and only the operations of that period
    are recorded (core/sync_period.py); every object still gets its verdict.
    Plans under the company's lease (waiting up to `lease_wait_seconds`), so the sync state it reads is not
    one a load is still changing; a caller holding the lease since it read `reference` re-enters it.
    """
    with company_lease.company_lease(
        engine, reference.realm_id, f"plan of run {run_id}", wait_seconds=lease_wait_seconds
    ) as lease:
        overrides = sync_issues.read_overrides(engine)
        staged = sync_issues.apply_overrides(read_staged_firm(engine), overrides)
        state = read_sync_state(engine, reference.realm_id)
        run = {"run_id": run_id, "realm_id": reference.realm_id}
        counted = run_counts.PlanCounter()
        with _plan_recording(engine, lease, run) as recording:
            with (
                recording.rows(warehouse.sync_plan, list(OPERATION_COLUMNS)) as write,
                _OperationWriter(write) as operations,
            ):

                def record(ops: pd.DataFrame) -> None:
                    counted.add(ops)
                    operations.add(ops)

                selection = None if options.period is None else PeriodSelection(staged, options.period)
                sink = record if selection is None else (lambda ops: record(selection.operations(ops)))
                plan = build_plan(staged, settings, reference, state, options, sink=sink)
                statuses = plan.statuses
                if selection is not None:
                    if (names := selection.needed_names()) is not None:
                        record(names)
                    statuses = selection.statuses(plan.statuses)
                    log.info("run %s syncs the period %s only", run_id, options.period)
                statuses = sync_issues.explain_overrides(statuses, overrides)
            with recording.rows(warehouse.sync_object_status, list(STATUS_COLUMNS)) as write:
                for batch in _in_key_order(statuses):
                    write(batch)
            with recording.final() as conn:
                run_counts.record_plan(conn, run_id, counted, statuses)
                recorded = counted.operations.total()
                conn.execute(
                    warehouse.sync_plan_runs.insert().values(
                        **run, planned_at=datetime.now(UTC), dry_run=dry_run, operations=recorded
                    )
                )
        # A plan adds millions of rows at once; the Sync issues page's queries of the run must not be planned
        # on statistics that have not seen them (a scan of the run, seconds, until autovacuum gets to it).
        warehouse.refresh_statistics(engine, (warehouse.sync_plan, warehouse.sync_object_status))
        return PlanReceipt(
            run_id=run_id,
            realm_id=reference.realm_id,
            operations=recorded,
            operations_by_kind_and_action={
                f"{kind}.{action}": n for (kind, action), n in sorted(counted.operations.items())
            },
            statuses={k: int(v) for k, v in statuses["status"].value_counts().sort_index().items()},
        )


_WriteBatch = Callable[[pa.Table], None]


@dataclass(frozen=True)
class _Recording:
    """Where a plan is recorded: `rows(table, columns)` is open while the planner sends the table's rows and
    gives the function writing a batch of them; `final()` is the transaction the run's counts and its
    `sync_plan_runs` row are written in, fenced by the company's lease (verified before it commits)."""

    rows: Callable[[sa.Table, list[str]], contextlib.AbstractContextManager[_WriteBatch]]
    final: Callable[[], contextlib.AbstractContextManager[Connection]]


@contextlib.contextmanager
def _plan_recording(
    engine: Engine, lease: company_lease.CompanyLease, run: dict[str, str]
) -> Iterator[_Recording]:
    """How the plan of `run` is recorded, replacing the run's earlier plan.

    PostgreSQL takes other writers while a transaction is open: the whole plan is one transaction, begun
    now, its rows copied in as they come, which the server writes while the planner goes on.
    SQLite has one write lock, which a transaction open while a million-invoice firm is planned would hold
    for minutes (the lease's heartbeat could not renew it, nor any other writer of the warehouse write): its
    rows are written by a process of their own (on another core), each batch in a short transaction that
    commits only while this plan holds the company's lease, and the run's row comes last, in a transaction of
    its own. Until that one commits the run has rows but is not planned; a plan that fails or is refused
    deletes them, and one killed meanwhile leaves them to its run's next attempt, which deletes them first.
    """
    run_id = run["run_id"]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            _forget_plan(conn, run_id)
            yield _Recording(
                rows=lambda table, columns: warehouse.appending_arrow(
                    engine, table, columns, conn=conn, **run
                ),
                final=lambda: _verified_before_commit(conn, lease),
            )
        return

    @contextlib.contextmanager
    def own_transaction() -> Iterator[Connection]:
        with engine.begin() as conn:
            yield conn
            # SQLite's write lock is held since the transaction's first write: no one takes the lease over
            # between this check and the commit.
            lease.verify()

    def rows(table: sa.Table, columns: list[str]) -> contextlib.AbstractContextManager[_WriteBatch]:
        return warehouse.appending_arrow(
            engine, table, columns, fence=lease.still_held(), fenced=lease.verify, **run
        )

    with own_transaction() as conn:
        _forget_plan(conn, run_id)
    try:
        yield _Recording(rows=rows, final=own_transaction)
    except BaseException:
        # A lease lost is a lease another writer holds: what this plan wrote is that writer's to delete.
        with contextlib.suppress(company_lease.LeaseLost), own_transaction() as conn:
            _forget_plan(conn, run_id)
        raise


@contextlib.contextmanager
def _verified_before_commit(conn: Connection, lease: company_lease.CompanyLease) -> Iterator[Connection]:
    yield conn
    lease.verify()  # a plan made on a state another writer has changed since is not recorded


def _forget_plan(conn: Connection, run_id: str) -> None:
    """The run's earlier plan, if any, goes in the transaction that records its new one."""
    for table in (warehouse.sync_plan, warehouse.sync_object_status, warehouse.sync_plan_runs):
        conn.execute(table.delete().where(table.c.run_id == run_id))


_OPERATIONS = pa.schema(
    [(c, pa.int64() if c in NUMERIC_OPERATION_COLUMNS else pa.string()) for c in OPERATION_COLUMNS]
)
_STATUSES = pa.schema([(c, pa.string()) for c in STATUS_COLUMNS])


class _OperationWriter:
    """Hands the operations the planner sends to the warehouse from a thread of its own, a batch of
    WRITE_CHUNK_ROWS at a time, so the planner goes on while a batch is sent (as an Arrow stream to SQLite's
    writer process, as CSV to PostgreSQL's COPY) and waits on the database, which works on the other core.
    At most QUEUED_BATCHES wait: a firm's payloads would not fit in memory beside the planner's. A failed
    write stops the planner at its next batch, with the writer's error."""

    QUEUED_BATCHES = 4

    def __init__(self, write: _WriteBatch) -> None:
        self._write = write
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(self.QUEUED_BATCHES)
        self._failure: BaseException | None = None
        self._abandoned = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plan operation writer", daemon=True)

    def __enter__(self) -> _OperationWriter:
        self._thread.start()
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None:
            self._abandoned.set()  # the plan failed: what is queued is not written
        while self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=0.5)
                break
        self._thread.join()
        if self._failure is not None and exc_type is None:
            raise self._failure

    def add(self, operations: pd.DataFrame) -> None:
        for table in _as_arrow(operations):
            while True:
                if self._failure is not None:
                    raise self._failure
                with contextlib.suppress(queue.Full):
                    self._queue.put(table, timeout=0.5)
                    break

    def _run(self) -> None:
        try:
            while (batch := self._queue.get()) is not None:
                if not self._abandoned.is_set():
                    self._write(batch)
        except BaseException as error:  # handed to the planner's thread, which raises it
            self._failure = error


def _as_arrow(operations: pd.DataFrame) -> Iterator[pa.Table]:
    """Operations as Arrow tables of WRITE_CHUNK_ROWS rows at most, one chunk each."""
    for start in range(0, len(operations), WRITE_CHUNK_ROWS):
        chunk = operations.iloc[start : start + WRITE_CHUNK_ROWS][list(OPERATION_COLUMNS)]
        yield pa.Table.from_pandas(chunk, schema=_OPERATIONS, preserve_index=False).combine_chunks()


def _in_key_order(statuses: pd.DataFrame) -> Iterator[pa.Table]:
    """The verdicts by kind, then id (the primary key's order, so its index is written in order), as Arrow
    tables of WRITE_CHUNK_ROWS rows."""
    table = pa.Table.from_pandas(statuses[list(STATUS_COLUMNS)], schema=_STATUSES, preserve_index=False)
    order = pc.sort_indices(table, [("taxdome_kind", "ascending"), ("taxdome_id", "ascending")])
    for start in range(0, len(order), WRITE_CHUNK_ROWS):
        yield table.take(order[start : start + WRITE_CHUNK_ROWS])


def preview_markdown(engine: Engine, run_id: str, *, title: str, examples: int = PREVIEW_EXAMPLES) -> str:
    """What the run would write to QuickBooks, for a person: counts, amounts, and a few examples of each.

    Read back from the warehouse, so it costs the same for ten operations or two million.
    """
    plan, statuses = warehouse.sync_plan, warehouse.sync_object_status
    lines = [f"# {title}", ""]
    with engine.connect() as conn:
        counts = run_counts.plan_counts(conn, run_id)
        if not counts:
            lines.append("Nothing to write to QuickBooks: everything in scope is already in step.")
        else:
            lines += ["| kind | action | operations | amount |", "|---|---|---:|---:|"]
            lines += [
                f"| {row.taxdome_kind} | {row.action} | {row.operations} | "
                f"{'' if row.amount_cents is None else format_cents(int(row.amount_cents))} |"
                for row in counts
            ]
        lines += [
            "",
            "## Status of every TaxDome object",
            "",
            "| kind | status | objects |",
            "|---|---|---:|",
        ]
        lines += [
            f"| {row.taxdome_kind} | {row.status} | {row.objects} |"
            for row in run_counts.status_counts(conn, run_id)
        ]
        lines += ["", "## Examples", ""]
        for row in counts:
            lines.append(f"### {row.taxdome_kind} · {row.action}")
            # Within its phase's seqs, the key's index finds the first at once; from the run's first seq,
            # the examples of a phase planned late were a scan of most of a million-operation run.
            seqs = phase_seqs(row.taxdome_kind, row.action)
            first = conn.execute(
                sa.select(plan.c.taxdome_id, plan.c.qbo_entity, plan.c.reason, plan.c.payload)
                .where(
                    plan.c.run_id == run_id,
                    plan.c.seq.between(seqs.start, seqs.stop - 1),
                    plan.c.taxdome_kind == row.taxdome_kind,
                    plan.c.action == row.action,
                )
                .order_by(plan.c.seq)
                .limit(examples)
            )
            for op in first:
                lines.append(
                    f"- {markdown_code(op.taxdome_id)} → {op.qbo_entity}: {markdown_code(op.reason)}"
                )
                lines.append(f"  {markdown_code(_shorten(op.payload))}")
            lines.append("")
        failures = conn.execute(
            sa.select(statuses.c.status, statuses.c.taxdome_kind, statuses.c.taxdome_id, statuses.c.reason)
            .where(statuses.c.run_id == run_id, statuses.c.status.in_(["failed", "not_synced"]))
            .order_by(statuses.c.status, statuses.c.taxdome_kind, statuses.c.taxdome_id)
            .limit(examples * 6)
        ).all()
    if failures:
        lines += ["## Not synced and failed (first examples)", ""]
        lines += [
            f"- {r.status} {r.taxdome_kind} {markdown_code(r.taxdome_id)}: {markdown_code(r.reason)}"
            for r in failures
        ]
    return "\n".join(lines) + "\n"


def write_operations_csv(engine: Engine, run_id: str, handle: TextIO) -> None:
    """Every planned operation of the run in execution order, one line each (payload included), streamed;
    TaxDome's text made inert for spreadsheets. The payload's hash stays in `sync_plan`: its 64 random hex
    digits are the loader's bookkeeping, and half of the compressed file."""
    plan = warehouse.sync_plan
    columns = [name for name in OPERATION_COLUMNS if name != "payload_hash"]
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=READ_CHUNK_ROWS).execute(
            sa.select(*(plan.c[c] for c in columns)).where(plan.c.run_id == run_id).order_by(plan.c.seq)
        )
        write_csv(handle, columns, rows, numeric=NUMERIC_OPERATION_COLUMNS)


def _shorten(payload: str, limit: int = 240) -> str:
    text = json.dumps(json.loads(payload), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_preview_location(engine: Engine, run_id: str, location: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            warehouse.sync_plan_runs.update()
            .where(warehouse.sync_plan_runs.c.run_id == run_id)
            .values(preview_location=location)
        )


def latest_plan_run(engine: Engine) -> sa.Row | None:
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        found = sql.fetch_all(conn, "planning/select_latest_plan_run")
    return found[0] if found else None
