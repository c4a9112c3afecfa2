"""The sync planner, rule by rule (docs/sync-rules.md R1-R16, and the product decisions of the planner issue)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pandas as pd
import pytest
from export_builder import replace_row, with_rows
from planning_builder import no_state, staged_firm

from taxdome_qbo.core.planner import PlanOptions, PlanRefused, build_plan
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.core.vocabulary import qbo_name
from taxdome_qbo.demo.planning import demo_company as qbo_company
from taxdome_qbo.demo.planning import state_after_success as state_after

WITH_BOOKKEEPING_ITEM = {"items": [("40", "Bookkeeping", True)]}


def plan_of(tmp_path, settings=None, company=None, state=None, options=None, **changes):
    staged = staged_firm(tmp_path / f"export{len(list(tmp_path.iterdir()))}", **changes)
    return build_plan(
        staged,
        settings or FirmSettings(),
        company or qbo_company(**WITH_BOOKKEEPING_ITEM),
        no_state() if state is None else state,
        options,
    )


def ops(plan, kind=None, action=None):
    frame = plan.operations
    if kind:
        frame = frame[frame["taxdome_kind"] == kind]
    if action:
        frame = frame[frame["action"] == action]
    return {
        row.taxdome_id: {**row._asdict(), "body": json.loads(row.payload)}
        for row in frame.itertuples(index=False)
    }


def status(plan, kind, taxdome_id):
    row = plan.statuses[(plan.statuses["taxdome_kind"] == kind) & (plan.statuses["taxdome_id"] == taxdome_id)]
    assert len(row) == 1, (kind, taxdome_id)
    return row.iloc[0]["status"], row.iloc[0]["reason"]


def test_the_base_export_plans_every_object_in_dependency_order(tmp_path):
    plan = plan_of(tmp_path)
    kinds = list(plan.operations["taxdome_kind"])
    assert kinds == [
        "account",
        "account",
        "service",
        "service",
        "invoice",
        "invoice",
        "payment",
        "payment",
        "fee",
        "refund",
    ]
    seqs = list(plan.operations["seq"])
    assert seqs == sorted(set(seqs)) and len(seqs) == 10  # seq: the execution order, strictly increasing
    assert set(plan.statuses["status"]) == {"synced"}
    assert len(plan.statuses) == 2 + 2 + 2 + 2 + 1  # accounts, services, invoices, payments, refunds
    invoice = ops(plan, "invoice")["I1"]["body"]
    assert invoice["CustomerRef"] == {"value": "@account:A1"}
    assert invoice["PrivateNote"] == "taxdome:invoice:I1"
    assert ops(plan, "account")["A1"]["body"]["Notes"] == "taxdome:account:A1"


def test_a_sink_gets_every_operation_as_it_is_planned_and_the_plan_holds_none(tmp_path):
    staged = staged_firm(tmp_path / "export")
    inputs = (staged, FirmSettings(), qbo_company(**WITH_BOOKKEEPING_ITEM), no_state())
    held = build_plan(*inputs)
    sent = []
    streamed = build_plan(*inputs, sink=sent.append)
    assert streamed.operations.empty and len(sent) > 1
    received = pd.concat(sent).sort_values("seq", ignore_index=True)
    pd.testing.assert_frame_equal(received, held.operations)
    pd.testing.assert_frame_equal(streamed.statuses, held.statuses)


def test_planned_amounts_equal_taxdome_to_the_cent(tmp_path):
    plan = plan_of(tmp_path)
    invoice = ops(plan, "invoice")["I1"]
    cents = sum(round(float(line["Amount"]) * 100) for line in invoice["body"]["Line"])
    assert cents == invoice["amount_cents"] == 46469  # 250.00 + 213.75 - 21.25 + tax 22.19
    assert ops(plan, "payment")["P1"]["body"]["TotalAmt"] == "464.69"
    assert ops(plan, "fee")["P1"]["body"]["TotalAmt"] == "13.78"
    assert ops(plan, "refund")["R1"]["body"]["TotalAmt"] == "50.00"


# -- scope (R3, R4, R5) --------------------------------------------------------------------------------
def test_nothing_dated_before_the_sync_date_is_planned(tmp_path):
    plan = plan_of(tmp_path, FirmSettings(sync_start_date=dt.date(2026, 1, 8)))
    assert status(plan, "invoice", "I1") == ("skipped", "posted 2026-01-05, before the sync date 2026-01-08")
    assert status(plan, "payment", "P1") == ("skipped", "paid on 2026-01-07, before the sync date 2026-01-08")
    assert status(plan, "account", "A1") == (
        "skipped",
        "no invoice or payment on or after the sync date 2026-01-08",
    )
    assert status(plan, "refund", "R1")[0] == "not_synced"
    assert status(plan, "payment", "P2")[0] == "synced"  # paid on the sync date itself
    assert "100.00 for invoice I2 stays unapplied" in status(plan, "payment", "P2")[1]
    assert set(plan.operations["taxdome_id"]) == {"A2", "P2", "S1", "S2"}  # services sync whatever the dates


ACCOUNT_A3 = "A3,New Client,Individual,new@example.com,2026-02-01T00:00:00Z,,false,auto,"
ARCHIVED_A4 = "A4,Old Client,Individual,,2026-02-01T00:00:00Z,,true,auto,"


def test_with_activity_leaves_out_accounts_without_activity_and_all_takes_them(tmp_path):
    accounts = with_rows("accounts.csv", ACCOUNT_A3, ARCHIVED_A4)
    with_activity = plan_of(tmp_path, accounts_csv=accounts)
    assert status(with_activity, "account", "A3") == ("skipped", "no invoice or payment yet")
    everything = plan_of(
        tmp_path,
        FirmSettings(account_scope="all", sync_start_date=dt.date(2026, 1, 1)),
        accounts_csv=accounts,
    )
    assert status(everything, "account", "A3")[0] == "synced"
    assert status(everything, "account", "A4") == ("skipped", "archived, with no invoice or payment to sync")
    assert status(everything, "account", "A1")[0] == "synced"  # created before the date, but has activity


def test_accounts_can_be_forced_in_or_kept_out(tmp_path):
    forced = plan_of(tmp_path, accounts_csv=with_rows("accounts.csv", ACCOUNT_A3.replace(",auto,", ",sync,")))
    assert status(forced, "account", "A3")[0] == "synced"
    opted_out = plan_of(
        tmp_path,
        accounts_csv=replace_row("accounts.csv", "A1,", "A1,O'Brien & Sons,Company,,,,false,do_not_sync,"),
    )
    assert status(opted_out, "account", "A1") == ("do_not_sync", "set to Do not sync in TaxDome")
    for kind, taxdome_id in (("invoice", "I1"), ("payment", "P1"), ("refund", "R1")):
        assert status(opted_out, kind, taxdome_id) == ("do_not_sync", "its account A1 is set to Do not sync")
    assert not (opted_out.operations["taxdome_id"].isin(["A1", "I1", "P1", "R1"])).any()


def test_draft_and_scheduled_invoices_wait_until_issued(tmp_path):
    plan = plan_of(
        tmp_path,
        invoices_csv=replace_row("invoices.csv", "I2,", "I2,INV-0002,A2,2026-01-06,,Draft,USD,,250.00,,"),
    )
    assert status(plan, "invoice", "I2") == ("skipped", "Draft: waits until it is issued")
    assert "100.00 for invoice I2 stays unapplied" in status(plan, "payment", "P2")[1]
    assert ops(plan, "payment")["P2"]["body"]["Line"] == []


# -- customers (R1, R2) ---------------------------------------------------------------------------------
def test_display_names_are_made_valid_for_qbo_deterministically():
    assert qbo_name("Smith: Tax\tand\nBooks", 500) == "Smith - Tax and Books"
    assert qbo_name("x" * 600, 500) == "x" * 500


def test_existing_customers_are_linked_and_inactive_ones_reactivated(tmp_path):
    company = qbo_company(
        customers=[("7", "O'Brien & Sons", True), ("8", "Zoë Müller", False)], **WITH_BOOKKEEPING_ITEM
    )
    plan = plan_of(tmp_path, company=company)
    accounts = ops(plan, "account")
    assert (accounts["A1"]["action"], accounts["A1"]["body"]) == ("link", {"Id": "7"})
    assert accounts["A2"]["action"] == "reactivate"
    assert accounts["A2"]["body"] == {"Id": "8", "SyncToken": "0", "sparse": True, "Active": True}
    assert "inactive: reactivate it" in status(plan, "account", "A2")[1]


def test_a_manual_match_wins_and_fails_when_the_customer_is_missing(tmp_path):
    accounts = replace_row("accounts.csv", "A1,", "A1,O'Brien & Sons,Company,,,,false,auto,OBrien Holdings")
    company = qbo_company(
        customers=[("9", "OBrien Holdings", True), ("7", "O'Brien & Sons", True)], **WITH_BOOKKEEPING_ITEM
    )
    assert ops(plan_of(tmp_path, company=company, accounts_csv=accounts), "account")["A1"]["body"] == {
        "Id": "9"
    }
    missing = plan_of(tmp_path, accounts_csv=accounts)
    assert status(missing, "account", "A1") == (
        "failed",
        "the matched QuickBooks customer 'OBrien Holdings' does not exist",
    )
    assert status(missing, "invoice", "I1")[0] == "not_synced"
    assert (
        "its account A1 is not synced: the matched QuickBooks customer" in status(missing, "invoice", "I1")[1]
    )


def test_new_customers_get_the_type_email_and_company_name(tmp_path):
    plan = plan_of(
        tmp_path,
        accounts_csv=replace_row(
            "accounts.csv", "A2,", "A2,Zoë Müller,Individual,not-an-email,2025-04-01T10:00:00Z,,false,auto,"
        ),
    )
    accounts = ops(plan, "account")
    assert accounts["A1"]["body"]["CustomerTypeRef"] == {"value": "100"}
    assert accounts["A1"]["body"]["CompanyName"] == "O'Brien & Sons"
    assert accounts["A1"]["body"]["PrimaryEmailAddr"] == {"Address": "ob@example.com"}
    assert "PrimaryEmailAddr" not in accounts["A2"]["body"] and "CompanyName" not in accounts["A2"]["body"]
    untyped = plan_of(tmp_path, company=qbo_company(customer_types=(), **WITH_BOOKKEEPING_ITEM))
    assert "CustomerTypeRef" not in ops(untyped, "account")["A1"]["body"]


def test_a_name_used_by_a_qbo_vendor_or_employee_fails_the_account(tmp_path):
    company = qbo_company(**WITH_BOOKKEEPING_ITEM)
    people = pd.DataFrame(
        [("70", "O'Brien & Sons", True, "Vendor"), ("71", "zoë müller", False, "Employee")],
        columns=["id", "display_name", "active", "entity"],
    )
    plan = plan_of(tmp_path, company=dataclasses.replace(company, vendors_and_employees=people))
    assert status(plan, "account", "A1") == (
        "failed",
        "the name 'O'Brien & Sons' belongs to a QuickBooks vendor, and customers cannot share it: "
        "rename the account in TaxDome or match it by hand to a customer",
    )
    assert "belongs to a QuickBooks employee" in status(plan, "account", "A2")[1]
    assert status(plan, "invoice", "I1")[0] == "not_synced"


def test_two_accounts_with_the_same_qbo_name_fail_the_later_one(tmp_path):
    plan = plan_of(
        tmp_path,
        accounts_csv=replace_row(
            "accounts.csv", "A2,", "A2,o'brien & sons,Individual,,2025-04-01T10:00:00Z,,false,auto,"
        ),
    )
    assert status(plan, "account", "A1")[0] == "synced"
    assert status(plan, "account", "A2") == (
        "failed",
        "account A1 already syncs to the QuickBooks customer 'o'brien & sons'",
    )


# -- services (R8, R9) ---------------------------------------------------------------------------------
def test_services_after_the_integration_become_items_and_earlier_ones_use_the_default_item(tmp_path):
    plan = plan_of(tmp_path, FirmSettings(integration_date=dt.date(2025, 7, 1)))
    item = ops(plan, "service")["S1"]["body"]
    assert item == {
        "Name": "Tax return",
        "Type": "Service",
        "UnitPrice": "250.00",
        "Sku": "Flat fee",
        "IncomeAccountRef": {"value": "1"},
        "Description": "Individual return",
    }
    later = plan_of(tmp_path, FirmSettings(integration_date=dt.date(2025, 9, 1)))
    assert status(later, "service", "S1")[1].startswith("created before the integration date 2025-09-01")
    first_line = ops(later, "invoice")["I1"]["body"]["Line"][0]
    assert first_line["SalesItemLineDetail"]["ItemRef"] == {"value": "1"}
    assert first_line["Description"] == "Tax return"


def test_copied_services_link_their_item_or_fail(tmp_path):
    assert ops(plan_of(tmp_path), "service")["S2"] == {
        **ops(plan_of(tmp_path), "service")["S2"],
        "action": "link",
    }
    missing = plan_of(tmp_path, company=qbo_company())
    assert status(missing, "service", "S2") == (
        "failed",
        "copied from the QuickBooks item 'Bookkeeping', which does not exist",
    )


def test_a_service_whose_name_exists_in_qbo_is_linked(tmp_path):
    plan = plan_of(
        tmp_path, company=qbo_company(items=[("40", "Bookkeeping", True), ("41", "Tax return", True)])
    )
    assert ops(plan, "service")["S1"]["body"] == {"Id": "41"}


# -- invoices (R6, R14) ----------------------------------------------------------------------------------
def test_invoice_lines_keep_amounts_and_add_qty_and_price_only_when_exact(tmp_path):
    lines = ops(plan_of(tmp_path), "invoice")["I1"]["body"]["Line"]
    assert [line["Amount"] for line in lines] == ["250.00", "213.75", "-21.25", "22.19"]
    assert (
        lines[1]["SalesItemLineDetail"]["Qty"] == "2.25"
        and lines[1]["SalesItemLineDetail"]["UnitPrice"] == "95.00"
    )
    assert lines[3]["SalesItemLineDetail"]["ItemRef"] == {"value": "2"}  # the tax item of the settings


def test_with_automated_sales_tax_the_tax_amount_goes_to_total_tax(tmp_path):
    invoice = ops(
        plan_of(tmp_path, company=qbo_company(automated_sales_tax=True, **WITH_BOOKKEEPING_ITEM)), "invoice"
    )["I1"]
    assert invoice["body"]["TxnTaxDetail"] == {"TotalTax": "22.19"}
    codes = [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in invoice["body"]["Line"]]
    assert codes == ["TAX", "NON", "NON"]


def test_invoice_numbers_longer_than_qbo_allows_fail(tmp_path):
    plan = plan_of(
        tmp_path,
        invoices_csv=replace_row(
            "invoices.csv", "I2,", "I2,INV-2026-0000000000002,A2,2026-01-06,,Unpaid,USD,,250.00,,"
        ),
    )
    assert status(plan, "invoice", "I2")[0] == "failed"
    assert "longer than the 21 characters" in status(plan, "invoice", "I2")[1]


# -- payments, credits, fees, refunds (R7, R10-R13, R15, R20) ---------------------------------------------
def test_real_money_payments_deposit_and_link_their_invoices(tmp_path):
    payment = ops(plan_of(tmp_path), "payment")["P1"]["body"]
    assert payment["DepositToAccountRef"] == {"value": "35"}
    assert payment["PaymentRefNum"] == "ch_1"
    assert payment["Line"] == [
        {"Amount": "464.69", "LinkedTxn": [{"TxnId": "@invoice:I1", "TxnType": "Invoice"}]}
    ]
    cash = ops(plan_of(tmp_path), "payment")["P2"]["body"]
    assert cash["PaymentRefNum"] == "P2"  # no processor transaction: the TaxDome id


def test_payment_sync_can_be_switched_off_for_all_or_one(tmp_path):
    off = plan_of(tmp_path, FirmSettings(sync_payments=False))
    assert status(off, "payment", "P1") == ("skipped", "payment sync is switched off in the firm settings")
    assert status(off, "refund", "R1")[0] == "not_synced"
    one = plan_of(
        tmp_path,
        payments_csv=replace_row(
            "payments.csv", "P2,", "P2,A2,2026-01-08,100.00,cash,none,,0,USD,false,,2026-01-08T09:00:00Z"
        ),
    )
    assert status(one, "payment", "P2") == ("skipped", "this payment is set not to sync to QuickBooks")
    assert status(one, "payment", "P1")[0] == "synced"


PROMO_P3 = "P3,A2,2026-01-09,150.00,promotional_credit,none,,0,USD,true,,2026-01-09T09:00:00Z"


def test_promotional_credit_is_a_credit_memo_applied_by_a_zero_payment(tmp_path):
    plan = plan_of(
        tmp_path,
        payments_csv=with_rows("payments.csv", PROMO_P3),
        payment_applications_csv=with_rows("payment_applications.csv", "P3,I2,150.00"),
    )
    memo = ops(plan, "credit_memo")["P3"]["body"]
    assert memo["Line"][0]["Amount"] == "150.00" and memo["PrivateNote"] == "taxdome:credit_memo:P3"
    link = ops(plan, "credit_application")["P3:I2:P3"]["body"]
    assert link["TotalAmt"] == "0.00"
    assert [line["LinkedTxn"][0] for line in link["Line"]] == [
        {"TxnId": "@invoice:I2", "TxnType": "Invoice"},
        {"TxnId": "@credit_memo:P3", "TxnType": "CreditMemo"},
    ]


CREDIT_INVOICE_I3 = "I3,INV-0003,A2,2026-01-10,,Paid,USD,,30.00,,"
CREDIT_LINE_I3 = "I3,1,,Advice,,30.00,1,30.00,false"
CREDIT_P4 = "P4,A2,2026-01-10,30.00,credit_balance,none,,0,USD,true,,"


def test_a_credit_balance_payment_consumes_the_oldest_unapplied_money(tmp_path):
    plan = plan_of(
        tmp_path,
        invoices_csv=with_rows("invoices.csv", CREDIT_INVOICE_I3),
        invoice_lines_csv=with_rows("invoice_lines.csv", CREDIT_LINE_I3),
        payments_csv=replace_row("payments.csv", "P2,", "P2,A2,2026-01-08,140.00,cash,none,,0,USD,true,,")
        + CREDIT_P4
        + "\n",
        payment_applications_csv=with_rows("payment_applications.csv", "P4,I3,30.00"),
    )
    lines = ops(plan, "payment")["P2"]["body"]["Line"]
    assert lines[-1] == {"Amount": "30.00", "LinkedTxn": [{"TxnId": "@invoice:I3", "TxnType": "Invoice"}]}
    assert status(plan, "payment", "P4") == (
        "synced",
        "paid 30.00 from the client's QuickBooks credit (no new money)",
    )
    assert "P4" not in ops(plan, "payment")  # no new money, no new Payment


def test_a_credit_balance_payment_fails_when_the_credit_is_short(tmp_path):
    plan = plan_of(
        tmp_path,
        invoices_csv=with_rows("invoices.csv", CREDIT_INVOICE_I3),
        invoice_lines_csv=with_rows("invoice_lines.csv", CREDIT_LINE_I3),
        payments_csv=with_rows("payments.csv", CREDIT_P4),
        payment_applications_csv=with_rows("payment_applications.csv", "P4,I3,30.00"),
    )
    assert status(plan, "payment", "P4") == (
        "failed",
        "the client's credit in QuickBooks is 0.00, short of the 30.00 applied",
    )


def test_processing_fees_are_expenses_paid_from_the_configured_account(tmp_path):
    fee = ops(plan_of(tmp_path), "fee")["P1"]["body"]
    assert fee["PaymentType"] == "Cash" and fee["TxnDate"] == "2026-01-07"
    assert fee["AccountRef"] == {"value": "35"}  # default: the deposit-to account
    assert fee["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"] == {"value": "60"}
    clearing = ops(plan_of(tmp_path, FirmSettings(fee_paid_from_account="Stripe Clearing")), "fee")["P1"][
        "body"
    ]
    assert clearing["AccountRef"] == {"value": "37"}
    assert "P2" not in ops(plan_of(tmp_path), "fee")  # cash: no fee


def test_refunds_are_paid_out_of_the_deposit_account_and_need_a_synced_payment(tmp_path):
    refund = ops(plan_of(tmp_path), "refund")["R1"]["body"]
    assert refund["DepositToAccountRef"] == {"value": "35"} and refund["TotalAmt"] == "50.00"
    plan = plan_of(
        tmp_path,
        payments_csv=with_rows("payments.csv", PROMO_P3),
        refunds_csv=with_rows("refunds.csv", "R2,P3,A2,2026-01-10,10.00,"),
    )
    assert status(plan, "refund", "R2")[0] == "not_synced"


def test_a_missing_deposit_account_fails_payments_with_the_reason(tmp_path):
    plan = plan_of(tmp_path, FirmSettings(deposit_to_account="Nowhere"))
    assert status(plan, "payment", "P1") == (
        "failed",
        "the account 'Nowhere' (deposit_to_account) is not an active account in QuickBooks",
    )


# -- changes and deletions ----------------------------------------------------------------------------------
def test_a_second_plan_after_a_successful_sync_has_no_operation(tmp_path):
    first = plan_of(tmp_path)
    again = plan_of(tmp_path, state=state_after(first))
    assert again.operations.empty
    assert set(again.statuses["status"]) == {"synced"}


def test_a_changed_object_is_updated_with_its_sync_token(tmp_path):
    first = plan_of(tmp_path)
    changed = plan_of(
        tmp_path,
        state=state_after(first),
        invoices_csv=replace_row(
            "invoices.csv", "I2,", "I2,INV-0002,A2,2026-01-06,2026-02-06,Unpaid,USD,,250.00,,"
        ),
    )
    assert list(changed.operations["taxdome_id"]) == ["I2"]
    update = ops(changed, "invoice", "update")["I2"]["body"]
    previous = state_after(first).set_index(["taxdome_kind", "taxdome_id"]).loc[("invoice", "I2")]
    assert (update["Id"], update["SyncToken"], update["DueDate"]) == (previous["qbo_id"], "0", "2026-02-06")
    assert update["sparse"] is False  # a full update: every field of the invoice is sent


def test_a_full_export_without_a_synced_payment_deletes_it_with_its_fee_and_refunds(tmp_path):
    state = state_after(plan_of(tmp_path))
    without_p1 = {
        "payments_csv": replace_row("payments.csv", "P1,", "").replace("\n\n", "\n"),
        "payment_applications_csv": replace_row("payment_applications.csv", "P1,", "").replace("\n\n", "\n"),
        "refunds_csv": "refund_id,payment_id,account_id,refund_date,amount,reason\n",
        "payouts_csv": None,
    }
    with pytest.raises(PlanRefused, match="would delete 3 of 10 synced objects"):
        plan_of(tmp_path, state=state, **without_p1)
    plan = plan_of(tmp_path, state=state, options=PlanOptions(allow_mass_delete=True), **without_p1)
    deletes = plan.operations[plan.operations["action"] == "delete"]
    assert list(zip(deletes["taxdome_kind"], deletes["taxdome_id"], strict=True)) == [
        ("refund", "R1"),
        ("fee", "P1"),
        ("payment", "P1"),
    ]
    assert deletes.index.tolist() == [0, 1, 2] and list(deletes["seq"]) == sorted(deletes["seq"])  # first
    incremental = plan_of(tmp_path, state=state, options=PlanOptions(export_mode="incremental"), **without_p1)
    assert not (incremental.operations["action"] == "delete").any()


def test_unsyncing_a_payment_deletes_it_and_its_refunds(tmp_path):
    state = state_after(plan_of(tmp_path))
    plan = plan_of(
        tmp_path,
        state=state,
        options=PlanOptions(allow_mass_delete=True),
        payments_csv=replace_row(
            "payments.csv",
            "P1,",
            "P1,A1,2026-01-07,464.69,card,stripe,ch_1,13.78,USD,false,,2026-01-07T09:00:00Z",
        ),
    )
    deletes = plan.operations[plan.operations["action"] == "delete"]
    assert list(zip(deletes["taxdome_kind"], deletes["taxdome_id"], strict=True)) == [
        ("refund", "R1"),
        ("fee", "P1"),
        ("payment", "P1"),
    ]
    assert set(deletes["reason"]) == {
        "its TaxDome refund is no longer synced",
        "its TaxDome payment is no longer synced",
    }
    assert status(plan, "refund", "R1")[0] == "not_synced"
