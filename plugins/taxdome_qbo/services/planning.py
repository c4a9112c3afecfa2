"""Plan a sync run: read the staged firm and the sync state, build the plan, and record it for the loader.

The plan of a run replaces any earlier plan of the same run, so retrying the plan task is safe.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core.planner import (
    OPERATION_COLUMNS,
    STATE_COLUMNS,
    STATUS_COLUMNS,
    Plan,
    PlanOptions,
    StagedFirm,
    build_plan,
    money,
)
from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.services import warehouse

log = logging.getLogger(__name__)

WRITE_CHUNK_ROWS = 50_000
PREVIEW_EXAMPLES = 3


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


def _whole_table(conn: Connection, table: sa.Table) -> pd.DataFrame:
    """A whole table as a frame, read through the raw cursor: millions of rows without per-row ORM cost."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(str(sa.select(table).compile(dialect=conn.dialect)))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return pd.DataFrame.from_records(rows, columns=[c.name for c in table.columns], coerce_float=False)


def read_staged_firm(engine: Engine) -> StagedFirm:
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        return StagedFirm(
            **{
                name: _whole_table(conn, warehouse.STAGING_TABLES[name])
                for name in StagedFirm.__dataclass_fields__
            }
        )


def read_sync_state(engine: Engine, realm_id: str) -> pd.DataFrame:
    table = warehouse.qbo_sync_state
    with engine.connect() as conn:
        result = conn.execute(
            sa.select(*(table.c[c] for c in STATE_COLUMNS)).where(table.c.realm_id == realm_id)
        )
        return pd.DataFrame.from_records([tuple(row) for row in result], columns=list(STATE_COLUMNS))


def record_plan(engine: Engine, run_id: str, realm_id: str, plan: Plan, *, dry_run: bool) -> None:
    """Replace the run's plan and statuses in one transaction."""
    operations = plan.operations.assign(run_id=run_id, realm_id=realm_id)
    statuses = plan.statuses.assign(run_id=run_id, realm_id=realm_id)
    with engine.begin() as conn:
        for table in (warehouse.sync_plan, warehouse.sync_object_status, warehouse.sync_plan_runs):
            conn.execute(table.delete().where(table.c.run_id == run_id))
        conn.execute(
            warehouse.sync_plan_runs.insert().values(
                run_id=run_id,
                realm_id=realm_id,
                planned_at=datetime.now(UTC),
                dry_run=dry_run,
                operations=len(plan.operations),
            )
        )
        for table, frame in ((warehouse.sync_plan, operations), (warehouse.sync_object_status, statuses)):
            # Rows become Python dicts a chunk at a time: all of a large plan at once would double its memory.
            for start in range(0, len(frame), WRITE_CHUNK_ROWS):
                chunk = frame.iloc[start : start + WRITE_CHUNK_ROWS].astype(object)
                conn.execute(table.insert(), chunk.where(chunk.notna(), None).to_dict("records"))


def plan_sync(
    engine: Engine,
    reference: QboReference,
    settings: FirmSettings,
    options: PlanOptions,
    run_id: str,
    *,
    dry_run: bool,
) -> tuple[Plan, PlanReceipt]:
    """Plan the run against the company in `reference` and record the plan; raises PlanRefused when asked to."""
    staged = read_staged_firm(engine)
    state = read_sync_state(engine, reference.realm_id)
    plan = build_plan(staged, settings, reference, state, options)
    record_plan(engine, run_id, reference.realm_id, plan, dry_run=dry_run)
    counts = plan.counts()
    receipt = PlanReceipt(
        run_id=run_id,
        realm_id=reference.realm_id,
        operations=len(plan.operations),
        operations_by_kind_and_action={
            f"{row.taxdome_kind}.{row.action}": int(row.operations) for row in counts.itertuples(index=False)
        },
        statuses={k: int(v) for k, v in plan.statuses["status"].value_counts().sort_index().items()},
    )
    return plan, receipt


def preview_markdown(plan: Plan, *, title: str, examples: int = PREVIEW_EXAMPLES) -> str:
    """What the run would write to QuickBooks, for a person: counts, amounts, and a few examples of each."""
    lines = [f"# {title}", ""]
    counts = plan.counts()
    if counts.empty:
        lines.append("Nothing to write to QuickBooks: everything in scope is already in step.")
    else:
        lines += ["| kind | action | operations | amount |", "|---|---|---:|---:|"]
        lines += [
            f"| {row.taxdome_kind} | {row.action} | {row.operations} | "
            f"{money(int(row.amount_cents)) if pd.notna(row.amount_cents) else ''} |"
            for row in counts.itertuples(index=False)
        ]
    statuses = plan.statuses.groupby(["taxdome_kind", "status"]).size().reset_index(name="objects")
    lines += ["", "## Status of every TaxDome object", "", "| kind | status | objects |", "|---|---|---:|"]
    lines += [
        f"| {row.taxdome_kind} | {row.status} | {row.objects} |" for row in statuses.itertuples(index=False)
    ]
    lines += ["", "## Examples", ""]
    for (kind, action), group in plan.operations.groupby(["taxdome_kind", "action"], sort=True):
        lines.append(f"### {kind} · {action}")
        for op in group.head(examples).itertuples(index=False):
            lines.append(f"- `{op.taxdome_id}` → {op.qbo_entity}: {op.reason}")
            lines.append(f"  `{_shorten(op.payload)}`")
        lines.append("")
    not_synced = plan.statuses[plan.statuses["status"].isin(["failed", "not_synced"])]
    if not not_synced.empty:
        lines += ["## Not synced and failed (first examples)", ""]
        for status, group in not_synced.groupby("status"):
            for row in group.head(examples * 3).itertuples(index=False):
                lines.append(f"- {status} {row.taxdome_kind} `{row.taxdome_id}`: {row.reason}")
    return "\n".join(lines) + "\n"


def preview_csv(plan: Plan) -> str:
    """Every planned operation, one line each (the payload included), for a spreadsheet."""
    buffer = io.StringIO()
    plan.operations[list(OPERATION_COLUMNS)].to_csv(buffer, index=False)
    return buffer.getvalue()


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


def latest_plan(engine: Engine) -> tuple[sa.Row, Plan] | None:
    """The most recent run's plan, as recorded (for the command line and the UI)."""
    warehouse.create_schema(engine)
    runs = warehouse.sync_plan_runs
    with engine.connect() as conn:
        run = conn.execute(sa.select(runs).order_by(runs.c.planned_at.desc()).limit(1)).one_or_none()
        if run is None:
            return None
        operations = conn.execute(
            sa.select(*(warehouse.sync_plan.c[c] for c in OPERATION_COLUMNS))
            .where(warehouse.sync_plan.c.run_id == run.run_id)
            .order_by(warehouse.sync_plan.c.seq)
        ).all()
        statuses = conn.execute(
            sa.select(*(warehouse.sync_object_status.c[c] for c in STATUS_COLUMNS)).where(
                warehouse.sync_object_status.c.run_id == run.run_id
            )
        ).all()
    return run, Plan(
        pd.DataFrame([tuple(r) for r in operations], columns=list(OPERATION_COLUMNS)),
        pd.DataFrame([tuple(r) for r in statuses], columns=list(STATUS_COLUMNS)),
    )
