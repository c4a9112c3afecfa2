"""ui_actions: the retries and overrides taken in the Airflow UI, with the Airflow user who took each.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_actions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_name", sa.Text(), nullable=False, comment="the Airflow user who took the action"),
        sa.Column("action", sa.String(length=24), nullable=False, comment="retry | sync | unsync | clear"),
        sa.Column("target", sa.Text(), nullable=False, comment="`account:A1`, `category:invoices` or `all`"),
        sa.Column("outcome", sa.Text(), nullable=False, comment="what it did, as the page told the user"),
        sa.PrimaryKeyConstraint("id"),
        comment="Actions taken in the TaxDome ↔ QuickBooks view of the Airflow UI (retries, overrides), by whom",
    )
    with op.batch_alter_table("ui_actions", schema=None) as batch_op:
        batch_op.create_index("ix_ui_actions_taken_at", ["taken_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ui_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_ui_actions_taken_at")

    op.drop_table("ui_actions")
