"""Column comments: what a column holds, in the database too.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

0.1.0 said it in code comments; now it is `comment=` in services/warehouse.py, so the data model page shows
it too. PostgreSQL keeps them (`COMMENT ON COLUMN`, shown by psql and database tools); SQLite has no comments, so
there the revision does nothing rather than copy every table to change none of its data.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMN_COMMENTS = {
    "dq_results": {
        "engine": "gx | sql",
        "severity": "critical | warning",
        "unexpected_ids": "JSON list of TaxDome ids (the first ones)",
    },
    "qbo_company_leases": {
        "token": "new on every acquisition: a takeover changes it",
        "holder": "what writes, e.g. `retry` or `load of run …`",
        "host": "host name and boot id of the holder's machine",
        "expires_at": "then another writer may take it over",
    },
    "qbo_oauth_tokens": {
        "status": "connected | disconnected",
        "is_current": "the company the sync writes to",
        "tokens_encrypted": "Fernet-encrypted tokens; rows written before encryption (null) are encrypted when next used",
        "refresh_claimed_by": "Who is refreshing the tokens at Intuit right now (one process per company)",
        "refresh_claimed_at": "When that process claimed the refresh",
    },
    "qbo_rate_governor": {
        "paused_until": "epoch seconds: after a 429 every process of the company waits",
    },
    "qbo_rate_grants": {
        "granted_at": "Epoch seconds (wall clock, shared by every process on the machine and the database)",
        "lease_expires_at": "null once the request has ended",
    },
    "qbo_readbacks": {
        "read_at": "the QBO time the next incremental read starts from",
        "mode": "full | cdc",
    },
    "qbo_requests": {
        "http_status": "null: no answer (timeout, connection lost)",
    },
    "qbo_sync_state": {
        "pending_action": "A write sent whose outcome is not known yet (a crash or a lost response leaves it set)",
        "pending_since": "When that write was sent",
    },
    "reconciliation_runs": {
        "sync_run_id": "the loaded sync run whose verdicts (and data-quality checks) it used",
        "verdict": "clean | differences | superseded (a sync changed the data meanwhile)",
    },
    "rpt_reconciliation__summary": {
        "measure": "invoiced, tax, collected_gross, fees, net, ..",
        "period": "total | YYYY-MM | YYYY-MM-DD",
        "dimension": "'' or e.g. the processor",
    },
    "stg_qbo__credit_memos": {
        "marker": "taxdome:<kind>:<id> when the sync created it",
    },
    "stg_qbo__customers": {
        "marker": "taxdome:<kind>:<id> when the sync created it",
    },
    "stg_qbo__invoice_lines": {
        "line_no": "position among the invoice's sales lines, from 1",
    },
    "stg_qbo__invoices": {
        "marker": "taxdome:<kind>:<id> when the sync created it",
    },
    "stg_qbo__payment_links": {
        "line_no": "the payment line, from 1",
        "txn_type": "Invoice | CreditMemo",
    },
    "stg_qbo__payments": {
        "marker": "taxdome:<kind>:<id> when the sync created it",
    },
    "stg_qbo__purchases": {
        "expense_account_id": "of the first line",
        "marker": "taxdome:<kind>:<id> when the sync created it",
    },
    "stg_qbo__refund_receipts": {
        "marker": "taxdome:<kind>:<id> when the sync created it",
    },
    "stg_taxdome__accounts": {
        "_absent_since_batch": "Set when a later export no longer lists the row (deleted in TaxDome if exports are full snapshots)",
    },
    "stg_taxdome__invoice_lines": {
        "_absent_since_batch": "Set when a later export no longer lists the row (deleted in TaxDome if exports are full snapshots)",
    },
    "stg_taxdome__invoices": {
        "_absent_since_batch": "Set when a later export no longer lists the row (deleted in TaxDome if exports are full snapshots)",
    },
    "stg_taxdome__payment_applications": {
        "_absent_since_batch": "Set when a later export no longer lists the row (deleted in TaxDome if exports are full snapshots)",
    },
    "stg_taxdome__payments": {
        "_absent_since_batch": "Set when a later export no longer lists the row (deleted in TaxDome if exports are full snapshots)",
    },
    "stg_taxdome__payouts": {
        "_absent_since_batch": "Set when a later export no longer lists the row (deleted in TaxDome if exports are full snapshots)",
    },
    "stg_taxdome__refunds": {
        "_absent_since_batch": "Set when a later export no longer lists the row (deleted in TaxDome if exports are full snapshots)",
    },
    "stg_taxdome__services": {
        "_absent_since_batch": "Set when a later export no longer lists the row (deleted in TaxDome if exports are full snapshots)",
    },
    "sync_object_status": {
        "qbo_link": "the object in QuickBooks' web app",
        "caused_by": "not_synced because this failed object (`account:A1`) is not in QBO",
    },
    "sync_overrides": {
        "taxdome_kind": "account | payment",
    },
    "sync_plan_runs": {
        "load_receipt": "JSON: outcomes per kind, requests, 429s, retries",
    },
    "taxdome_export_batches": {
        "folder_signature": "Names, sizes and times of the folder's files (and the manifest's bytes): the landing scan reloads a folder whose signature changed since it was loaded",
        "deletion_proof": "Whether the export may say that a staged row it lacks was deleted in TaxDome",
        "deletion_proof_reason": "Why the export may (not) say so",
    },
}


def upgrade() -> None:
    _set_comments(COLUMN_COMMENTS)


def downgrade() -> None:
    _set_comments({table: dict.fromkeys(columns) for table, columns in COLUMN_COMMENTS.items()})


def _set_comments(comments: dict[str, dict[str, str | None]]) -> None:
    if not op.get_bind().dialect.supports_comments:
        return
    for table, columns in comments.items():
        for column, comment in columns.items():
            op.alter_column(table, column, comment=comment)
