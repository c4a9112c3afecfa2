"""The reconciliation against a firm synced into the QBO emulator: clean after a sync, and every planted
difference found with its class and amount (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
from export_builder import replace_row, write_export
from load_harness import (
    BASE_FIRM_SETTINGS,
    Firm,
    company_for_base_export,
    load,
    objects_marked,
    plan,
    reconcile_now,
    session_for,
    stage,
)
from quickbooks.objects import Customer, Invoice, Payment, Purchase, RefundReceipt

from taxdome_qbo.core.reconciliation import QboSide, ReconciliationSettings, TaxDomeSide, reconcile
from taxdome_qbo.services import reconciliation, warehouse


def synced_company(engine, emulator, tmp_path, **export_changes):
    company = company_for_base_export(emulator)
    export = write_export(tmp_path / "export", **export_changes)
    stage(engine, export)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), "sync-1")
    receipt = load(engine, session, "sync-1")
    assert receipt.failed == 0, receipt.as_xcom()
    return company, session


def test_a_synced_firm_reconciles_to_the_cent(warehouse_engine, emulator, tmp_path):
    engine = warehouse_engine
    _, session = synced_company(engine, emulator, tmp_path)

    receipt, exceptions, summary = reconcile_now(engine, emulator, session, "recon-1")

    assert receipt.verdict == "clean", [
        (e.difference_class, e.object_kind, e.taxdome_id, e.detail) for e in exceptions
    ]
    assert receipt.unexplained == 0
    invoiced = summary[("invoiced", "total", "")]
    assert (invoiced.taxdome_cents, invoiced.qbo_cents) == (46469 + 25000, 46469 + 25000)
    assert summary[("tax", "total", "")].qbo_cents == 2219  # the tax line of the tax item
    assert summary[("collected_gross", "total", "")].difference_cents == 0
    fees = summary[("fees", "total", "stripe")]
    assert (fees.taxdome_cents, fees.qbo_cents) == (1378, 1378)
    net = summary[("net", "total", "")]
    assert net.taxdome_cents == net.qbo_cents == 46469 + 10000 - 1378
    assert summary[("net", "2026-01-07", "")].taxdome_cents == 46469 - 1378
    assert summary[("refunds", "total", "")].qbo_cents == 5000
    assert summary[("payout_net", "total", "")].difference_cents == 0
    assert receipt.objects_in_scope["invoice"] == 2


def test_every_planted_difference_is_found_with_its_class_and_amount(warehouse_engine, emulator, tmp_path):
    engine = warehouse_engine
    company, session = synced_company(
        engine,
        emulator,
        tmp_path,
        payments_csv=replace_row(
            "payments.csv", "P2,", "P2,A2,2026-01-08,100.00,cash,none,,0,USD,false,,2026-01-08T09:00:00Z"
        ),
    )
    qb = emulator.quickbooks(company)
    realm = company["realm_id"]
    [(_, invoice_two)] = objects_marked(emulator, realm, "taxdome:invoice:I2")
    edited = Invoice.get(invoice_two["Id"], qb=qb)
    edited.Line[0].Amount = Decimal("260.00")  # a bookkeeper edits an invoice by hand
    edited.Line[0].SalesItemLineDetail.UnitPrice = Decimal("260.00")
    edited.save(qb=qb)
    [(_, fee)] = objects_marked(emulator, realm, "taxdome:fee:P1")
    Purchase.get(fee["Id"], qb=qb).delete(qb=qb)  # a fee goes missing
    [(_, refund)] = objects_marked(emulator, realm, "taxdome:refund:R1")
    RefundReceipt.get(refund["Id"], qb=qb).delete(qb=qb)  # the refund is deleted in QuickBooks
    [(_, invoice_one)] = objects_marked(emulator, realm, "taxdome:invoice:I1")
    copy = Invoice.from_json(
        {
            key: value
            for key, value in invoice_one.items()
            if key not in ("Id", "SyncToken", "MetaData", "LinkedTxn")
        }
    )
    copy.DocNumber = "INV-0001-B"
    copy.save(qb=qb)  # someone creates the invoice again outside the sync: a duplicate
    [(_, customer_one)] = objects_marked(emulator, realm, "taxdome:account:A1")
    renamed = Customer.get(customer_one["Id"], qb=qb)
    renamed.DisplayName = "OBrien and Sons"
    renamed.save(qb=qb)  # a customer renamed in QuickBooks
    stray = Invoice.from_json(
        {
            "CustomerRef": {"value": customer_one["Id"]},
            "TxnDate": "2026-01-20",
            "Line": [
                {
                    "Amount": "75.00",
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {
                        "ItemRef": {
                            "value": invoice_one["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"]
                        }
                    },
                }
            ],
        }
    )
    stray = stray.save(qb=qb)  # an invoice created in QuickBooks only (QuickBooks numbers it)
    [(_, payment_one)] = objects_marked(emulator, realm, "taxdome:payment:P1")
    Payment.get(payment_one["Id"], qb=qb).delete(qb=qb)  # a payment deleted in QuickBooks

    receipt, exceptions, _ = reconcile_now(engine, emulator, session, "recon-2")

    found = {(e.difference_class, e.object_kind, e.taxdome_id, e.measure): e for e in exceptions}
    assert receipt.verdict == "differences"
    invoiced = found[("amount_mismatch", "invoice", "I2", "invoiced")]
    assert (invoiced.taxdome_cents, invoiced.qbo_cents, invoiced.difference_cents) == (25000, 26000, -1000)
    assert invoiced.qbo_link.startswith(f"{emulator.base_url}/app/invoice?txnId=")
    assert ("missing_in_qbo", "fee", "P1", None) in found
    assert ("missing_in_qbo", "refund", "R1", None) in found
    assert ("missing_in_qbo", "payment", "P1", None) in found
    duplicate = found[("duplicate_in_qbo", "invoice", "I1", "amount")]
    assert duplicate.qbo_cents == 46469 and not duplicate.explained
    # Named as finance finds them in QuickBooks, under the customer's name there now.
    assert duplicate.detail == (
        f"Invoice no. INV-0001-B for OBrien and Sons, dated {invoice_one['TxnDate']}, $464.69:"
        " a second QuickBooks copy of a synced object (same marker taxdome:invoice:I1)"
    )
    extra = found[("extra_in_qbo", "invoice", None, "amount")]
    assert extra.qbo_cents == 7500
    assert extra.detail == (
        f"Invoice no. {stray.DocNumber} for OBrien and Sons, dated 2026-01-20, $75.00: carries no TaxDome marker"
    )
    assert "renamed in QuickBooks" in found[("customer_mismatch", "account", "A1", "name")].detail
    kept_out = found[("out_of_scope", "payment", "P2", None)]
    assert kept_out.explained and "set not to sync" in kept_out.detail
    assert receipt.unexplained == sum(1 for e in exceptions if not e.explained)


def test_the_sync_fingerprint_changes_when_a_sync_stages_plans_writes_or_loads(warehouse_engine, tmp_path):
    engine, realm = warehouse_engine, "9130"
    nothing = reconciliation.sync_fingerprint(engine, realm)
    assert nothing == {"latest_batch_id": None, "latest_planned_at": None, "latest_loaded_at": None}

    stage(engine, write_export(tmp_path / "export"))
    staged = reconciliation.sync_fingerprint(engine, realm)
    assert staged["latest_batch_id"] is not None and staged != nothing

    planned_at = datetime(2026, 1, 10, 9, tzinfo=UTC)
    runs = warehouse.sync_plan_runs
    with engine.begin() as conn:
        conn.execute(
            runs.insert(),
            [  # none of them will write to this company
                {
                    "run_id": "dry",
                    "realm_id": realm,
                    "planned_at": planned_at,
                    "dry_run": True,
                    "operations": 5,
                },
                {
                    "run_id": "nothing",
                    "realm_id": realm,
                    "planned_at": planned_at,
                    "dry_run": False,
                    "operations": 0,
                },
                {
                    "run_id": "other",
                    "realm_id": "4620",
                    "planned_at": planned_at,
                    "dry_run": False,
                    "operations": 3,
                },
            ],
        )
    assert reconciliation.sync_fingerprint(engine, realm) == staged

    with engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                run_id="sync-2",
                realm_id=realm,
                planned_at=planned_at + timedelta(minutes=1),
                dry_run=False,
                operations=4,
            )
        )
    planned = reconciliation.sync_fingerprint(engine, realm)
    assert planned["latest_planned_at"] is not None and planned != staged

    with engine.begin() as conn:
        conn.execute(
            runs.update().where(runs.c.run_id == "sync-2").values(loaded_at=planned_at + timedelta(minutes=5))
        )
    loaded = reconciliation.sync_fingerprint(engine, realm)
    assert loaded["latest_loaded_at"] is not None and loaded != planned
    assert reconciliation.sync_fingerprint(engine, realm) == loaded  # nothing changed: the same fingerprint


# -- empty and partial inputs: typed whatever their length, an honest result and never a crash --------------
SETTLED = date(2026, 1, 5)
EMPTY_PERIOD = ReconciliationSettings(period_to=date(2026, 2, 1), deposit_account_id="35", tax_item_id="9")


def frame(columns: str, *rows: tuple) -> pd.DataFrame:
    """A frame as the service reads one from the warehouse: built from rows, so an empty one has object columns."""
    return pd.DataFrame(list(rows), columns=columns.split())


def taxdome_side(**frames: pd.DataFrame) -> TaxDomeSide:
    columns = {
        "accounts": "account_id account_name",
        "invoices": "invoice_id invoice_number account_id posted_date status tax_amount_cents total_cents",
        "payments": "payment_id account_id payment_date amount_cents method processor processing_fee_cents",
        "applications": "payment_id invoice_id amount_cents",
        "refunds": "refund_id payment_id account_id refund_date amount_cents",
        "payouts": "payout_id payout_date processor gross_cents fee_cents net_cents payment_ids",
    }
    return TaxDomeSide(**{name: frames.get(name, frame(names)) for name, names in columns.items()})


def qbo_side(**frames: pd.DataFrame) -> QboSide:
    transaction = "qbo_id marker txn_date customer_id total_cents"
    columns = {
        "customers": "qbo_id marker display_name active balance_cents",
        "invoices": f"{transaction} tax_cents balance_cents",
        "invoice_lines": "invoice_id line_no item_id amount_cents",
        "payments": f"{transaction} deposit_account_id",
        "payment_links": "payment_id line_no txn_type txn_id amount_cents",
        "credit_memos": transaction,
        "purchases": "qbo_id marker txn_date expense_account_id total_cents",
        "refund_receipts": transaction,
    }
    return QboSide(**{name: frames.get(name, frame(names)) for name, names in columns.items()})


VERDICTS = "taxdome_kind taxdome_id status reason caused_by"
STATE = "taxdome_kind taxdome_id qbo_entity qbo_id status"
SYNCED_VERDICTS = frame(
    VERDICTS,
    ("account", "A1", "synced", "created", None),
    ("invoice", "I1", "synced", "created", None),
    ("payment", "P1", "synced", "created", None),
)
SYNC_STATE = frame(
    STATE,
    ("account", "A1", "Customer", "1", "synced"),
    ("invoice", "I1", "Invoice", "10", "synced"),
    ("payment", "P1", "Payment", "20", "synced"),
)
QBO_HOLDING = qbo_side(
    customers=frame(
        "qbo_id marker display_name active balance_cents", ("1", "taxdome:account:A1", "Acme", True, 0)
    ),
    invoices=frame(
        "qbo_id marker txn_date customer_id total_cents tax_cents balance_cents",
        ("10", "taxdome:invoice:I1", SETTLED, "1", 10000, 0, 0),
    ),
    payments=frame(
        "qbo_id marker txn_date customer_id total_cents deposit_account_id",
        ("20", "taxdome:payment:P1", SETTLED, "1", 10000, "35"),
    ),
    payment_links=frame("payment_id line_no txn_type txn_id amount_cents", ("20", 1, "Invoice", "10", 10000)),
)
ACME = frame("account_id account_name", ("A1", "Acme"))


def by_class(result) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for row in result.exceptions.itertuples():
        found.setdefault((row.difference_class, row.object_kind), []).append(row.qbo_id or row.taxdome_id)
    return found


def total(result, measure: str) -> tuple[int, int]:
    row = result.summary.set_index(["measure", "period", "dimension"]).loc[(measure, "total", "")]
    return int(row.taxdome_cents), int(row.qbo_cents)


def test_the_verdicts_come_from_the_latest_run_loaded_or_with_nothing_to_load(warehouse_engine):
    engine, realm = warehouse_engine, "9130"
    warehouse.create_schema(engine)
    at = datetime(2026, 1, 10, 9, tzinfo=UTC)

    def run(
        run_id: str, minutes: int, operations: int, *, loaded: bool = False, dry_run: bool = False
    ) -> dict:
        planned = at + timedelta(minutes=minutes)
        loaded_at = planned + timedelta(seconds=30) if loaded else None
        return {
            "run_id": run_id,
            "realm_id": realm,
            "planned_at": planned,
            "dry_run": dry_run,
            "operations": operations,
            "loaded_at": loaded_at,
        }

    def settled() -> str | None:
        with engine.connect() as conn:
            return reconciliation.latest_settled_run(conn, realm)

    with engine.begin() as conn:
        conn.execute(warehouse.sync_plan_runs.insert(), [run("loaded", 0, 5, loaded=True)])
    assert settled() == "loaded"
    with engine.begin() as conn:
        conn.execute(
            warehouse.sync_plan_runs.insert(),
            [run("nothing-to-write", 10, 0), run("preview", 20, 0, dry_run=True), run("in-flight", 30, 3)],
        )
    assert settled() == "nothing-to-write", "an empty plan settles; a dry run or an unloaded plan does not"


def test_nothing_staged_against_a_company_holding_objects_shows_them_as_extra():
    result = reconcile(taxdome_side(), QBO_HOLDING, SYNCED_VERDICTS, SYNC_STATE, EMPTY_PERIOD)

    assert by_class(result) == {("extra_in_qbo", "invoice"): ["10"], ("extra_in_qbo", "payment"): ["20"]}
    assert result.unexplained == 2
    assert total(result, "invoiced") == (0, 10000)
    assert result.summary["taxdome_cents"].dtype == "int64"


def test_only_accounts_staged_compares_the_customers_and_counts_the_rest_as_extra():
    renamed = qbo_side(
        customers=frame(
            "qbo_id marker display_name active balance_cents",
            ("1", "taxdome:account:A1", "Acme Ltd", True, None),
        )
    )
    result = reconcile(taxdome_side(accounts=ACME), renamed, SYNCED_VERDICTS, SYNC_STATE, EMPTY_PERIOD)
    assert by_class(result) == {("customer_mismatch", "account"): ["1"]}
    assert result.objects_in_scope["account"] == 1

    result = reconcile(taxdome_side(accounts=ACME), QBO_HOLDING, SYNCED_VERDICTS, SYNC_STATE, EMPTY_PERIOD)
    assert by_class(result) == {("extra_in_qbo", "invoice"): ["10"], ("extra_in_qbo", "payment"): ["20"]}


def test_an_empty_company_misses_everything_the_sync_says_it_holds():
    staged = taxdome_side(
        accounts=ACME,
        invoices=frame(
            "invoice_id invoice_number account_id posted_date status tax_amount_cents total_cents",
            ("I1", "INV-1", "A1", SETTLED, "Paid", 0, 10000),
        ),
        payments=frame(
            "payment_id account_id payment_date amount_cents method processor processing_fee_cents",
            ("P1", "A1", SETTLED, 10000, "card", "stripe", 0),
        ),
    )

    result = reconcile(staged, qbo_side(), SYNCED_VERDICTS, SYNC_STATE, EMPTY_PERIOD)

    assert by_class(result) == {
        ("missing_in_qbo", "invoice"): ["10"],
        ("missing_in_qbo", "payment"): ["20"],
        ("missing_in_qbo", "account"): ["1"],
    }
    assert total(result, "invoiced") == (10000, 0)
    assert total(result, "collected_gross") == (10000, 0)


def test_kinds_never_read_at_all_reconcile_to_nothing():
    nothing = pd.DataFrame()
    taxdome = TaxDomeSide(*[nothing] * 6)
    qbo = QboSide(*[nothing] * 8)

    result = reconcile(taxdome, qbo, nothing, nothing, EMPTY_PERIOD)

    assert result.exceptions.empty and result.summary.empty and result.unexplained == 0


def test_a_company_loaded_before_its_firm_was_staged_reconciles_from_the_warehouse(warehouse_engine):
    """The frames the service reads from empty tables: nothing staged, QBO's copies holding a synced invoice."""
    engine, realm = warehouse_engine, "9130"
    warehouse.create_schema(engine)
    now = datetime(2026, 1, 10, 9, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            warehouse.sync_plan_runs.insert().values(
                run_id="sync-1", realm_id=realm, planned_at=now, dry_run=False, operations=2, loaded_at=now
            )
        )
        conn.execute(
            warehouse.qbo_sync_state.insert(),
            [
                {
                    "realm_id": realm,
                    "taxdome_kind": kind,
                    "taxdome_id": taxdome_id,
                    "qbo_entity": entity,
                    "qbo_id": qbo_id,
                    "status": "synced",
                    "updated_at": now,
                }
                for kind, taxdome_id, entity, qbo_id in (
                    ("account", "A1", "Customer", "1"),
                    ("invoice", "I1", "Invoice", "10"),
                )
            ],
        )
        conn.execute(
            warehouse.stg_qbo_invoices.insert().values(
                realm_id=realm,
                qbo_id="10",
                marker="taxdome:invoice:I1",
                txn_date=SETTLED,
                customer_id="1",
                total_cents=10000,
                tax_cents=0,
                balance_cents=10000,
                _read_at=now,
            )
        )

    receipt = reconciliation.reconcile_company(engine, realm, "recon-1", EMPTY_PERIOD)

    assert (receipt.verdict, receipt.unexplained, receipt.exceptions_by_class) == (
        "differences",
        1,
        {"extra_in_qbo": 1},
    )
