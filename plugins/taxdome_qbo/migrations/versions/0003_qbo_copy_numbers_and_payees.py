"""QBO copies: the numbers and payees finance finds objects by.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

An object that exists only in QuickBooks is named in the reconciliation the way finance finds it there: type,
number, customer (or payee), date and amount. Invoices and payments kept their numbers already; credit memos,
refund receipts and expenses now keep their DocNumber, and expenses their payee's name.

Rows read before this revision lack them, and an incremental read only rewrites what changed: the read marks
of those three entities are dropped, so the next read-back reads them in full and every row gains its number.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DOC_NUMBER_COMMENT = "DocNumber: the number finance finds it by in QuickBooks"
REREAD_ENTITIES = ("CreditMemo", "Purchase", "RefundReceipt")


def upgrade() -> None:
    for table, comment in (
        ("stg_qbo__credit_memos", DOC_NUMBER_COMMENT),
        ("stg_qbo__purchases", "DocNumber: the expense's ref no. in QuickBooks"),
        ("stg_qbo__refund_receipts", DOC_NUMBER_COMMENT),
    ):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("doc_number", sa.Text(), nullable=True, comment=comment))
    with op.batch_alter_table("stg_qbo__purchases") as batch_op:
        batch_op.add_column(
            sa.Column(
                "payee_name",
                sa.Text(),
                nullable=True,
                comment="the payee's name (EntityRef): a vendor, customer or employee",
            )
        )
    readbacks = sa.table("qbo_readbacks", sa.column("entity", sa.String))
    op.execute(sa.delete(readbacks).where(readbacks.c.entity.in_(REREAD_ENTITIES)))


def downgrade() -> None:
    with op.batch_alter_table("stg_qbo__purchases") as batch_op:
        batch_op.drop_column("payee_name")
    for table in ("stg_qbo__refund_receipts", "stg_qbo__purchases", "stg_qbo__credit_memos"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("doc_number")
