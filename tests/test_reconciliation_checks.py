"""Each reconciliation check on literal frames: no emulator, no database. A check is given the frames it
declares (built from the literal sources by the runner's own preparation) and its findings are read back as
exception rows and totals in cents."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd
import pytest

from taxdome_qbo.core import reconciliation_checks as checks
from taxdome_qbo.core.reconciliation import named_frames, run_check
from taxdome_qbo.core.reconciliation_checks import CHECKS, MEASURE_LABELS, ReconciliationCheck
from taxdome_qbo.core.reconciliation_findings import EXCEPTION_COLUMNS, Findings, ReconciliationSettings

QUARTER = ReconciliationSettings(
    period_from=date(2026, 1, 1), period_to=date(2026, 3, 31), app_url="https://qbo.example/app"
)

VERDICTS = "taxdome_kind taxdome_id status reason caused_by"
STATE = "taxdome_kind taxdome_id qbo_entity qbo_id status"
INVOICES = "invoice_id invoice_number account_id posted_date status tax_amount_cents total_cents"
PAYMENTS = "payment_id account_id payment_date amount_cents method processor processing_fee_cents"
TRANSACTIONS = "qbo_id marker txn_date customer_id total_cents"
QBO_INVOICES = f"{TRANSACTIONS} tax_cents balance_cents"
QBO_PAYMENTS = f"{TRANSACTIONS} deposit_account_id"
PURCHASES = "qbo_id marker txn_date expense_account_id total_cents"
CUSTOMERS = "qbo_id marker display_name balance_cents"
# What an exception row says, in the order the reports show it (the entity follows from the kind; the link is asserted on its own).
SHOWN = tuple(column for column in EXCEPTION_COLUMNS if column not in ("qbo_entity", "qbo_link"))


def frame(columns: str, *rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=columns.split())


def synced(kind: str, taxdome_id: str, entity: str, qbo_id: str) -> tuple:
    return (kind, taxdome_id, entity, qbo_id, "synced")


def exceptions(found: Findings) -> list[tuple]:
    rows = found.exceptions()[list(SHOWN)]
    return [tuple(None if pd.isna(value) else value for value in row) for row in rows.itertuples(index=False)]


def totals(found: Findings, measure: str, dimension: str = "") -> dict[str, tuple[int, int]]:
    """period -> (TaxDome cents, QuickBooks cents) of `measure` (per processor: `dimension` names it)."""
    summary = found.summary()
    rows = summary[(summary["measure"] == measure) & (summary["dimension"] == dimension)]
    return {row.period: (row.taxdome_cents, row.qbo_cents) for row in rows.itertuples()}


# -- invoices ------------------------------------------------------------------------------------------------


def test_invoices_compare_totals_with_tax_lines_and_find_a_duplicate_copy():
    sources = {
        "taxdome.invoices": frame(
            INVOICES,
            ("I1", "INV-1", "A1", "2026-01-10", "Paid", 800, 10800),
            ("I2", "INV-2", "A1", "2026-02-01", "Open", 0, 5000),
            ("I3", "INV-3", "A1", "2025-12-31", "Open", 0, 7000),  # before the period: not compared
        ),
        "taxdome.applications": frame("payment_id invoice_id amount_cents", ("P1", "I1", 10800)),
        "verdicts": frame(
            VERDICTS,
            ("invoice", "I1", "synced", "created", None),
            ("invoice", "I2", "skipped", "R5: posted before the sync start", None),
            ("payment", "P1", "synced", "created", None),
        ),
        "state": frame(
            STATE,
            synced("account", "A1", "Customer", "1"),
            synced("invoice", "I1", "Invoice", "10"),
            synced("payment", "P1", "Payment", "20"),
        ),
        # No automated sales tax: the tax is a line of the tax item "9", TotalTax is 0.
        "qbo.invoices": frame(
            QBO_INVOICES,
            ("10", "taxdome:invoice:I1", "2026-01-10", "1", 10700, 0, 0),
            ("11", "taxdome:invoice:I1", "2026-01-11", "1", 10800, 0, 0),
        ),
        "qbo.invoice_lines": frame("invoice_id item_id amount_cents", ("10", "5", 9900), ("10", "9", 800)),
        "qbo.payment_links": frame("payment_id txn_type txn_id amount_cents", ("20", "Invoice", "10", 10800)),
    }
    settings = replace(QUARTER, tax_item_id="9")

    found = run_check(checks.invoices, sources, settings)

    assert exceptions(found) == [
        ("out_of_scope", True, "invoice", "I2", None, None, None, None, None,
         "kept out by the sync rules: R5: posted before the sync start"),
        ("amount_mismatch", False, "invoice", "I1", "10", "invoiced", 10800, 10700, 100,
         "the invoice total differs"),
        ("duplicate_in_qbo", False, "invoice", "I1", "11", "amount", None, 10800, -10800,
         "Invoice for customer 1, dated 2026-01-11, $108.00: a second QuickBooks copy of a synced object"
         " (same marker taxdome:invoice:I1)"),
    ]  # fmt: skip
    assert found.exceptions()["qbo_link"].tolist()[1] == "https://qbo.example/app/invoice?txnId=10"
    assert totals(found, "invoiced") == {"2026-01": (10800, 21500), "total": (10800, 21500)}
    assert totals(found, "tax") == {"2026-01": (800, 800), "total": (800, 800)}
    assert found.in_scope == {"invoice": 1}


def test_an_invoice_balance_left_open_by_a_payment_is_explained_only_when_a_rule_keeps_the_payment_out():
    def balance_exceptions(p2_verdict: tuple) -> list[tuple]:
        sources = {
            "taxdome.invoices": frame(INVOICES, ("I1", "INV-1", "A1", "2026-01-10", "Paid", 0, 5000)),
            "taxdome.applications": frame(
                "payment_id invoice_id amount_cents", ("P1", "I1", 3000), ("P2", "I1", 2000)
            ),
            "verdicts": frame(
                VERDICTS,
                ("invoice", "I1", "synced", "created", None),
                ("payment", "P1", "synced", "created", None),
                p2_verdict,
            ),
            "state": frame(
                STATE, synced("invoice", "I1", "Invoice", "10"), synced("payment", "P1", "Payment", "20")
            ),
            "qbo.invoices": frame(
                QBO_INVOICES, ("10", "taxdome:invoice:I1", "2026-01-10", None, 5000, 0, 2000)
            ),
            "qbo.payment_links": frame(
                "payment_id txn_type txn_id amount_cents", ("20", "Invoice", "10", 3000)
            ),
        }
        return exceptions(run_check(checks.invoices, sources, QUARTER))

    assert balance_exceptions(("payment", "P2", "do_not_sync", "R12: set not to sync", None)) == [
        ("out_of_scope", True, "invoice", "I1", "10", "balance", 0, 2000, -2000,
         "paid in TaxDome, open in QuickBooks: the payments that pay the rest are kept out of QuickBooks by the sync rules"),
    ]  # fmt: skip
    assert balance_exceptions(("payment", "P2", "failed", "QuickBooks refused it", None)) == [
        ("amount_mismatch", False, "invoice", "I1", "10", "balance", 0, 2000, -2000,
         "paid in TaxDome, open in QuickBooks; QuickBooks lacks payment(s) that failed or wait for a failure: P2"),
    ]  # fmt: skip


# -- payments and fees ---------------------------------------------------------------------------------------


def test_payments_count_the_fee_of_a_failed_payment_on_taxdomes_side_and_find_an_unmarked_fee():
    sources = {
        "taxdome.payments": frame(
            PAYMENTS,
            ("P1", "A1", "2026-01-15", 10000, "card", "stripe", 300),
            ("P2", "A1", "2026-01-20", 5000, "card", "stripe", 150),
            ("P3", "A1", "2026-01-21", 2500, "promotional_credit", "none", 0),  # the credits check's
        ),
        "verdicts": frame(
            VERDICTS,
            ("payment", "P1", "synced", "created", None),
            ("payment", "P2", "failed", "QuickBooks refused it", None),
        ),
        "state": frame(
            STATE,
            synced("account", "A1", "Customer", "1"),
            synced("payment", "P1", "Payment", "20"),
            synced("fee", "P1", "Purchase", "30"),
        ),
        "qbo.payments": frame(QBO_PAYMENTS, ("20", "taxdome:payment:P1", "2026-01-16", "1", 10000, "36")),
        "qbo.purchases": frame(
            PURCHASES,
            ("30", "taxdome:fee:P1", "2026-01-15", "60", 300),
            ("31", None, "2026-01-31", "60", 99),  # on the fee account, matching nothing
            ("32", None, "2026-01-31", "70", 5000),  # another expense: not a fee
        ),
    }
    settings = replace(QUARTER, deposit_account_id="35", fee_expense_account_id="60")

    found = run_check(checks.payments, sources, settings)

    assert exceptions(found) == [
        ("missing_in_qbo", False, "payment", "P2", None, None, None, None, None,
         "not in QuickBooks, it failed: QuickBooks refused it"),
        ("field_mismatch", False, "payment", "P1", "20", "date", None, None, None,
         "dated 2026-01-16 in QuickBooks, 2026-01-15 in TaxDome"),
        ("field_mismatch", False, "payment", "P1", "20", "deposit_account", None, None, None,
         "deposited to account 36, not 35"),
        ("extra_in_qbo", False, "fee", None, "31", "amount", None, 99, -99,
         "Expense, dated 2026-01-31, $0.99: carries no TaxDome marker"),
    ]  # fmt: skip
    assert totals(found, "collected_gross")["total"] == (15000, 10000)
    assert totals(found, "collected_gross", "stripe") == {"2026-01": (15000, 10000), "total": (15000, 10000)}
    assert totals(found, "fees")["total"] == (450, 399)
    assert totals(found, "fees", "stripe")["total"] == (450, 300)
    assert totals(found, "fees", "unmatched") == {"2026-01": (0, 99), "total": (0, 99)}
    assert totals(found, "net")["total"] == (14550, 9601)
    assert totals(found, "net")["2026-01-20"] == (4850, 0)
    assert found.in_scope == {"payment": 1}


def test_a_zero_amount_payment_applying_a_credit_is_not_an_extra_payment():
    sources = {
        "state": frame(STATE, synced("credit_application", "P3", "Payment", "21")),
        "qbo.payments": frame(
            QBO_PAYMENTS,
            ("21", "taxdome:credit_application:P3", "2026-01-21", "1", 0, None),
            ("22", None, "2026-01-22", "1", 700, "35"),
        ),
    }

    found = run_check(checks.payments, sources, QUARTER)

    assert [(row[0], row[4], row[7]) for row in exceptions(found)] == [("extra_in_qbo", "22", 700)]


# -- objects only QuickBooks has -----------------------------------------------------------------------------

ACME = frame(CUSTOMERS, ("7", None, "Acme & Co", 12000))


def test_an_invoice_only_quickbooks_has_is_named_as_finance_finds_it_there():
    sources = {
        "qbo.customers": ACME,
        "qbo.invoices": frame(
            f"{QBO_INVOICES} doc_number",
            ("90", None, "2026-03-01", "7", 12000, 0, 12000, "1042"),
            ("91", "taxdome:invoice:I404", "2026-03-02", "7", 1_234_500, 0, 0, None),
            ("92", None, "2026-03-03", "8", 500, 0, 500, ""),  # a customer the copy lacks, no number
        ),
    }

    found = run_check(checks.invoices, sources, QUARTER)

    assert exceptions(found) == [
        ("extra_in_qbo", False, "invoice", None, "90", "amount", None, 12000, -12000,
         "Invoice no. 1042 for Acme & Co, dated 2026-03-01, $120.00: carries no TaxDome marker"),
        ("extra_in_qbo", False, "invoice", None, "91", "amount", None, 1234500, -1234500,
         "Invoice for Acme & Co, dated 2026-03-02, $12,345.00: marked taxdome:invoice:I404,"
         " which matches no TaxDome object in scope"),
        ("extra_in_qbo", False, "invoice", None, "92", "amount", None, 500, -500,
         "Invoice for customer 8, dated 2026-03-03, $5.00: carries no TaxDome marker"),
    ]  # fmt: skip
    assert found.exceptions()["qbo_link"].tolist()[0] == "https://qbo.example/app/invoice?txnId=90"


@pytest.mark.parametrize(
    ("check", "copy", "columns", "row", "detail"),
    [
        (checks.payments, "qbo.payments", f"{QBO_PAYMENTS} payment_ref", ("20", None, "2026-03-01", "7", 5000, "35", "CHK-88"),
         "Payment no. CHK-88 for Acme & Co, dated 2026-03-01, $50.00"),
        (checks.credits, "qbo.credit_memos", f"{TRANSACTIONS} doc_number", ("40", None, "2026-03-01", "7", 2500, "CM-3"),
         "Credit memo no. CM-3 for Acme & Co, dated 2026-03-01, $25.00"),
        (checks.refunds, "qbo.refund_receipts", f"{TRANSACTIONS} doc_number", ("50", None, "2026-03-01", "7", 1000, "1007"),
         "Refund receipt no. 1007 for Acme & Co, dated 2026-03-01, $10.00"),
        (checks.payments, "qbo.purchases", f"{PURCHASES} doc_number payee_name", ("30", None, "2026-03-01", "60", 99, "EXP-5", "Stripe"),
         "Expense no. EXP-5 for Stripe, dated 2026-03-01, $0.99"),
    ],
)  # fmt: skip
def test_every_kind_of_object_only_quickbooks_has_is_named_by_type_number_customer_date_and_amount(
    check, copy, columns, row, detail
):
    sources = {"qbo.customers": ACME, copy: frame(columns, row)}
    settings = replace(QUARTER, fee_expense_account_id="60")

    found = run_check(check, sources, settings)

    assert [(r[0], r[4], r[-1]) for r in exceptions(found)] == [
        ("extra_in_qbo", row[0], f"{detail}: carries no TaxDome marker")
    ]


# -- promotional credits and refunds -------------------------------------------------------------------------


def test_credits_name_the_failure_that_keeps_a_credit_out_and_a_credit_under_another_customer():
    sources = {
        "taxdome.payments": frame(
            PAYMENTS,
            ("P3", "A1", "2026-02-01", 2500, "promotional_credit", "none", 0),
            ("P4", "A2", "2026-02-02", 1000, "promotional_credit", "none", 0),
            ("P5", "A1", "2026-02-03", 9000, "card", "stripe", 0),  # real money: the payments check's
        ),
        "verdicts": frame(
            VERDICTS,
            ("payment", "P3", "synced", "created", None),
            ("payment", "P4", "not_synced", "its account failed", "account:A2"),
            ("account", "A2", "failed", "a vendor holds the name", None),
        ),
        "state": frame(
            STATE, synced("account", "A1", "Customer", "1"), synced("credit_memo", "P3", "CreditMemo", "40")
        ),
        "qbo.credit_memos": frame(TRANSACTIONS, ("40", "taxdome:credit_memo:P3", "2026-02-01", "2", 2000)),
        "qbo.customers": frame(CUSTOMERS, ("1", "taxdome:account:A1", "Acme & Co", 0)),
    }

    found = run_check(checks.credits, sources, QUARTER)

    assert exceptions(found) == [
        ("missing_in_qbo", False, "credit_memo", "P4", None, None, None, None, None,
         "not in QuickBooks: its account A2 failed: a vendor holds the name"),
        ("amount_mismatch", False, "credit_memo", "P3", "40", "credits", 2500, 2000, 500, "the credit differs"),
        ("customer_mismatch", False, "credit_memo", "P3", "40", "customer", None, None, None,
         "QuickBooks has it under customer 2, TaxDome's account A1 is Acme & Co (customer 1)"),
    ]  # fmt: skip
    assert totals(found, "credits") == {"2026-02": (3500, 2000), "total": (3500, 2000)}
    assert found.in_scope == {"credit_memo": 1}


def test_a_refund_counts_in_its_own_month_not_its_payments_and_one_after_the_period_is_left_out():
    sources = {
        "taxdome.refunds": frame(
            "refund_id payment_id account_id refund_date amount_cents",
            ("R1", "P1", "A1", "2026-03-05", 1000),  # P1 was paid in January
            ("R2", "P1", "A1", "2026-04-02", 500),
        ),
        "verdicts": frame(
            VERDICTS, ("refund", "R1", "synced", "created", None), ("refund", "R2", "synced", "created", None)
        ),
        "state": frame(
            STATE,
            synced("account", "A1", "Customer", "1"),
            synced("refund", "R1", "RefundReceipt", "50"),
            synced("refund", "R2", "RefundReceipt", "51"),
        ),
        "qbo.refund_receipts": frame(
            TRANSACTIONS,
            ("50", "taxdome:refund:R1", "2026-03-06", "1", 1000),
            ("51", "taxdome:refund:R2", "2026-04-02", "1", 500),
        ),
    }

    found = run_check(checks.refunds, sources, QUARTER)

    assert exceptions(found) == [
        ("field_mismatch", False, "refund", "R1", "50", "date", None, None, None,
         "dated 2026-03-06 in QuickBooks, 2026-03-05 in TaxDome"),
    ]  # fmt: skip
    assert totals(found, "refunds") == {"2026-03": (1000, 1000), "total": (1000, 1000)}
    assert found.in_scope == {"refund": 1}


# -- customers -----------------------------------------------------------------------------------------------


def test_customers_find_a_renamed_and_a_deleted_customer_but_let_an_adopted_one_keep_its_name():
    sources = {
        "taxdome.accounts": frame(
            "account_id account_name", ("A1", "Acme"), ("A2", "Birch & Co"), ("A3", "Cedar")
        ),
        "state": frame(
            STATE,
            synced("account", "A1", "Customer", "1"),
            synced("account", "A2", "Customer", "2"),
            synced("account", "A3", "Customer", "3"),
        ),
        "qbo.customers": frame(
            CUSTOMERS,
            ("1", "taxdome:account:A1", "Acme Ltd", 0),
            ("2", None, "Birch and Company", 0),  # adopted: it had its own name before the sync
        ),
    }

    found = run_check(checks.customers, sources, QUARTER)

    assert exceptions(found) == [
        ("missing_in_qbo", False, "account", "A3", "3", None, None, None, None,
         "its QuickBooks customer is gone (deleted?)"),
        ("customer_mismatch", False, "account", "A1", "1", "name", None, None, None,
         "renamed in QuickBooks to 'Acme Ltd'; TaxDome's account is 'Acme'"),
    ]  # fmt: skip
    assert found.summary().empty
    assert found.in_scope == {"account": 3}


def test_customer_balances_count_only_what_was_synced_within_the_tolerance():
    sources = {
        "taxdome.invoices": frame(
            INVOICES,
            ("I1", "INV-1", "A1", "2026-01-10", "Open", 0, 10000),
            ("I2", "INV-2", "A2", "2026-01-11", "Open", 0, 3000),
            ("I3", "INV-3", "A1", "2026-01-12", "Open", 0, 99999),  # not synced: not in the balance
        ),
        "taxdome.payments": frame(
            PAYMENTS,
            ("P1", "A1", "2026-01-15", 4000, "card", "stripe", 0),
            ("P3", "A1", "2026-01-16", 1000, "promotional_credit", "none", 0),
        ),
        "state": frame(
            STATE,
            synced("account", "A1", "Customer", "1"),
            synced("account", "A2", "Customer", "2"),
            synced("invoice", "I1", "Invoice", "10"),
            synced("invoice", "I2", "Invoice", "11"),
            synced("payment", "P1", "Payment", "20"),
            synced("credit_memo", "P3", "CreditMemo", "40"),
        ),
        "qbo.customers": frame(CUSTOMERS, ("1", None, "Acme", 5000), ("2", None, "Birch", 2500)),
    }

    found = run_check(checks.customer_balances, sources, QUARTER)

    assert exceptions(found) == [
        ("amount_mismatch", False, "account", "A2", "2", "customer_balance", 3000, 2500, 500,
         "TaxDome's balance (invoices − payments − credits synced) differs from the QuickBooks customer's open balance"),
    ]  # fmt: skip
    assert totals(found, "customer_balance") == {"total": (8000, 7500)}
    within = replace(QUARTER, tolerance_cents=500)
    assert exceptions(run_check(checks.customer_balances, sources, within)) == []


# -- payouts -------------------------------------------------------------------------------------------------


def test_payouts_explain_payments_kept_out_by_a_rule_and_name_a_failed_one():
    sources = {
        "taxdome.payouts": frame(
            "payout_id payout_date processor gross_cents fee_cents net_cents payment_ids",
            ("PO1", "2026-01-31", "stripe", 15000, 450, 14550, "P1;P2"),
            ("PO2", "2026-02-28", "stripe", 5000, 0, 5000, "P3"),
        ),
        "taxdome.payments": frame(
            PAYMENTS,
            ("P1", "A1", "2026-01-15", 10000, "card", "stripe", 300),
            ("P2", "A1", "2025-12-30", 5000, "card", "stripe", 150),
            ("P3", "A1", "2026-02-20", 5000, "ach", "stripe", 0),
        ),
        "verdicts": frame(
            VERDICTS,
            ("payment", "P1", "synced", "created", None),
            ("payment", "P2", "skipped", "R5: paid before the sync start", None),
            ("payment", "P3", "failed", "QuickBooks refused it", None),
        ),
        "state": frame(
            STATE, synced("payment", "P1", "Payment", "20"), synced("fee", "P1", "Purchase", "30")
        ),
        "qbo.payments": frame(QBO_PAYMENTS, ("20", "taxdome:payment:P1", "2026-01-15", "1", 10000, "35")),
        "qbo.purchases": frame(PURCHASES, ("30", "taxdome:fee:P1", "2026-01-15", "60", 300)),
    }

    found = run_check(checks.payouts, sources, QUARTER)

    failed_p3 = "; QuickBooks lacks payment(s) that failed or wait for a failure: P3"
    assert exceptions(found) == [
        ("out_of_scope", True, "payout", "PO1", None, "payout_gross", 15000, 10000, 5000,
         "the payout's gross includes payments the sync rules keep out of QuickBooks"),
        ("amount_mismatch", False, "payout", "PO2", None, "payout_gross", 5000, 0, 5000,
         "the payout's gross differs from what QuickBooks holds for its payments" + failed_p3),
        ("out_of_scope", True, "payout", "PO1", None, "payout_fees", 450, 300, 150,
         "the payout's fees includes payments the sync rules keep out of QuickBooks"),
        ("out_of_scope", True, "payout", "PO1", None, "payout_net", 14550, 9700, 4850,
         "the payout's net includes payments the sync rules keep out of QuickBooks"),
        ("amount_mismatch", False, "payout", "PO2", None, "payout_net", 5000, 0, 5000,
         "the payout's net differs from what QuickBooks holds for its payments" + failed_p3),
    ]  # fmt: skip
    assert totals(found, "payout_gross") == {
        "2026-01": (10000, 10000),
        "2026-02": (5000, 0),
        "total": (15000, 10000),
    }
    assert totals(found, "payout_fees")["total"] == (300, 300)


def test_a_payout_that_is_not_the_sum_of_its_payments_is_a_taxdome_difference():
    sources = {
        "taxdome.payouts": frame(
            "payout_id payout_date processor gross_cents fee_cents net_cents payment_ids",
            ("PO1", "2026-01-31", "stripe", 10100, 300, 9800, "P1"),
        ),
        "taxdome.payments": frame(PAYMENTS, ("P1", "A1", "2026-01-15", 10000, "card", "stripe", 300)),
        "verdicts": frame(VERDICTS, ("payment", "P1", "synced", "created", None)),
        "state": frame(
            STATE, synced("payment", "P1", "Payment", "20"), synced("fee", "P1", "Purchase", "30")
        ),
        "qbo.payments": frame(QBO_PAYMENTS, ("20", "taxdome:payment:P1", "2026-01-15", "1", 10000, "35")),
        "qbo.purchases": frame(PURCHASES, ("30", "taxdome:fee:P1", "2026-01-15", "60", 300)),
    }

    found = run_check(checks.payouts, sources, QUARTER)

    assert exceptions(found)[0] == (
        "amount_mismatch", False, "payout", "PO1", None, "payout_gross", 10100, None, 100,
        "TaxDome's payout is not the sum of the payments it lists (10000 cents)",
    )  # fmt: skip


# -- the registry --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.name)
def test_every_check_reads_frames_the_runner_builds_and_finds_nothing_in_nothing(check):
    found = run_check(check, {}, QUARTER)

    assert found.exceptions().empty and found.summary().empty


def test_a_check_is_given_the_frames_it_declares_and_no_others():
    given = []

    def record(frames, settings):
        given.append(sorted(frames))
        return Findings(settings)

    run_check(ReconciliationCheck("probe", ("taxdome.accounts", "qbo_ids.fee"), {}, record), {}, QUARTER)

    assert given == [["qbo_ids.fee", "taxdome.accounts"]]
    with pytest.raises(KeyError, match=r"qbo\.nothing"):
        named_frames({}, ["qbo.nothing"])


def test_the_reports_name_every_measure_and_list_the_totals_in_reading_order():
    totals_in_order = [
        "invoiced",
        "tax",
        "collected_gross",
        "fees",
        "net",
        "refunds",
        "credits",
        "customer_balance",
        "payout_gross",
        "payout_fees",
        "payout_net",
    ]
    assert [measure for measure in MEASURE_LABELS if measure in totals_in_order] == totals_in_order
    assert MEASURE_LABELS["net"] == "Net (gross − fees)"
    assert set(MEASURE_LABELS) == {
        *totals_in_order,
        *("applied", "balance", "customer", "name", "date", "deposit_account", "amount"),
    }
    assert len({check.name for check in CHECKS}) == len(CHECKS)
