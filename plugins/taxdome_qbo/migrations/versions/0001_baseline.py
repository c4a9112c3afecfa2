"""Baseline: the warehouse as release 0.1.0 creates it; a database that release made is adopted, not rebuilt.

Revision ID: 0001
Revises:
Create Date: 2026-12-04

The tables are written out here, frozen, rather than read from `services/warehouse.py`: a revision must
create the same schema whatever the code looks like later (later changes are later revisions). A database
without a version table may come from 0.1.0 or an earlier build, whose `create_schema` created missing tables
and added missing columns on start: each table it has is brought to this baseline the same way (columns it
lacks are added nullable, as its old rows have no value for them; indexes and the table comment as here),
and nothing in it is dropped or rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)
# Exact decimals: NUMERIC on PostgreSQL, text on SQLite, whose NUMERIC affinity would store binary floats.
EXACT_QUANTITY = sa.Numeric(18, 4).with_variant(sa.Text(), "sqlite")
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite numbers rows only in INTEGER keys

BASELINE = sa.MetaData()


def _staging_table(name: str, comment: str, *columns: sa.Column) -> sa.Table:
    """A TaxDome export file's table: its columns, then where and when each row was staged."""
    return sa.Table(
        name,
        BASELINE,
        *columns,
        sa.Column("_batch_id", sa.String(32), nullable=False),
        sa.Column("_loaded_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("_row_hash", sa.BigInteger, nullable=False),
        sa.Column("_absent_since_batch", sa.String(32)),
        comment=comment,
    )


def _qbo_copy(name: str, comment: str, *columns: sa.Column) -> sa.Table:
    """A table of QBO objects as read back: one row per object of a company."""
    return sa.Table(
        name,
        BASELINE,
        sa.Column("realm_id", sa.String(32), primary_key=True),
        sa.Column("qbo_id", sa.String(32), primary_key=True),
        *columns,
        sa.Column("marker", sa.Text),
        sa.Column("sync_token", sa.String(16)),
        sa.Column("last_updated", UTC_TIMESTAMP),
        sa.Column("_read_at", UTC_TIMESTAMP, nullable=False),
        comment=comment,
    )


sa.Table(
    "dq_results",
    BASELINE,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("check_name", sa.String(120), primary_key=True),
    sa.Column("table_name", sa.String(64), nullable=False),
    sa.Column("engine", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("evaluated_rows", sa.BigInteger),
    sa.Column("unexpected_count", sa.BigInteger),
    sa.Column("observed", sa.Text),
    sa.Column("unexpected_ids", sa.Text),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("checked_at", UTC_TIMESTAMP, nullable=False),
    comment="Data-quality checks of a sync run's staged data, before anything is written to QBO",
)
sa.Table(
    "qbo_company_leases",
    BASELINE,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("token", sa.String(32), nullable=False),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("renewed_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("expires_at", UTC_TIMESTAMP, nullable=False),
    comment="One writer per QBO company: who holds the company's lease, since when, until when unless renewed",
)
sa.Table(
    "qbo_oauth_tokens",
    BASELINE,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("refresh_token", sa.Text, nullable=False),
    sa.Column("access_token", sa.Text),
    sa.Column("access_token_expires_at", UTC_TIMESTAMP),
    sa.Column("refreshed_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("is_current", sa.Boolean),
    sa.Column("connected_at", UTC_TIMESTAMP),
    sa.Column("disconnected_at", UTC_TIMESTAMP),
    sa.Column("tokens_encrypted", sa.Boolean),
    sa.Column("refresh_claimed_by", sa.Text),
    sa.Column("refresh_claimed_at", UTC_TIMESTAMP),
    comment="OAuth tokens per QBO company, encrypted; the newest refresh token wins over the connection's",
)
sa.Table(
    "qbo_rate_governor",
    BASELINE,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("paused_until", sa.Float),
    comment="One row per QBO company, locked by whoever takes a request slot of that company",
)
sa.Table(
    "qbo_rate_grants",
    BASELINE,
    sa.Column("id", AUTO_ID, primary_key=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("is_batch", sa.Boolean, nullable=False),
    sa.Column("granted_at", sa.Float, nullable=False),
    sa.Column("lease_expires_at", sa.Float),
    sa.Index("ix_qbo_rate_grants_realm", "realm_id", "granted_at"),
    comment="Request slots granted per QBO company in the current rate window, and those still in flight",
)
sa.Table(
    "qbo_readbacks",
    BASELINE,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(24), primary_key=True),
    sa.Column("read_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("objects", sa.Integer, nullable=False),
    comment="When each QBO entity of a company was last read back, and how",
)
sa.Table(
    "qbo_requests",
    BASELINE,
    sa.Column("id", AUTO_ID, primary_key=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("request_id", sa.String(50), nullable=False),
    sa.Column("batch_item_id", sa.String(10)),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("taxdome_kind", sa.String(24)),
    sa.Column("taxdome_id", sa.Text),
    sa.Column("entity", sa.String(24), nullable=False),
    sa.Column("operation", sa.String(16), nullable=False),
    sa.Column("http_status", sa.Integer),
    sa.Column("qbo_id", sa.String(32)),
    sa.Column("fault_code", sa.String(16)),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("sent_at", UTC_TIMESTAMP, nullable=False),
    sa.Index("ix_qbo_requests_run", "run_id"),
    comment="Every write request sent to QBO (a row per batch item), for audit",
)
sa.Table(
    "qbo_sync_state",
    BASELINE,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("taxdome_kind", sa.String(24), primary_key=True),
    sa.Column("taxdome_id", sa.Text, primary_key=True),
    sa.Column("qbo_entity", sa.String(24)),
    sa.Column("qbo_id", sa.String(32)),
    sa.Column("sync_token", sa.String(16)),
    sa.Column("payload_hash", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("last_request_id", sa.String(50)),
    sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("pending_action", sa.String(16)),
    sa.Column("pending_since", UTC_TIMESTAMP),
    comment="What QBO holds for each TaxDome object of a company, as the loader last recorded it",
)
sa.Table(
    "reconciliation_runs",
    BASELINE,
    sa.Column("recon_run_id", sa.Text, primary_key=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("sync_run_id", sa.Text),
    sa.Column("period_from", sa.Date),
    sa.Column("period_to", sa.Date),
    sa.Column("started_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("finished_at", UTC_TIMESTAMP),
    sa.Column("verdict", sa.String(24)),
    sa.Column("unexplained", sa.Integer),
    sa.Column("report_location", sa.Text),
    comment="One row per reconciliation run: the company, the period, the verdict and where its report is",
)
sa.Table(
    "rpt_reconciliation__exceptions",
    BASELINE,
    sa.Column("recon_run_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("difference_class", sa.String(32), nullable=False),
    sa.Column("explained", sa.Boolean, nullable=False),
    sa.Column("object_kind", sa.String(24), nullable=False),
    sa.Column("taxdome_id", sa.Text),
    sa.Column("qbo_entity", sa.String(24)),
    sa.Column("qbo_id", sa.String(32)),
    sa.Column("measure", sa.String(48)),
    sa.Column("taxdome_cents", sa.BigInteger),
    sa.Column("qbo_cents", sa.BigInteger),
    sa.Column("difference_cents", sa.BigInteger),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("qbo_link", sa.Text),
    comment="One row per difference found by a reconciliation run, with both sides and its class",
)
sa.Table(
    "rpt_reconciliation__summary",
    BASELINE,
    sa.Column("recon_run_id", sa.Text, primary_key=True),
    sa.Column("measure", sa.String(48), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("dimension", sa.String(48), primary_key=True),
    sa.Column("taxdome_cents", sa.BigInteger, nullable=False),
    sa.Column("qbo_cents", sa.BigInteger, nullable=False),
    sa.Column("difference_cents", sa.BigInteger, nullable=False),
    comment="TaxDome vs QBO per reconciliation run, measure, period and dimension, to the cent",
)
_qbo_copy(
    "stg_qbo__credit_memos",
    "QBO credit memos as last read",
    sa.Column("txn_date", sa.Date),
    sa.Column("customer_id", sa.String(32)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("remaining_cents", sa.BigInteger),
)
_qbo_copy(
    "stg_qbo__customers",
    "QBO customers as last read",
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("balance_cents", sa.BigInteger),
)
sa.Table(
    "stg_qbo__invoice_lines",
    BASELINE,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("invoice_id", sa.String(32), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.String(32)),
    sa.Column("description", sa.Text),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    comment="Sales lines of the QBO invoices as last read (QBO's subtotal line left out)",
)
_qbo_copy(
    "stg_qbo__invoices",
    "QBO invoices as last read",
    sa.Column("doc_number", sa.Text),
    sa.Column("txn_date", sa.Date),
    sa.Column("due_date", sa.Date),
    sa.Column("customer_id", sa.String(32)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("tax_cents", sa.BigInteger, nullable=False),
    sa.Column("balance_cents", sa.BigInteger, nullable=False),
)
sa.Table(
    "stg_qbo__payment_links",
    BASELINE,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("payment_id", sa.String(32), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("txn_type", sa.String(24), primary_key=True),
    sa.Column("txn_id", sa.String(32), primary_key=True),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    comment="What each QBO payment line applies to (its linked transactions)",
)
_qbo_copy(
    "stg_qbo__payments",
    "QBO payments as last read",
    sa.Column("txn_date", sa.Date),
    sa.Column("customer_id", sa.String(32)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("unapplied_cents", sa.BigInteger),
    sa.Column("deposit_account_id", sa.String(32)),
    sa.Column("payment_ref", sa.Text),
)
_qbo_copy(
    "stg_qbo__purchases",
    "QBO purchases (expenses) as last read",
    sa.Column("txn_date", sa.Date),
    sa.Column("paid_from_account_id", sa.String(32)),
    sa.Column("expense_account_id", sa.String(32)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
)
_qbo_copy(
    "stg_qbo__refund_receipts",
    "QBO refund receipts as last read",
    sa.Column("txn_date", sa.Date),
    sa.Column("customer_id", sa.String(32)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("deposit_account_id", sa.String(32)),
    sa.Column("payment_ref", sa.Text),
)
_staging_table(
    "stg_taxdome__accounts",
    "TaxDome accounts.csv: one row per account_id, latest version wins",
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("account_name", sa.Text, nullable=False),
    sa.Column("account_type", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("created_at", UTC_TIMESTAMP),
    sa.Column("updated_at", UTC_TIMESTAMP),
    sa.Column("archived", sa.Boolean, nullable=False),
    sa.Column("qbo_sync", sa.Text, nullable=False),
    sa.Column("qbo_customer_name", sa.Text),
)
_staging_table(
    "stg_taxdome__invoice_lines",
    "TaxDome invoice_lines.csv: one row per invoice_id + line_no, latest version wins",
    sa.Column("invoice_id", sa.Text, primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("service_id", sa.Text),
    sa.Column("service_name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("rate_cents", sa.BigInteger),
    sa.Column("quantity", EXACT_QUANTITY),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("taxable", sa.Boolean, nullable=False),
)
_staging_table(
    "stg_taxdome__invoices",
    "TaxDome invoices.csv: one row per invoice_id, latest version wins",
    sa.Column("invoice_id", sa.Text, primary_key=True),
    sa.Column("invoice_number", sa.Text, nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("posted_date", sa.Date, nullable=False),
    sa.Column("due_date", sa.Date),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("tax_amount_cents", sa.BigInteger, nullable=False),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("updated_at", UTC_TIMESTAMP),
)
_staging_table(
    "stg_taxdome__payment_applications",
    "TaxDome payment_applications.csv: one row per payment_id + invoice_id, latest version wins",
    sa.Column("payment_id", sa.Text, primary_key=True),
    sa.Column("invoice_id", sa.Text, primary_key=True),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
)
_staging_table(
    "stg_taxdome__payments",
    "TaxDome payments.csv: one row per payment_id, latest version wins",
    sa.Column("payment_id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("payment_date", sa.Date, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("processor", sa.Text, nullable=False),
    sa.Column("processor_txn_id", sa.Text),
    sa.Column("processing_fee_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("sync_to_qbo", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("updated_at", UTC_TIMESTAMP),
)
_staging_table(
    "stg_taxdome__payouts",
    "TaxDome payouts.csv: one row per payout_id, latest version wins",
    sa.Column("payout_id", sa.Text, primary_key=True),
    sa.Column("payout_date", sa.Date, nullable=False),
    sa.Column("processor", sa.Text, nullable=False),
    sa.Column("gross_cents", sa.BigInteger, nullable=False),
    sa.Column("fee_cents", sa.BigInteger, nullable=False),
    sa.Column("net_cents", sa.BigInteger, nullable=False),
    sa.Column("payment_ids", sa.Text),
)
_staging_table(
    "stg_taxdome__refunds",
    "TaxDome refunds.csv: one row per refund_id, latest version wins",
    sa.Column("refund_id", sa.Text, primary_key=True),
    sa.Column("payment_id", sa.Text, nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("refund_date", sa.Date, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text),
)
sa.Table(
    "stg_taxdome__rejected",
    BASELINE,
    sa.Column("export_fingerprint", sa.String(32), primary_key=True),
    sa.Column("source_file", sa.Text, primary_key=True),
    sa.Column("source_line", sa.BigInteger, primary_key=True),
    sa.Column("_batch_id", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("_loaded_at", UTC_TIMESTAMP, nullable=False),
    sa.Index("ix_stg_taxdome__rejected_batch", "_batch_id"),
    comment="Quarantined export rows, with the reason and the row as read (JSON); kept once per export",
)
_staging_table(
    "stg_taxdome__services",
    "TaxDome services.csv: one row per service_id, latest version wins",
    sa.Column("service_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("rate_cents", sa.BigInteger, nullable=False),
    sa.Column("rate_type", sa.Text),
    sa.Column("created_at", UTC_TIMESTAMP),
    sa.Column("qbo_item_name", sa.Text),
)
sa.Table(
    "sync_object_status",
    BASELINE,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("taxdome_kind", sa.String(24), primary_key=True),
    sa.Column("taxdome_id", sa.Text, primary_key=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("qbo_entity", sa.String(24)),
    sa.Column("qbo_id", sa.String(32)),
    sa.Column("qbo_link", sa.Text),
    sa.Column("caused_by", sa.Text),
    comment="The verdict for every staged TaxDome object (synced, not_synced, skipped, failed, do_not_sync): the plan's, then the load's",
)
sa.Table(
    "sync_overrides",
    BASELINE,
    sa.Column("taxdome_kind", sa.String(24), primary_key=True),
    sa.Column("taxdome_id", sa.Text, primary_key=True),
    sa.Column("sync", sa.Boolean, nullable=False),
    sa.Column("set_at", UTC_TIMESTAMP, nullable=False),
    comment="Per-object sync decisions set by hand (R19); the planner honours them over the export's",
)
sa.Table(
    "sync_plan",
    BASELINE,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("taxdome_kind", sa.String(24), nullable=False),
    sa.Column("taxdome_id", sa.Text, nullable=False),
    sa.Column("qbo_entity", sa.String(24), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("amount_cents", sa.BigInteger),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("payload_hash", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    comment="One row per planned QBO operation of a run, in execution order (seq)",
)
sa.Table(
    "sync_plan_runs",
    BASELINE,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("planned_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("operations", sa.Integer, nullable=False),
    sa.Column("preview_location", sa.Text),
    sa.Column("loaded_at", UTC_TIMESTAMP),
    sa.Column("load_receipt", sa.Text),
    comment="One row per planned run: when, for which company, whether it was a dry run, where its preview is, and what its load did",
)
sa.Table(
    "taxdome_export_batches",
    BASELINE,
    sa.Column("batch_id", sa.String(32), primary_key=True),
    sa.Column("export_location", sa.Text, nullable=False),
    sa.Column("export_name", sa.Text, nullable=False),
    sa.Column("export_fingerprint", sa.String(32)),
    sa.Column("dag_run_id", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("finished_at", UTC_TIMESTAMP),
    sa.Column("bytes_read", sa.BigInteger),
    sa.Column("rows_read", sa.BigInteger),
    sa.Column("rows_staged", sa.BigInteger),
    sa.Column("rows_rejected", sa.BigInteger),
    sa.Column("rows_inserted", sa.BigInteger),
    sa.Column("rows_updated", sa.BigInteger),
    sa.Column("rows_unchanged", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("folder_signature", sa.String(32)),
    sa.Column("deletion_proof", sa.Boolean),
    sa.Column("deletion_proof_reason", sa.Text),
    sa.Index("ix_taxdome_export_batches_location", "export_location", "status"),
    comment="One row per load of an export: where it came from, when, and what it did",
)
sa.Table(
    "taxdome_export_batch_files",
    BASELINE,
    sa.Column("batch_id", sa.String(32), sa.ForeignKey("taxdome_export_batches.batch_id"), primary_key=True),
    sa.Column("source_file", sa.Text, primary_key=True),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_staged", sa.BigInteger, nullable=False),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False),
    sa.Column("rows_inserted", sa.BigInteger, nullable=False),
    sa.Column("rows_updated", sa.BigInteger, nullable=False),
    sa.Column("rows_unchanged", sa.BigInteger, nullable=False),
    sa.Column("rows_superseded", sa.BigInteger, nullable=False),
    sa.Column("rows_removed", sa.BigInteger, nullable=False),
    sa.Column("rows_absent", sa.BigInteger, nullable=False),
    comment="Per-file counts of a batch; rows_read = rows_staged + rows_rejected always; rows_absent: staged rows this export no longer lists",
)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table in BASELINE.sorted_tables:
        if inspector.has_table(table.name):
            _adopt(inspector, table)
        else:
            table.create(bind)


def _adopt(inspector: sa.Inspector, table: sa.Table) -> None:
    present = {column["name"] for column in inspector.get_columns(table.name)}
    for column in table.columns:
        if column.name not in present:
            op.add_column(table.name, sa.Column(column.name, column.type))
    indexed = {index["name"] for index in inspector.get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexed:
            index.create(op.get_bind())
    if (
        inspector.dialect.supports_comments
        and inspector.get_table_comment(table.name)["text"] != table.comment
    ):
        op.create_table_comment(table.name, table.comment)


def downgrade() -> None:
    BASELINE.drop_all(op.get_bind())
