"""sync_run_inputs: what a run's passed check judged and what its plan was made from (fingerprints), so a run
with nothing changed since skips checking and planning.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_run_inputs",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("step", sa.String(length=8), nullable=False, comment="check | plan"),
        sa.Column(
            "realm_id", sa.String(length=32), nullable=True, comment="the company planned for (plan only)"
        ),
        sa.Column("fingerprint", sa.String(length=64), nullable=False, comment="SHA-256 of the inputs"),
        sa.Column(
            "inputs",
            sa.Text(),
            nullable=False,
            comment="JSON: versions and digests of what the step read (exports staged, settings, plan options, "
            "overrides, code, QuickBooks' customer types and tax mode)",
        ),
        sa.Column(
            "qbo_read_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the plan began reading the QuickBooks company: a later run asks QBO's change data "
            "capture what changed since",
        ),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "step"),
        comment="What a run's passed data-quality check judged and what its plan was made from: a later run "
        "whose inputs are the same, with nothing changed in QuickBooks and nothing left to load, checks and "
        "plans nothing",
    )


def downgrade() -> None:
    op.drop_table("sync_run_inputs")
