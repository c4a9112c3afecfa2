"""A new company as QBO sets one up: chart of accounts, customer type, default item, payment methods."""

from qbo_emulator.company import Company
from qbo_emulator.entities import classification
from qbo_emulator.storage import Storage

# (role, Name, AccountType, AccountSubType)
SEED_ACCOUNTS = [
    ("undeposited", "Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
    ("checking", "Checking", "Bank", "Checking"),
    ("stripe_clearing", "Stripe Clearing", "Bank", "Checking"),
    ("receivable", "Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
    ("sales_tax", "Sales Tax Payable", "Other Current Liability", "SalesTaxPayable"),
    ("services_income", "Services", "Income", "ServiceFeeIncome"),
    ("sales_income", "Sales", "Income", "SalesOfProductIncome"),
    ("uncategorized_income", "Uncategorized Income", "Income", "OtherPrimaryIncome"),
    ("fees_expense", "Commissions & fees", "Expense", "CommissionsAndFees"),
    ("bank_charges", "Bank charges", "Expense", "BankCharges"),
]
SEED_PAYMENT_METHODS = [
    ("Cash", "NON_CREDIT_CARD"),
    ("Check", "NON_CREDIT_CARD"),
    ("Credit Card", "CREDIT_CARD"),
    ("Visa", "CREDIT_CARD"),
    ("MasterCard", "CREDIT_CARD"),
    ("American Express", "CREDIT_CARD"),
]


def create_company(storage: Storage, realm_id: str, company_name: str, sequence: int) -> Company:
    """``sequence`` orders the companies (the first one is the default everywhere)."""
    meta = {"next_id": 1, "special_accounts": {}, "company_name": company_name, "sequence": sequence}
    company = Company(realm_id, storage, meta)
    for role, name, account_type, sub_type in SEED_ACCOUNTS:
        account = company.store(
            "Account",
            {
                "Name": name,
                "FullyQualifiedName": name,
                "AccountType": account_type,
                "AccountSubType": sub_type,
                "Classification": classification(account_type),
                "Active": True,
                "SubAccount": False,
                "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            },
            None,
        )
        company.meta["special_accounts"][role] = account["Id"]
    company.store("CustomerType", {"Name": "Individual", "Active": True}, None)
    services_income = company.special_account("services_income")
    default_item = company.store(
        "Item",
        {
            "Name": "Services",
            "FullyQualifiedName": "Services",
            "Type": "Service",
            "Active": True,
            "Taxable": False,
            "UnitPrice": 0,
            "IncomeAccountRef": {"value": services_income["Id"], "name": services_income["Name"]},
        },
        None,
    )
    company.meta["default_item"] = default_item["Id"]
    for name, method_type in SEED_PAYMENT_METHODS:
        company.store("PaymentMethod", {"Name": name, "Type": method_type, "Active": True}, None)
    company.store(
        "CompanyInfo",
        {
            "CompanyName": company_name,
            "LegalName": company_name,
            "Country": "US",
            "SupportedLanguages": "en",
            "FiscalYearStartMonth": "January",
            "CompanyStartDate": "2020-01-01",
            "CompanyAddr": {
                "Line1": "1 Emulator Way",
                "City": "Mountain View",
                "CountrySubDivisionCode": "CA",
                "PostalCode": "94043",
                "Country": "US",
            },
            "Email": {"Address": "owner@example.com"},
        },
        None,
    )
    company.store(
        "Preferences",
        {
            "AccountingInfoPrefs": {"TrackDepartments": False, "ClassTrackingPerTxn": False},
            # CustomTxnNumbers on: the company numbers its own documents and QBO refuses duplicates (6140).
            "SalesFormsPrefs": {
                "CustomTxnNumbers": True,
                "AllowDeposit": True,
                "AllowDiscount": True,
                "AutoApplyCredit": False,
            },
            "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}},
            "TaxPrefs": {"UsingSalesTax": False, "PartnerTaxEnabled": False},
            "OtherPrefs": {"NameValue": [{"Name": "WarnDuplicateCheckNumber", "Value": "true"}]},
        },
        None,
    )
    company.flush()
    return company
