"""Reading QBO back into the warehouse, against the emulator (real python-quickbooks over HTTP), on SQLite
and PostgreSQL: every table checked against the emulator's own state, to the cent."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from export_builder import with_rows, write_export
from load_harness import BASE_FIRM_SETTINGS, Firm, company_for_base_export, load, plan, session_for, stage
from quickbooks.batch import batch_create
from quickbooks.objects import Customer, Invoice, Payment, Purchase, Vendor

from taxdome_qbo.services import warehouse
from taxdome_qbo.services.qbo_readback import CDC_MAX_OBJECTS, QboAmountError, exact_cents, read_back

ENTITIES = ("Customer", "Invoice", "Payment", "CreditMemo", "Purchase", "RefundReceipt")
# A promotional credit adds a credit memo, and a zero payment linking it to the invoice it pays.
PROMOTIONAL_CREDIT = "P3,A2,2026-01-09,150.00,promotional_credit,none,,0,USD,true,,2026-01-09T09:00:00Z"


def _synced_base_firm(engine, emulator, tmp_path) -> tuple[dict, object]:
    """The base export plus a promotional credit, synced into a company of its own: its session."""
    company = company_for_base_export(emulator)
    export = write_export(
        tmp_path / "export",
        payments_csv=with_rows("payments.csv", PROMOTIONAL_CREDIT),
        payment_applications_csv=with_rows("payment_applications.csv", "P3,I2,150.00"),
    )
    stage(engine, export)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), "run-1")
    assert load(engine, session, "run-1").failed == 0
    return company, session


def _qbo_state(emulator, realm_id: str) -> dict[str, list[dict]]:
    return json.loads(emulator.admin("GET", f"state/{realm_id}").text, parse_float=Decimal)["entities"]


def _cents(amount) -> int | None:
    return None if amount is None else int(Decimal(amount) * 100)


def _ref(obj: dict, key: str) -> str | None:
    return (obj.get(key) or {}).get("value")


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def _expected_tables(emulator, realm_id: str) -> dict[str, set[tuple]]:
    """What each table should hold for the company, from the emulator's state (columns in table order,
    `_read_at` left out)."""
    state = {entity: _qbo_state(emulator, realm_id).get(entity, []) for entity in ENTITIES}

    def copy(obj: dict, *columns, marker: str = "PrivateNote") -> tuple:
        meta = (obj.get(marker), obj["SyncToken"], _utc(obj["MetaData"]["LastUpdatedTime"]))
        return (realm_id, obj["Id"], *columns, *meta)

    def customer_txn(obj: dict, *columns) -> tuple:
        """A copy of a transaction with a customer: its date, customer and total come first."""
        return copy(obj, _day(obj["TxnDate"]), _ref(obj, "CustomerRef"), _cents(obj["TotalAmt"]), *columns)

    def sales_form(obj: dict, *columns) -> tuple:
        """A copy of a numbered transaction with a customer: its number, then as `customer_txn`."""
        return copy(
            obj,
            obj.get("DocNumber"),
            _day(obj["TxnDate"]),
            _ref(obj, "CustomerRef"),
            _cents(obj["TotalAmt"]),
            *columns,
        )

    def sales_lines(invoice: dict) -> list[dict]:
        return [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]

    return {
        "stg_qbo__customers": {
            copy(c, c["DisplayName"], c["Active"], _cents(c["Balance"]), marker="Notes")
            for c in state["Customer"]
        },
        "stg_qbo__invoices": {
            copy(
                i,
                i.get("DocNumber"),
                _day(i.get("TxnDate")),
                _day(i.get("DueDate")),
                _ref(i, "CustomerRef"),
                _cents(i["TotalAmt"]),
                _cents(i.get("TxnTaxDetail", {}).get("TotalTax", 0)),
                _cents(i["Balance"]),
            )
            for i in state["Invoice"]
        },
        "stg_qbo__invoice_lines": {
            (
                realm_id,
                i["Id"],
                n,
                line["SalesItemLineDetail"]["ItemRef"]["value"],
                line.get("Description"),
                _cents(line["Amount"]),
            )
            for i in state["Invoice"]
            for n, line in enumerate(sales_lines(i), start=1)
        },
        "stg_qbo__payments": {
            customer_txn(p, _cents(p["UnappliedAmt"]), _ref(p, "DepositToAccountRef"), p.get("PaymentRefNum"))
            for p in state["Payment"]
        },
        "stg_qbo__payment_links": {
            (realm_id, p["Id"], n, link["TxnType"], link["TxnId"], _cents(line["Amount"]))
            for p in state["Payment"]
            for n, line in enumerate(p["Line"], start=1)
            for link in line["LinkedTxn"]
        },
        "stg_qbo__credit_memos": {sales_form(m, _cents(m["RemainingCredit"])) for m in state["CreditMemo"]},
        "stg_qbo__purchases": {
            copy(
                p,
                p.get("DocNumber"),
                _day(p["TxnDate"]),
                (p.get("EntityRef") or {}).get("name"),
                _ref(p, "AccountRef"),
                p["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"],
                _cents(p["TotalAmt"]),
            )
            for p in state["Purchase"]
        },
        "stg_qbo__refund_receipts": {
            sales_form(r, _ref(r, "DepositToAccountRef"), r.get("PaymentRefNum"))
            for r in state["RefundReceipt"]
        },
    }


def _naive_utc(value):
    """PostgreSQL hands timestamps back aware, SQLite naive (written in UTC)."""
    return (
        value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) and value.tzinfo else value
    )


def _warehouse_tables(engine, realm_id: str) -> dict[str, set[tuple]]:
    tables = {}
    with engine.connect() as conn:
        for name in _EXPECTED_TABLES:
            table = warehouse.metadata.tables[name]
            columns = [column for column in table.columns if column.name != "_read_at"]
            rows = conn.execute(sa.select(*columns).where(table.c.realm_id == realm_id)).all()
            tables[name] = {tuple(_naive_utc(value) for value in row) for row in rows}
    return tables


_EXPECTED_TABLES = (
    "stg_qbo__customers",
    "stg_qbo__invoices",
    "stg_qbo__invoice_lines",
    "stg_qbo__payments",
    "stg_qbo__payment_links",
    "stg_qbo__credit_memos",
    "stg_qbo__purchases",
    "stg_qbo__refund_receipts",
)


def _assert_warehouse_matches_qbo(engine, emulator, realm_id: str) -> None:
    expected, held = _expected_tables(emulator, realm_id), _warehouse_tables(engine, realm_id)
    for name in _EXPECTED_TABLES:
        assert held[name] == expected[name], (
            f"{name}: missing {expected[name] - held[name]}, extra {held[name] - expected[name]}"
        )


def _readbacks(engine, realm_id: str) -> dict[str, tuple]:
    readbacks = warehouse.qbo_readbacks
    with engine.connect() as conn:
        rows = conn.execute(sa.select(readbacks).where(readbacks.c.realm_id == realm_id)).all()
    return {row.entity: (_naive_utc(row.read_at), row.mode, row.objects) for row in rows}


def _read_at_by_id(engine, table_name: str, realm_id: str) -> dict[str, datetime]:
    table = warehouse.metadata.tables[table_name]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.qbo_id, table.c._read_at).where(table.c.realm_id == realm_id))
        return {qbo_id: _naive_utc(read_at) for qbo_id, read_at in rows}


def _rows_of(engine, table: sa.Table, realm_id: str, **equal) -> list:
    """The company's rows of `table` whose columns equal `equal`, in primary-key order."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(table)
            .where(table.c.realm_id == realm_id, *(table.c[name] == value for name, value in equal.items()))
            .order_by(*table.primary_key.columns)
        ).all()


def _marked(emulator, realm_id: str, entity: str, marker: str) -> dict:
    field = "Notes" if entity == "Customer" else "PrivateNote"
    [obj] = [obj for obj in _qbo_state(emulator, realm_id)[entity] if obj.get(field) == marker]
    return obj


def _add_customer(emulator, company: dict, name: str) -> None:
    customer = Customer()
    customer.DisplayName = name
    customer.save(qb=emulator.quickbooks(company))


def test_a_full_read_copies_every_object_to_the_cent(warehouse_engine, emulator, tmp_path):
    engine = warehouse_engine
    company, session = _synced_base_firm(engine, emulator, tmp_path)
    realm = company["realm_id"]

    receipt = read_back(engine, session, incremental=False)

    assert receipt.modes == dict.fromkeys(ENTITIES, "full")
    _assert_warehouse_matches_qbo(engine, emulator, realm)
    state = _qbo_state(emulator, realm)
    assert receipt.objects == {entity: len(state.get(entity, [])) for entity in ENTITIES}
    assert {
        entity: mode_and_objects[1:] for entity, mode_and_objects in _readbacks(engine, realm).items()
    } == {entity: ("full", n) for entity, n in receipt.objects.items()}
    # The amounts TaxDome exported, in cents, as the sync wrote them.
    i1 = _marked(emulator, realm, "Invoice", "taxdome:invoice:I1")["Id"]
    lines = _rows_of(engine, warehouse.stg_qbo_invoice_lines, realm, invoice_id=i1)
    assert [(line.line_no, line.description, line.amount_cents) for line in lines] == [
        (1, None, 25000),
        (2, "Two hours and a quarter", 21375),
        (3, "Discount", -2125),
        (4, "Sales tax", 2219),
    ]
    [invoice] = _rows_of(engine, warehouse.stg_qbo_invoices, realm, qbo_id=i1)
    assert (invoice.total_cents, invoice.tax_cents, invoice.balance_cents) == (46469, 0, 0)
    assert invoice.marker == "taxdome:invoice:I1"
    credit_application = _marked(emulator, realm, "Payment", "taxdome:credit_application:P3:I2:P3")["Id"]
    credit_memo = _marked(emulator, realm, "CreditMemo", "taxdome:credit_memo:P3")["Id"]
    i2 = _marked(emulator, realm, "Invoice", "taxdome:invoice:I2")["Id"]
    links = _rows_of(engine, warehouse.stg_qbo_payment_links, realm, payment_id=credit_application)
    assert {(link.txn_type, link.txn_id, link.amount_cents) for link in links} == {
        ("Invoice", i2, 15000),
        ("CreditMemo", credit_memo, 15000),
    }
    [fee] = _rows_of(engine, warehouse.stg_qbo_purchases, realm)
    assert (fee.total_cents, fee.marker) == (1378, "taxdome:fee:P1")

    again = read_back(engine, session, incremental=False)

    assert again.objects == receipt.objects
    _assert_warehouse_matches_qbo(engine, emulator, realm)


def test_the_copies_keep_the_numbers_and_payees_finance_finds_objects_by(
    warehouse_engine, emulator, tmp_path
):
    engine = warehouse_engine
    company, session = _synced_base_firm(engine, emulator, tmp_path)
    realm = company["realm_id"]
    qb = emulator.quickbooks(company)
    fee = _marked(emulator, realm, "Purchase", "taxdome:fee:P1")
    vendor = Vendor()
    vendor.DisplayName = "Office Supplies & Co"
    vendor = vendor.save(qb=qb)
    expense = Purchase.from_json(
        {
            "PaymentType": "Cash",
            "DocNumber": "EXP-17",
            "TxnDate": "2026-01-12",
            "AccountRef": fee["AccountRef"],
            "EntityRef": {"value": vendor.Id, "name": vendor.DisplayName, "type": "Vendor"},
            "Line": [
                {
                    "Amount": "42.50",
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": fee["Line"][0]["AccountBasedExpenseLineDetail"],
                }
            ],
        }
    ).save(qb=qb)

    read_back(engine, session, incremental=False)

    _assert_warehouse_matches_qbo(engine, emulator, realm)
    [entered] = _rows_of(engine, warehouse.stg_qbo_purchases, realm, qbo_id=expense.Id)
    assert (entered.doc_number, entered.payee_name, entered.total_cents) == (
        "EXP-17",
        "Office Supplies & Co",
        4250,
    )
    [synced_fee] = _rows_of(engine, warehouse.stg_qbo_purchases, realm, qbo_id=fee["Id"])
    assert (synced_fee.doc_number, synced_fee.payee_name) == (None, None)  # the sync's fees carry neither
    # QuickBooks numbers the sales forms the sync creates: the copies keep those numbers.
    for entity, table, marker in (
        ("CreditMemo", warehouse.stg_qbo_credit_memos, "taxdome:credit_memo:P3"),
        ("RefundReceipt", warehouse.stg_qbo_refund_receipts, "taxdome:refund:R1"),
    ):
        numbered = _marked(emulator, realm, entity, marker)
        [row] = _rows_of(engine, table, realm, qbo_id=numbered["Id"])
        assert row.doc_number == numbered["DocNumber"] != ""


def test_an_incremental_read_brings_edits_deletions_and_new_objects_and_keeps_the_rest(
    warehouse_engine, emulator, tmp_path
):
    engine = warehouse_engine
    company, session = _synced_base_firm(engine, emulator, tmp_path)
    realm = company["realm_id"]
    # QBO's LastUpdatedTime has whole seconds: the sync's objects must be a second older than the read, so
    # that an incremental read starting at it (no overlap: one clock here) does not see them.
    time.sleep(1.1)
    read_back(engine, session, incremental=False)
    first_reads = _readbacks(engine, realm)
    customers_read_at = _read_at_by_id(engine, "stg_qbo__customers", realm)

    qb = emulator.quickbooks(company)
    invoice = Invoice.get(_marked(emulator, realm, "Invoice", "taxdome:invoice:I2")["Id"], qb=qb)
    line = invoice.Line[0]
    line.Amount = line.SalesItemLineDetail.UnitPrice = Decimal("275.10")
    invoice.save(qb=qb)
    p2 = _marked(emulator, realm, "Payment", "taxdome:payment:P2")
    Payment.get(p2["Id"], qb=qb).delete(qb=qb)
    _add_customer(emulator, company, "Walk-in Client")

    receipt = read_back(engine, session, incremental=True, overlap=timedelta(0))

    assert receipt.modes == dict.fromkeys(ENTITIES, "cdc")
    zoe = _marked(emulator, realm, "Customer", "taxdome:account:A2")["Id"]
    assert receipt.objects == {
        "Payment": 1,
        "Invoice": 1,
        "CreditMemo": 0,
        "Purchase": 0,
        "RefundReceipt": 0,
        "Customer": 2,  # the new one, and Zoë's balance moved by her invoice and payment
    }
    assert receipt.deleted["Payment"] == 1
    _assert_warehouse_matches_qbo(engine, emulator, realm)
    [edited] = _rows_of(engine, warehouse.stg_qbo_invoices, realm, qbo_id=invoice.Id)
    assert (edited.total_cents, edited.balance_cents) == (
        27510,
        27510 - 15000,
    )  # the credit still pays 150.00
    assert _rows_of(engine, warehouse.stg_qbo_payment_links, realm, payment_id=p2["Id"]) == []
    # What did not change was not read again.
    now_read_at = _read_at_by_id(engine, "stg_qbo__customers", realm)
    o_brien = _marked(emulator, realm, "Customer", "taxdome:account:A1")["Id"]
    assert now_read_at[o_brien] == customers_read_at[o_brien]
    assert now_read_at[zoe] > customers_read_at[zoe]
    second_reads = _readbacks(engine, realm)
    assert {entity: read[1:] for entity, read in second_reads.items()} == {
        entity: ("cdc", n) for entity, n in receipt.objects.items()
    }
    assert all(second_reads[entity][0] > first_reads[entity][0] for entity in ENTITIES)

    read_back(engine, session, incremental=True, overlap=timedelta(0))

    _assert_warehouse_matches_qbo(engine, emulator, realm)


def test_a_company_never_read_is_read_fully_and_an_entity_beyond_cdc_look_back_again(
    warehouse_engine, emulator, company
):
    engine = warehouse_engine
    realm = company["realm_id"]
    # Something to read. (The emulator's state snapshot also fails for a company whose balances were never
    # computed, which a customer's creation does.)
    _add_customer(emulator, company, "First Client")
    warehouse.create_schema(engine)
    other_company_customer = {
        "realm_id": "another-realm",
        "qbo_id": "1",
        "display_name": "Someone else's",
        "active": True,
        "_read_at": datetime.now(UTC),
    }
    with engine.begin() as conn:
        conn.execute(sa.insert(warehouse.stg_qbo_customers), [other_company_customer])
    session = session_for(engine, emulator, company)

    first = read_back(engine, session, incremental=True)

    assert first.modes == dict.fromkeys(ENTITIES, "full")
    assert {read[1] for read in _readbacks(engine, realm).values()} == {"full"}
    _assert_warehouse_matches_qbo(engine, emulator, realm)
    assert _read_at_by_id(engine, "stg_qbo__customers", "another-realm").keys() == {"1"}

    readbacks = warehouse.qbo_readbacks
    with engine.begin() as conn:
        conn.execute(
            sa.update(readbacks)
            .where(readbacks.c.realm_id == realm, readbacks.c.entity == "Payment")
            .values(read_at=datetime.now(UTC) - timedelta(days=31))
        )

    second = read_back(engine, session, incremental=True)

    # Payments are beyond CDC's 30 days; what their changes move (invoice, credit memo and customer
    # balances) cannot be told from a full read, so those are read fully too.
    assert second.modes == {
        "Payment": "full",
        "Invoice": "full",
        "CreditMemo": "full",
        "Purchase": "cdc",
        "RefundReceipt": "cdc",
        "Customer": "full",
    }
    _assert_warehouse_matches_qbo(engine, emulator, realm)


def test_a_cdc_answer_at_its_cap_falls_back_to_a_full_read(sqlite_engine, emulator, company):
    engine = sqlite_engine
    realm = company["realm_id"]
    warehouse.create_schema(engine)
    session = session_for(engine, emulator, company)
    read_back(engine, session, incremental=False)
    customers = []
    for n in range(CDC_MAX_OBJECTS + 5):
        customer = Customer()
        customer.DisplayName = f"Client {n:04d}"
        customers.append(customer)
    created = batch_create(customers, qb=emulator.quickbooks(company))
    assert not created.faults

    receipt = read_back(engine, session, incremental=True)

    assert receipt.modes["Customer"] == "full"
    assert receipt.objects["Customer"] == len(_qbo_state(emulator, realm)["Customer"])
    assert receipt.objects["Customer"] > CDC_MAX_OBJECTS
    assert _readbacks(engine, realm)["Customer"][1:] == ("full", receipt.objects["Customer"])
    _assert_warehouse_matches_qbo(engine, emulator, realm)


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        (Decimal("464.69"), 46469),
        (Decimal("-21.25"), -2125),
        (Decimal("0.0"), 0),
        (250, 25000),
        (Decimal("1E+2"), 10000),
    ],
)
def test_amounts_become_exact_cents(amount, cents):
    assert exact_cents(amount, "TotalAmt") == cents


@pytest.mark.parametrize(
    "amount",
    [Decimal("10.005"), Decimal("0.001"), 464.69, "464.69", True, None, Decimal("NaN"), Decimal("Infinity")],
)
def test_an_amount_cents_cannot_hold_exactly_is_refused(amount):
    with pytest.raises(QboAmountError, match="QBO Invoice 7 TotalAmt"):
        exact_cents(amount, "QBO Invoice 7 TotalAmt")
