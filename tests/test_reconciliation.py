"""The reconciliation against a firm synced into the QBO emulator: clean after a sync, and every planted
difference found with its class and amount (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
    stray.save(qb=qb)  # an invoice created in QuickBooks only
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
    extra = found[("extra_in_qbo", "invoice", None, "amount")]
    assert extra.qbo_cents == 7500 and "no TaxDome marker" in extra.detail
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
