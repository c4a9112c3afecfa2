"""Every QuickBooks kind the sync writes, declared once: the planner, the loader, the read-back, the fault
categories and the warehouse copies all read these declarations instead of tables of their own.

A kind is what `sync_plan.taxdome_kind`, `sync_object_status` and `qbo_sync_state` name: a TaxDome object
(or a part of one, like a payment's processing fee) and the QuickBooks entity it becomes. Its rules (the
payload it gets, when it syncs) live in `core/rules/`; docs/development.md shows how to add one.

Pure: declarations and lookups, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

# TaxDome's sync-issue categories in TaxDome's order (R19); every kind belongs to one.
CATEGORIES = ("accounts", "services", "invoices", "payments", "refunds", "expenses")


@dataclass(frozen=True)
class QboEntity:
    """A QuickBooks entity the sync writes, and how it is found, linked and read back.

    :param app_path: its page in QuickBooks' web app, before the id (R16).
    :param marker_field: where the loader's marker `taxdome:<kind>:<id>` sits on what it creates; None when
        the entity carries none and is told apart by its natural key.
    :param natural_key: fields that find an object again (adoption of a write whose answer was lost). A name
        list's key is always in its payloads; a transaction's is used when its payload has it, else the
        transaction is narrowed by date and customer and told apart by its marker.
    :param name_list: a list entity (customers, items): its names are unique among active and inactive
        objects, and QBO hides inactive ones from a query that does not mention `Active`.
    :param copy_table: the `stg_qbo__*` table the read-back fills; None when it is not read back.
    :param balance_sources: the entities whose transactions move this one's balance (read back first).
    :param label: what QuickBooks' web app calls it; None: its name in words ("CreditMemo": "Credit memo").
    :param number_column: the column of its copy holding the number finance finds it by in QuickBooks
        (DocNumber, or a payment's reference number); None when it has none.
    """

    name: str
    app_path: str
    marker_field: str | None = "PrivateNote"
    natural_key: tuple[str, ...] = ()
    name_list: bool = False
    copy_table: str | None = None
    balance_sources: tuple[str, ...] = ()
    label: str | None = None
    number_column: str | None = None

    @property
    def shown_as(self) -> str:
        """How finance names the entity: its web-app label."""
        if self.label is not None:
            return self.label
        return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", self.name).capitalize()


@dataclass(frozen=True)
class StagedTable:
    """A staged TaxDome table a kind is planned from.

    :param read_columns: the columns the rules read. Only these become Python objects: the others (row
        hashes, update times) would take more memory than the rules' own columns.
    :param chunked: planned a chunk of rows at a time, not turned into Python objects all at once.
    """

    name: str
    read_columns: tuple[str, ...]
    chunked: bool = False


@dataclass(frozen=True)
class Kind:
    """One kind of QuickBooks object the sync writes.

    :param entity: the QuickBooks entity it becomes.
    :param category: its TaxDome sync-issue category (R19).
    :param staged: the staged tables it is planned from, its own first; none when it is planned from
        another kind's rows (a credit memo from a payment).
    :param id_column: the id of its own staged table: a row a full export no longer lists is `not_synced`.
    :param status_kind: the kind whose status row its operations decide (a credit memo decides its
        payment's); None: its own.
    :param own_status_row: False when its objects get a status row only when they fail (a fee, a credit
        application: their payment's status speaks for them).
    :param planned_in_order: planned in execution order (by date, then id), so its operations can be sent
        while planning goes on.
    :param delete_rank: deletable from QBO when TaxDome deletes or unsyncs it; deletions run by rank,
        children (low) before parents. None: never deleted.
    """

    name: str
    entity: str
    category: str
    staged: tuple[StagedTable, ...] = ()
    id_column: str | None = None
    status_kind: str | None = None
    own_status_row: bool = True
    planned_in_order: bool = False
    delete_rank: int | None = None

    @property
    def reported_as(self) -> str:
        """The kind whose status row speaks for this kind's objects."""
        return self.status_kind or self.name


Declared = TypeVar("Declared", QboEntity, Kind)


def declare(*declarations: Declared) -> dict[str, Declared]:
    """Declarations by name, in the order given; a name declared twice is refused, not silently replaced."""
    by_name: dict[str, Declared] = {}
    for declaration in declarations:
        if declaration.name in by_name:
            raise ValueError(f"{declaration.name} is declared twice")
        by_name[declaration.name] = declaration
    return by_name


# Declared in read-back order: an entity after the ones that move its balance, so a read can re-read
# what they touched.
ENTITIES: dict[str, QboEntity] = declare(
    QboEntity("Payment", "recvpayment?txnId=", copy_table="stg_qbo__payments", number_column="payment_ref"),
    QboEntity(
        "Invoice",
        "invoice?txnId=",
        natural_key=("DocNumber",),
        copy_table="stg_qbo__invoices",
        balance_sources=("Payment",),
        number_column="doc_number",
    ),
    QboEntity(
        "CreditMemo",
        "creditmemo?txnId=",
        copy_table="stg_qbo__credit_memos",
        balance_sources=("Payment",),
        number_column="doc_number",
    ),
    QboEntity(
        "Purchase",
        "expense?txnId=",
        copy_table="stg_qbo__purchases",
        label="Expense",
        number_column="doc_number",
    ),
    QboEntity(
        "RefundReceipt",
        "refundreceipt?txnId=",
        copy_table="stg_qbo__refund_receipts",
        number_column="doc_number",
    ),
    QboEntity(
        "Customer",
        "customerdetail?nameId=",
        marker_field="Notes",
        natural_key=("DisplayName",),
        name_list=True,
        copy_table="stg_qbo__customers",
        balance_sources=("Invoice", "Payment", "CreditMemo"),  # accounts receivable
    ),
    QboEntity(
        "Item",
        "items?itemId=",
        marker_field=None,
        natural_key=("Name",),
        name_list=True,
        label="Product/service",
    ),
)

# Declared in write order: parents before children, each kind referring only to kinds before it.
KINDS: dict[str, Kind] = declare(
    Kind(
        "account",
        "Customer",
        "accounts",
        staged=(
            StagedTable(
                "accounts",
                (
                    "account_id",
                    "account_name",
                    "account_type",
                    "email",
                    "created_at",
                    "archived",
                    "qbo_sync",
                    "qbo_customer_name",
                ),
            ),
        ),
        id_column="account_id",
    ),
    Kind(
        "service",
        "Item",
        "services",
        staged=(
            StagedTable(
                "services",
                (
                    "service_id",
                    "name",
                    "description",
                    "rate_cents",
                    "rate_type",
                    "created_at",
                    "qbo_item_name",
                ),
            ),
        ),
        id_column="service_id",
    ),
    Kind(
        "invoice",
        "Invoice",
        "invoices",
        staged=(
            StagedTable(
                "invoices",
                (
                    "invoice_id",
                    "invoice_number",
                    "account_id",
                    "posted_date",
                    "due_date",
                    "status",
                    "tax_amount_cents",
                    "total_cents",
                ),
                chunked=True,
            ),
            StagedTable(
                "invoice_lines",
                (
                    "invoice_id",
                    "line_no",
                    "service_id",
                    "service_name",
                    "description",
                    "rate_cents",
                    "quantity",
                    "amount_cents",
                    "taxable",
                ),
                chunked=True,
            ),
        ),
        id_column="invoice_id",
        planned_in_order=True,
    ),
    Kind(
        "payment",
        "Payment",
        "payments",
        staged=(
            StagedTable(
                "payments",
                (
                    "payment_id",
                    "account_id",
                    "payment_date",
                    "amount_cents",
                    "method",
                    "processor",
                    "processor_txn_id",
                    "processing_fee_cents",
                    "sync_to_qbo",
                ),
            ),
            StagedTable("payment_applications", ("payment_id", "invoice_id", "amount_cents")),
        ),
        id_column="payment_id",
        planned_in_order=True,
        delete_rank=4,
    ),
    Kind(
        "credit_memo",
        "CreditMemo",
        "payments",
        status_kind="payment",
        planned_in_order=True,
        delete_rank=5,
    ),
    Kind("credit_application", "Payment", "payments", own_status_row=False, delete_rank=3),
    Kind("fee", "Purchase", "expenses", own_status_row=False, planned_in_order=True, delete_rank=2),
    Kind(
        "refund",
        "RefundReceipt",
        "refunds",
        staged=(
            StagedTable(
                "refunds",
                ("refund_id", "payment_id", "account_id", "refund_date", "amount_cents", "reason"),
            ),
        ),
        id_column="refund_id",
        planned_in_order=True,
        delete_rank=1,
    ),
)

WRITE_ORDER = tuple(KINDS)
DELETE_ORDER = tuple(
    sorted(
        (name for name, kind in KINDS.items() if kind.delete_rank is not None),
        key=lambda n: KINDS[n].delete_rank,
    )
)
# Execution phases in order, deletions first: (kind, is a deletion).
PHASES = tuple((kind, True) for kind in DELETE_ORDER) + tuple((kind, False) for kind in WRITE_ORDER)
STAGED_TABLES = {table.name: table for kind in KINDS.values() for table in kind.staged}
READ_COLUMNS = {name: table.read_columns for name, table in STAGED_TABLES.items()}
READ_BACK = tuple(entity for entity in ENTITIES.values() if entity.copy_table is not None)
