"""Builders of QBO objects with the unchanged python-quickbooks classes, and lookups the tests share."""

from decimal import Decimal

from quickbooks.objects import Account, Customer, Invoice, Item, Payment, Purchase, RefundReceipt
from quickbooks.objects.base import LinkedTxn, Ref
from quickbooks.objects.creditmemo import CreditMemo
from quickbooks.objects.customertype import CustomerType
from quickbooks.objects.detailline import (
    AccountBasedExpenseLine,
    AccountBasedExpenseLineDetail,
    SalesItemLine,
    SalesItemLineDetail,
)
from quickbooks.objects.payment import PaymentLine


def ref(value: str) -> Ref:
    reference = Ref()
    reference.value = value
    return reference


def account_named(qb, name: str) -> Account:
    return Account.filter(Name=name, qb=qb)[0]


def default_item(qb) -> Item:
    return Item.filter(Name="Services", qb=qb)[0]


def customer(qb, name: str, **fields) -> Customer:
    new = Customer()
    new.DisplayName = name
    for field, value in fields.items():
        setattr(new, field, value)
    return new.save(qb=qb)


def sales_line(qb, amount: str, quantity: str | None = None, unit_price: str | None = None) -> SalesItemLine:
    line = SalesItemLine()
    line.Amount = Decimal(amount)
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = default_item(qb).to_ref()
    # Left unset, Qty and UnitPrice go out as python-quickbooks' defaults (0 and 0), which QBO tolerates.
    if quantity is not None:
        line.SalesItemLineDetail.Qty = Decimal(quantity)
    if unit_price is not None:
        line.SalesItemLineDetail.UnitPrice = Decimal(unit_price)
    return line


def invoice(
    qb, buyer: Customer, *amounts: str, doc_number: str | None = None, tax: str | None = None
) -> Invoice:
    new = Invoice()
    new.CustomerRef = buyer.to_ref()
    new.Line = [sales_line(qb, amount, "1", amount) for amount in amounts]
    new.DocNumber = doc_number
    if tax is not None:
        new.TxnTaxDetail = {"TotalTax": tax}
    return new.save(qb=qb)


def credit_memo(qb, buyer: Customer, amount: str) -> CreditMemo:
    new = CreditMemo()
    new.CustomerRef = buyer.to_ref()
    new.Line = [sales_line(qb, amount, "1", amount)]
    return new.save(qb=qb)


def payment(qb, buyer: Customer, total: str, *applications: tuple[object, str], deposit_to=None) -> Payment:
    """``applications`` are (invoice or credit memo, amount) pairs."""
    new = Payment()
    new.CustomerRef = buyer.to_ref()
    new.TotalAmt = Decimal(total)
    if deposit_to is not None:
        new.DepositToAccountRef = deposit_to.to_ref()
    new.Line = []
    for target, amount in applications:
        line = PaymentLine()
        line.Amount = Decimal(amount)
        link = LinkedTxn()
        link.TxnId = target.Id
        link.TxnType = type(target).qbo_object_name
        line.LinkedTxn = [link]
        new.Line.append(line)
    return new.save(qb=qb)


def fee_purchase(qb, amount: str, paid_from: Account, expense: Account) -> Purchase:
    new = Purchase()
    new.PaymentType = "Cash"
    new.AccountRef = paid_from.to_ref()
    line = AccountBasedExpenseLine()
    line.Amount = Decimal(amount)
    line.AccountBasedExpenseLineDetail = AccountBasedExpenseLineDetail()
    line.AccountBasedExpenseLineDetail.AccountRef = expense.to_ref()
    new.Line = [line]
    return new.save(qb=qb)


def refund_receipt(qb, buyer: Customer, amount: str, paid_from: Account | None) -> RefundReceipt:
    new = RefundReceipt()
    new.CustomerRef = buyer.to_ref()
    if paid_from is not None:
        new.DepositToAccountRef = paid_from.to_ref()
    new.Line = [sales_line(qb, amount)]
    return new.save(qb=qb)


def individual_type(qb) -> CustomerType:
    return CustomerType.filter(Name="Individual", qb=qb)[0]
