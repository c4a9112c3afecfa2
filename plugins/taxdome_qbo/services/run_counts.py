"""A run's counts, kept as its rows are written: operations (and amounts) per kind and action, written with the
plan, and objects per kind and status, written with the plan and moved by every status change of the load in
the same transaction. The view reads them instead of counting a million-invoice run's rows on every visit.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taxdome_qbo.services import sql, warehouse
from taxdome_qbo.services.warehouse import insert_for

STATUS_KEY = ("run_id", "taxdome_kind", "taxdome_id")


class PlanCounter:
    """Operations and their amounts per kind and action, summed over the frames the planner sends."""

    def __init__(self) -> None:
        self.operations: Counter = Counter()
        self.amounts: dict[tuple[str, str], int] = {}  # only kinds with an amount

    def add(self, operations: pd.DataFrame) -> None:
        amounts = pd.to_numeric(operations["amount_cents"]).astype("Int64")
        grouped = amounts.groupby([operations["taxdome_kind"], operations["action"]], sort=False)
        for key, size in grouped.size().items():
            self.operations[key] += int(size)
        for key, amount in grouped.sum(min_count=1).dropna().items():
            self.amounts[key] = self.amounts.get(key, 0) + int(amount)

    def rows(self, run_id: str) -> list[dict]:
        return [
            {
                "run_id": run_id,
                "taxdome_kind": kind,
                "action": action,
                "operations": n,
                "amount_cents": self.amounts.get((kind, action)),
            }
            for (kind, action), n in sorted(self.operations.items())
        ]


def record_plan(conn: Connection, run_id: str, plan: PlanCounter, statuses: pd.DataFrame) -> None:
    """The counts of a run's plan, replacing those of an earlier plan of the run (in the plan's transaction)."""
    forget(conn, run_id)
    if plan.operations:
        conn.execute(warehouse.sync_plan_counts.insert(), plan.rows(run_id))
    by_status = statuses.groupby(["taxdome_kind", "status"], sort=True).size()
    if len(by_status):
        conn.execute(
            warehouse.sync_status_counts.insert(),
            [
                {"run_id": run_id, "taxdome_kind": kind, "status": status, "objects": int(n)}
                for (kind, status), n in by_status.items()
            ],
        )


def forget(conn: Connection, run_id: str) -> None:
    for table in (warehouse.sync_plan_counts, warehouse.sync_status_counts):
        conn.execute(table.delete().where(table.c.run_id == run_id))


def move_statuses(conn: Connection, rows: list[dict]) -> None:
    """Before `rows` (sync_object_status rows, one per key) are upserted in this transaction: each object
    leaves the count of the status it has (if it has a row) and joins its new one's."""
    if not rows:
        return
    table = warehouse.sync_object_status
    ids: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        ids.setdefault((row["run_id"], row["taxdome_kind"]), []).append(row["taxdome_id"])
    moves: Counter = Counter()
    # One lookup per run and kind: an IN over the whole key (a row value) is a table scan on SQLite.
    for (run_id, kind), of_kind in ids.items():
        for (status,) in conn.execute(
            sa.select(table.c.status).where(
                table.c.run_id == run_id, table.c.taxdome_kind == kind, table.c.taxdome_id.in_(of_kind)
            )
        ):
            moves[(run_id, kind, status)] -= 1
    for row in rows:
        moves[(row["run_id"], row["taxdome_kind"], row["status"])] += 1
    changed = [
        {"run_id": run_id, "taxdome_kind": kind, "status": status, "objects": delta}
        for (run_id, kind, status), delta in sorted(moves.items())
        if delta
    ]
    if not changed:
        return
    counts = warehouse.sync_status_counts
    statement = insert_for(conn)(counts)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[counts.c.run_id, counts.c.taxdome_kind, counts.c.status],
            set_={"objects": counts.c.objects + statement.excluded.objects},
        ),
        changed,
    )


def plan_counts(conn: Connection, run_id: str) -> list[sa.Row]:
    """taxdome_kind, action, operations, amount_cents of the run's plan, by kind and action."""
    return sql.fetch_all(conn, "planning/select_plan_counts", run_id=run_id)


def status_counts(conn: Connection, run_id: str) -> list[sa.Row]:
    """taxdome_kind, status, objects of the run (statuses no object has any more left out), by kind and status."""
    return sql.fetch_all(conn, "planning/select_status_counts", run_id=run_id)
