"""Create/read/update/delete/void of every entity, the business rules and the computed fields."""

import json
from decimal import Decimal

import pytest
from quickbooks.exceptions import (
    ObjectNotFoundException,
    QuickbooksException,
    UnsupportedException,
    ValidationException,
)
from quickbooks.objects import (
    CompanyInfo,
    Customer,
    Deposit,
    Employee,
    Invoice,
    Item,
    Payment,
    PaymentMethod,
    Preferences,
    Purchase,
    RefundReceipt,
    Vendor,
)
from quickbooks.objects.account import Account
from quickbooks.objects.base import LinkedTxn
from quickbooks.objects.creditmemo import CreditMemo
from quickbooks.objects.deposit import DepositLine, DepositLineDetail

from tests.emulator.builders import (
    account_named,
    credit_memo,
    customer,
    default_item,
    fee_purchase,
    individual_type,
    invoice,
    payment,
    ref,
    refund_receipt,
    sales_line,
)


def test_customer_create_read_and_full_update(qb):
    created = customer(qb, "Ada Lovelace", CompanyName="Analytical Engines")
    assert created.Id.isdigit()
    assert (created.SyncToken, created.domain, created.sparse) == ("0", "QBO", False)
    assert created.MetaData["CreateTime"] == created.MetaData["LastUpdatedTime"]

    fetched = Customer.get(created.Id, qb=qb)
    fetched.GivenName = "Ada"
    updated = fetched.save(qb=qb)

    assert (updated.SyncToken, updated.GivenName, updated.CompanyName) == ("1", "Ada", "Analytical Engines")
    replaced = Customer()
    replaced.Id, replaced.SyncToken, replaced.DisplayName = updated.Id, updated.SyncToken, "Ada L."
    assert replaced.save(qb=qb).CompanyName == "", "a full update clears the fields it does not send"


def test_sparse_update_changes_only_the_fields_sent(qb):
    created = customer(qb, "Sparse Before", CompanyName="Kept")
    change = Customer()
    change.Id, change.SyncToken, change.sparse, change.DisplayName = (
        created.Id,
        created.SyncToken,
        True,
        "After",
    )

    updated = change.save(qb=qb)

    assert (updated.DisplayName, updated.CompanyName, updated.SyncToken) == ("After", "Kept", "1")


def test_duplicate_display_name_is_6240_naming_the_existing_customer_even_when_inactive(qb):
    first = customer(qb, "Duplicate & Sons")
    first.Active = False
    first.save(qb=qb)

    for candidate in ("Duplicate & Sons", "duplicate &  sons"):
        with pytest.raises(QuickbooksException) as raised:
            customer(qb, candidate)
        assert raised.value.error_code == 6240
        assert raised.value.detail == f"The name supplied already exists. : Id={first.Id}"


def test_a_display_name_is_unique_across_customers_vendors_and_employees(qb):
    supplier = Vendor()
    supplier.DisplayName = "Shared Name LLC"
    supplier.save(qb=qb)
    with pytest.raises(QuickbooksException) as raised:
        customer(qb, "Shared Name LLC")
    assert (raised.value.error_code, raised.value.detail) == (
        6240,
        f"The name supplied already exists. : Id={supplier.Id}",
    )
    staff = Employee()
    staff.GivenName, staff.FamilyName = "Ada", "Lovelace"
    assert staff.save(qb=qb).DisplayName == "Ada Lovelace"  # made from the name parts
    with pytest.raises(QuickbooksException) as raised:
        customer(qb, "Ada Lovelace")
    assert raised.value.error_code == 6240
    assert [v.DisplayName for v in Vendor.filter(DisplayName="Shared Name LLC", qb=qb)] == ["Shared Name LLC"]


def test_stale_sync_token_is_5010(qb):
    created = customer(qb, "Stale Writer")
    first_copy, second_copy = Customer.get(created.Id, qb=qb), Customer.get(created.Id, qb=qb)
    first_copy.Notes = "first"
    first_copy.save(qb=qb)
    second_copy.Notes = "second"

    with pytest.raises(QuickbooksException) as raised:
        second_copy.save(qb=qb)

    assert raised.value.error_code == 5010
    assert Customer.get(created.Id, qb=qb).Notes == "first"


def test_unknown_id_is_610_object_not_found(qb):
    with pytest.raises(ObjectNotFoundException) as raised:
        Invoice.get("987654", qb=qb)
    assert raised.value.error_code == 610


def test_reference_to_a_missing_object_is_2500_and_to_an_inactive_one_is_610(qb):
    draft = Invoice()
    draft.CustomerRef = ref("424242")
    draft.Line = [sales_line(qb, "10.00")]
    with pytest.raises(ValidationException) as raised:
        draft.save(qb=qb)
    assert raised.value.error_code == 2500

    gone = customer(qb, "Gone Customer")
    gone.Active = False
    gone.save(qb=qb)
    draft.CustomerRef = gone.to_ref()
    with pytest.raises(ObjectNotFoundException):
        draft.save(qb=qb)


def _invoice_without_customer(qb):
    draft = Invoice()
    draft.Line = [sales_line(qb, "10.00")]
    return draft


def _invoice_without_lines(qb):
    draft = Invoice()
    draft.CustomerRef = customer(qb, "No Lines").to_ref()
    return draft


def _payment_without_total(qb):
    draft = Payment()
    draft.CustomerRef = customer(qb, "No Total").to_ref()
    return draft


def _payment_without_customer(qb):
    draft = Payment()
    draft.TotalAmt = Decimal("5.00")
    return draft


def _refund_without_deposit_account(qb):
    draft = RefundReceipt()
    draft.CustomerRef = customer(qb, "No Refund Account").to_ref()
    draft.Line = [sales_line(qb, "5.00")]
    return draft


def _purchase_without(missing: str):
    def build(qb):
        draft = Purchase()
        draft.PaymentType = "" if missing == "PaymentType" else "Cash"
        if missing != "AccountRef":
            draft.AccountRef = account_named(qb, "Checking").to_ref()
        draft.Line = []
        return draft

    return build


def _service_item_without_income_account(qb):
    draft = Item()
    draft.Name, draft.Type = "Bookkeeping", "Service"
    return draft


@pytest.mark.parametrize(
    ("build", "element"),
    [
        (_invoice_without_customer, "CustomerRef"),
        (_invoice_without_lines, "Line"),
        (_payment_without_total, "TotalAmt"),
        (_payment_without_customer, "CustomerRef"),
        (_refund_without_deposit_account, "DepositToAccountRef"),
        (_purchase_without("PaymentType"), "PaymentType"),
        (_purchase_without("AccountRef"), "AccountRef"),
        (_service_item_without_income_account, "IncomeAccountRef"),
    ],
)
def test_missing_required_field_is_2020(qb, build, element):
    with pytest.raises(ValidationException) as raised:
        build(qb).save(qb=qb)
    assert raised.value.error_code == 2020
    assert element in raised.value.detail


def test_line_amount_must_equal_quantity_times_unit_price_6070(qb):
    buyer = customer(qb, "Line Math")
    draft = Invoice()
    draft.CustomerRef = buyer.to_ref()
    draft.Line = [sales_line(qb, "100.00", quantity="2", unit_price="40.00")]
    with pytest.raises(QuickbooksException) as raised:
        draft.save(qb=qb)
    assert raised.value.error_code == 6070

    draft.Line = [sales_line(qb, "80.00", quantity="2", unit_price="40.00"), sales_line(qb, "12.50")]
    assert draft.save(qb=qb).TotalAmt == Decimal("92.50")


def test_duplicate_doc_number_is_6140_while_the_company_preference_asks_for_it(qb):
    buyer = customer(qb, "Doc Numbers")
    invoice(qb, buyer, "10.00", doc_number="TD-1001")
    with pytest.raises(QuickbooksException) as raised:
        invoice(qb, buyer, "10.00", doc_number="TD-1001")
    assert raised.value.error_code == 6140

    preferences = Preferences.get(qb=qb)
    preferences.SalesFormsPrefs.CustomTxnNumbers = False
    assert preferences.save(qb=qb).SyncToken == "1"
    assert invoice(qb, buyer, "10.00", doc_number="TD-1001").DocNumber == "TD-1001"


def test_invoice_total_is_lines_plus_tax_with_a_trailing_subtotal_line(qb):
    buyer = customer(qb, "Taxed Buyer")

    created = invoice(qb, buyer, "100.00", "50.25", tax="12.06")

    assert (created.TotalAmt, created.Balance) == (Decimal("162.31"), Decimal("162.31"))
    assert created.TxnTaxDetail.TotalTax == Decimal("12.06")
    assert created.Line[-1].DetailType == "SubTotalLineDetail"
    assert created.Line[-1].Amount == Decimal("150.25")
    assert created.DocNumber == "1001", "an invoice sent without a number gets the next one"
    assert created.CustomerRef.name == "Taxed Buyer"
    assert Customer.get(buyer.Id, qb=qb).Balance == Decimal("162.31")


def test_payment_lowers_the_invoice_balance_and_lands_in_undeposited_funds(qb):
    buyer = customer(qb, "Paying Client")
    first, second = invoice(qb, buyer, "150.00"), invoice(qb, buyer, "100.00")

    paid = payment(qb, buyer, "200.00", (first, "150.00"), (second, "40.00"))

    undeposited = account_named(qb, "Undeposited Funds")
    assert paid.DepositToAccountRef.value == undeposited.Id
    assert paid.UnappliedAmt == Decimal("10.00")
    assert Invoice.get(first.Id, qb=qb).Balance == 0
    reread_second = Invoice.get(second.Id, qb=qb)
    assert reread_second.Balance == Decimal("60.00")
    assert [link.TxnId for link in reread_second.LinkedTxn] == [paid.Id]
    assert reread_second.SyncToken == "1", "applying a payment is a write to the invoice"
    assert undeposited.CurrentBalance == Decimal("200.00")
    assert account_named(qb, "Accounts Receivable (A/R)").CurrentBalance == Decimal("50.00")
    assert account_named(qb, "Services").CurrentBalance == Decimal("250.00")
    assert Customer.get(buyer.Id, qb=qb).Balance == Decimal("50.00")

    with pytest.raises(QuickbooksException) as raised:
        payment(qb, buyer, "70.00", (second, "70.00"))
    assert raised.value.error_code == 6000, "more than the open balance cannot be applied"


def test_credit_memo_applied_through_a_payment_lowers_both_balances(qb):
    buyer = customer(qb, "Credited Client")
    billed = invoice(qb, buyer, "100.00")
    credit = credit_memo(qb, buyer, "30.00")
    assert (credit.TotalAmt, credit.RemainingCredit) == (Decimal("30.00"), Decimal("30.00"))

    applied = payment(qb, buyer, "0", (billed, "30.00"), (credit, "30.00"))

    assert applied.UnappliedAmt == 0
    assert Invoice.get(billed.Id, qb=qb).Balance == Decimal("70.00")
    assert CreditMemo.get(credit.Id, qb=qb).RemainingCredit == 0
    assert Customer.get(buyer.Id, qb=qb).Balance == Decimal("70.00")


def test_purchase_moves_a_processing_fee_from_the_clearing_account_to_the_expense(qb):
    clearing, fees = account_named(qb, "Stripe Clearing"), account_named(qb, "Commissions & fees")

    fee = fee_purchase(qb, "4.65", clearing, fees)

    assert fee.TotalAmt == Decimal("4.65")
    assert account_named(qb, "Stripe Clearing").CurrentBalance == Decimal("-4.65")
    assert account_named(qb, "Commissions & fees").CurrentBalance == Decimal("4.65")


def test_refund_receipt_pays_out_of_its_deposit_account(qb):
    buyer = customer(qb, "Refunded Client")

    refund = refund_receipt(qb, buyer, "50.00", account_named(qb, "Checking"))

    assert (refund.TotalAmt, refund.DepositToAccountRef.name) == (Decimal("50.00"), "Checking")
    assert account_named(qb, "Checking").CurrentBalance == Decimal("-50.00")


def test_deposit_moves_a_payment_out_of_undeposited_funds_and_locks_it(qb):
    buyer = customer(qb, "Deposited Client")
    paid = payment(qb, buyer, "150.00", (invoice(qb, buyer, "150.00"), "150.00"))
    payout = Deposit()
    payout.DepositToAccountRef = account_named(qb, "Checking").to_ref()
    linked, fee = DepositLine(), DepositLine()
    linked.Amount = Decimal("150.00")
    link = LinkedTxn()
    link.TxnId, link.TxnType = paid.Id, "Payment"
    linked.LinkedTxn = [link]
    fee.Amount = Decimal("-4.65")
    fee.DepositLineDetail = DepositLineDetail()
    fee.DepositLineDetail.AccountRef = account_named(qb, "Commissions & fees").to_ref()
    payout.Line = [linked, fee]

    deposited = payout.save(qb=qb)

    assert deposited.TotalAmt == Decimal("145.35")
    assert account_named(qb, "Undeposited Funds").CurrentBalance == 0
    assert account_named(qb, "Checking").CurrentBalance == Decimal("145.35")
    assert account_named(qb, "Commissions & fees").CurrentBalance == Decimal("4.65")
    locked = Payment.get(paid.Id, qb=qb)
    locked.PaymentRefNum = "changed"
    with pytest.raises(QuickbooksException) as raised:
        locked.save(qb=qb)
    assert raised.value.error_code == 6540


def test_void_payment_restores_the_invoice_then_void_invoice_zeroes_it(qb):
    buyer = customer(qb, "Voided Client")
    billed = invoice(qb, buyer, "80.00")
    paid = payment(qb, buyer, "80.00", (billed, "80.00"))

    voided_payment = Payment.get(paid.Id, qb=qb).void(qb=qb)

    assert voided_payment["Payment"]["TotalAmt"] == 0
    assert voided_payment["Payment"]["PrivateNote"] == "Voided"
    reread = Invoice.get(billed.Id, qb=qb)
    assert reread.Balance == Decimal("80.00")
    voided_invoice = reread.void(qb=qb)["Invoice"]
    assert (voided_invoice["TotalAmt"], voided_invoice["Balance"]) == (0, 0)
    assert Customer.get(buyer.Id, qb=qb).Balance == 0


def test_delete_removes_a_transaction_but_not_an_invoice_with_payments(qb):
    buyer = customer(qb, "Deleting Client")
    billed = invoice(qb, buyer, "20.00")
    paid = payment(qb, buyer, "20.00", (billed, "20.00"))

    with pytest.raises(QuickbooksException) as raised:
        Invoice.get(billed.Id, qb=qb).delete(qb=qb)
    assert raised.value.error_code == 6000

    assert Payment.get(paid.Id, qb=qb).delete(qb=qb)["Payment"] == {
        "status": "Deleted",
        "domain": "QBO",
        "Id": paid.Id,
    }
    with pytest.raises(ObjectNotFoundException):
        Payment.get(paid.Id, qb=qb)
    assert Invoice.get(billed.Id, qb=qb).delete(qb=qb)["Invoice"]["status"] == "Deleted"


def test_name_lists_and_company_entities(qb):
    typed = customer(qb, "Typed Customer", CustomerTypeRef={"value": individual_type(qb).Id})
    assert typed.CustomerTypeRef == {"value": individual_type(qb).Id, "name": "Individual"}
    with pytest.raises(UnsupportedException):
        qb.create_object("CustomerType", json.dumps({"Name": "Company"}))

    income = Account()
    income.Name, income.AccountType = "Tax Preparation Income", "Income"
    income = income.save(qb=qb)
    assert (income.Classification, income.AccountSubType) == (
        "Revenue",
        None,
    ) or income.Classification == "Revenue"
    service = Item()
    service.Name, service.Type, service.UnitPrice = "Tax Preparation", "Service", Decimal("150.00")
    service.IncomeAccountRef = income.to_ref()
    service.Sku = "hourly"
    created_item = service.save(qb=qb)
    assert (created_item.UnitPrice, created_item.Sku) == (Decimal("150.00"), "hourly")
    assert default_item(qb).IncomeAccountRef.name == "Services"
    method = PaymentMethod()
    method.Name = "Wire"
    assert method.save(qb=qb).Type == "NON_CREDIT_CARD"

    assert CompanyInfo.get(qb.company_id, qb=qb).CompanyName.startswith("Emulated Company")
    assert Preferences.get(qb=qb).TaxPrefs.PartnerTaxEnabled is False


def test_tolerates_what_python_quickbooks_serializes(qb):
    """The raw body of qbo-api.md section 7: empty strings, numbers as strings, SyncToken as an int."""
    buyer = customer(qb, "Raw Body Client")
    body = {
        "AllowIPNPayment": True,
        "Balance": 0,
        "CustomField": [],
        "Deposit": 0,
        "DocNumber": "TD-RAW-1",
        "CustomerRef": {"name": "", "type": "", "value": buyer.Id},
        "DueDate": "",
        "EmailStatus": "NotSet",
        "ExchangeRate": 1,
        "GlobalTaxCalculation": "TaxExcluded",
        "HomeBalance": 0,
        "HomeTotalAmt": 0,
        "Line": [
            {
                "Amount": "150.00",
                "CustomField": [],
                "Description": "Tax prep",
                "LineNum": 0,
                "LinkedTxn": [],
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"name": "", "type": "", "value": default_item(qb).Id},
                    "Qty": 1,
                    "ServiceDate": "",
                    "TaxInclusiveAmt": 0,
                    "UnitPrice": "150.00",
                },
            },
            {"Amount": "150.00", "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        ],
        "LinkedTxn": [],
        "PrintStatus": "NotSet",
        "PrivateNote": "",
        "ShipDate": "",
        "SyncToken": 0,
        "TotalAmt": "",
        "TxnDate": "2025-03-01",
        "domain": "QBO",
        "sparse": False,
    }

    created = qb.create_object("Invoice", json.dumps(body))["Invoice"]

    assert (created["TotalAmt"], created["Balance"], created["DueDate"]) == (150, 150, "2025-03-01")
    assert [line["DetailType"] for line in created["Line"]] == ["SalesItemLineDetail", "SubTotalLineDetail"]


def test_fault_and_object_envelopes_are_qbo_shaped(qb):
    base = f"{qb.api_url}/company/{qb.company_id}"
    headers = {"Accept": "application/json"}

    missing = qb.process_request(
        "GET", f"{base}/customer/999999", headers=headers, params={"minorversion": 75}
    )
    found = qb.process_request("GET", f"{base}/preferences", headers=headers, params={"minorversion": 75})

    assert missing.status_code == 400
    assert set(missing.json()) == {"Fault", "time"}
    assert missing.json()["Fault"]["type"] == "ValidationFault"
    assert missing.json()["Fault"]["Error"][0]["code"] == "610"
    assert set(found.json()) == {"Preferences", "time"}
    assert found.json()["time"][-6:] == "-08:00"
