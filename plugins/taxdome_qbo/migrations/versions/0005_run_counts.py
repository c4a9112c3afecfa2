"""sync_plan_counts, sync_status_counts: each run's operations per kind and action and its objects per kind and
status, kept as the plan and the load write them, so the view's pages need not count a million rows; the
runs already in the warehouse are counted once here.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PLAN_COUNT_COLUMNS = ["run_id", "taxdome_kind", "action", "operations", "amount_cents"]
STATUS_COUNT_COLUMNS = ["run_id", "taxdome_kind", "status", "objects"]


def upgrade() -> None:
    op.create_table(
        "sync_plan_counts",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("taxdome_kind", sa.String(length=24), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("operations", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=True, comment="null for kinds without an amount"),
        sa.PrimaryKeyConstraint("run_id", "taxdome_kind", "action"),
        comment="A run's planned operations and their total amount per TaxDome kind and action",
    )
    op.create_table(
        "sync_status_counts",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("taxdome_kind", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "objects", sa.BigInteger(), nullable=False, comment="0 once the load has moved them all on"
        ),
        sa.PrimaryKeyConstraint("run_id", "taxdome_kind", "status"),
        comment="A run's objects per TaxDome kind and status (sync_object_status counted), kept up to date by "
        "the plan and the load",
    )
    plan = sa.table(
        "sync_plan", *(sa.column(c) for c in ("run_id", "taxdome_kind", "action", "amount_cents"))
    )
    op.execute(
        sa.insert(sa.table("sync_plan_counts", *(sa.column(c) for c in PLAN_COUNT_COLUMNS))).from_select(
            PLAN_COUNT_COLUMNS,
            sa.select(
                plan.c.run_id,
                plan.c.taxdome_kind,
                plan.c.action,
                sa.func.count(),
                sa.func.sum(plan.c.amount_cents),
            ).group_by(plan.c.run_id, plan.c.taxdome_kind, plan.c.action),
        )
    )
    status = sa.table("sync_object_status", *(sa.column(c) for c in ("run_id", "taxdome_kind", "status")))
    op.execute(
        sa.insert(sa.table("sync_status_counts", *(sa.column(c) for c in STATUS_COUNT_COLUMNS))).from_select(
            STATUS_COUNT_COLUMNS,
            sa.select(status.c.run_id, status.c.taxdome_kind, status.c.status, sa.func.count()).group_by(
                status.c.run_id, status.c.taxdome_kind, status.c.status
            ),
        )
    )


def downgrade() -> None:
    op.drop_table("sync_status_counts")
    op.drop_table("sync_plan_counts")
