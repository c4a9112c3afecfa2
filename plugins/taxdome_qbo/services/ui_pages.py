"""What the pages of the TaxDome ↔ QuickBooks view in the Airflow UI show, read from the warehouse (no Airflow).

Each page reads a bounded amount: the latest rows of the run tables, a run's counts as the plan and the load
keep them (services/run_counts.py: never counted on a visit), and one page of objects at a time
(LIMIT/OFFSET over the primary key of `sync_object_status`), never a whole table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taxdome_qbo.core.kinds import CATEGORIES
from taxdome_qbo.core.qbo_faults import CATEGORY_BY_KIND, category_of
from taxdome_qbo.core.report_html import HEADLINE_MEASURES
from taxdome_qbo.core.vocabulary import FAILED
from taxdome_qbo.services import loading, planning, run_counts, sql, sync_issues, warehouse

RECENT_BATCHES = 5
TREND_RUNS = 30
RECENT_ACTIONS = 10


@dataclass(frozen=True)
class ExportLoads:
    batches: list[sa.Row]  # the recent loads, newest first
    latest: sa.Row | None  # the newest succeeded load
    files: list[sa.Row]  # its per-file counts: source_file, rows_read, rows_staged, rows_rejected, ...


@dataclass(frozen=True)
class RunView:
    """One sync run: its plan (operations per kind and action), its verdicts and what its load did."""

    run: sa.Row
    plan_counts: list[sa.Row]  # taxdome_kind, action, operations, amount_cents
    status_counts: list[sa.Row]  # taxdome_kind, status, objects
    # The load's receipt (outcomes per kind, requests, throttled, retries); None: not loaded.
    receipt: dict | None

    @property
    def outcomes(self) -> list[str]:
        if not self.receipt:
            return []
        return sorted({o for by_kind in self.receipt["outcomes"].values() for o in by_kind})


@dataclass(frozen=True)
class ReconciliationView:
    run: sa.Row
    totals: list[sa.Row]  # measure, taxdome_cents, qbo_cents, difference_cents; headline measures first
    trend: list[sa.Row]  # recon_run_id, started_at, verdict, unexplained; oldest first


@dataclass(frozen=True)
class Overview:
    company: sa.Row | None
    exports: ExportLoads
    latest_plan: RunView | None
    latest_load: RunView | None
    reconciliation: ReconciliationView | None


def overview(engine: Engine) -> Overview:
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        company = sql.fetch_all(conn, "ui/select_current_company")
        batches = sql.fetch_all(conn, "staging/select_recent_batches", batch_limit=RECENT_BATCHES)
        latest = next((b for b in batches if b.status == "succeeded"), None)
        files = (
            sql.fetch_all(conn, "staging/select_batch_file_counts", batch_id=latest.batch_id)
            if latest is not None
            else []
        )
        reconciliation = _reconciliation(conn)
        planned = sql.fetch_all(conn, "planning/select_latest_plan_run")
        loaded = sql.fetch_all(conn, "loading/select_latest_loaded_run")
    latest_plan = sync_run(engine, planned[0].run_id) if planned else None
    if loaded and latest_plan is not None and loaded[0].run_id == latest_plan.run.run_id:
        latest_load = latest_plan
    else:
        latest_load = sync_run(engine, loaded[0].run_id) if loaded else None
    return Overview(
        company=company[0] if company else None,
        exports=ExportLoads(batches, latest, files),
        latest_plan=latest_plan,
        latest_load=latest_load,
        reconciliation=reconciliation,
    )


def _reconciliation(conn: sa.Connection) -> ReconciliationView | None:
    found = sql.fetch_all(conn, "reconciliation/select_latest_run")
    if not found:
        return None
    run = found[0]
    totals = sql.fetch_all(conn, "ui/select_reconciliation_totals", recon_run_id=run.recon_run_id)
    order = {measure: i for i, measure in enumerate(HEADLINE_MEASURES)}
    totals.sort(key=lambda row: (order.get(row.measure, len(order)), row.measure))
    trend = sql.fetch_all(conn, "ui/select_unexplained_trend", run_limit=TREND_RUNS)
    return ReconciliationView(run, totals, trend[::-1])


def sync_run(engine: Engine, run_id: str) -> RunView | None:
    """One run's plan and load; None when no run has that id."""
    run = loading.plan_run(engine, run_id)
    if run is None:
        return None
    with engine.connect() as conn:
        plan_counts = run_counts.plan_counts(conn, run_id)
        status_counts = run_counts.status_counts(conn, run_id)
    receipt = json.loads(run.load_receipt) if run.load_receipt else None
    return RunView(run, plan_counts, status_counts, receipt)


@dataclass(frozen=True)
class IssuePage:
    """One page of the latest run's objects in a category (or all) and status (or every issue status)."""

    run: sa.Row
    counts: dict[str, dict[str, int]]  # category -> status -> objects
    rows: list[dict]  # taxdome_kind, taxdome_id, status, reason, qbo_*, category, what_to_do
    total: int  # objects matching the filter
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def issue_page(
    engine: Engine, *, category: str | None, status: str | None, page: int, page_size: int
) -> IssuePage | None:
    """None when nothing has been planned yet. `category` and `status` must be known ones (or None: all)."""
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    if status is not None and status not in sync_issues.ALL_STATUSES:
        raise ValueError(f"unknown status {status!r}")
    run = planning.latest_plan_run(engine)
    if run is None:
        return None
    run = loading.plan_run(engine, run.run_id)
    categories = (category,) if category else CATEGORIES
    statuses = (status,) if status else sync_issues.ISSUE_STATUSES
    kinds = [kind for kind, owner in CATEGORY_BY_KIND.items() if owner in categories]
    with engine.connect() as conn:
        counts: dict[str, dict[str, int]] = {
            c: dict.fromkeys(sync_issues.ALL_STATUSES, 0) for c in CATEGORIES
        }
        for row in run_counts.status_counts(conn, run.run_id):
            counts[category_of(row.taxdome_kind)][row.status] += int(row.objects)
        total = sum(counts[c][s] for c in categories for s in statuses)
        found = _issue_rows(conn, run.run_id, kinds, statuses, page, page_size) if total else []
    rows = [
        row._asdict()
        | {
            "category": category_of(row.taxdome_kind),
            "what_to_do": (
                sync_issues.what_to_do(row.taxdome_kind, row.taxdome_id, row.parent_id)
                if row.status == FAILED
                else ""
            ),
        }
        for row in found
    ]
    return IssuePage(run, counts, rows, total, page, page_size)


def _issue_rows(
    conn: sa.Connection, run_id: str, kinds: list[str], statuses: tuple[str, ...], page: int, page_size: int
) -> list[sa.Row]:
    listing = sql.statement("sync_issues/select_issue_page").bindparams(
        sa.bindparam("kinds", expanding=True), sa.bindparam("statuses", expanding=True)
    )
    return conn.execute(
        listing,
        {
            "run_id": run_id,
            "kinds": kinds,
            "statuses": list(statuses),
            "page_size": page_size,
            "page_offset": (page - 1) * page_size,
        },
    ).all()


# -- what people did in the UI ---------------------------------------------------------------------------
def record_action(
    engine: Engine, *, user_name: str, action: str, target: str, outcome: str, finished: bool = True
) -> int:
    """Record an action; one still running (`finished` false) is finished later by `finish_action`. Its id."""
    warehouse.create_schema(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        recorded = conn.execute(
            warehouse.ui_actions.insert().values(
                taken_at=now,
                user_name=user_name,
                action=action,
                target=target,
                outcome=outcome,
                finished_at=now if finished else None,
            )
        )
    return recorded.inserted_primary_key[0]


def action_running_since(engine: Engine, since: datetime) -> bool:
    """Whether an action taken after `since` is still running."""
    actions = warehouse.ui_actions
    with engine.connect() as conn:
        running = conn.execute(
            sa.select(actions.c.id)
            .where(actions.c.finished_at.is_(None), actions.c.taken_at > since)
            .limit(1)
        ).first()
    return running is not None


def finish_action(engine: Engine, action_id: int, outcome: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            warehouse.ui_actions.update()
            .where(warehouse.ui_actions.c.id == action_id)
            .values(outcome=outcome, finished_at=datetime.now(UTC))
        )


def recent_actions(engine: Engine, limit: int = RECENT_ACTIONS) -> list[sa.Row]:
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        return sql.fetch_all(conn, "ui/select_recent_actions", action_limit=limit)
