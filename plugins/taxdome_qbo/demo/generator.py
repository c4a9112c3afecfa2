"""Generate a synthetic TaxDome billing export (docs/export-contract.md) for demos, load tests and loader tests.

The export is written account by account: each account's invoices, lines, payments, applications and refunds
go to their files as soon as they are made, so memory does not grow with the number of accounts. Only the
payouts are accumulated (one per processor and business day) and written at the end.

Everything random comes from one `random.Random(seed)`, and nothing reads the clock, so the same arguments
always produce byte-identical files.
"""

from __future__ import annotations

import csv
import json
import random
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from operator import itemgetter
from pathlib import Path
from types import TracebackType

from taxdome_qbo.core.export_contract import EXPORT_FILES, ExportFile
from taxdome_qbo.core.money import format_cents
from taxdome_qbo.demo import catalog
from taxdome_qbo.demo.bad_rows import BadRowInjector
from taxdome_qbo.demo.deck import Deck
from taxdome_qbo.demo.money import processing_fee_cents, round_half_up
from taxdome_qbo.services.landing import write_manifest

DEFAULT_START = date(2025, 1, 1)
DEFAULT_END = date(2026, 10, 31)
MANIFEST_NAME = "_generator_manifest.json"

# Average invoice counts per kind of account; with the activity deck below they give ~10 invoices per account.
_MEAN_INVOICES_ONGOING = 13.5
_MEAN_INVOICES_BEFORE_SYNC = 4.0
_MEAN_INVOICES_NEW = 6.0
_MAX_INVOICES_PER_ACCOUNT = 150

# Tax rates in thousandths of a percent (8875 = 8.875%, New York City's combined rate).
_TAX_RATES = (8875, 6250, 7250, 4000)

_QUANTITIES = {
    "Per hour": ((50, "0.5"), (75, "0.75"), (100, "1"), (125, "1.25"), (150, "1.5"), (200, "2"), (250, "2.5"),
                 (300, "3"), (375, "3.75"), (450, "4.5"), (800, "8")),
    "Per item": ((100, "1"), (100, "1"), (200, "2"), (300, "3"), (400, "4"), (1000, "10")),
    "Per month": ((100, "1"), (100, "1"), (300, "3"), (1200, "12")),
    "Flat fee": ((100, "1"),),
}  # fmt: skip
_FREE_TEXT_QUANTITIES = ((100, "1"), (100, "1"), (200, "2"), (50, "0.5"))

# Days between an invoice and its payment: most clients pay within two weeks, some much later.
_PAYMENT_DELAYS = (0, 0, 1, 1, 2, 3, 5, 7, 10, 14, 14, 21, 30, 30, 45, 60)
_REFUND_DELAYS = (1, 2, 3, 5, 7, 10, 14, 20)
_PAYMENT_TERMS = (0, 15, 15, 30, 30, 30, 45)

# Payouts are listed per business day in this processor order.
_PAYOUT_PROCESSORS = ("stripe", "taxdome_payments", "cpacharge")
_TXN_ID_PREFIXES = {
    ("card", "stripe"): "ch_",
    ("ach", "stripe"): "py_",
    ("card", "taxdome_payments"): "pi_",
    ("card", "cpacharge"): "cpa_",
}
# Processors have minimum charges (Stripe: $0.50); in the demo, amounts under a dollar are paid by check.
_MIN_PROCESSOR_CENTS = 100


class _Activity(Enum):
    NONE = "none"
    BEFORE_SYNC_ONLY = "before_sync_only"
    NEW_AFTER_SYNC = "new_after_sync"
    ONGOING = "ongoing"


class _Outcome(Enum):
    """What happens to an invoice after it is posted."""

    PAID = "paid"
    PAID_IN_TWO_PARTS = "paid_in_two_parts"
    PARTIALLY_PAID = "partially_paid"
    PAID_WITH_NEXT = "paid_with_next"  # one payment covers this invoice and the next one or two
    OVERPAID = "overpaid"  # the excess stays on the account as credit, used by the next invoices
    PROMOTIONAL_CREDIT = "promotional_credit"
    UNPAID = "unpaid"
    DRAFT = "Draft"
    SCHEDULED = "Scheduled"
    IN_PROGRESS = "In progress"


_STATUS_WITHOUT_PAYMENT = (_Outcome.DRAFT, _Outcome.SCHEDULED, _Outcome.IN_PROGRESS)


@dataclass(slots=True)
class InvoiceLine:
    service_id: str
    service_name: str
    description: str
    rate: str  # "" on amount-only lines
    quantity: str
    amount_cents: int
    taxable: bool


@dataclass(slots=True)
class Invoice:
    invoice_id: str
    number: str
    account_id: str
    posted_day: int
    due_day: int
    lines: list[InvoiceLine]
    tax_cents: int
    total_cents: int
    description: str
    status: str = ""
    paid_cents: int = 0
    updated_day: int = 0


@dataclass(slots=True)
class Payment:
    payment_id: str
    account_id: str
    day: int
    amount_cents: int
    method: str
    processor: str
    processor_txn_id: str
    fee_cents: int
    sync_to_qbo: bool
    description: str
    applications: list[tuple[str, int]]
    updated_day: int


@dataclass(slots=True)
class AccountActivity:
    """One account's documents, kept until the next account so that bad rows can be attached to them."""

    account_id: str
    first_day: int
    last_day: int
    invoices: list[Invoice] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Service:
    service_id: str
    spec: catalog.ServiceSpec
    created_day: int


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def suggested_firm_settings(start: date, end: date) -> dict[str, str]:
    """The integration and sync start dates that make an export of this span show every scenario.

    Both are the first of the month following a quarter (integration) and half (sync start) of the span,
    which gives 2025-07-01 and 2026-01-01 for the default span.
    """
    span = (end - start).days
    integration = min(_first_of_next_month(start + timedelta(days=span // 4)), end)
    sync_start = min(_first_of_next_month(start + timedelta(days=span // 2)), end)
    return {"sync_start_date": sync_start.isoformat(), "integration_date": integration.isoformat()}


class _CsvFile:
    """One export file being written; it knows the line number of every row (header = line 1)."""

    def __init__(self, directory: Path, export_file: ExportFile) -> None:
        path = directory / export_file.filename
        self._handle = path.open("w", encoding="utf-8", newline="", buffering=1 << 20)
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(export_file.column_names)
        # Rows are built as column name -> value and ordered here, so the contract alone decides the order.
        self.in_contract_order = itemgetter(*export_file.column_names)
        self.rows = 0

    def write(self, record: dict[str, str]) -> int:
        """Write a row given as column name -> value; a missing contract column raises KeyError."""
        return self.write_values(self.in_contract_order(record))

    def write_values(self, values: tuple[str, ...] | list[str]) -> int:
        self._writer.writerow(values)
        self.rows += 1
        return self.rows + 1

    def close(self) -> None:
        self._handle.close()


class _Ids:
    """Sequential ids. Ids that must not exist anywhere are one digit longer, so they can never collide."""

    def __init__(self) -> None:
        self._next = {"A": 0, "S": 0, "I": 0, "P": 0, "R": 0, "PO": 0, "unknown": 0}
        self._widths = {"A": 7, "S": 4, "I": 8, "P": 8, "R": 8, "PO": 6}
        self._next_invoice_number = (
            1001  # the firm started numbering at 1001, so numbers never equal id digits
        )

    def next(self, prefix: str) -> str:
        self._next[prefix] += 1
        return f"{prefix}{self._next[prefix]:0{self._widths[prefix]}d}"

    def unknown(self, prefix: str) -> str:
        self._next["unknown"] += 1
        return f"{prefix}9{self._next['unknown']:0{self._widths[prefix]}d}"

    def invoice_number(self) -> str:
        number = f"INV-{self._next_invoice_number:06d}"
        self._next_invoice_number += 1
        return number


def _ascii_words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(ch if ch.isalnum() else " " for ch in folded).split()


class ExportBuilder:
    """Writes one export folder; `generate_export` is the public entry point."""

    def __init__(
        self, out_dir: Path, accounts: int, seed: int, bad_rows: float, start: date, end: date
    ) -> None:
        if accounts < 1:
            raise ValueError("accounts must be at least 1")
        if not 0.0 <= bad_rows < 1.0:
            raise ValueError("bad_rows must be a fraction in [0, 1)")
        if end <= start:
            raise ValueError("end must be after start")
        self.out_dir = out_dir
        self.account_count = accounts
        self.seed = seed
        self.bad_row_rate = bad_rows
        self.start = start
        self.end = end
        self.settings = suggested_firm_settings(start, end)
        self.rng = random.Random(seed)
        self.ids = _Ids()
        self.last_day = (end - start).days
        self.integration_day = (date.fromisoformat(self.settings["integration_date"]) - start).days
        self.sync_day = (date.fromisoformat(self.settings["sync_start_date"]) - start).days
        days = [start + timedelta(days=offset) for offset in range(self.last_day + 1)]
        self.iso_days = [day.isoformat() for day in days]
        self._month_labels = [day.strftime("%B %Y") for day in days]
        self._years = [str(day.year) for day in days]
        self._payout_days = [self._next_business_day(day) for day in days]
        self._payouts: dict[tuple[int, str], list] = {}
        self._used_names: set[str] = set()
        self._services: list[_Service] = []
        self._service_days: list[int] = []
        self.files: dict[str, _CsvFile] = {}
        self.last_invoice_record: dict[str, str] | None = None
        self.last_payment_record: dict[str, str] | None = None
        self._make_decks()

    def _make_decks(self) -> None:
        deck = self._deck
        self._account_types = deck(("Individual", 11), ("Company", 8), ("Other", 1))
        self._activities = deck(
            (_Activity.NONE, 2),
            (_Activity.BEFORE_SYNC_ONLY, 2),
            (_Activity.NEW_AFTER_SYNC, 4),
            (_Activity.ONGOING, 17),
        )
        self._qbo_sync = deck(("auto", 22), ("do_not_sync", 2), ("sync", 1))
        self._manual_match = deck((True, 1), (False, 24))
        self._archived = deck((True, 1), (False, 24))
        self._line_counts = deck((1, 40), (2, 30), (3, 15), (4, 10), (5, 5))
        self._free_text = deck((True, 1), (False, 5))
        self._discounted = deck((True, 1), (False, 7))
        self._taxed = deck((True, 3), (False, 17))
        self._outcomes = deck(
            (_Outcome.PAID, 46), (_Outcome.PAID_IN_TWO_PARTS, 5), (_Outcome.PARTIALLY_PAID, 6),
            (_Outcome.PAID_WITH_NEXT, 6), (_Outcome.OVERPAID, 4), (_Outcome.PROMOTIONAL_CREDIT, 2),
            (_Outcome.UNPAID, 25), (_Outcome.DRAFT, 2), (_Outcome.SCHEDULED, 2), (_Outcome.IN_PROGRESS, 2),
        )  # fmt: skip
        self._methods = deck(
            (("card", "stripe"), 6), (("card", "taxdome_payments"), 3), (("card", "cpacharge"), 2),
            (("ach", "stripe"), 2), (("check", "none"), 3), (("bank_transfer", "none"), 2),
            (("cash", "none"), 1), (("other", "none"), 1),
        )  # fmt: skip
        self._synced_payment = deck((False, 1), (True, 49))
        self._refunds = deck(("full", 1), ("partial", 1), (None, 38))

    def _deck(self, *cards: tuple) -> Deck:
        return Deck(self.rng, cards)

    def _next_business_day(self, day: date) -> int:
        payout = day + timedelta(days=1)
        while payout.weekday() >= 5:
            payout += timedelta(days=1)
        return (payout - self.start).days

    # ---- running -------------------------------------------------------------------------------------------

    def __enter__(self) -> ExportBuilder:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.files = {export_file.name: _CsvFile(self.out_dir, export_file) for export_file in EXPORT_FILES}
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for csv_file in self.files.values():
            csv_file.close()

    def run(self) -> dict:
        injector = BadRowInjector(self, self.bad_row_rate) if self.bad_row_rate > 0 else None
        self._write_services()
        spotlights = self._spotlight_positions()
        for index in range(self.account_count):
            activity = self._generate_account(spotlights.get(index))
            if injector is not None:
                injector.after_account(activity, accounts_done=index + 1)
        if injector is not None:
            injector.finish()
        self._write_payouts(injector)
        manifest = self._manifest(injector)
        (self.out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest

    @property
    def data_rows(self) -> int:
        return sum(csv_file.rows for csv_file in self.files.values())

    def write(self, file_name: str, record: dict[str, str]) -> int:
        return self.files[file_name].write(record)

    def _manifest(self, injector: BadRowInjector | None) -> dict:
        # The output folder is left out so that the same arguments give the same manifest wherever it lands.
        return {
            "arguments": {
                "accounts": self.account_count,
                "seed": self.seed,
                "bad_rows": self.bad_row_rate,
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
            },
            "firm_settings": self.settings,
            "counts": {
                export_file.filename: self.files[export_file.name].rows for export_file in EXPORT_FILES
            },
            "bad_rows": [] if injector is None else injector.manifest_entries(),
        }

    # ---- dates -------------------------------------------------------------------------------------------

    def timestamp(self, day: int) -> str:
        hour, seconds = divmod(self.rng.randrange(7 * 3600, 21 * 3600), 3600)
        minute, second = divmod(seconds, 60)
        return f"{self.iso_days[day]}T{hour:02d}:{minute:02d}:{second:02d}Z"

    def later_day(self, day: int, delays: tuple[int, ...], last_day: int) -> int | None:
        """A day some delay after `day`, or None when it would fall after `last_day`."""
        later = day + self.rng.choice(delays)
        return later if later <= last_day else None

    # ---- services ----------------------------------------------------------------------------------------

    def _write_services(self) -> None:
        rng = self.rng
        before_last = max(0, self.integration_day - 1)
        drafts = []
        for position, spec in enumerate(catalog.SERVICE_CATALOG):
            if spec.origin is catalog.ServiceOrigin.BEFORE_INTEGRATION:
                day = 0 if position < catalog.SERVICES_CREATED_ON_START_DAY else rng.randint(0, before_last)
            elif spec.origin is catalog.ServiceOrigin.COPIED_FROM_QBO:
                # Copied when the firm connected QuickBooks: in the days right after the integration date.
                day = min(self.integration_day + rng.randint(0, 3), self.last_day)
            else:
                earliest = min(self.integration_day + 1, self.last_day)
                day = rng.randint(earliest, max(earliest, self.last_day - 30))
            drafts.append((day, position, spec))
        for day, _, spec in sorted(drafts, key=lambda draft: draft[:2]):
            service = _Service(self.ids.next("S"), spec, day)
            self._services.append(service)
            self._service_days.append(day)
            self.write(
                "services",
                {
                    "service_id": service.service_id,
                    "name": spec.name,
                    "description": spec.description,
                    "rate": format_cents(spec.rate_cents),
                    "rate_type": spec.rate_type,
                    "created_at": self.timestamp(day),
                    "qbo_item_name": spec.qbo_item_name or "",
                },
            )

    # ---- accounts ----------------------------------------------------------------------------------------

    def _spotlight_positions(self) -> dict[int, tuple[str, str]]:
        """Account index -> (type, name) for the names every export must contain, among the first accounts."""
        spotlights = [("Individual", name) for name in catalog.SPOTLIGHT_INDIVIDUALS]
        spotlights += [("Company", name) for name in catalog.SPOTLIGHT_COMPANIES]
        self._used_names.update(name.casefold() for _, name in spotlights)  # reserved before any random name
        candidates = range(min(self.account_count, 50))
        positions = self.rng.sample(candidates, min(len(spotlights), len(candidates)))
        return dict(zip(positions, spotlights, strict=False))

    def _generate_account(self, spotlight: tuple[str, str] | None) -> AccountActivity:
        rng = self.rng
        account_id = self.ids.next("A")
        if spotlight is None:
            account_type = self._account_types.draw()
            name = self.unique_name(account_type)
        else:
            account_type, name = spotlight
        kind = self._activities.draw()
        if kind is not _Activity.NONE and self.sync_day < 60:
            kind = _Activity.ONGOING  # a span too short for a before-sync period
        activity = self._activity_window(account_id, kind)
        if kind is _Activity.NONE:
            created_day = rng.randint(0, self.last_day)
            qbo_sync, manual_match = "auto", False
        else:
            self._generate_documents(activity, kind)
            created_day = max(0, activity.invoices[0].posted_day - rng.randint(0, 45))
            qbo_sync, manual_match = self._qbo_sync.draw(), self._manual_match.draw()
        archived = self._archived.draw() or (kind is _Activity.BEFORE_SYNC_ONLY and rng.random() < 0.5)
        record = self.account_record(account_id, name, account_type, created_day, activity.last_day)
        record["archived"] = "true" if archived else "false"
        record["qbo_sync"] = qbo_sync
        record["qbo_customer_name"] = self._qbo_customer_name(name, account_type) if manual_match else ""
        self.write("accounts", record)
        self._write_documents(activity)
        return activity

    def account_record(
        self, account_id: str, name: str, account_type: str, created_day: int, last_day: int
    ) -> dict[str, str]:
        """An account row, not archived, synced by the default rule and without a manual QBO match."""
        rng = self.rng
        created_at = self.timestamp(created_day)
        updated_day = rng.randint(created_day, max(created_day, last_day))
        return {
            "account_id": account_id,
            "account_name": name,
            "account_type": account_type,
            "email": self._email(name, account_type) if rng.random() >= 0.06 else "",
            "created_at": created_at,
            "updated_at": created_at if updated_day == created_day else self.timestamp(updated_day),
            "archived": "false",
            "qbo_sync": "auto",
            "qbo_customer_name": "",
        }

    def unique_name(self, account_type: str) -> str:
        # Account names become QBO DisplayNames, which must be unique; a few retries, then a numbered name.
        for _ in range(10):
            name = self._random_name(account_type)
            if name.casefold() not in self._used_names:
                break
        else:
            base, number = name, 2
            while f"{base} ({number})".casefold() in self._used_names:
                number += 1
            name = f"{base} ({number})"
        self._used_names.add(name.casefold())
        return name

    def _random_name(self, account_type: str) -> str:
        rng = self.rng
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        if account_type == "Individual":
            if rng.random() < 0.5:
                return f"{first} {rng.choice(catalog.MIDDLE_INITIALS)} {last}"
            return f"{first} {last}"
        fields = {
            "first": first,
            "last": last,
            "other_last": rng.choice(catalog.LAST_NAMES),
            "word": rng.choice(catalog.BUSINESS_WORDS),
            "industry": rng.choice(catalog.INDUSTRIES),
            "suffix": rng.choice(catalog.COMPANY_SUFFIXES),
        }
        patterns = catalog.COMPANY_PATTERNS if account_type == "Company" else catalog.OTHER_PATTERNS
        return rng.choice(patterns).format(**fields)

    def _email(self, name: str, account_type: str) -> str:
        words = _ascii_words(name)
        domain = self.rng.choice(catalog.EMAIL_DOMAINS)
        if account_type == "Individual":
            return f"{words[0]}.{words[-1]}@{domain}"
        return f"{self.rng.choice(catalog.COMPANY_MAILBOXES)}@{''.join(words)[:24]}.{domain}"

    @staticmethod
    def _qbo_customer_name(name: str, account_type: str) -> str:
        """The client's name in QBO from before the integration: a spelling that differs from TaxDome's."""
        if account_type == "Individual":
            first, rest = name.split(" ", 1)
            return f"{rest}, {first}"
        if " & " in name:
            return name.replace(" & ", " and ")
        return f"{name} (billing)"

    def _activity_window(self, account_id: str, kind: _Activity) -> AccountActivity:
        rng = self.rng
        if kind is _Activity.BEFORE_SYNC_ONLY:
            first = rng.randint(0, self.sync_day - 60)
            return AccountActivity(account_id, first, rng.randint(first + 30, self.sync_day - 1))
        if kind is _Activity.NEW_AFTER_SYNC:
            return AccountActivity(
                account_id, rng.randint(self.sync_day, max(self.sync_day, self.last_day - 30)), self.last_day
            )
        first = rng.randint(0, self.last_day * 2 // 3)
        churned = rng.random() < 0.15
        return AccountActivity(
            account_id, first, rng.randint(first, self.last_day) if churned else self.last_day
        )

    # ---- invoices ----------------------------------------------------------------------------------------

    def _generate_documents(self, activity: AccountActivity, kind: _Activity) -> None:
        rng = self.rng
        mean = {
            _Activity.ONGOING: _MEAN_INVOICES_ONGOING,
            _Activity.BEFORE_SYNC_ONLY: _MEAN_INVOICES_BEFORE_SYNC,
            _Activity.NEW_AFTER_SYNC: _MEAN_INVOICES_NEW,
        }[kind]
        count = min(1 + int(rng.expovariate(1 / (mean - 1))), _MAX_INVOICES_PER_ACCOUNT)
        days = sorted(rng.randint(activity.first_day, activity.last_day) for _ in range(count))
        activity.invoices = [self.build_invoice(activity.account_id, day) for day in days]
        activity.payments = self._settle(activity)

    def build_invoice(
        self, account_id: str, posted_day: int, lines: list[InvoiceLine] | None = None
    ) -> Invoice:
        """An invoice with its lines (drawn unless given), tax and total; its status comes with payments."""
        rng = self.rng
        tax_cents = 0
        if lines is None:
            lines, tax_cents = self._billable_lines(posted_day)
        template = rng.choice(catalog.INVOICE_DESCRIPTIONS) if rng.random() < 0.65 else ""
        return Invoice(
            invoice_id=self.ids.next("I"),
            number=self.ids.invoice_number(),
            account_id=account_id,
            posted_day=posted_day,
            due_day=min(posted_day + rng.choice(_PAYMENT_TERMS), self.last_day),
            lines=lines,
            tax_cents=tax_cents,
            total_cents=sum(line.amount_cents for line in lines) + tax_cents,
            description=template.format(year=self._years[posted_day], month=self._month_labels[posted_day]),
            updated_day=posted_day,
        )

    def _billable_lines(self, posted_day: int) -> tuple[list[InvoiceLine], int]:
        """Lines of services and free text, maybe a discount, and the sales tax on the taxable ones."""
        rng = self.rng
        line_count = self._line_counts.draw()
        discounted = line_count > 1 and self._discounted.draw()
        tax_rate = rng.choice(_TAX_RATES) if self._taxed.draw() else 0
        lines = [
            self._free_text_line() if self._free_text.draw() else self.service_line(posted_day)
            for _ in range(line_count - discounted)
        ]
        if tax_rate:
            for line in lines:
                line.taxable = rng.random() < 0.7
            lines[0].taxable = True
        if discounted:
            lines.append(self._discount_line(sum(line.amount_cents for line in lines)))
        taxable_cents = sum(line.amount_cents for line in lines if line.taxable)
        return lines, round_half_up(taxable_cents * tax_rate, 100_000)

    def service_line(self, day: int) -> InvoiceLine:
        rng = self.rng
        service = self._services[rng.randrange(bisect_right(self._service_days, day))]
        spec = service.spec
        # Team members sometimes bill a service at their own rate instead of the catalog rate.
        rate = (
            spec.rate_cents
            if rng.random() >= 0.1
            else spec.rate_cents * rng.choice((80, 90, 110, 125)) // 100
        )
        hundredths, quantity = rng.choice(_QUANTITIES[spec.rate_type])
        return InvoiceLine(
            service_id=service.service_id,
            service_name=spec.name,
            description=spec.description,
            rate=format_cents(rate),
            quantity=quantity,
            amount_cents=round_half_up(rate * hundredths, 100),
            taxable=False,
        )

    def _free_text_line(self) -> InvoiceLine:
        rng = self.rng
        rate = rng.randrange(1500, 35000)
        if rng.random() < 0.15:  # an amount typed without rate and quantity
            return InvoiceLine("", "", rng.choice(catalog.FREE_TEXT_LINES), "", "", rate, False)
        hundredths, quantity = rng.choice(_FREE_TEXT_QUANTITIES)
        amount = round_half_up(rate * hundredths, 100)
        return InvoiceLine(
            "", "", rng.choice(catalog.FREE_TEXT_LINES), format_cents(rate), quantity, amount, False
        )

    def _discount_line(self, subtotal_cents: int) -> InvoiceLine:
        rng = self.rng
        if rng.random() < 0.5:
            discount = round_half_up(subtotal_cents * rng.choice((5, 10, 15)), 100)
        else:
            discount = rng.choice((2500, 5000))
        # Capped at half the subtotal so the invoice total stays positive.
        amount = -max(1, min(discount, subtotal_cents // 2))
        description = rng.choice(catalog.DISCOUNT_DESCRIPTIONS)
        return InvoiceLine("", "Discount", description, format_cents(amount), "1", amount, False)

    def invoice_status(self, invoice: Invoice) -> str:
        """The business status of an invoice that is not a draft, scheduled or in progress."""
        if invoice.paid_cents >= invoice.total_cents:
            return "Paid"
        if invoice.paid_cents > 0:
            return "Partially paid"
        return "Overdue" if invoice.due_day < self.last_day else "Unpaid"

    # ---- payments ----------------------------------------------------------------------------------------

    def _settle(self, activity: AccountActivity) -> list[Payment]:
        """Pay the account's invoices according to drawn outcomes; payments never fall after its last day."""
        rng = self.rng
        invoices, last_day = activity.invoices, activity.last_day
        payments: list[Payment] = []
        credit_cents = credit_day = 0
        position = 0
        while position < len(invoices):
            invoice = invoices[position]
            outcome = self._outcomes.draw()
            if outcome is _Outcome.PAID_WITH_NEXT:
                group = invoices[position : position + 1 + rng.randint(1, 2)]
                position += len(group)
                day = self.later_day(max(i.posted_day for i in group), _PAYMENT_DELAYS, last_day)
                if day is not None:
                    applied = [
                        (i, i.total_cents - i.paid_cents) for i in group if i.paid_cents < i.total_cents
                    ]
                    numbers = ", ".join(i.number for i, _ in applied)
                    payments.append(
                        self._money_payment(activity.account_id, day, applied, 0, f"Payment for {numbers}")
                    )
                continue
            position += 1
            if outcome in _STATUS_WITHOUT_PAYMENT:
                invoice.status = outcome.value
                continue
            if outcome is _Outcome.UNPAID:
                continue
            # Credit left by an earlier overpayment pays the next invoices first, as TaxDome's
            # "Pay invoice using client credit" does.
            if credit_cents:
                used = min(credit_cents, invoice.total_cents)
                day = max(invoice.posted_day, credit_day)
                payments.append(
                    self.payment(
                        activity.account_id, day, used, ("credit_balance", "none"), [(invoice, used)],
                        "Applied from client credit",
                    )
                )  # fmt: skip
                credit_cents -= used
            paid = self._pay_invoice(activity, invoice, outcome)
            payments.extend(paid)
            if outcome is _Outcome.OVERPAID and paid:
                credit_cents += paid[-1].amount_cents - paid[-1].applications[0][1]
                credit_day = paid[-1].day
        return payments

    def _pay_invoice(self, activity: AccountActivity, invoice: Invoice, outcome: _Outcome) -> list[Payment]:
        rng = self.rng
        balance = invoice.total_cents - invoice.paid_cents
        day = self.later_day(invoice.posted_day, _PAYMENT_DELAYS, activity.last_day)
        if balance == 0 or day is None:
            return []
        account_id, memo = activity.account_id, f"Payment for {invoice.number}"
        if outcome is _Outcome.PROMOTIONAL_CREDIT:
            promotion = min(balance, rng.choice((2500, 5000, 10000)))
            credit = self.payment(
                account_id, invoice.posted_day, promotion, ("promotional_credit", "none"),
                [(invoice, promotion)], rng.choice(catalog.PROMOTIONS),
            )  # fmt: skip
            rest = balance - promotion
            return [credit] + (
                [self._money_payment(account_id, day, [(invoice, rest)], 0, memo)] if rest else []
            )
        if outcome is _Outcome.OVERPAID:
            # Clients round up: the payment is the next multiple of $50 above the balance.
            extra = (balance // 5000 + 1) * 5000 - balance
            return [self._money_payment(account_id, day, [(invoice, balance)], extra, memo)]
        if outcome in (_Outcome.PARTIALLY_PAID, _Outcome.PAID_IN_TWO_PARTS) and balance >= 200:
            part = max(100, balance * rng.randint(20, 80) // 10_000 * 100)
            first = self._money_payment(
                account_id, day, [(invoice, part)], 0, f"Partial payment for {invoice.number}"
            )
            later = self.later_day(day, _PAYMENT_DELAYS[2:], activity.last_day)
            if outcome is _Outcome.PARTIALLY_PAID or later is None:
                return [first]
            return [first, self._money_payment(account_id, later, [(invoice, balance - part)], 0, memo)]
        return [self._money_payment(account_id, day, [(invoice, balance)], 0, memo)]

    def _money_payment(
        self, account_id: str, day: int, applied: list[tuple[Invoice, int]], unapplied_cents: int, memo: str
    ) -> Payment:
        """A real-money payment (card, ACH, check...): the applied amounts plus any excess left as credit."""
        amount = sum(cents for _, cents in applied) + unapplied_cents
        method = self._methods.draw()
        if method[1] != "none" and amount < _MIN_PROCESSOR_CENTS:
            method = ("check", "none")
        return self.payment(account_id, day, amount, method, applied, memo if self.rng.random() < 0.7 else "")

    def payment(
        self,
        account_id: str,
        day: int,
        amount_cents: int,
        method: tuple[str, str],
        applied: list[tuple[Invoice, int]],
        description: str,
    ) -> Payment:
        """Record a payment and apply it to invoices (amounts never above what each invoice still owes)."""
        method_name, processor = method
        prefix = _TXN_ID_PREFIXES.get(method)
        applications = []
        for invoice, cents in applied:
            invoice.paid_cents += cents
            invoice.updated_day = max(invoice.updated_day, day)
            applications.append((invoice.invoice_id, cents))
        return Payment(
            payment_id=self.ids.next("P"),
            account_id=account_id,
            day=day,
            amount_cents=amount_cents,
            method=method_name,
            processor=processor,
            processor_txn_id="" if prefix is None else f"{prefix}{self.rng.getrandbits(96):024x}",
            fee_cents=processing_fee_cents(method_name, processor, amount_cents),
            sync_to_qbo=self._synced_payment.draw(),
            description=description,
            applications=applications,
            updated_day=day,
        )

    # ---- writing one account's documents ----------------------------------------------------------------

    def _write_documents(self, activity: AccountActivity) -> None:
        refunds = [
            refund for payment in activity.payments if (refund := self._refund(payment, activity.last_day))
        ]
        for invoice in activity.invoices:
            if not invoice.status:
                invoice.status = self.invoice_status(invoice)
            self.last_invoice_record = self.invoice_record(invoice)
            self.write("invoices", self.last_invoice_record)
            self.write_lines(invoice.invoice_id, invoice.lines)
        for payment in activity.payments:
            self.last_payment_record = self.write_payment(payment)
        for refund in refunds:
            self.write("refunds", refund)

    def invoice_record(self, invoice: Invoice) -> dict[str, str]:
        return {
            "invoice_id": invoice.invoice_id,
            "invoice_number": invoice.number,
            "account_id": invoice.account_id,
            "posted_date": self.iso_days[invoice.posted_day],
            "due_date": self.iso_days[invoice.due_day],
            "status": invoice.status,
            "currency": "USD",
            "tax_amount": format_cents(invoice.tax_cents),
            "total": format_cents(invoice.total_cents),
            "description": invoice.description,
            "updated_at": self.timestamp(invoice.updated_day),
        }

    def write_lines(self, invoice_id: str, lines: list[InvoiceLine]) -> list[int]:
        """Write an invoice's lines; returns their line numbers in invoice_lines.csv."""
        write = self.files["invoice_lines"].write
        return [
            write(
                {
                    "invoice_id": invoice_id,
                    "line_no": str(line_no),
                    "service_id": line.service_id,
                    "service_name": line.service_name,
                    "description": line.description,
                    "rate": line.rate,
                    "quantity": line.quantity,
                    "amount": format_cents(line.amount_cents),
                    "taxable": "true" if line.taxable else "false",
                }
            )
            for line_no, line in enumerate(lines, start=1)
        ]

    def payment_record(self, payment: Payment) -> dict[str, str]:
        return {
            "payment_id": payment.payment_id,
            "account_id": payment.account_id,
            "payment_date": self.iso_days[payment.day],
            "amount": format_cents(payment.amount_cents),
            "method": payment.method,
            "processor": payment.processor,
            "processor_txn_id": payment.processor_txn_id,
            "processing_fee": format_cents(payment.fee_cents),
            "currency": "USD",
            "sync_to_qbo": "true" if payment.sync_to_qbo else "false",
            "description": payment.description,
            "updated_at": self.timestamp(payment.updated_day),
        }

    def write_payment(self, payment: Payment) -> dict[str, str]:
        """Write a good payment with its applications and count it in its processor's payout."""
        record = self.payment_record(payment)
        self.write("payments", record)
        write_application = self.files["payment_applications"].write_values
        for invoice_id, cents in payment.applications:
            write_application((payment.payment_id, invoice_id, format_cents(cents)))
        if payment.processor != "none":
            self._add_to_payout(payment)
        return record

    def _refund(self, payment: Payment, last_day: int) -> dict[str, str] | None:
        if payment.processor == "none":
            return None
        kind = self._refunds.draw()
        if kind is None:
            return None
        rng = self.rng
        day = min(payment.day + rng.choice(_REFUND_DELAYS), max(payment.day, last_day))
        amount = payment.amount_cents
        if kind == "partial" and amount >= 200:
            amount = max(100, amount * rng.randint(10, 90) // 10_000 * 100)
        payment.updated_day = day
        return {
            "refund_id": self.ids.next("R"),
            "payment_id": payment.payment_id,
            "account_id": payment.account_id,
            "refund_date": self.iso_days[day],
            "amount": format_cents(amount),
            "reason": rng.choice(catalog.REFUND_REASONS),
        }

    # ---- payouts -----------------------------------------------------------------------------------------

    def payout_day(self, payment_day: int) -> int:
        """The next business day, when processors pay out a day's payments; may fall after the export."""
        return self._payout_days[payment_day]

    def _add_to_payout(self, payment: Payment) -> None:
        payout_day = self._payout_days[payment.day]
        if payout_day > self.last_day:
            return  # still in transit on the export date
        totals = self._payouts.setdefault((payout_day, payment.processor), [0, 0, []])
        totals[0] += payment.amount_cents
        totals[1] += payment.fee_cents
        totals[2].append(payment.payment_id)

    def _write_payouts(self, injector: BadRowInjector | None) -> None:
        # Refunds are not netted: the loader checks gross - fee = net on every payout, so net is exactly that.
        order = {processor: rank for rank, processor in enumerate(_PAYOUT_PROCESSORS)}
        bad_payouts = injector.queued_payouts() if injector is not None else []
        payouts = self.files["payouts"]
        for (day, processor), (gross, fee, payment_ids) in sorted(
            self._payouts.items(), key=lambda item: (item[0][0], order[item[0][1]])
        ):
            while bad_payouts and bad_payouts[0][0] < day:
                bad_payouts.pop(0)[1]()
            payouts.write(self.payout_record(day, processor, gross, fee, gross - fee, ";".join(payment_ids)))
        for _, write_bad_payout in bad_payouts:
            write_bad_payout()

    def payout_record(
        self, day: int, processor: str, gross: int, fee: int, net: int, payment_ids: str
    ) -> dict:
        return {
            "payout_id": self.ids.next("PO"),
            "payout_date": self.iso_days[day],
            "processor": processor,
            "gross": format_cents(gross),
            "fee": format_cents(fee),
            "net": format_cents(net),
            "payment_ids": payment_ids,
        }


def generate_export(
    out_dir: Path,
    accounts: int,
    seed: int,
    bad_rows: float = 0.0,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
) -> dict:
    """Write a TaxDome export folder to `out_dir`; return its manifest (also in `_generator_manifest.json`).

    The folder is marked complete by a `manifest.json` (rows and SHA-256 per file), written last.

    :param accounts: number of client accounts; invoices average about 10 per account.
    :param bad_rows: fraction of data rows to make invalid (each of the 18 kinds at least once when > 0).
    """
    with ExportBuilder(Path(out_dir), accounts, seed, bad_rows, start, end) as builder:
        manifest = builder.run()
    # Written last, once every file is closed: it marks the export complete for the landing scan.
    write_manifest(Path(out_dir), manifest["counts"])
    return manifest
