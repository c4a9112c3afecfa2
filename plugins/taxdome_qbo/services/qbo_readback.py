"""Read what a QuickBooks company holds back into the warehouse, to the cent, for the reconciliation.

Customers, invoices (with their sales lines), payments (with what each line applies to), credit memos,
purchases and refund receipts land in the `stg_qbo__*` tables, one row per QBO object of the company.
Amounts are integer cents converted exactly from the decimals python-quickbooks parses (`use_decimal`);
an amount with digits below the cent is refused, never rounded.

A full read pages through every object of an entity and replaces the company's rows of it in one
transaction. An incremental read asks QBO's Change Data Capture what changed since the entity's last read
(`qbo_readbacks`), upserts the changed objects, deletes the deleted ones, and falls back to a full read when
CDC cannot answer completely: the entity was never read, its last read is beyond CDC's 30-day look-back,
or the answer hit CDC's 1000-object cap.

Balances QBO derives from other transactions (an invoice's, a credit memo's, a customer's) can move without
the object itself being edited, and QBO does not document that such a move reaches CDC (the emulator's
customers do not). So an incremental read also re-reads, by Id, the objects whose balance the changed
transactions touch, before and after the change.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core.kinds import ENTITIES, READ_BACK
from taxdome_qbo.services import warehouse
from taxdome_qbo.services.qbo_client import (
    ACTIVE_AND_INACTIVE,
    CDC_MAX_OBJECTS,
    QboSession,
    changed_since,
    query_all,
    query_pages,
    quote,
)
from taxdome_qbo.services.warehouse import insert_for

log = logging.getLogger(__name__)

FULL, CDC = "full", "cdc"
# QBO refuses a changedSince older than 30 days by its own clock; an hour less leaves room for clock skew.
CDC_LOOKBACK = timedelta(days=30) - timedelta(hours=1)
# How far before the last read the next one starts: covers clock skew between this host and QBO, and QBO's
# whole-second LastUpdatedTime. Re-reading an object is harmless (upserts), missing one is not.
DEFAULT_OVERLAP = timedelta(minutes=5)
BALANCE_TARGETS = ("Invoice", "CreditMemo")  # what a payment line applies to, and so whose balance it moves
CUSTOMER_BALANCE_SOURCES = ENTITIES["Customer"].balance_sources


class QboAmountError(ValueError):
    """QBO returned an amount that integer cents cannot hold exactly."""


def exact_cents(amount: object, what: str) -> int:
    """`amount` (an int or an exactly parsed Decimal) in cents; floats and sub-cent digits are refused."""
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise QboAmountError(f"{what} is {amount!r}, not an exact decimal amount")
    scaled = Decimal(amount).scaleb(2)
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise QboAmountError(f"{what} is {amount}: QBO amounts are whole cents, this one is not")
    return int(scaled)


Cents = Callable[[object, str], int]  # an object's amount (and the field it came from) in cents


def _at(obj: dict, *path: str) -> object:
    """`obj`'s value at a nested path (`"CustomerRef", "value"`), None where any step is missing."""
    value: object = obj
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _date(text: object) -> date | None:
    return date.fromisoformat(text) if text else None


def _utc(text: object) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def _optional(cents: Cents, amount: object, field_name: str) -> int | None:
    return None if amount is None else cents(amount, field_name)


def _customer(obj: dict, cents: Cents) -> dict:
    return {
        "display_name": obj["DisplayName"],
        "active": obj.get("Active", True),  # QBO's default: only inactive customers say so
        "balance_cents": _optional(cents, obj.get("Balance"), "Balance"),
    }


def _invoice(obj: dict, cents: Cents) -> dict:
    return {
        "doc_number": obj.get("DocNumber"),
        "txn_date": _date(obj.get("TxnDate")),
        "due_date": _date(obj.get("DueDate")),
        "customer_id": _at(obj, "CustomerRef", "value"),
        "total_cents": cents(obj["TotalAmt"], "TotalAmt"),
        "tax_cents": cents(_at(obj, "TxnTaxDetail", "TotalTax") or 0, "TxnTaxDetail.TotalTax"),
        "balance_cents": cents(obj["Balance"], "Balance"),
    }


def _invoice_lines(obj: dict, cents: Cents) -> list[dict]:
    sales_lines = [line for line in obj.get("Line", []) if line.get("DetailType") == "SalesItemLineDetail"]
    return [
        {
            "line_no": line_no,
            "item_id": _at(line, "SalesItemLineDetail", "ItemRef", "value"),
            "description": line.get("Description"),
            "amount_cents": cents(line["Amount"], f"Line {line_no} Amount"),
        }
        for line_no, line in enumerate(sales_lines, start=1)
    ]


def _payment(obj: dict, cents: Cents) -> dict:
    return {
        "txn_date": _date(obj.get("TxnDate")),
        "customer_id": _at(obj, "CustomerRef", "value"),
        "total_cents": cents(obj["TotalAmt"], "TotalAmt"),
        "unapplied_cents": _optional(cents, obj.get("UnappliedAmt"), "UnappliedAmt"),
        "deposit_account_id": _at(obj, "DepositToAccountRef", "value"),
        "payment_ref": obj.get("PaymentRefNum"),
    }


def _payment_links(obj: dict, cents: Cents) -> list[dict]:
    return [
        {
            "line_no": line_no,
            "txn_type": link["TxnType"],
            "txn_id": link["TxnId"],
            "amount_cents": cents(line["Amount"], f"Line {line_no} Amount"),
        }
        for line_no, line in enumerate(obj.get("Line", []), start=1)
        for link in line.get("LinkedTxn", [])
    ]


def _credit_memo(obj: dict, cents: Cents) -> dict:
    return {
        "doc_number": obj.get("DocNumber"),
        "txn_date": _date(obj.get("TxnDate")),
        "customer_id": _at(obj, "CustomerRef", "value"),
        "total_cents": cents(obj["TotalAmt"], "TotalAmt"),
        "remaining_cents": _optional(cents, obj.get("RemainingCredit"), "RemainingCredit"),
    }


def _purchase(obj: dict, cents: Cents) -> dict:
    expense_lines = [line for line in obj.get("Line", []) if "AccountBasedExpenseLineDetail" in line]
    return {
        "doc_number": obj.get("DocNumber"),
        "txn_date": _date(obj.get("TxnDate")),
        "payee_name": _at(obj, "EntityRef", "name"),
        "paid_from_account_id": _at(obj, "AccountRef", "value"),
        "expense_account_id": (
            _at(expense_lines[0], "AccountBasedExpenseLineDetail", "AccountRef", "value")
            if expense_lines
            else None
        ),
        "total_cents": cents(obj["TotalAmt"], "TotalAmt"),
    }


def _refund_receipt(obj: dict, cents: Cents) -> dict:
    return {
        "doc_number": obj.get("DocNumber"),
        "txn_date": _date(obj.get("TxnDate")),
        "customer_id": _at(obj, "CustomerRef", "value"),
        "total_cents": cents(obj["TotalAmt"], "TotalAmt"),
        "deposit_account_id": _at(obj, "DepositToAccountRef", "value"),
        "payment_ref": obj.get("PaymentRefNum"),
    }


@dataclass(frozen=True)
class _Child:
    """Rows an object owns in another table (invoice lines, payment links), replaced with the object."""

    table: sa.Table
    parent_column: str
    rows: Callable[[dict, Cents], list[dict]]


@dataclass(frozen=True)
class _Copy:
    """How one QBO entity lands in the warehouse."""

    entity: str
    columns: Callable[[dict, Cents], dict]
    child: _Child | None = None

    @property
    def table(self) -> sa.Table:
        return warehouse.QBO_COPIES[self.entity]

    @property
    def marker_field(self) -> str | None:
        return ENTITIES[self.entity].marker_field

    @property
    def where(self) -> str | None:
        # QBO hides inactive objects of a name list from a query that does not mention Active.
        return ACTIVE_AND_INACTIVE if ENTITIES[self.entity].name_list else None


COPIES = {
    copy.entity: copy
    for copy in (
        _Copy("Customer", _customer),
        _Copy(
            "Invoice", _invoice, child=_Child(warehouse.stg_qbo_invoice_lines, "invoice_id", _invoice_lines)
        ),
        _Copy(
            "Payment", _payment, child=_Child(warehouse.stg_qbo_payment_links, "payment_id", _payment_links)
        ),
        _Copy("CreditMemo", _credit_memo),
        _Copy("Purchase", _purchase),
        _Copy("RefundReceipt", _refund_receipt),
    )
}


@dataclass
class _Rows:
    parents: list[dict] = field(default_factory=list)
    children: list[dict] = field(default_factory=list)


def _cents_of(entity: str, obj: dict) -> Cents:
    """`exact_cents` for `obj`'s amounts: a refusal names the object and the field."""
    return lambda amount, field_name: exact_cents(amount, f"QBO {entity} {obj.get('Id')} {field_name}")


def _rows(copy: _Copy, realm_id: str, objects: Iterable[dict], read_at: datetime) -> _Rows:
    rows = _Rows()
    for obj in objects:
        cents = _cents_of(copy.entity, obj)
        rows.parents.append(
            {
                "realm_id": realm_id,
                "qbo_id": obj["Id"],
                **copy.columns(obj, cents),
                "marker": obj.get(copy.marker_field),
                "sync_token": obj.get("SyncToken"),
                "last_updated": _utc(_at(obj, "MetaData", "LastUpdatedTime")),
                "_read_at": read_at,
            }
        )
        if copy.child:
            rows.children.extend(
                {"realm_id": realm_id, copy.child.parent_column: obj["Id"], **row}
                for row in copy.child.rows(obj, cents)
            )
    return rows


def _balance_references(copy: _Copy, rows: _Rows) -> set[tuple[str, str]]:
    """(entity, Id) of the objects whose balance these rows' objects move."""
    references: set[tuple[str, str]] = set()
    if copy.entity in CUSTOMER_BALANCE_SOURCES:
        references.update(("Customer", row["customer_id"]) for row in rows.parents if row["customer_id"])
    if copy.entity == "Payment":
        references.update(
            (row["txn_type"], row["txn_id"]) for row in rows.children if row["txn_type"] in BALANCE_TARGETS
        )
    return references


def _stored_balance_references(
    conn: Connection, copy: _Copy, realm_id: str, ids: set[str]
) -> set[tuple[str, str]]:
    """What the warehouse copies of these objects (before the change) say `_balance_references` of."""
    stored = _Rows()
    for chunk in warehouse.id_chunks(ids):
        if copy.entity in CUSTOMER_BALANCE_SOURCES:
            table = copy.table
            stored.parents.extend(
                {"customer_id": customer_id}
                for (customer_id,) in conn.execute(
                    sa.select(table.c.customer_id).where(
                        table.c.realm_id == realm_id, table.c.qbo_id.in_(chunk)
                    )
                )
            )
        if copy.entity == "Payment":
            links = warehouse.stg_qbo_payment_links
            stored.children.extend(
                row._asdict()
                for row in conn.execute(
                    sa.select(links.c.txn_type, links.c.txn_id).where(
                        links.c.realm_id == realm_id, links.c.payment_id.in_(chunk)
                    )
                )
            )
    return _balance_references(copy, stored)


def _insert(conn: Connection, copy: _Copy, rows: _Rows) -> None:
    # executemany: SQLAlchemy sends many rows per INSERT statement on both databases.
    if rows.parents:
        conn.execute(sa.insert(copy.table), rows.parents)
    if copy.child and rows.children:
        conn.execute(sa.insert(copy.child.table), rows.children)


def _record_read(
    conn: Connection, realm_id: str, entity: str, read_at: datetime, mode: str, objects: int
) -> None:
    readbacks = warehouse.qbo_readbacks
    statement = insert_for(conn)(readbacks).values(
        realm_id=realm_id, entity=entity, read_at=read_at, mode=mode, objects=objects
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[readbacks.c.realm_id, readbacks.c.entity],
            set_={"read_at": statement.excluded.read_at, "mode": mode, "objects": objects},
        )
    )


def _replace_all(
    engine: Engine, copy: _Copy, realm_id: str, pages: Iterable[list[dict]], read_at: datetime
) -> int:
    """The company's rows of the entity replaced by the objects of `pages`; how many there were. Each page
    becomes rows as it arrives, so a full read holds an entity's rows but not also QBO's objects; all before
    the transaction, so a refused amount changes nothing."""
    rows, objects = _Rows(), 0
    for page in pages:
        page_rows = _rows(copy, realm_id, page, read_at)
        rows.parents += page_rows.parents
        rows.children += page_rows.children
        objects += len(page)
    with engine.begin() as conn:
        for table in (copy.table, copy.child.table) if copy.child else (copy.table,):
            conn.execute(sa.delete(table).where(table.c.realm_id == realm_id))
        _insert(conn, copy, rows)
        _record_read(conn, realm_id, copy.entity, read_at, FULL, objects)
    return objects


def _apply_changes(
    engine: Engine,
    copy: _Copy,
    realm_id: str,
    changed: list[dict],
    deleted_ids: set[str],
    read_at: datetime,
    reported: int,
) -> set[tuple[str, str]]:
    """Upsert `changed` (their children replaced) and delete `deleted_ids`; returns the balance
    references of these objects before and after."""
    rows = _rows(copy, realm_id, changed, read_at)
    affected = {obj["Id"] for obj in changed} | deleted_ids
    with engine.begin() as conn:
        references = _stored_balance_references(conn, copy, realm_id, affected) | _balance_references(
            copy, rows
        )
        for chunk in warehouse.id_chunks(affected):
            conn.execute(
                sa.delete(copy.table).where(copy.table.c.realm_id == realm_id, copy.table.c.qbo_id.in_(chunk))
            )
            if copy.child:
                child_table = copy.child.table
                conn.execute(
                    sa.delete(child_table).where(
                        child_table.c.realm_id == realm_id, child_table.c[copy.child.parent_column].in_(chunk)
                    )
                )
        _insert(conn, copy, rows)
        _record_read(conn, realm_id, copy.entity, read_at, CDC, reported)
    return references


def _changes_since(session: QboSession, entity: str, since: datetime) -> tuple[list[dict], set[str]] | None:
    """`entity`'s objects changed since `since` and the Ids of those deleted; None when the answer reached
    CDC's cap and may be incomplete."""
    objects = changed_since(session, [entity], since)[entity]
    if len(objects) >= CDC_MAX_OBJECTS:
        log.info(
            "QuickBooks CDC answered %d %s objects, its cap: reading them all instead", len(objects), entity
        )
        return None
    deleted_ids = {obj["Id"] for obj in objects if obj.get("status") == "Deleted"}
    changed = {obj["Id"]: obj for obj in objects if obj["Id"] not in deleted_ids}
    return list(changed.values()), deleted_ids


def _read_by_ids(session: QboSession, copy: _Copy, ids: set[str]) -> list[dict]:
    objects: list[dict] = []
    for chunk in warehouse.id_chunks(ids):
        condition = f"Id IN ({', '.join(quote(qbo_id) for qbo_id in chunk)})"
        where = f"{copy.where} AND {condition}" if copy.where else condition
        objects.extend(query_all(session, copy.entity, where))
    return objects


def _incremental_start(last_read_at: datetime | None, now: datetime, overlap: timedelta) -> datetime | None:
    """Where CDC starts for an entity last read at `last_read_at`; None when CDC cannot reach back there."""
    if last_read_at is None:
        return None
    since = last_read_at - overlap
    return since if now - since <= CDC_LOOKBACK else None


def _last_reads(engine: Engine, realm_id: str) -> dict[str, datetime]:
    readbacks = warehouse.qbo_readbacks
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(readbacks.c.entity, readbacks.c.read_at).where(readbacks.c.realm_id == realm_id)
        ).all()
    # SQLite hands timestamps back naive; they were written in UTC.
    return {row.entity: row.read_at.replace(tzinfo=row.read_at.tzinfo or UTC) for row in rows}


@dataclass
class ReadbackReceipt:
    """Small enough for XCom: per entity, how it was read and how many objects that brought."""

    realm_id: str
    modes: dict[str, str] = field(default_factory=dict)  # full | cdc
    objects: dict[str, int] = field(default_factory=dict)  # read (full); changed, re-read or deleted (cdc)
    deleted: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_xcom(self) -> dict:
        return {
            "realm_id": self.realm_id,
            "modes": self.modes,
            "objects": self.objects,
            "deleted": self.deleted,
            "seconds": round(self.seconds, 1),
        }


def read_back(
    engine: Engine, session: QboSession, *, incremental: bool, overlap: timedelta = DEFAULT_OVERLAP
) -> ReadbackReceipt:
    """Copy the session's company into the `stg_qbo__*` tables: fully, or (`incremental`) what changed
    since each entity's last read, starting `overlap` before it."""
    warehouse.create_schema(engine)
    started = time.monotonic()
    realm_id = session.realm_id
    last_reads = _last_reads(engine, realm_id) if incremental else {}
    receipt = ReadbackReceipt(realm_id)
    balance_moved: dict[str, set[str]] = defaultdict(set)  # entity -> Ids whose balance may have moved
    for declared in READ_BACK:
        entity, copy = declared.name, COPIES[declared.name]
        entity_started = time.monotonic()
        read_at = datetime.now(UTC)
        since = _incremental_start(last_reads.get(entity), read_at, overlap)
        # A source read fully says nothing about which balances it moved.
        if any(receipt.modes.get(source) == FULL for source in declared.balance_sources):
            since = None
        changes = _changes_since(session, entity, since) if since is not None else None
        if changes is None:
            objects = _replace_all(engine, copy, realm_id, query_pages(session, entity, copy.where), read_at)
            receipt.modes[entity], receipt.objects[entity], receipt.deleted[entity] = FULL, objects, 0
        else:
            changed, deleted_ids = changes
            changed += _read_by_ids(
                session, copy, balance_moved[entity] - {obj["Id"] for obj in changed} - deleted_ids
            )
            reported = len(changed) + len(deleted_ids)
            references = _apply_changes(engine, copy, realm_id, changed, deleted_ids, read_at, reported)
            for referenced_entity, qbo_id in references:
                balance_moved[referenced_entity].add(qbo_id)
            receipt.modes[entity], receipt.objects[entity] = CDC, reported
            receipt.deleted[entity] = len(deleted_ids)
        log.info(
            "QuickBooks company %s: read back %d %s objects (%s) in %.1f s",
            realm_id,
            receipt.objects[entity],
            entity,
            receipt.modes[entity],
            time.monotonic() - entity_started,
        )
    receipt.seconds = time.monotonic() - started
    return receipt
