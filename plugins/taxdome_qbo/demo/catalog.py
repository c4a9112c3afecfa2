"""Fixed vocabulary of the demo firm: client names, its service catalog and the texts found on its documents.

The pools deliberately contain apostrophes, accents and ampersands, because those are the names that break
naive CSV handling, QBO name matching and e-mail derivation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Christopher", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra", "Donald", "Ashley",
    "Steven", "Emily", "Andrew", "Kimberly", "Paul", "Michelle", "Joshua", "Amanda", "Kevin", "Melissa",
    "Brian", "Stephanie", "George", "Rebecca", "Timothy", "Laura", "Priya", "Wei", "Hiroshi", "Fatima",
    "Aisha", "Mohammed", "Zoë", "José", "Seán", "Chloé", "Renée", "André", "Björn", "François",
    "Siobhán", "Ángel", "Inés", "Jürgen", "Noémie", "Łukasz", "Dmitri", "Olga", "Mei", "Carlos",
)  # fmt: skip

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "O'Brien", "O'Connor", "D'Angelo", "O'Neill", "McDonald", "MacKenzie", "Müller", "Núñez", "Peña",
    "Ibáñez", "Sørensen", "Kowalski", "Dubois", "Lefèvre", "Côté", "Schäfer", "Gómez", "Åberg",
    "Van der Berg", "De la Cruz", "St. James", "Smith-Jones", "Nakamura", "Patel", "Okafor", "Kim",
)  # fmt: skip

MIDDLE_INITIALS = tuple(f"{letter}." for letter in "ABCDEFGHJKLMNPRSTW")

BUSINESS_WORDS = (
    "Blue Ridge", "Summit", "Harbor", "Pinecrest", "Riverbend", "Golden Gate", "Northwind", "Maple Leaf",
    "Cedar Creek", "Silverline", "Redwood", "Lakeside", "Ironwood", "Oakmont", "Bayview", "Crescent",
    "Evergreen", "Highland", "Keystone", "Liberty", "Meridian", "Pioneer", "Sterling", "Trident",
    "Vanguard", "Willow", "Atlas", "Beacon", "Coastal", "Horizon", "Granite", "Prairie", "Magnolia",
)  # fmt: skip

INDUSTRIES = (
    "Dental", "Construction", "Logistics", "Consulting", "Bakery", "Realty", "Landscaping", "Auto Repair",
    "Design Studio", "Medical Group", "Plumbing", "Roofing", "Marketing", "Software", "Café", "Brewing",
    "Fitness", "Law Group", "Veterinary Clinic", "Photography", "Pâtisserie", "Imports", "Electric",
)  # fmt: skip

COMPANY_SUFFIXES = ("LLC", "Inc.", "Corp.", "LLP", "PLLC", "Ltd.")

# Each pattern is filled with a last name, a second last name, a business word, an industry and a suffix.
COMPANY_PATTERNS = (
    "{last} & Sons {suffix}",
    "{last} & {other_last} {suffix}",
    "{word} {industry} {suffix}",
    "{last} {industry} {suffix}",
    "{word} {industry} Group",
    "{last} Holdings, {suffix}",
)

OTHER_PATTERNS = (
    "Estate of {first} {last}",
    "{last} Family Trust",
    "{last} Family Foundation",
    "{word} Homeowners Association",
)

# The names the realism checks look for; they are placed on early accounts so that every export has them.
SPOTLIGHT_INDIVIDUALS = ("Zoë Müller", "José Núñez", "Siobhán O'Brien")
SPOTLIGHT_COMPANIES = ("Smith & Sons LLC",)

EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
COMPANY_MAILBOXES = ("billing", "accounts", "office", "info")


class ServiceOrigin(Enum):
    """When a service appeared relative to the QBO integration date (R8 in docs/sync-rules.md routes each differently)."""

    BEFORE_INTEGRATION = "before"
    COPIED_FROM_QBO = "copied"
    AFTER_INTEGRATION = "after"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    description: str
    rate_cents: int
    rate_type: str
    origin: ServiceOrigin
    qbo_item_name: str | None = None


_BEFORE = ServiceOrigin.BEFORE_INTEGRATION
_COPIED = ServiceOrigin.COPIED_FROM_QBO
_AFTER = ServiceOrigin.AFTER_INTEGRATION

# Rates like 137.50 and 99.99 make rate x quantity land on half cents, which exercises rounding.
SERVICE_CATALOG = (
    ServiceSpec(
        "Individual Tax Return (Form 1040)", "Federal and one state return", 45000, "Flat fee", _BEFORE
    ),
    ServiceSpec(
        "Business Tax Return (Form 1120-S)", "S corporation federal return", 125000, "Flat fee", _BEFORE
    ),
    ServiceSpec(
        "Partnership Return (Form 1065)", "Partnership federal return with K-1s", 110000, "Flat fee", _BEFORE
    ),
    ServiceSpec("Additional State Return", "Each additional state return", 12500, "Per item", _BEFORE),
    ServiceSpec("Tax Planning Consultation", "Tax planning, billed hourly", 22500, "Per hour", _BEFORE),
    ServiceSpec(
        "Bookkeeping - Monthly", "Monthly bookkeeping and bank reconciliation", 35000, "Per month", _BEFORE
    ),
    ServiceSpec("Payroll Processing", "Payroll run, including filings", 7500, "Per item", _BEFORE),
    ServiceSpec(
        "IRS Notice Response", "Research and reply to an IRS or state notice", 17500, "Per hour", _BEFORE
    ),
    ServiceSpec("Sales Tax Filing", "Monthly or quarterly sales tax return", 9500, "Per item", _BEFORE),
    ServiceSpec("1099 Preparation", "Per form 1099-NEC or 1099-MISC", 1500, "Per item", _BEFORE),
    ServiceSpec(
        "Financial Statement Compilation", "Compiled financial statements", 150000, "Flat fee", _BEFORE
    ),
    ServiceSpec(
        "Estate & Trust Return (Form 1041)", "Fiduciary income tax return", 95000, "Flat fee", _BEFORE
    ),
    ServiceSpec(
        "Audit Support", "Support during an IRS or state audit", 19500, "Per hour", _COPIED, "Audit Support"
    ),
    ServiceSpec("Advisory", "CFO-level advisory", 27500, "Per hour", _COPIED, "Consulting:Advisory"),
    ServiceSpec(
        "Entity Formation", "LLC or corporation setup", 60000, "Flat fee", _COPIED, "Entity Formation"
    ),
    ServiceSpec(
        "Quarterly Estimates",
        "Estimated tax vouchers",
        15000,
        "Per item",
        _COPIED,
        "Tax Prep:Quarterly Estimates",
    ),
    ServiceSpec("Year-End Close", "Year-end adjusting entries", 80000, "Flat fee", _COPIED, "Year-End Close"),
    ServiceSpec(
        "Catch-Up Bookkeeping", "Past periods bookkeeping", 9550, "Per hour", _COPIED, "Bookkeeping:Catch-Up"
    ),
    ServiceSpec("Virtual CFO Retainer", "Monthly CFO retainer", 250000, "Per month", _AFTER),
    ServiceSpec("Crypto Tax Reporting", "Digital asset transactions, Form 8949", 13750, "Per hour", _AFTER),
    ServiceSpec("Amended Return (Form 1040-X)", "Amended individual return", 27500, "Flat fee", _AFTER),
    ServiceSpec("BOI Report Filing", "Beneficial ownership information report", 19900, "Flat fee", _AFTER),
    ServiceSpec("Expat Tax Return (Form 2555)", "Foreign earned income exclusion", 85000, "Flat fee", _AFTER),
    ServiceSpec("Rush Processing", "Prepared within 3 business days", 9999, "Per item", _AFTER),
    ServiceSpec("Notary Services", "Per notarized document", 2500, "Per item", _AFTER),
    ServiceSpec("Client Portal Onboarding", "Portal setup and document intake", 4950, "Flat fee", _AFTER),
    ServiceSpec("R&D Tax Credit Study", "Research credit study, Form 6765", 350000, "Flat fee", _AFTER),
    ServiceSpec("Nonprofit Return (Form 990)", "Exempt organization return", 140000, "Flat fee", _AFTER),
)

# Services available from the very first day, so an invoice on the start date can always itemize a service.
SERVICES_CREATED_ON_START_DAY = 5

FREE_TEXT_LINES = (
    "Courier and postage",
    "Filing fee reimbursement",
    "Out-of-pocket expenses",
    'Printed "as filed" copy',
    "Extension, federal and state",
    "Late documents surcharge",
)

DISCOUNT_DESCRIPTIONS = ("Loyal client discount", "Courtesy discount", "Referral credit")

INVOICE_DESCRIPTIONS = (
    "Tax preparation {year}",
    "Monthly bookkeeping - {month}",
    "Advisory services, {month}",
    "Services rendered in {month}",
)

REFUND_REASONS = (
    "Duplicate payment",
    "Client overpaid",
    "Service cancelled",
    "Billing error, re-issued invoice",
    "Goodwill adjustment",
)

PROMOTIONS = ("New client welcome credit", "Referral reward", "Loyalty credit")
