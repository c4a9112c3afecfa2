"""The staging warehouse: its schema (SQLAlchemy Core metadata, migrated by Alembic) and engine helpers.

One schema serves SQLite (the embedded default) and PostgreSQL (production). Money is integer cents
(`*_cents`, BIGINT) so neither database ever holds a float; quantities are NUMERIC on PostgreSQL and exact
decimal text on SQLite, whose NUMERIC affinity would otherwise store 1.1 as a binary float.
"""

from __future__ import annotations

import decimal
import io
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from psycopg import sql as psycopg_sql
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core.export_contract import EXPORT_FILES, ExportFile, Kind
from taxdome_qbo.core.kinds import READ_BACK
from taxdome_qbo.services import sqlite_arrow
from taxdome_qbo.services.local_files import create_private_file


class DecimalText(sa.types.TypeDecorator):
    """Exact decimals stored as text (SQLite)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else str(decimal.Decimal(value))

    def process_result_value(self, value, dialect):
        return None if value is None else decimal.Decimal(value)


EXACT_QUANTITY = sa.Numeric(18, 4, asdecimal=True).with_variant(DecimalText(), "sqlite")
UTC_TIMESTAMP = sa.DateTime(timezone=True)

_COLUMN_TYPES: dict[Kind, sa.types.TypeEngine] = {
    Kind.ID: sa.Text(),
    Kind.TEXT: sa.Text(),
    Kind.ENUM: sa.Text(),
    Kind.CURRENCY: sa.String(3),
    Kind.ID_LIST: sa.Text(),
    Kind.MONEY: sa.BigInteger(),
    Kind.QUANTITY: EXACT_QUANTITY,
    Kind.DATE: sa.Date(),
    Kind.TIMESTAMP: UTC_TIMESTAMP,
    Kind.BOOL: sa.Boolean(create_constraint=False),
    Kind.POSITIVE_INT: sa.Integer(),
}

LINEAGE_COLUMNS = ("_batch_id", "_loaded_at", "_row_hash", "_absent_since_batch")

metadata = sa.MetaData()
_SCHEMA_READY: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose database has this schema


def _staging_table(export_file: ExportFile) -> sa.Table:
    columns = [
        sa.Column(
            c.stored_name,
            _COLUMN_TYPES[c.kind],
            primary_key=c.name in export_file.key,
            nullable=not (c.required or c.default is not None),
        )
        for c in export_file.columns
    ]
    return sa.Table(
        export_file.table,
        metadata,
        *columns,
        sa.Column("_batch_id", sa.String(32), nullable=False),
        sa.Column("_loaded_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("_row_hash", sa.BigInteger, nullable=False),
        sa.Column(
            "_absent_since_batch",
            sa.String(32),
            comment="Set when a later export no longer lists the row (deleted in TaxDome if exports are full "
            "snapshots)",
        ),
        comment=f"TaxDome {export_file.filename}: one row per {' + '.join(export_file.key)}, latest version wins",
    )


STAGING_TABLES: dict[str, sa.Table] = {f.name: _staging_table(f) for f in EXPORT_FILES}

export_batches = sa.Table(
    "taxdome_export_batches",
    metadata,
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
    sa.Column(
        "folder_signature",
        sa.String(32),
        comment="Names, sizes and times of the folder's files (and the manifest's bytes): the landing scan "
        "reloads a folder whose signature changed since it was loaded",
    ),
    sa.Column(
        "deletion_proof",
        sa.Boolean(create_constraint=False),
        comment="Whether the export may say that a staged row it lacks was deleted in TaxDome",
    ),
    sa.Column("deletion_proof_reason", sa.Text, comment="Why the export may (not) say so"),
    sa.Index("ix_taxdome_export_batches_location", "export_location", "status"),
    comment="One row per load of an export: where it came from, when, and what it did",
)

export_batch_files = sa.Table(
    "taxdome_export_batch_files",
    metadata,
    sa.Column("batch_id", sa.String(32), sa.ForeignKey(export_batches.c.batch_id), primary_key=True),
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
    comment="Per-file counts of a batch; rows_read = rows_staged + rows_rejected always; "
    "rows_absent: staged rows this export no longer lists",
)

rejected_rows = sa.Table(
    "stg_taxdome__rejected",
    metadata,
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


qbo_oauth_tokens = sa.Table(
    "qbo_oauth_tokens",
    metadata,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("refresh_token", sa.Text, nullable=False),
    sa.Column("access_token", sa.Text),
    sa.Column("access_token_expires_at", UTC_TIMESTAMP),
    sa.Column("refreshed_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, comment="connected | disconnected"),
    sa.Column("is_current", sa.Boolean(create_constraint=False), comment="the company the sync writes to"),
    sa.Column("connected_at", UTC_TIMESTAMP),
    sa.Column("disconnected_at", UTC_TIMESTAMP),
    sa.Column(
        "tokens_encrypted",
        sa.Boolean(create_constraint=False),
        comment="Fernet-encrypted tokens; rows written before encryption (null) are encrypted when next used",
    ),
    sa.Column(
        "refresh_claimed_by",
        sa.Text,
        comment="Who is refreshing the tokens at Intuit right now (one process per company)",
    ),
    sa.Column("refresh_claimed_at", UTC_TIMESTAMP, comment="When that process claimed the refresh"),
    comment="OAuth tokens per QBO company, encrypted; the newest refresh token wins over the connection's",
)

qbo_sync_state = sa.Table(
    "qbo_sync_state",
    metadata,
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
    sa.Column(
        "pending_action",
        sa.String(16),
        comment="A write sent whose outcome is not known yet (a crash or a lost response leaves it set)",
    ),
    sa.Column("pending_since", UTC_TIMESTAMP, comment="When that write was sent"),
    comment="What QBO holds for each TaxDome object of a company, as the loader last recorded it",
)

sync_plan = sa.Table(
    "sync_plan",
    metadata,
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

sync_plan_runs = sa.Table(
    "sync_plan_runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("planned_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("dry_run", sa.Boolean(create_constraint=False), nullable=False),
    sa.Column("operations", sa.Integer, nullable=False),
    sa.Column("preview_location", sa.Text),
    sa.Column("loaded_at", UTC_TIMESTAMP),
    sa.Column("load_receipt", sa.Text, comment="JSON: outcomes per kind, requests, 429s, retries"),
    comment="One row per planned run: when, for which company, whether it was a dry run, where its preview is, "
    "and what its load did",
)

sync_object_status = sa.Table(
    "sync_object_status",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("taxdome_kind", sa.String(24), primary_key=True),
    sa.Column("taxdome_id", sa.Text, primary_key=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("qbo_entity", sa.String(24)),
    sa.Column("qbo_id", sa.String(32)),
    sa.Column("qbo_link", sa.Text, comment="the object in QuickBooks' web app"),
    sa.Column(
        "caused_by", sa.Text, comment="not_synced because this failed object (`account:A1`) is not in QBO"
    ),
    comment="The verdict for every staged TaxDome object (synced, not_synced, skipped, failed, do_not_sync): "
    "the plan's, then the load's",
)

# A run's counts, kept as its rows are written (the plan, then the load's status changes, in the same
# transactions): a page shows a million-object run's counts without counting its rows.
sync_plan_counts = sa.Table(
    "sync_plan_counts",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("taxdome_kind", sa.String(24), primary_key=True),
    sa.Column("action", sa.String(16), primary_key=True),
    sa.Column("operations", sa.BigInteger, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, comment="null for kinds without an amount"),
    comment="A run's planned operations and their total amount per TaxDome kind and action",
)

sync_status_counts = sa.Table(
    "sync_status_counts",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("taxdome_kind", sa.String(24), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("objects", sa.BigInteger, nullable=False, comment="0 once the load has moved them all on"),
    comment="A run's objects per TaxDome kind and status (sync_object_status counted), kept up to date by the "
    "plan and the load",
)

sync_run_inputs = sa.Table(
    "sync_run_inputs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("step", sa.String(8), primary_key=True, comment="check | plan"),
    sa.Column("realm_id", sa.String(32), comment="the company planned for (plan only)"),
    sa.Column("fingerprint", sa.String(64), nullable=False, comment="SHA-256 of the inputs"),
    sa.Column(
        "inputs",
        sa.Text,
        nullable=False,
        comment="JSON: versions and digests of what the step read (exports staged, settings, plan options, "
        "overrides, code, QuickBooks' customer types and tax mode)",
    ),
    sa.Column(
        "qbo_read_at",
        UTC_TIMESTAMP,
        comment="When the plan began reading the QuickBooks company: a later run asks QBO's change data "
        "capture what changed since",
    ),
    sa.Column("recorded_at", UTC_TIMESTAMP, nullable=False),
    comment="What a run's passed data-quality check judged and what its plan was made from: a later run whose "
    "inputs are the same, with nothing changed in QuickBooks and nothing left to load, checks and plans "
    "nothing",
)

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite numbers rows only in INTEGER keys

qbo_requests = sa.Table(
    "qbo_requests",
    metadata,
    sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("request_id", sa.String(50), nullable=False),
    sa.Column("batch_item_id", sa.String(10)),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("taxdome_kind", sa.String(24)),
    sa.Column("taxdome_id", sa.Text),
    sa.Column("entity", sa.String(24), nullable=False),
    sa.Column("operation", sa.String(16), nullable=False),
    sa.Column("http_status", sa.Integer, comment="null: no answer (timeout, connection lost)"),
    sa.Column("qbo_id", sa.String(32)),
    sa.Column("fault_code", sa.String(16)),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("sent_at", UTC_TIMESTAMP, nullable=False),
    comment="Every write request sent to QBO (a row per batch item), for audit",
)
sa.Index("ix_qbo_requests_run", qbo_requests.c.run_id)

qbo_rate_governor = sa.Table(
    "qbo_rate_governor",
    metadata,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
    sa.Column(
        "paused_until", sa.Float, comment="epoch seconds: after a 429 every process of the company waits"
    ),
    comment="One row per QBO company, locked by whoever takes a request slot of that company",
)

qbo_rate_grants = sa.Table(
    "qbo_rate_grants",
    metadata,
    sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column("is_batch", sa.Boolean(create_constraint=False), nullable=False),
    sa.Column(
        "granted_at",
        sa.Float,
        nullable=False,
        comment="Epoch seconds (wall clock, shared by every process on the machine and the database)",
    ),
    sa.Column("lease_expires_at", sa.Float, comment="null once the request has ended"),
    comment="Request slots granted per QBO company in the current rate window, and those still in flight",
)
sa.Index("ix_qbo_rate_grants_realm", qbo_rate_grants.c.realm_id, qbo_rate_grants.c.granted_at)

qbo_company_leases = sa.Table(
    "qbo_company_leases",
    metadata,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column(
        "token", sa.String(32), nullable=False, comment="new on every acquisition: a takeover changes it"
    ),
    sa.Column("holder", sa.Text, nullable=False, comment="what writes, e.g. `retry` or `load of run …`"),
    sa.Column("host", sa.Text, nullable=False, comment="host name and boot id of the holder's machine"),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("renewed_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("expires_at", UTC_TIMESTAMP, nullable=False, comment="then another writer may take it over"),
    comment="One writer per QBO company: who holds the company's lease, since when, until when unless renewed",
)

sync_overrides = sa.Table(
    "sync_overrides",
    metadata,
    sa.Column("taxdome_kind", sa.String(24), primary_key=True, comment="account | payment"),
    sa.Column("taxdome_id", sa.Text, primary_key=True),
    sa.Column("sync", sa.Boolean(create_constraint=False), nullable=False),
    sa.Column("set_at", UTC_TIMESTAMP, nullable=False),
    comment="Per-object sync decisions set by hand (R19); the planner honours them over the export's",
)

ui_actions = sa.Table(
    "ui_actions",
    metadata,
    sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("taken_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("user_name", sa.Text, nullable=False, comment="the Airflow user who took the action"),
    sa.Column("action", sa.String(24), nullable=False, comment="retry | sync | unsync | clear"),
    sa.Column("target", sa.Text, nullable=False, comment="`account:A1`, `category:invoices` or `all`"),
    sa.Column("outcome", sa.Text, nullable=False, comment="what it did, as the page told the user"),
    sa.Column(
        "finished_at", UTC_TIMESTAMP, comment="when it was done; empty while a retry runs in the background"
    ),
    comment="Actions taken in the TaxDome ↔ QuickBooks view of the Airflow UI (retries, overrides), by whom",
)
sa.Index("ix_ui_actions_taken_at", ui_actions.c.taken_at)


def _qbo_copy(name: str, comment: str, *columns: sa.Column) -> sa.Table:
    """A table of what QBO holds, read back for the reconciliation: one row per QBO object of a company."""
    return sa.Table(
        name,
        metadata,
        sa.Column("realm_id", sa.String(32), primary_key=True),
        sa.Column("qbo_id", sa.String(32), primary_key=True),
        *columns,
        sa.Column("marker", sa.Text, comment="taxdome:<kind>:<id> when the sync created it"),
        sa.Column("sync_token", sa.String(16)),
        sa.Column("last_updated", UTC_TIMESTAMP),
        sa.Column("_read_at", UTC_TIMESTAMP, nullable=False),
        comment=comment,
    )


stg_qbo_customers = _qbo_copy(
    "stg_qbo__customers",
    "QBO customers as last read",
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean(create_constraint=False), nullable=False),
    sa.Column("balance_cents", sa.BigInteger),
)
stg_qbo_invoices = _qbo_copy(
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
stg_qbo_invoice_lines = sa.Table(
    "stg_qbo__invoice_lines",
    metadata,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("invoice_id", sa.String(32), primary_key=True),
    sa.Column(
        "line_no", sa.Integer, primary_key=True, comment="position among the invoice's sales lines, from 1"
    ),
    sa.Column("item_id", sa.String(32)),
    sa.Column("description", sa.Text),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    comment="Sales lines of the QBO invoices as last read (QBO's subtotal line left out)",
)
stg_qbo_payments = _qbo_copy(
    "stg_qbo__payments",
    "QBO payments as last read",
    sa.Column("txn_date", sa.Date),
    sa.Column("customer_id", sa.String(32)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("unapplied_cents", sa.BigInteger),
    sa.Column("deposit_account_id", sa.String(32)),
    sa.Column("payment_ref", sa.Text),
)
stg_qbo_payment_links = sa.Table(
    "stg_qbo__payment_links",
    metadata,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("payment_id", sa.String(32), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True, comment="the payment line, from 1"),
    sa.Column("txn_type", sa.String(24), primary_key=True, comment="Invoice | CreditMemo"),
    sa.Column("txn_id", sa.String(32), primary_key=True),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    comment="What each QBO payment line applies to (its linked transactions)",
)
stg_qbo_credit_memos = _qbo_copy(
    "stg_qbo__credit_memos",
    "QBO credit memos as last read",
    sa.Column("doc_number", sa.Text, comment="DocNumber: the number finance finds it by in QuickBooks"),
    sa.Column("txn_date", sa.Date),
    sa.Column("customer_id", sa.String(32)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("remaining_cents", sa.BigInteger),
)
stg_qbo_purchases = _qbo_copy(
    "stg_qbo__purchases",
    "QBO purchases (expenses) as last read",
    sa.Column("doc_number", sa.Text, comment="DocNumber: the expense's ref no. in QuickBooks"),
    sa.Column("txn_date", sa.Date),
    sa.Column("payee_name", sa.Text, comment="the payee's name (EntityRef): a vendor, customer or employee"),
    sa.Column("paid_from_account_id", sa.String(32)),
    sa.Column("expense_account_id", sa.String(32), comment="of the first line"),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
)
stg_qbo_refund_receipts = _qbo_copy(
    "stg_qbo__refund_receipts",
    "QBO refund receipts as last read",
    sa.Column("doc_number", sa.Text, comment="DocNumber: the number finance finds it by in QuickBooks"),
    sa.Column("txn_date", sa.Date),
    sa.Column("customer_id", sa.String(32)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("deposit_account_id", sa.String(32)),
    sa.Column("payment_ref", sa.Text),
)
QBO_COPIES = {entity.name: metadata.tables[entity.copy_table] for entity in READ_BACK}

qbo_readbacks = sa.Table(
    "qbo_readbacks",
    metadata,
    sa.Column("realm_id", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(24), primary_key=True),
    sa.Column(
        "read_at", UTC_TIMESTAMP, nullable=False, comment="the QBO time the next incremental read starts from"
    ),
    sa.Column("mode", sa.String(16), nullable=False, comment="full | cdc"),
    sa.Column("objects", sa.Integer, nullable=False),
    comment="When each QBO entity of a company was last read back, and how",
)

dq_results = sa.Table(
    "dq_results",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("check_name", sa.String(120), primary_key=True),
    sa.Column("table_name", sa.String(64), nullable=False),
    sa.Column("engine", sa.String(16), nullable=False, comment="gx | sql"),
    sa.Column("severity", sa.String(16), nullable=False, comment="critical | warning"),
    sa.Column("success", sa.Boolean(create_constraint=False), nullable=False),
    sa.Column("evaluated_rows", sa.BigInteger),
    sa.Column("unexpected_count", sa.BigInteger),
    sa.Column("observed", sa.Text),
    sa.Column("unexpected_ids", sa.Text, comment="JSON list of TaxDome ids (the first ones)"),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("checked_at", UTC_TIMESTAMP, nullable=False),
    comment="Data-quality checks of a sync run's staged data, before anything is written to QBO",
)

reconciliation_runs = sa.Table(
    "reconciliation_runs",
    metadata,
    sa.Column("recon_run_id", sa.Text, primary_key=True),
    sa.Column("realm_id", sa.String(32), nullable=False),
    sa.Column(
        "sync_run_id", sa.Text, comment="the loaded sync run whose verdicts (and data-quality checks) it used"
    ),
    sa.Column("period_from", sa.Date),
    sa.Column("period_to", sa.Date),
    sa.Column("started_at", UTC_TIMESTAMP, nullable=False),
    sa.Column("finished_at", UTC_TIMESTAMP),
    sa.Column(
        "verdict",
        sa.String(24),
        comment="clean | differences | superseded (a sync changed the data meanwhile)",
    ),
    sa.Column("unexplained", sa.Integer),
    sa.Column("report_location", sa.Text),
    comment="One row per reconciliation run: the company, the period, the verdict and where its report is",
)

rpt_reconciliation_summary = sa.Table(
    "rpt_reconciliation__summary",
    metadata,
    sa.Column("recon_run_id", sa.Text, primary_key=True),
    sa.Column(
        "measure", sa.String(48), primary_key=True, comment="invoiced, tax, collected_gross, fees, net, .."
    ),
    sa.Column("period", sa.String(10), primary_key=True, comment="total | YYYY-MM | YYYY-MM-DD"),
    sa.Column("dimension", sa.String(48), primary_key=True, comment="'' or e.g. the processor"),
    sa.Column("taxdome_cents", sa.BigInteger, nullable=False),
    sa.Column("qbo_cents", sa.BigInteger, nullable=False),
    sa.Column("difference_cents", sa.BigInteger, nullable=False),
    comment="TaxDome vs QBO per reconciliation run, measure, period and dimension, to the cent",
)

rpt_reconciliation_exceptions = sa.Table(
    "rpt_reconciliation__exceptions",
    metadata,
    sa.Column("recon_run_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("difference_class", sa.String(32), nullable=False),
    sa.Column("explained", sa.Boolean(create_constraint=False), nullable=False),
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


def insert_for(conn: Connection):
    """The dialect's INSERT construct, which knows ON CONFLICT (both warehouse databases have it)."""
    return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[conn.dialect.name]


@contextmanager
def raw_cursor(conn: Connection) -> Iterator:
    """The driver's own cursor inside the connection's transaction: bulk paths skip per-row SQLAlchemy work."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def fetch_locked(
    conn: Connection, table: sa.Table, where: sa.ColumnElement, *columns: sa.Column
) -> sa.Row | None:
    """The row of `table` matching `where` (its `columns`, else all), locked until `conn`'s transaction ends.

    PostgreSQL locks the row (`SELECT ... FOR UPDATE`). SQLite has no row locks and takes its single write
    lock at a transaction's first write (others wait up to busy_timeout), even one that matches no row: a
    no-op update comes first, so whoever holds the lock reads current data.
    """
    if conn.dialect.name == "sqlite":
        column = next(c for c in table.columns if not c.primary_key)
        conn.execute(sa.update(table).where(where).values({column.name: column}))
    return conn.execute(sa.select(*(columns or (table,))).where(where).with_for_update()).one_or_none()


FRAME_CHUNK_ROWS = 50_000


IDS_PER_STATEMENT = 500  # keeps IN lists short, in QBO queries and warehouse statements alike


def id_chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    """`ids` sorted, in lists short enough for one `IN (...)` each."""
    ordered = sorted(ids)
    for start in range(0, len(ordered), IDS_PER_STATEMENT):
        yield ordered[start : start + IDS_PER_STATEMENT]


def as_utc(moment: datetime | None) -> datetime | None:
    """A timestamp read back, in UTC: SQLite hands timestamps back naive (they were written in UTC),
    PostgreSQL in its session's time zone."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def refresh_statistics(engine: Engine, tables: Iterable[sa.Table]) -> None:
    """Have PostgreSQL's query planner sample `tables` again (SQLite plans these queries by their indexes)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.execute(sa.text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}"))


def insert_frame(conn: Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Insert a frame's rows (missing values as NULL). Rows become Python dicts a chunk at a time: all of a
    large frame at once would double its memory."""
    for start in range(0, len(frame), FRAME_CHUNK_ROWS):
        chunk = frame.iloc[start : start + FRAME_CHUNK_ROWS].astype(object)
        conn.execute(table.insert(), chunk.where(chunk.notna(), None).to_dict("records"))


# Columns whose values a driver writes as they are, without SQLAlchemy's type processing.
_LITERAL_TYPES = (sa.String, sa.Integer)


@contextmanager
def appending_arrow(
    engine: Engine,
    table: sa.Table,
    columns: list[str],
    *,
    conn: Connection | None = None,
    fence: sa.Select | None = None,
    fenced: Callable[[], None] = lambda: None,
    **constants: str,
) -> Iterator[Callable[[pa.Table], None]]:
    """Append rows to `table` through the database's bulk path: each call of what it yields sends a batch of
    Arrow columns `columns` (text and integer only: their values need no type processing), plus `constants`,
    text columns with one value for every row (a run id). Millions of rows without a Python object per value.

    PostgreSQL: COPY in `conn`'s transaction (one is needed), open until the block ends; the server writes
    while the caller goes on. SQLite: a process of its own writes through the ADBC driver
    (services/sqlite_arrow.py), each batch in a transaction of its own, so SQLite's single write lock is
    held a moment at a time; with `fence`, a query selecting a row while the writer may still write, a batch
    is committed only if it does, else nothing more is written and `fenced()` is called, which should raise
    (a RuntimeError follows if it does not). The block ends once every batch is written.
    """
    named = _literal_columns(table, [*columns, *constants])
    if engine.dialect.name == "postgresql":
        if conn is None:
            raise ValueError("PostgreSQL's bulk path copies in a transaction: pass its connection")
        bulk_path = _copying_arrow(conn, table, named)
    else:
        bulk_path = _sqlite_writer(engine, table, fence, fenced)
    with bulk_path as write_rows:
        yield lambda batch: write_rows(_with_constants(batch.select(columns), constants))


# The SQLite writer and reader process (services/sqlite_arrow.py), given its mode.
_SQLITE_ARROW = (sys.executable, "-m", "taxdome_qbo.services.sqlite_arrow")


@contextmanager
def _sqlite_writer(
    engine: Engine, table: sa.Table, fence: sa.Select | None, fenced: Callable[[], None]
) -> Iterator[Callable[[pa.Table], None]]:
    """SQLite's bulk path (appending_arrow): batches of whole rows streamed to a writer process."""
    fence_query = None
    if fence is not None:
        compiled = fence.compile(dialect=engine.dialect)
        fence_query = {"sql": str(compiled), "parameters": [compiled.params[n] for n in compiled.positiontup]}
    request = {
        "database": _sqlite_file(engine),
        "table": table.name,
        "busy_timeout_ms": SQLITE_BUSY_TIMEOUT_SECONDS * 1000,
        "fence": fence_query,
    }
    with tempfile.TemporaryFile() as errors:
        writer = subprocess.Popen([*_SQLITE_ARROW, "append"], stdin=subprocess.PIPE, stderr=errors)
        stream = None

        def write(batch: pa.Table) -> None:
            nonlocal stream
            if stream is None:
                stream = pa.ipc.new_stream(writer.stdin, batch.schema)
            try:
                stream.write_table(batch)
            except BrokenPipeError:  # the writer stopped: its exit status says why
                _finished(writer, errors, fenced)
                raise

        try:
            writer.stdin.write(json.dumps(request).encode() + b"\n")
            yield write
        except BaseException:
            writer.kill()  # a batch it had begun is rolled back by SQLite
            writer.wait()
            raise
        try:
            if stream is not None:
                stream.close()
            writer.stdin.close()
        except BrokenPipeError:
            pass
        _finished(writer, errors, fenced)


def _sqlite_file(engine: Engine) -> str:
    if engine.url.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite warehouse is private to its process: this needs a file")
    return engine.url.database


def _finished(writer: subprocess.Popen, errors: IO[bytes], fenced: Callable[[], None]) -> None:
    """Wait for the SQLite writer's end; raise what stopped it, if anything did."""
    status = writer.wait()
    if status == sqlite_arrow.FENCED:
        fenced()
        raise RuntimeError("the SQLite writer was fenced off: it no longer holds the right to write")
    if status:
        errors.seek(0)
        said = errors.read().decode(errors="replace").strip()[-4000:]
        raise RuntimeError(
            f"appending to the SQLite warehouse failed (its writer's exit status {status}): {said or 'nothing said'}"
        )


def _with_constants(batch: pa.Table, constants: dict[str, str]) -> pa.Table:
    for name, value in constants.items():
        batch = batch.append_column(name, pa.repeat(pa.scalar(value, pa.string()), batch.num_rows))
    return batch


def _literal_columns(table: sa.Table, columns: list[str]) -> list[str]:
    untyped = [c for c in columns if not isinstance(table.c[c].type, _LITERAL_TYPES)]
    if untyped:
        raise TypeError(f"{table.name}: {untyped} are neither text nor integer columns")
    return columns


@contextmanager
def _copying_arrow(
    conn: Connection, table: sa.Table, named: list[str]
) -> Iterator[Callable[[pa.Table], None]]:
    """PostgreSQL's bulk path (appending_arrow): one COPY, each batch of whole rows (columns `named`) sent as
    CSV. Arrow's CSV writer writes a null as an empty field and an empty text as a quoted one, as COPY reads
    them."""
    preparer = conn.dialect.identifier_preparer
    target = f"{preparer.format_table(table)} ({', '.join(preparer.quote(c) for c in named)})"
    with raw_cursor(conn) as cursor, cursor.copy(f"COPY {target} FROM STDIN (FORMAT csv)") as copy:

        def write(batch: pa.Table) -> None:
            buffer = io.BytesIO()
            pa_csv.write_csv(batch, buffer, pa_csv.WriteOptions(include_header=False))
            copy.write(buffer.getvalue())

        yield write


# pandas 3's own text dtype, for read_arrow's text columns once in pandas: what pandas infers from Python
# strings, without the Python strings.
PANDAS_TEXT = pd.StringDtype("pyarrow", na_value=float("nan"))


def read_arrow(engine: Engine, selects: dict[str, sa.Select]) -> dict[str, pa.Table]:
    """The rows of parameterless SELECTs of text, date, timestamp, decimal, integer and boolean columns as
    Arrow tables, read in one snapshot of the database without a Python object per value (millions of rows in
    seconds): SQLite's through the ADBC driver in a process of its own (services/sqlite_arrow.py says why),
    PostgreSQL's through COPY as CSV parsed by Arrow. Integers come back as int64, booleans as booleans, the
    rest as text as SQLite holds it: dates as YYYY-MM-DD, timestamps in UTC, decimals as their digits."""
    if any(select.compile().params for select in selects.values()):
        raise ValueError("read_arrow reads parameterless SELECTs only")
    schemas = {name: _arrow_schema(select) for name, select in selects.items()}
    if engine.dialect.name == "postgresql":
        return _read_postgres(engine, selects, schemas)
    with tempfile.TemporaryDirectory(prefix="taxdome-qbo-read-") as folder:
        request = {
            "database": _sqlite_file(engine),
            "queries": {
                name: str(select.compile(dialect=engine.dialect)) for name, select in selects.items()
            },
            "folder": folder,
            "busy_timeout_ms": SQLITE_BUSY_TIMEOUT_SECONDS * 1000,
        }
        reader = subprocess.run(
            [*_SQLITE_ARROW, "read"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
        )
        if reader.returncode:
            raise RuntimeError(
                f"reading the SQLite warehouse as Arrow failed: {reader.stderr.strip()[-4000:]}"
            )
        tables = {}
        for name, schema in schemas.items():
            with pa.OSFile(str(Path(folder) / f"{name}.arrow")) as source:
                read = pa.ipc.open_file(source).read_all()
            # Typed as the columns are declared: the driver types a column by its values (all NULL: an integer).
            tables[name] = pa.table(
                [column.cast(field.type) for column, field in zip(read.columns, schema, strict=True)],
                schema=schema,
            )
    return tables


def _arrow_schema(select: sa.Select) -> pa.Schema:
    fields = []
    for column in select.selected_columns:
        if isinstance(column.type, sa.Boolean):
            fields.append(pa.field(column.name, pa.bool_()))
        elif isinstance(column.type, sa.Integer):
            fields.append(pa.field(column.name, pa.int64()))
        elif isinstance(column.type, (sa.String, sa.Date, sa.DateTime, sa.Numeric, DecimalText)):
            fields.append(pa.field(column.name, pa.string()))
        else:
            raise TypeError(
                f"{column.name}: read_arrow reads text, dates, times, decimals, integers and flags only"
            )
    return pa.schema(fields)


def _read_postgres(
    engine: Engine, selects: dict[str, sa.Select], schemas: dict[str, pa.Schema]
) -> dict[str, pa.Table]:
    tables = {}
    snapshot = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with snapshot as conn, conn.begin(), raw_cursor(conn) as cursor:
        for name, select in selects.items():
            selected = select.subquery()
            as_text = sa.select(*(_as_sqlite_text(column).label(column.name) for column in selected.columns))
            query = str(as_text.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            buffer = io.BytesIO()
            with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
                for block in copy:
                    buffer.write(block)
            buffer.seek(0)
            schema = schemas[name]
            tables[name] = (
                pa_csv.read_csv(
                    buffer,
                    read_options=pa_csv.ReadOptions(column_names=schema.names),
                    parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                    # COPY writes NULL as an empty field and an empty text as "": only the first is missing
                    # (not Arrow's default null spellings: "NA" or "null" are texts here).
                    convert_options=pa_csv.ConvertOptions(
                        column_types=schema,
                        null_values=[""],
                        true_values=["t"],  # how COPY writes a boolean
                        false_values=["f"],
                        strings_can_be_null=True,
                        quoted_strings_can_be_null=False,
                    ),
                )
                if buffer.getbuffer().nbytes
                else schema.empty_table()
            )
    return tables


def _as_sqlite_text(column: sa.ColumnElement) -> sa.ColumnElement:
    """A PostgreSQL date or timestamp as the text SQLite holds (timestamps in UTC), whatever the session's
    DateStyle and time zone; any other column as it is."""
    if isinstance(column.type, sa.DateTime):
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD HH24:MI:SS.US")
    if isinstance(column.type, sa.Date):
        return sa.func.to_char(column, "YYYY-MM-DD")
    return column


def fetch_raw(conn: Connection, select: sa.Select) -> list[tuple]:
    """All rows of a parameterless SELECT as the driver returns them (millions of rows, no Row objects)."""
    with raw_cursor(conn) as cursor:
        cursor.execute(str(select.compile(dialect=conn.dialect)))
        return cursor.fetchall()


def create_schema(engine: Engine) -> None:
    """Bring the warehouse to this version's schema: its Alembic migrations up to the newest revision.

    Safe to call on each run, by several processes at once (one migrates, the others wait, then find nothing
    to do), and cheap after the first call for an engine: tasks and services call it before they touch the
    warehouse. A database an earlier release created, before the migrations, is adopted as it stands.
    """
    if engine in _SCHEMA_READY:
        return
    # Imported on first use: Alembic takes about 0.3 s to import, which parsing the DAG files need not pay.
    from taxdome_qbo import migrations

    migrations.upgrade(engine)
    _SCHEMA_READY.add(engine)


# What a search_path may be: one unquoted PostgreSQL identifier (NAMEDATALEN - 1 bytes at most).
SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def sqlite_engine(path: str) -> Engine:
    """The embedded warehouse; WAL lets readers (reports, the UI) look while a load writes.

    A database file created here is readable by its owner only (it holds the companies' tokens); SQLite
    gives its -wal and -shm files the database file's permissions.
    """
    if path not in ("", ":memory:"):
        create_private_file(Path(path))
    engine = sa.create_engine(f"sqlite:///{path}", hide_parameters=True)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


SQLITE_BUSY_TIMEOUT_SECONDS = 30


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the database to WAL (kept in the file: later connections find it so). Switching a new file
    needs it to itself, and SQLite refuses at once, without its busy wait, while another connection switches
    it too: two processes starting on a new warehouse. So the switch is retried until the busy timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


CONNECT_TIMEOUT_SECONDS = 10


def describe(engine: Engine) -> str:
    """Where the warehouse is, without credentials (for logs and summaries)."""
    return engine.url.render_as_string(hide_password=True)


def postgres_engine(
    *,
    host: str,
    port: int | None,
    database: str,
    user: str | None,
    password: str | None,
    search_path: str | None = None,
) -> Engine:
    """PostgreSQL through psycopg 3 (its COPY is what makes staging fast); `search_path` isolates a schema.

    `search_path` must be one plain schema name: it is set by a statement of its own on each new connection
    (before SQLAlchemy's first look at the server), never pasted into libpq's options.
    """
    if search_path and not SCHEMA_NAME.fullmatch(search_path):
        raise ValueError(
            f"search_path {search_path!r} is not a plain PostgreSQL schema name (a letter or _, then letters, "
            "digits, _ or $, at most 63 characters): set the warehouse connection's extra search_path to one "
            "schema name"
        )
    url = sa.URL.create(
        "postgresql+psycopg",
        username=user or None,
        password=password or None,
        host=host,
        port=port or 5432,
        database=database,
    )
    # A server that does not answer fails a connection in seconds, not after the OS's TCP timeout.
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )
    if search_path:

        @sa.event.listens_for(engine, "connect", insert=True)
        def _use_search_path_schema(dbapi_connection, _record):
            schema = psycopg_sql.Identifier(search_path)
            with dbapi_connection.cursor() as cursor:
                cursor.execute(psycopg_sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                cursor.execute(psycopg_sql.SQL("SET search_path TO {}").format(schema))
            # Committed, or the pool's rollback on the connection's first return would undo the SET.
            dbapi_connection.commit()

    return engine
