"""ui_actions.finished_at: a retry taken in the Airflow UI runs in the api-server's background; its action is
recorded at once and finished when the retry is done.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ui_actions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "finished_at",
                sa.DateTime(timezone=True),
                nullable=True,
                comment="when it was done; empty while a retry runs in the background",
            )
        )
    # Every action recorded before this revision was done when the page answered.
    op.execute("UPDATE ui_actions SET finished_at = taken_at")


def downgrade() -> None:
    with op.batch_alter_table("ui_actions", schema=None) as batch_op:
        batch_op.drop_column("finished_at")
