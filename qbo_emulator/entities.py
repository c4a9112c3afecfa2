"""Entity rules: what QBO validates, computes and changes on each create, update, delete and void."""

import copy
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from qbo_emulator import clock
from qbo_emulator.company import NAME_FIELDS, Company
from qbo_emulator.errors import (
    QboFault,
    business_validation,
    duplicate_name,
    invalid_reference,
    invalid_value,
    object_not_found,
    required_param_missing,
    stale_object,
    unsupported_operation,
)

CENT = Decimal("0.01")
ZERO = Decimal("0")
TRANSACTIONS = ("Invoice", "Payment", "CreditMemo", "Purchase", "RefundReceipt", "Deposit")
SALES_FORMS = ("Invoice", "CreditMemo", "RefundReceipt")
SINGLETONS = ("Preferences", "CompanyInfo")
READ_ONLY = ("CustomerType", "CompanyInfo")
VOIDABLE = ("Invoice", "Payment")
# Their balances are derived from the transactions each time they are rendered.
RENDERED_FROM_LEDGER = ("Account", "Customer")
ENTITIES = (*NAME_FIELDS, *TRANSACTIONS, *SINGLETONS)
ENTITY_BY_LOWER_NAME = {entity.lower(): entity for entity in ENTITIES}

# Fields QBO computes or owns; values a client sends for them are ignored (Payment.TotalAmt is an input).
SYSTEM_FIELDS = frozenset(
    {
        "Id",
        "SyncToken",
        "MetaData",
        "domain",
        "sparse",
        "Balance",
        "UnappliedAmt",
        "RemainingCredit",
        "HomeBalance",
        "HomeTotalAmt",
        "FullyQualifiedName",
        "Level",
        "CurrentBalance",
        "CurrentBalanceWithSubAccounts",
        "Classification",
        "BalanceWithJobs",
        "LinkedTxn",
    }
)
ACCOUNT_CLASSIFICATIONS = {
    "Bank": "Asset",
    "Accounts Receivable": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Other Current Liability": "Liability",
    "Long Term Liability": "Liability",
    "Equity": "Equity",
    "Income": "Revenue",
    "Other Income": "Revenue",
    "Cost of Goods Sold": "Expense",
    "Expense": "Expense",
    "Other Expense": "Expense",
}
DEBIT_NORMAL_CLASSIFICATIONS = ("Asset", "Expense")
ITEM_TYPES = ("Service", "NonInventory", "Inventory", "Other Charge", "Group", "Category", "Bundle")
ITEM_TYPES_NEEDING_INCOME_ACCOUNT = ("Service", "NonInventory", "Inventory", "Other Charge")
PAYMENT_TYPES = ("Cash", "Check", "CreditCard")
CUSTOMER_NAME_PARTS = ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")
PEOPLE = ("Customer", "Vendor", "Employee")  # QBO keeps one DisplayName namespace for the three
FIRST_DOC_NUMBER = 1001


def classification(account_type: str) -> str:
    return ACCOUNT_CLASSIFICATIONS[account_type]


def entity_for(name: str) -> str | None:
    return ENTITY_BY_LOWER_NAME.get(name.lower())


# --- value helpers -----------------------------------------------------------------------------------------


def cleaned(value):
    """The request without python-quickbooks' noise: empty strings and nulls mean "not sent"."""
    if isinstance(value, dict):
        return {key: cleaned(item) for key, item in value.items() if item != "" and item is not None}
    if isinstance(value, list):
        return [cleaned(item) for item in value]
    return value


def to_decimal(value, field: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str, float)):
        raise invalid_value(field, value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise invalid_value(field, value) from None
    if not number.is_finite():
        raise invalid_value(field, value)
    return number


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def display_name(entity: str, obj: dict) -> str:
    return obj.get(NAME_FIELDS.get(entity, "Name"), "")


def _check_ref(
    company: Company, parent: dict, field: str, entity: str, *, path: str = "", required: bool = False
) -> dict | None:
    """Validates a reference, fills in its name as QBO does, and returns the referenced object."""
    path = path or field
    ref = parent.get(field)
    value = str(ref.get("value", "")).strip() if isinstance(ref, dict) else ""
    if not value:
        parent.pop(field, None)
        if required:
            raise required_param_missing(path)
        return None
    target = company.get(entity, value)
    if target is None:
        raise invalid_reference(path, entity, value)
    if target.get("Active") is False:
        raise object_not_found(entity, value)
    parent[field] = {"value": target["Id"], "name": display_name(entity, target)}
    return target


def _amount(line: dict, field: str = "Line.Amount", *, required: bool = True) -> Decimal | None:
    amount = to_decimal(line.get("Amount"), field)
    if amount is None and required:
        raise required_param_missing(field)
    return amount


# --- balances ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Balances:
    accounts: dict[str, Decimal]
    customers: dict[str, Decimal]


def _postings(company: Company, entity: str, obj: dict) -> Iterator[tuple[str, Decimal]]:
    """(account Id, debit) pairs; a credit is a negative debit."""
    total = obj.get("TotalAmt", ZERO)
    tax = obj.get("TxnTaxDetail", {}).get("TotalTax", ZERO)
    sales_tax_id = company.meta["special_accounts"]["sales_tax"]
    receivable_id = company.meta["special_accounts"]["receivable"]
    if entity in SALES_FORMS:
        # An invoice debits A/R and credits income; a credit memo and a refund reverse that.
        sign = 1 if entity == "Invoice" else -1
        yield (
            (receivable_id if entity != "RefundReceipt" else obj["DepositToAccountRef"]["value"]),
            sign * total,
        )
        for line in obj.get("Line", []):
            detail = line.get("SalesItemLineDetail")
            if detail and "ItemAccountRef" in detail:
                yield detail["ItemAccountRef"]["value"], -sign * line["Amount"]
        yield sales_tax_id, -sign * tax
    elif entity == "Payment":
        yield obj["DepositToAccountRef"]["value"], total
        yield receivable_id, -total
    elif entity == "Purchase":
        sign = -1 if obj.get("Credit") is True else 1
        yield obj["AccountRef"]["value"], -sign * total
        for line in obj.get("Line", []):
            yield line["AccountBasedExpenseLineDetail"]["AccountRef"]["value"], sign * line["Amount"]
    elif entity == "Deposit":
        yield obj["DepositToAccountRef"]["value"], total
        undeposited_id = company.meta["special_accounts"]["undeposited"]
        for line in obj.get("Line", []):
            source = (
                undeposited_id if line.get("LinkedTxn") else line["DepositLineDetail"]["AccountRef"]["value"]
            )
            yield source, -line["Amount"]


def compute_balances(company: Company) -> Balances:
    debits: dict[str, Decimal] = defaultdict(Decimal)
    customers: dict[str, Decimal] = defaultdict(Decimal)
    receivable_sign = {"Invoice": 1, "CreditMemo": -1, "Payment": -1}
    for entity in TRANSACTIONS:
        for obj in company.all(entity):
            for account_id, debit in _postings(company, entity, obj):
                debits[account_id] += debit
            if entity in receivable_sign:
                customers[obj["CustomerRef"]["value"]] += receivable_sign[entity] * obj["TotalAmt"]
    accounts = {}
    for account in company.all("Account"):
        debit = debits.get(account["Id"], ZERO)
        accounts[account["Id"]] = (
            debit if account["Classification"] in DEBIT_NORMAL_CLASSIFICATIONS else -debit
        )
    return Balances(accounts, dict(customers))


def render(company: Company, entity: str, obj: dict) -> dict:
    """The object as QBO returns it, with balances derived from the ledger."""
    if entity not in RENDERED_FROM_LEDGER:
        return obj
    balances: Balances = company.cached_balances(compute_balances)
    rendered = dict(obj)
    if entity == "Account":
        balance = balances.accounts.get(obj["Id"], ZERO)
        rendered["CurrentBalance"] = rendered["CurrentBalanceWithSubAccounts"] = balance
    else:
        balance = balances.customers.get(obj["Id"], ZERO)
        rendered["Balance"] = rendered["BalanceWithJobs"] = balance
    return rendered


# --- links between payments, invoices, credit memos and deposits -----------------------------------------


def _applications(company: Company) -> dict[tuple[str, str], list[tuple[str, Decimal]]]:
    """(TxnType, TxnId) of each invoice or credit memo → [(payment Id, amount applied)], oldest payment first."""
    return company.applications


def _linked_targets(payment: dict | None) -> set[tuple[str, str]]:
    if payment is None:
        return set()
    return {
        (link["TxnType"], link["TxnId"])
        for line in payment.get("Line", [])
        for link in line.get("LinkedTxn", [])
    }


def _depositing(company: Company, payment_id: str, excluding_deposit: str | None = None) -> dict | None:
    for deposit in company.all("Deposit"):
        if deposit["Id"] == excluding_deposit:
            continue
        for line in deposit.get("Line", []):
            if any(
                link.get("TxnType") == "Payment" and link.get("TxnId") == payment_id
                for link in line.get("LinkedTxn", [])
            ):
                return deposit
    return None


def _refuse_if_deposited(company: Company, payment: dict) -> None:
    deposit = _depositing(company, payment["Id"])
    if deposit is not None:
        raise QboFault(
            6540,
            "Deposited Transaction cannot be changed",
            f"This transaction has been deposited (Deposit Id={deposit['Id']}). "
            "If you want to change or delete it, you must edit the deposit it appears on.",
        )


def _refresh_open_balances(company: Company, targets: set[tuple[str, str]]) -> None:
    """Recomputes Balance (and RemainingCredit) of invoices and credit memos after their payments changed."""
    applications = _applications(company)
    for target_type, target_id in targets:
        target = company.get(target_type, target_id)
        if target is None:
            continue
        applied = sum((amount for _, amount in applications.get((target_type, target_id), [])), ZERO)
        payment_links = [
            {"TxnId": payment_id, "TxnType": "Payment"}
            for payment_id, amount in applications.get((target_type, target_id), [])
            if amount
        ]
        updated = dict(target, Balance=target["TotalAmt"] - applied, LinkedTxn=payment_links)
        if target_type == "CreditMemo":
            updated["RemainingCredit"] = updated["Balance"]
        if updated != target:
            company.store(target_type, updated, target)


def _applied_to(company: Company, entity: str, obj: dict) -> tuple[Decimal, list[dict]]:
    if "Id" not in obj:
        return ZERO, []
    applications = _applications(company).get((entity, obj["Id"]), [])
    links = [{"TxnId": payment_id, "TxnType": "Payment"} for payment_id, amount in applications if amount]
    return sum((amount for _, amount in applications), ZERO), links


# --- preparation of each entity -----------------------------------------------------------------------------


def _require_unique_name(company: Company, entity: str, obj: dict) -> None:
    """Names are unique per list, and a DisplayName across customers, vendors and employees together."""
    name = obj[NAME_FIELDS[entity]]
    for other in PEOPLE if entity in PEOPLE else (entity,):
        existing = company.find_by_name(other, name)
        if existing is not None and (other != entity or existing["Id"] != obj.get("Id")):
            raise duplicate_name(existing["Id"])


def _prepare_display_name(company: Company, entity: str, obj: dict) -> None:
    if not obj.get("DisplayName"):
        parts = [obj[part] for part in CUSTOMER_NAME_PARTS if obj.get(part)]
        if not parts:
            raise QboFault(
                6080,
                "No Name Provided",
                "Display Name or one of the name fields is required",
                element="DisplayName",
            )
        obj["DisplayName"] = " ".join(parts)
    _require_unique_name(company, entity, obj)
    obj.setdefault("PrintOnCheckName", obj["DisplayName"])
    obj.setdefault("Active", True)


def _prepare_person(entity: str):
    def prepare(company: Company, obj: dict, params: dict) -> None:
        _prepare_display_name(company, entity, obj)

    return prepare


def _prepare_customer(company: Company, obj: dict, params: dict) -> None:
    _prepare_display_name(company, "Customer", obj)
    _check_ref(company, obj, "CustomerTypeRef", "CustomerType")
    _check_ref(company, obj, "PaymentMethodRef", "PaymentMethod")
    parent = _check_ref(company, obj, "ParentRef", "Customer")
    obj["Job"] = parent is not None
    obj["FullyQualifiedName"] = (
        f"{parent['FullyQualifiedName']}:{obj['DisplayName']}" if parent else obj["DisplayName"]
    )
    obj.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})


def _prepare_item(company: Company, obj: dict, params: dict) -> None:
    for field in ("Name", "Type"):
        if not obj.get(field):
            raise required_param_missing(field)
    if obj["Type"] not in ITEM_TYPES:
        raise QboFault(2170, "Invalid Enumeration", f"Invalid Enumeration : {obj['Type']}", element="Type")
    _require_unique_name(company, "Item", obj)
    _check_ref(
        company, obj, "IncomeAccountRef", "Account", required=obj["Type"] in ITEM_TYPES_NEEDING_INCOME_ACCOUNT
    )
    _check_ref(company, obj, "ExpenseAccountRef", "Account")
    _check_ref(company, obj, "AssetAccountRef", "Account")
    unit_price = to_decimal(obj.get("UnitPrice"), "UnitPrice")
    obj["UnitPrice"] = ZERO if unit_price is None else unit_price
    obj["FullyQualifiedName"] = obj["Name"]
    obj.setdefault("Active", True)


def _prepare_account(company: Company, obj: dict, params: dict) -> None:
    for field in ("Name", "AccountType"):
        if not obj.get(field):
            raise required_param_missing(field)
    if obj["AccountType"] not in ACCOUNT_CLASSIFICATIONS:
        raise QboFault(
            2170, "Invalid Enumeration", f"Invalid Enumeration : {obj['AccountType']}", element="AccountType"
        )
    _require_unique_name(company, "Account", obj)
    parent = _check_ref(company, obj, "ParentRef", "Account")
    obj["SubAccount"] = parent is not None
    obj["Classification"] = classification(obj["AccountType"])
    obj["FullyQualifiedName"] = f"{parent['FullyQualifiedName']}:{obj['Name']}" if parent else obj["Name"]
    obj.setdefault("Active", True)
    obj.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})


def _prepare_payment_method(company: Company, obj: dict, params: dict) -> None:
    if not obj.get("Name"):
        raise required_param_missing("Name")
    _require_unique_name(company, "PaymentMethod", obj)
    obj.setdefault("Type", "NON_CREDIT_CARD")
    obj.setdefault("Active", True)


def _prepare_sales_lines(company: Company, obj: dict) -> Decimal:
    """Validates sales lines (6070, references) and returns their sum; appends QBO's subtotal line."""
    lines = [line for line in obj.get("Line", []) if line.get("DetailType") != "SubTotalLineDetail"]
    if not lines:
        raise required_param_missing("Line")
    total = ZERO
    for number, line in enumerate(lines, start=1):
        detail_type = line.get("DetailType") or "SalesItemLineDetail"
        if detail_type == "DescriptionOnly":
            line["Amount"] = _amount(line, required=False) or ZERO
        elif detail_type == "SalesItemLineDetail":
            _prepare_sales_item_line(company, line)
        else:
            raise invalid_value("Line.DetailType", detail_type)
        line.update(Id=str(number), LineNum=number, DetailType=detail_type)
        total += line["Amount"]
    obj["Line"] = [*lines, {"Amount": total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}]
    return total


def _prepare_sales_item_line(company: Company, line: dict) -> None:
    detail = line.setdefault("SalesItemLineDetail", {})
    item = _check_ref(company, detail, "ItemRef", "Item", path="Line.SalesItemLineDetail.ItemRef")
    if item is None:
        item = company.get("Item", company.meta["default_item"])
        detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
    quantity = to_decimal(detail.get("Qty"), "Line.SalesItemLineDetail.Qty")
    unit_price = to_decimal(detail.get("UnitPrice"), "Line.SalesItemLineDetail.UnitPrice")
    amount = _amount(line, required=quantity is None or unit_price is None)
    # python-quickbooks sends Qty 0 and UnitPrice 0 for an unset detail; QBO treats that pair as absent.
    priced = quantity is not None and unit_price is not None and (quantity or unit_price)
    if amount is None:
        amount = cents(quantity * unit_price)
    elif priced and cents(quantity * unit_price) != cents(amount):
        raise QboFault(
            6070,
            "Amount calculation incorrect",
            f"Amount is not equal to Qty * UnitPrice. Amount={amount} Qty={quantity} UnitPrice={unit_price}",
            element="Line.Amount",
        )
    line["Amount"] = amount
    for field, value in (("Qty", quantity), ("UnitPrice", unit_price)):
        if value is None or not priced:
            detail.pop(field, None)
        else:
            detail[field] = value
    if "IncomeAccountRef" in item:
        detail["ItemAccountRef"] = item["IncomeAccountRef"]


def _next_doc_number(company: Company, entity: str) -> str:
    counters = company.meta.setdefault("doc_numbers", {})
    counters[entity] = counters.get(entity, FIRST_DOC_NUMBER - 1) + 1
    return str(counters[entity])


def _check_doc_number(company: Company, entity: str, obj: dict, params: dict) -> None:
    """Numbers sales forms that come without one; refuses a duplicate (6140) where the preferences ask to."""
    preferences = next(company.all("Preferences"))
    if entity in SALES_FORMS:
        if obj.get("DocNumber", "AUTO_GENERATE") == "AUTO_GENERATE":
            obj["DocNumber"] = _next_doc_number(company, entity)
            return
        checked = preferences.get("SalesFormsPrefs", {}).get("CustomTxnNumbers") is True
    else:
        warn_checks = {"Name": "WarnDuplicateCheckNumber", "Value": "true"} in preferences.get(
            "OtherPrefs", {}
        ).get("NameValue", [])
        allowed = "allowduplicatedocnum" in params.get("include", "").lower()
        checked = (
            bool(obj.get("DocNumber")) and obj.get("PaymentType") == "Check" and warn_checks and not allowed
        )
    if not checked:
        return
    for other_obj in company.all(entity):
        if other_obj.get("DocNumber") == obj["DocNumber"] and other_obj["Id"] != obj.get("Id"):
            raise QboFault(
                6140,
                "Duplicate Document Number Error",
                f"Duplicate Document Number Error : You must specify a different number. This number "
                f"has already been used. DocNumber={obj['DocNumber']} is assigned to TxnType={entity} "
                f"with TxnId={other_obj['Id']}",
                element="DocNumber",
            )


def _prepare_transaction_defaults(obj: dict) -> None:
    obj.setdefault("TxnDate", clock.today())
    obj.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
    obj.setdefault("PrivateNote", "")


def _prepare_sales_form(company: Company, entity: str, obj: dict, params: dict) -> None:
    if entity == "RefundReceipt":
        _check_ref(company, obj, "DepositToAccountRef", "Account", required=True)
        _check_ref(company, obj, "CustomerRef", "Customer")
    else:
        _check_ref(company, obj, "CustomerRef", "Customer", required=True)
    _check_ref(company, obj, "PaymentMethodRef", "PaymentMethod")
    lines_total = _prepare_sales_lines(company, obj)
    tax_detail = obj.get("TxnTaxDetail", {})
    tax = to_decimal(tax_detail.get("TotalTax"), "TxnTaxDetail.TotalTax") or ZERO
    obj["TxnTaxDetail"] = {**tax_detail, "TotalTax": tax}
    obj["TotalAmt"] = lines_total + tax
    _prepare_transaction_defaults(obj)
    _check_doc_number(company, entity, obj, params)
    if entity == "RefundReceipt":
        obj["Balance"] = ZERO
        return
    applied, links = _applied_to(company, entity, obj)
    if applied > obj["TotalAmt"]:
        raise business_validation(
            f"The {entity} total ({obj['TotalAmt']}) is less than the {applied} already applied to it"
        )
    obj["Balance"] = obj["TotalAmt"] - applied
    obj["LinkedTxn"] = links
    if entity == "Invoice":
        obj.setdefault("DueDate", obj["TxnDate"])
        obj.setdefault("EmailStatus", "NotSet")
        obj.setdefault("PrintStatus", "NotSet")
    else:
        obj["RemainingCredit"] = obj["Balance"]


def _prepare_invoice(company: Company, obj: dict, params: dict) -> None:
    _prepare_sales_form(company, "Invoice", obj, params)


def _prepare_credit_memo(company: Company, obj: dict, params: dict) -> None:
    _prepare_sales_form(company, "CreditMemo", obj, params)


def _prepare_refund_receipt(company: Company, obj: dict, params: dict) -> None:
    _prepare_sales_form(company, "RefundReceipt", obj, params)


def _prepare_payment(company: Company, obj: dict, params: dict) -> None:
    customer = _check_ref(company, obj, "CustomerRef", "Customer", required=True)
    total = to_decimal(obj.get("TotalAmt"), "TotalAmt")
    if total is None:
        raise required_param_missing("TotalAmt")
    if _check_ref(company, obj, "DepositToAccountRef", "Account") is None:
        undeposited = company.special_account("undeposited")
        obj["DepositToAccountRef"] = {"value": undeposited["Id"], "name": undeposited["Name"]}
    _check_ref(company, obj, "PaymentMethodRef", "PaymentMethod")
    applications = _applications(company)
    applied = ZERO
    for line in obj.get("Line", []):
        line["Amount"] = _amount(line)
        line["LinkedTxn"] = [
            _prepare_payment_link(company, obj, customer, line["Amount"], link, applications)
            for link in line.get("LinkedTxn", [])
        ]
        for link in line["LinkedTxn"]:
            applied += line["Amount"] if link["TxnType"] == "Invoice" else -line["Amount"]
    if applied > total:
        raise business_validation(f"The payment amount ({total}) is less than the amount applied ({applied})")
    obj["TotalAmt"] = total
    obj["UnappliedAmt"] = total - applied
    obj.setdefault("ProcessPayment", False)
    _prepare_transaction_defaults(obj)


def _prepare_payment_link(
    company: Company, payment: dict, customer: dict, amount: Decimal, link: dict, applications: dict
) -> dict:
    target_type, target_id = link.get("TxnType"), str(link.get("TxnId", ""))
    if target_type not in ("Invoice", "CreditMemo"):
        raise invalid_value("Line.LinkedTxn.TxnType", target_type)
    target = company.get(target_type, target_id)
    if target is None:
        raise invalid_reference("Line.LinkedTxn.TxnId", target_type, target_id)
    if target["CustomerRef"]["value"] != customer["Id"]:
        raise QboFault(
            620,
            "Transaction cannot be linked",
            f"TxnID Cannot Be Linked : {target_type} {target_id} belongs to another customer",
        )
    applied_elsewhere = sum(
        (
            applied
            for payment_id, applied in applications.get((target_type, target_id), [])
            if payment_id != payment.get("Id")
        ),
        ZERO,
    )
    open_amount = target["TotalAmt"] - applied_elsewhere
    if amount > open_amount:
        raise business_validation(
            f"The amount applied to {target_type} {target_id} ({amount}) exceeds its open "
            f"balance ({open_amount})"
        )
    return {"TxnId": target_id, "TxnType": target_type}


def _prepare_purchase(company: Company, obj: dict, params: dict) -> None:
    if not obj.get("PaymentType"):
        raise required_param_missing("PaymentType")
    if obj["PaymentType"] not in PAYMENT_TYPES:
        raise QboFault(
            2170, "Invalid Enumeration", f"Invalid Enumeration : {obj['PaymentType']}", element="PaymentType"
        )
    _check_ref(company, obj, "AccountRef", "Account", required=True)
    _check_ref(company, obj, "PaymentMethodRef", "PaymentMethod")
    lines = obj.get("Line", [])
    if not lines:
        raise required_param_missing("Line")
    for number, line in enumerate(lines, start=1):
        line["Amount"] = _amount(line)
        detail = line.get("AccountBasedExpenseLineDetail")
        if (
            line.get("DetailType", "AccountBasedExpenseLineDetail") != "AccountBasedExpenseLineDetail"
            or not detail
        ):
            raise required_param_missing("Line.AccountBasedExpenseLineDetail")
        _check_ref(
            company,
            detail,
            "AccountRef",
            "Account",
            path="Line.AccountBasedExpenseLineDetail.AccountRef",
            required=True,
        )
        line.update(Id=str(number), LineNum=number, DetailType="AccountBasedExpenseLineDetail")
    obj["TotalAmt"] = sum((line["Amount"] for line in lines), ZERO)
    obj.setdefault("Credit", False)
    _prepare_transaction_defaults(obj)
    _check_doc_number(company, "Purchase", obj, params)


def _prepare_deposit(company: Company, obj: dict, params: dict) -> None:
    _check_ref(company, obj, "DepositToAccountRef", "Account", required=True)
    lines = obj.get("Line", [])
    if not lines:
        raise required_param_missing("Line")
    undeposited_id = company.meta["special_accounts"]["undeposited"]
    for number, line in enumerate(lines, start=1):
        line["Amount"] = _amount(line)
        if line.get("LinkedTxn"):
            for link in line["LinkedTxn"]:
                _check_deposited_payment(company, obj, line["Amount"], link, undeposited_id)
        else:
            detail = line.get("DepositLineDetail") or {}
            _check_ref(
                company,
                detail,
                "AccountRef",
                "Account",
                path="Line.DepositLineDetail.AccountRef",
                required=True,
            )
            line["DepositLineDetail"] = detail
        line.update(Id=str(number), LineNum=number)
    obj["TotalAmt"] = sum((line["Amount"] for line in lines), ZERO)
    _prepare_transaction_defaults(obj)


def _check_deposited_payment(
    company: Company, deposit: dict, amount: Decimal, link: dict, undeposited_id: str
) -> None:
    payment_id = str(link.get("TxnId", ""))
    if link.get("TxnType") != "Payment":
        raise invalid_value("Line.LinkedTxn.TxnType", link.get("TxnType"))
    payment = company.get("Payment", payment_id)
    if payment is None:
        raise invalid_reference("Line.LinkedTxn.TxnId", "Payment", payment_id)
    if payment["DepositToAccountRef"]["value"] != undeposited_id:
        raise business_validation(f"Payment {payment_id} is not in Undeposited Funds")
    other_deposit = _depositing(company, payment_id, excluding_deposit=deposit.get("Id"))
    if other_deposit is not None:
        raise business_validation(
            f"Payment {payment_id} is already deposited by Deposit {other_deposit['Id']}"
        )
    if amount != payment["TotalAmt"]:
        raise business_validation(
            f"The deposit line amount ({amount}) differs from Payment {payment_id} ({payment['TotalAmt']})"
        )
    link["TxnId"] = payment_id
    link.pop("TxnLineId", None)


def _prepare_preferences(company: Company, obj: dict, params: dict) -> None:
    """Preferences are free-form sections; QBO validates nothing the emulator relies on."""


PREPARERS = {
    "Customer": _prepare_customer,
    "Vendor": _prepare_person("Vendor"),
    "Employee": _prepare_person("Employee"),
    "Item": _prepare_item,
    "Account": _prepare_account,
    "PaymentMethod": _prepare_payment_method,
    "Invoice": _prepare_invoice,
    "CreditMemo": _prepare_credit_memo,
    "RefundReceipt": _prepare_refund_receipt,
    "Payment": _prepare_payment,
    "Purchase": _prepare_purchase,
    "Deposit": _prepare_deposit,
    "Preferences": _prepare_preferences,
}


# --- operations ---------------------------------------------------------------------------------------------


def is_update(body: dict) -> bool:
    try:
        return int(str(body.get("Id") or 0)) > 0
    except ValueError:
        raise invalid_value("Id", body.get("Id")) from None


def _current_version(company: Company, entity: str, body: dict) -> dict:
    """The stored object a write targets, after the SyncToken check (5010 if stale)."""
    if entity in SINGLETONS:
        existing = next(company.all(entity))
    else:
        if not body.get("Id"):
            raise required_param_missing("Id")
        existing = company.require(entity, str(body["Id"]))
    sync_token = body.get("SyncToken")
    if sync_token is None or sync_token == "":
        raise required_param_missing("SyncToken")
    if str(sync_token) != existing["SyncToken"]:
        raise stale_object(entity, existing["Id"])
    if entity == "Payment":
        _refuse_if_deposited(company, existing)
    return existing


def save(company: Company, entity: str, body: dict, params: dict) -> dict:
    """Create or update (full or sparse), as ``POST /{entity}`` does."""
    if entity in READ_ONLY:
        raise unsupported_operation(f"create/update for {entity}")
    incoming = {key: value for key, value in cleaned(body).items() if key not in SYSTEM_FIELDS}
    if entity != "Payment":
        incoming.pop("TotalAmt", None)
    previous = None
    if is_update(body) or entity in SINGLETONS:
        previous = _current_version(company, entity, body)
        sparse = body.get("sparse") is True or str(body.get("sparse")).lower() == "true"
        candidate = {**copy.deepcopy(previous), **incoming} if sparse else incoming
        candidate["Id"] = previous["Id"]
    else:
        candidate = incoming
    PREPARERS[entity](company, candidate, params)
    stored = company.store(entity, candidate, previous)
    if entity == "Payment":
        _refresh_open_balances(company, _linked_targets(previous) | _linked_targets(stored))
    return render(company, entity, stored)


def delete(company: Company, entity: str, body: dict) -> dict:
    if entity not in TRANSACTIONS:
        raise unsupported_operation(f"delete for {entity}")
    existing = _current_version(company, entity, body)
    if entity in ("Invoice", "CreditMemo") and _applied_to(company, entity, existing)[1]:
        raise business_validation(f"{entity} {existing['Id']} has payments linked to it; unlink them first")
    tombstone = company.remove(entity, existing)
    if entity == "Payment":
        _refresh_open_balances(company, _linked_targets(existing))
    return {"status": "Deleted", "domain": "QBO", "Id": tombstone["Id"]}


def void(company: Company, entity: str, body: dict) -> dict:
    if entity not in VOIDABLE:
        raise unsupported_operation(f"void for {entity}")
    existing = _current_version(company, entity, body)
    voided = copy.deepcopy(existing)
    note = existing.get("PrivateNote", "")
    voided["PrivateNote"] = f"Voided - {note}" if note else "Voided"
    voided["TotalAmt"] = ZERO
    for line in voided.get("Line", []):
        line["Amount"] = ZERO
        line.get("SalesItemLineDetail", {}).pop("Qty", None)
    if entity == "Invoice":
        if _applied_to(company, entity, existing)[1]:
            raise business_validation(
                f"Invoice {existing['Id']} has payments linked to it; unlink them first"
            )
        voided["TxnTaxDetail"] = {**voided.get("TxnTaxDetail", {}), "TotalTax": ZERO}
        voided["Balance"] = ZERO
    else:
        voided["UnappliedAmt"] = ZERO
    stored = company.store(entity, voided, existing)
    if entity == "Payment":
        _refresh_open_balances(company, _linked_targets(existing))
    return render(company, entity, stored)


def read(company: Company, entity: str, object_id: str) -> dict:
    if entity in SINGLETONS:
        return next(company.all(entity))
    return render(company, entity, company.require(entity, object_id))
