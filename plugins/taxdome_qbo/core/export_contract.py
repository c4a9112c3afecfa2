"""The TaxDome export landing contract (docs/export-contract.md): files, columns, types, enumerations and header aliases.

This module is the single place that knows what an export looks like. The reader, the validator, the
warehouse schema and the demo generator all derive their column lists from it, so a column added here
flows everywhere.

Completion markers: an export folder is complete when its writer says so, by a file written last. An empty
`_SUCCESS` file says "every file is written"; a `manifest.json` says more, the data records (header
excluded) and the SHA-256 of each file, so the reader can prove that it read every record the writer wrote:

    {"files": {"payments.csv": {"rows": 67, "sha256": "9f2c…"}, …}}

Either may be used; only a complete export can prove that a row it lacks was deleted in TaxDome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

SUCCESS_MARKER = "_SUCCESS"
MANIFEST_MARKER = "manifest.json"
# A header beyond these is not a TaxDome export (the widest file has 12 columns): refused before it is parsed.
MAX_HEADER_COLUMNS = 1_000
MAX_HEADER_BYTES = 1 << 20


class ExportContractError(ValueError):
    """The export cannot be loaded at all: a required file or column is missing, or a file is unreadable."""


class Kind(StrEnum):
    """How a raw CSV value is parsed and how it is stored in the warehouse."""

    ID = "id"  # non-empty text key, stored as is (stripped)
    TEXT = "text"  # free text; empty means null
    MONEY = "money"  # decimal with at most 2 places, stored as integer cents in `<name>_cents`
    QUANTITY = "quantity"  # decimal with at most 4 places, stored exactly
    DATE = "date"  # ISO YYYY-MM-DD
    TIMESTAMP = "timestamp"  # ISO 8601, stored in UTC
    BOOL = "bool"  # true/false, yes/no, 1/0, y/n
    POSITIVE_INT = "positive_int"
    ENUM = "enum"
    CURRENCY = "currency"  # ISO 4217 three-letter code
    ID_LIST = "id_list"  # semicolon-separated ids


@dataclass(frozen=True)
class Column:
    """One column of an export file.

    :param min_cents: for money, the smallest amount allowed (None: any sign, e.g. a discount line).
    :param values: for enums, canonical value -> accepted spellings (compared case- and spacing-insensitively).
    """

    name: str
    kind: Kind
    required: bool = False
    default: str | None = None
    min_cents: int | None = None
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def stored_name(self) -> str:
        return f"{self.name}_cents" if self.kind is Kind.MONEY else self.name


@dataclass(frozen=True)
class ExportFile:
    """One CSV file of an export and the staging table it lands in.

    :param key: the columns identifying a TaxDome object; one staged row per key.
    :param version_column: a timestamp telling which of two versions of a row is newer, if the file has one.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required: bool = True
    version_column: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"

    @property
    def table(self) -> str:
        return f"stg_taxdome__{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _enum(*pairs: tuple[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return dict(pairs)


ACCOUNT_TYPES = _enum(("Individual", ("person",)), ("Company", ("business", "organization")), ("Other", ()))
QBO_SYNC_CHOICES = _enum(
    ("auto", ("automatic", "default")),
    ("sync", ("always", "force")),
    ("do_not_sync", ("do not sync", "don't sync", "never", "unsync", "unsynced")),
)
INVOICE_STATUSES = _enum(
    ("Draft", ()),
    ("Scheduled", ()),
    ("Unpaid", ("open", "sent")),
    ("Partially paid", ("partial", "partially_paid")),
    ("In progress", ("in_progress", "processing")),
    ("Paid", ()),
    ("Overdue", ()),
)
PAYMENT_METHODS = _enum(
    ("card", ("credit card", "debit card", "credit_card", "debit_card")),
    ("ach", ("bank debit", "echeck", "e-check", "ach debit")),
    ("cash", ()),
    ("check", ("cheque",)),
    ("bank_transfer", ("bank transfer", "wire", "wire transfer")),
    ("credit_balance", ("credit balance", "client credit", "account credit")),
    ("promotional_credit", ("promotional credit", "promo credit", "promotion")),
    ("other", ()),
)
PROCESSORS = _enum(
    ("stripe", ()),
    ("cpacharge", ("cpa charge", "lawpay")),
    ("taxdome_payments", ("taxdome payments", "taxdome")),
    ("none", ("manual", "offline")),
)
PAYOUT_PROCESSORS = {k: v for k, v in PROCESSORS.items() if k != "none"}

ACCOUNTS = ExportFile(
    name="accounts",
    key=("account_id",),
    version_column="updated_at",
    columns=(
        Column("account_id", Kind.ID, required=True, aliases=("account #", "id", "client id")),
        Column(
            "account_name", Kind.TEXT, required=True, aliases=("account", "name", "client", "client name")
        ),
        Column("account_type", Kind.ENUM, values=ACCOUNT_TYPES, aliases=("type",)),
        Column("email", Kind.TEXT, aliases=("email address", "e-mail")),
        Column("created_at", Kind.TIMESTAMP, aliases=("created", "created date")),
        Column("updated_at", Kind.TIMESTAMP, aliases=("updated", "updated date", "last updated")),
        Column("archived", Kind.BOOL, default="false", aliases=("is archived",)),
        Column("qbo_sync", Kind.ENUM, default="auto", values=QBO_SYNC_CHOICES, aliases=("quickbooks sync",)),
        Column(
            "qbo_customer_name",
            Kind.TEXT,
            aliases=("quickbooks customer", "quickbooks customer name", "qbo customer"),
        ),
    ),
)

SERVICES = ExportFile(
    name="services",
    key=("service_id",),
    columns=(
        Column("service_id", Kind.ID, required=True, aliases=("id", "service #")),
        Column("name", Kind.TEXT, required=True, aliases=("service", "service name")),
        Column("description", Kind.TEXT),
        Column("rate", Kind.MONEY, required=True, min_cents=0, aliases=("price", "default rate")),
        Column("rate_type", Kind.TEXT, aliases=("rate type per", "per")),
        Column("created_at", Kind.TIMESTAMP, aliases=("created", "created date")),
        Column("qbo_item_name", Kind.TEXT, aliases=("quickbooks item", "quickbooks item name", "qbo item")),
    ),
)

INVOICES = ExportFile(
    name="invoices",
    key=("invoice_id",),
    version_column="updated_at",
    columns=(
        Column("invoice_id", Kind.ID, required=True, aliases=("id",)),
        Column("invoice_number", Kind.ID, required=True, aliases=("invoice #", "invoice no", "number", "#")),
        Column("account_id", Kind.ID, required=True, aliases=("client", "account", "client id")),
        Column(
            "posted_date", Kind.DATE, required=True, aliases=("posted", "date posted", "invoice date", "date")
        ),
        Column("due_date", Kind.DATE, aliases=("due", "due on")),
        Column("status", Kind.ENUM, default="Unpaid", values=INVOICE_STATUSES),
        Column("currency", Kind.CURRENCY, default="USD"),
        Column("tax_amount", Kind.MONEY, default="0", min_cents=0, aliases=("tax", "sales tax")),
        Column("total", Kind.MONEY, required=True, min_cents=0, aliases=("amount", "invoice total")),
        Column("description", Kind.TEXT, aliases=("memo",)),
        Column("updated_at", Kind.TIMESTAMP, aliases=("updated", "last updated")),
    ),
)

INVOICE_LINES = ExportFile(
    name="invoice_lines",
    key=("invoice_id", "line_no"),
    columns=(
        Column("invoice_id", Kind.ID, required=True, aliases=("invoice",)),
        Column("line_no", Kind.POSITIVE_INT, required=True, aliases=("line", "line #", "line number")),
        Column("service_id", Kind.TEXT, aliases=("service #",)),
        Column("service_name", Kind.TEXT, aliases=("service", "item")),
        Column("description", Kind.TEXT),
        Column("rate", Kind.MONEY, aliases=("price", "unit price")),
        Column("quantity", Kind.QUANTITY, aliases=("qty", "hours")),
        Column("amount", Kind.MONEY, required=True, aliases=("line amount", "line total")),
        Column("taxable", Kind.BOOL, default="false", aliases=("tax", "is taxable")),
    ),
)

PAYMENTS = ExportFile(
    name="payments",
    key=("payment_id",),
    version_column="updated_at",
    columns=(
        Column("payment_id", Kind.ID, required=True, aliases=("id", "payment #", "#")),
        Column("account_id", Kind.ID, required=True, aliases=("client", "account", "client id")),
        Column("payment_date", Kind.DATE, required=True, aliases=("date", "paid on", "payment date")),
        Column("amount", Kind.MONEY, required=True, min_cents=1, aliases=("gross", "gross amount")),
        Column(
            "method", Kind.ENUM, required=True, values=PAYMENT_METHODS, aliases=("source", "payment method")
        ),
        Column(
            "processor",
            Kind.ENUM,
            default="none",
            values=PROCESSORS,
            aliases=("payment processor", "gateway"),
        ),
        Column(
            "processor_txn_id",
            Kind.TEXT,
            aliases=("transaction id", "transaction #", "processor transaction id"),
        ),
        Column("processing_fee", Kind.MONEY, default="0", min_cents=0, aliases=("fee", "processing fees")),
        Column("currency", Kind.CURRENCY, default="USD"),
        Column("sync_to_qbo", Kind.BOOL, default="true", aliases=("sync to quickbooks", "quickbooks sync")),
        Column("description", Kind.TEXT, aliases=("memo", "note")),
        Column("updated_at", Kind.TIMESTAMP, aliases=("updated", "last updated")),
    ),
)

PAYMENT_APPLICATIONS = ExportFile(
    name="payment_applications",
    key=("payment_id", "invoice_id"),
    columns=(
        Column("payment_id", Kind.ID, required=True, aliases=("payment", "payment #")),
        Column("invoice_id", Kind.ID, required=True, aliases=("invoice",)),
        Column("amount", Kind.MONEY, required=True, min_cents=1, aliases=("amount applied", "applied")),
    ),
)

REFUNDS = ExportFile(
    name="refunds",
    key=("refund_id",),
    columns=(
        Column("refund_id", Kind.ID, required=True, aliases=("id", "refund #")),
        Column("payment_id", Kind.ID, required=True, aliases=("payment", "payment #")),
        Column("account_id", Kind.ID, required=True, aliases=("client", "account", "client id")),
        Column("refund_date", Kind.DATE, required=True, aliases=("date", "refunded on")),
        Column("amount", Kind.MONEY, required=True, min_cents=1, aliases=("refund", "refund amount")),
        Column("reason", Kind.TEXT, aliases=("description", "memo")),
    ),
)

PAYOUTS = ExportFile(
    name="payouts",
    key=("payout_id",),
    required=False,
    columns=(
        Column("payout_id", Kind.ID, required=True, aliases=("id", "payout #")),
        Column("payout_date", Kind.DATE, required=True, aliases=("date", "sent on", "payout sent")),
        Column("processor", Kind.ENUM, required=True, values=PAYOUT_PROCESSORS),
        Column("gross", Kind.MONEY, required=True, min_cents=0, aliases=("gross amount",)),
        Column("fee", Kind.MONEY, required=True, min_cents=0, aliases=("fees", "processing fee")),
        Column("net", Kind.MONEY, required=True, aliases=("total", "net amount", "amount you receive")),
        Column("payment_ids", Kind.ID_LIST, aliases=("payments",)),
    ),
)

# Dependency order: a file's references point only to files before it.
EXPORT_FILES: tuple[ExportFile, ...] = (
    ACCOUNTS,
    SERVICES,
    INVOICES,
    INVOICE_LINES,
    PAYMENTS,
    PAYMENT_APPLICATIONS,
    REFUNDS,
    PAYOUTS,
)
EXPORT_FILES_BY_NAME = {f.name: f for f in EXPORT_FILES}

_SPACING = re.compile(r"[\s_]+")


def normalize_label(label: str) -> str:
    """Fold a header or enum spelling so that case, underscores and spacing do not matter."""
    return _SPACING.sub(" ", label.replace("\ufeff", "")).strip().lower()


def header_mapping(export_file: ExportFile, headers: list[str]) -> dict[str, str]:
    """Map the headers found in a file to canonical column names; unknown headers are left out.

    Two headers meaning the same column (`Invoice #` and `invoice_number`, or a name twice) are refused:
    which of them holds the values TaxDome meant cannot be told, and taking the first would be a guess.
    """
    by_label: dict[str, str] = {}
    for column in export_file.columns:
        for alias in column.aliases:
            by_label.setdefault(normalize_label(alias), column.name)
    for column in export_file.columns:
        by_label[normalize_label(column.name)] = column.name

    mapping: dict[str, str] = {}
    taken: dict[str, tuple[int, str]] = {}
    for position, header in enumerate(headers, start=1):
        name = by_label.get(normalize_label(header))
        if name is None:
            continue
        if name in taken:
            first_position, first_header = taken[name]
            raise ExportContractError(
                f"{export_file.filename}: columns {first_position} '{first_header}' and {position} '{header}' "
                f"both mean {name}; the export must carry it once"
            )
        mapping[header] = name
        taken[name] = (position, header)
    return mapping


def enum_lookup(column: Column) -> dict[str, str]:
    """Accepted spelling (folded) -> canonical value, for an enum column."""
    lookup: dict[str, str] = {}
    for canonical, spellings in column.values.items():
        lookup[normalize_label(canonical)] = canonical
        for spelling in spellings:
            lookup[normalize_label(spelling)] = canonical
    return lookup
