"""Invalid rows injected on purpose (`--bad-rows RATE`), each listed in the manifest with its file and line.

The loader must quarantine exactly these rows and stage everything else, so every bad row is an extra row
that no good row depends on: a bad payment has no applications and is in no payout, a bad invoice has no
payments, a duplicate repeats an earlier good row (which keeps its applications). Only two kinds carry good
rows along by design: a negative-total invoice and a line-sum-mismatch invoice keep their well-formed lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from taxdome_qbo.core.export_contract import EXPORT_FILES, EXPORT_FILES_BY_NAME
from taxdome_qbo.core.money import format_cents
from taxdome_qbo.demo import catalog
from taxdome_qbo.demo.deck import Deck

if TYPE_CHECKING:
    from taxdome_qbo.demo.generator import AccountActivity, ExportBuilder, Invoice, Payment

KINDS = (
    "missing_required",
    "bad_money",
    "bad_date",
    "negative_total",
    "bad_enum",
    "unknown_account",
    "duplicate_id",
    "line_sum_mismatch",
    "line_amount_mismatch",
    "orphan_line",
    "application_unknown_invoice",
    "application_unknown_payment",
    "refund_above_payment",
    "refund_unknown_payment",
    "malformed_row",
    "payout_mismatch",
    "fee_above_amount",
    "bad_bool",
)

# The first row of every kind lands within this many accounts, so that even a small export has them all.
_FIRST_OF_EACH_KIND_WITHIN = 40

_BAD_MONEY = ("12.3.4", "abc", "10.005")
_BAD_DATES = ("2026-02-30", "03/15/2026", "2025-13-01")
_BAD_BOOLS = ("maybe", "perhaps", "2")
_FILE_ORDER = {export_file.name: rank for rank, export_file in enumerate(EXPORT_FILES)}


class BadRowInjector:
    """Adds bad rows after accounts as the export grows, at `rate` of the data rows written so far."""

    def __init__(self, builder: ExportBuilder, rate: float) -> None:
        self._builder = builder
        self._rng = builder.rng
        self._rate = rate
        self._kinds = Deck(self._rng, [(kind, 1) for kind in KINDS])
        self._variants: Counter[str] = Counter()
        self._entries: list[dict] = []
        self._queued_payouts: list[tuple[int, Callable[[], None]]] = []
        self._activity: AccountActivity | None = None
        self._inject = {kind: getattr(self, f"_{kind}") for kind in KINDS}

    @property
    def _injected(self) -> int:
        return len(self._entries) + len(self._queued_payouts)

    def after_account(self, activity: AccountActivity, accounts_done: int) -> None:
        """Inject the rows now due, attached to the latest account that has invoices."""
        if activity.invoices:
            self._activity = activity
        if self._activity is None:
            return
        window = min(self._builder.account_count, _FIRST_OF_EACH_KIND_WITHIN)
        first_of_each_due = min(len(KINDS), -(-len(KINDS) * accounts_done // window))
        due = max(first_of_each_due, int(self._rate * self._builder.data_rows))
        while self._injected < due:
            self._inject[self._kinds.draw()](self._activity)

    def finish(self) -> None:
        """Make sure every kind is present, even when few accounts had invoices."""
        present = {entry["kind"] for entry in self._entries} | (
            {"payout_mismatch"} if self._queued_payouts else set()
        )
        if self._activity is not None:
            for kind in KINDS:
                if kind not in present:
                    self._inject[kind](self._activity)

    def queued_payouts(self) -> list[tuple[int, Callable[[], None]]]:
        """(payout day, writer) of the bad payouts, which are written among the payouts at the end."""
        return sorted(self._queued_payouts, key=lambda queued: queued[0])

    def manifest_entries(self) -> list[dict]:
        return sorted(self._entries, key=lambda entry: (_FILE_ORDER[entry["file"][:-4]], entry["line"]))

    # ---- helpers -----------------------------------------------------------------------------------------

    def _record(self, kind: str, file_name: str, line: int, key: str | None) -> None:
        self._entries.append({"kind": kind, "file": f"{file_name}.csv", "line": line, "key": key})

    def _variant(self, kind: str, count: int) -> int:
        """Kinds with several shapes take them in turn."""
        self._variants[kind] += 1
        return (self._variants[kind] - 1) % count

    def _day(self, activity: AccountActivity) -> int:
        return self._rng.randint(activity.first_day, activity.last_day)

    def _unpaid_invoice(self, activity: AccountActivity) -> Invoice:
        builder = self._builder
        invoice = builder.build_invoice(activity.account_id, self._day(activity))
        invoice.status = builder.invoice_status(invoice)
        return invoice

    def _empty_invoice_record(self, activity: AccountActivity) -> dict[str, str]:
        """A draft without lines (total 0.00): wrong in one field, it drags no line into quarantine."""
        invoice = self._builder.build_invoice(activity.account_id, self._day(activity), lines=[])
        invoice.status = "Draft"
        return self._builder.invoice_record(invoice)

    def _check_payment(
        self, activity: AccountActivity, method: tuple[str, str] = ("check", "none")
    ) -> Payment:
        """A payment applied to nothing (a prepayment); returned unwritten."""
        amount = self._rng.randrange(2000, 50000)
        return self._builder.payment(
            activity.account_id, self._day(activity), amount, method, [], "Prepayment"
        )

    def _write_invoice_or_payment(
        self,
        kind: str,
        activity: AccountActivity,
        invoice_field: str,
        payment_field: str,
        values: tuple[str, ...],
    ) -> None:
        """An extra empty invoice or unapplied payment (in turn) with one field set to a bad value."""
        value = self._rng.choice(values)
        if self._variant(kind, 2) == 0:
            record = self._empty_invoice_record(activity)
            record[invoice_field] = value
            self._record(kind, "invoices", self._builder.write("invoices", record), record["invoice_id"])
        else:
            record = self._builder.payment_record(self._check_payment(activity))
            record[payment_field] = value
            self._record(kind, "payments", self._builder.write("payments", record), record["payment_id"])

    def _write_account(self, kind: str, field: str, value: str) -> None:
        builder = self._builder
        day = self._rng.randint(0, builder.last_day)
        record = builder.account_record(
            builder.ids.next("A"), builder.unique_name("Individual"), "Individual", day, day
        )
        record[field] = value
        self._record(kind, "accounts", builder.write("accounts", record), record["account_id"])

    # ---- one method per kind -------------------------------------------------------------------------------

    def _missing_required(self, activity: AccountActivity) -> None:
        self._write_invoice_or_payment("missing_required", activity, "invoice_number", "payment_date", ("",))

    def _bad_money(self, activity: AccountActivity) -> None:
        self._write_invoice_or_payment("bad_money", activity, "total", "amount", _BAD_MONEY)

    def _bad_date(self, activity: AccountActivity) -> None:
        self._write_invoice_or_payment("bad_date", activity, "posted_date", "payment_date", _BAD_DATES)

    def _unknown_account(self, activity: AccountActivity) -> None:
        unknown = self._builder.ids.unknown("A")
        self._write_invoice_or_payment("unknown_account", activity, "account_id", "account_id", (unknown,))

    def _bad_enum(self, activity: AccountActivity) -> None:
        if self._variant("bad_enum", 2) == 0:
            record = self._builder.payment_record(self._check_payment(activity))
            record["method"] = "bitcoin"
            self._record(
                "bad_enum", "payments", self._builder.write("payments", record), record["payment_id"]
            )
        else:
            self._write_account("bad_enum", "account_type", "Alien")

    def _bad_bool(self, activity: AccountActivity) -> None:
        self._write_account("bad_bool", "archived", self._rng.choice(_BAD_BOOLS))

    def _negative_total(self, activity: AccountActivity) -> None:
        builder = self._builder
        line = builder.service_line(self._day(activity))
        line.amount_cents, line.rate = -line.amount_cents, f"-{line.rate}"
        invoice = builder.build_invoice(activity.account_id, self._day(activity), lines=[line])
        invoice.status = builder.invoice_status(invoice)
        line_number = builder.write("invoices", builder.invoice_record(invoice))
        self._record("negative_total", "invoices", line_number, invoice.invoice_id)
        builder.write_lines(invoice.invoice_id, invoice.lines)

    def _line_sum_mismatch(self, activity: AccountActivity) -> None:
        builder = self._builder
        invoice = self._unpaid_invoice(activity)
        record = builder.invoice_record(invoice)
        record["total"] = format_cents(invoice.total_cents + self._rng.randint(1, 1000))
        self._record("line_sum_mismatch", "invoices", builder.write("invoices", record), invoice.invoice_id)
        builder.write_lines(invoice.invoice_id, invoice.lines)

    def _line_amount_mismatch(self, activity: AccountActivity) -> None:
        builder = self._builder
        invoice = self._unpaid_invoice(activity)
        wrong = next((number for number, line in enumerate(invoice.lines) if line.rate), 0)
        line = invoice.lines[wrong]
        if not line.rate:  # an amount-only line has nothing to contradict until it shows its rate x quantity
            line.rate, line.quantity = format_cents(line.amount_cents), "1"
        # Off by a few cents, with the invoice total following the written amounts: only the line is wrong.
        delta = self._rng.randint(1, 500)
        line.amount_cents += delta
        invoice.total_cents += delta
        builder.write("invoices", builder.invoice_record(invoice))
        line = builder.write_lines(invoice.invoice_id, invoice.lines)[wrong]
        self._record("line_amount_mismatch", "invoice_lines", line, f"{invoice.invoice_id}:{wrong + 1}")

    def _orphan_line(self, activity: AccountActivity) -> None:
        invoice_id = self._builder.ids.unknown("I")
        line = self._builder.write_lines(invoice_id, [self._builder.service_line(self._day(activity))])[0]
        self._record("orphan_line", "invoice_lines", line, f"{invoice_id}:1")

    def _application_unknown_invoice(self, activity: AccountActivity) -> None:
        builder = self._builder
        payment = self._check_payment(activity)
        builder.write_payment(payment)
        invoice_id = builder.ids.unknown("I")
        amount = format_cents(self._rng.randint(1, payment.amount_cents))
        line = builder.files["payment_applications"].write_values((payment.payment_id, invoice_id, amount))
        self._record(
            "application_unknown_invoice", "payment_applications", line, f"{payment.payment_id}:{invoice_id}"
        )

    def _application_unknown_payment(self, activity: AccountActivity) -> None:
        builder = self._builder
        invoice = self._rng.choice(activity.invoices)
        payment_id = builder.ids.unknown("P")
        amount = format_cents(self._rng.randint(1, max(1, invoice.total_cents)))
        line = builder.files["payment_applications"].write_values((payment_id, invoice.invoice_id, amount))
        self._record(
            "application_unknown_payment", "payment_applications", line, f"{payment_id}:{invoice.invoice_id}"
        )

    def _refund_above_payment(self, activity: AccountActivity) -> None:
        if activity.payments:
            payment = self._rng.choice(activity.payments)
        else:
            payment = self._check_payment(activity)
            self._builder.write_payment(payment)
        above = payment.amount_cents + self._rng.randint(1, 5000)
        self._write_refund(
            "refund_above_payment", payment.payment_id, activity.account_id, payment.day, above
        )

    def _refund_unknown_payment(self, activity: AccountActivity) -> None:
        payment_id = self._builder.ids.unknown("P")
        day = self._day(activity)
        self._write_refund(
            "refund_unknown_payment", payment_id, activity.account_id, day, self._rng.randint(100, 50000)
        )

    def _write_refund(self, kind: str, payment_id: str, account_id: str, day: int, cents: int) -> None:
        builder = self._builder
        refund_id = builder.ids.next("R")
        record = {
            "refund_id": refund_id,
            "payment_id": payment_id,
            "account_id": account_id,
            "refund_date": builder.iso_days[min(day + self._rng.randint(0, 10), builder.last_day)],
            "amount": format_cents(cents),
            "reason": self._rng.choice(catalog.REFUND_REASONS),
        }
        self._record(kind, "refunds", builder.write("refunds", record), refund_id)

    def _duplicate_id(self, activity: AccountActivity) -> None:
        builder = self._builder
        use_payment = self._variant("duplicate_id", 2) == 1 and builder.last_payment_record is not None
        file_name, key = ("payments", "payment_id") if use_payment else ("invoices", "invoice_id")
        earlier = builder.last_payment_record if use_payment else builder.last_invoice_record
        # Same money as the earlier row, so whichever row a loader kept, the totals stay right.
        duplicate = {**earlier, "description": f"{earlier['description']} (copy)".strip()}
        self._record("duplicate_id", file_name, builder.write(file_name, duplicate), duplicate[key])

    def _malformed_row(self, activity: AccountActivity) -> None:
        """A row whose text field holds an unquoted comma: one field too many."""
        builder = self._builder
        if self._variant("malformed_row", 2) == 0:
            day = self._day(activity)
            name = f"{self._rng.choice(('Walker', 'Nguyen', 'Côté'))}, {self._rng.choice(('Anna', 'Luis'))}"
            record = builder.account_record(builder.ids.next("A"), name, "Individual", day, day)
            file_name, split_field = "accounts", "account_name"
        else:
            payment = self._check_payment(activity)
            record = builder.payment_record(payment)
            record["description"] = (
                f"Payment for {activity.invoices[0].number}, {activity.invoices[-1].number}"
            )
            file_name, split_field = "payments", "description"
        csv_file = builder.files[file_name]
        values = list(csv_file.in_contract_order(record))
        position = EXPORT_FILES_BY_NAME[file_name].column_names.index(split_field)
        values[position : position + 1] = values[position].split(",", 1)
        self._record("malformed_row", file_name, csv_file.write_values(values), None)

    def _fee_above_amount(self, activity: AccountActivity) -> None:
        builder = self._builder
        payment = self._check_payment(activity, method=("card", "stripe"))
        record = builder.payment_record(payment)
        record["processing_fee"] = format_cents(payment.amount_cents + self._rng.randint(1, 2000))
        self._record("fee_above_amount", "payments", builder.write("payments", record), payment.payment_id)

    def _payout_mismatch(self, activity: AccountActivity) -> None:
        builder = self._builder
        day = min(builder.payout_day(self._day(activity)), builder.last_day)
        processor = self._rng.choice(("stripe", "taxdome_payments", "cpacharge"))
        gross = self._rng.randint(10_000, 500_000)
        fee = gross * 29 // 1000 + 30
        net = gross - fee + self._rng.choice((-1, 1)) * self._rng.randint(1, 500)

        def write() -> None:
            record = builder.payout_record(day, processor, gross, fee, net, "")
            self._record("payout_mismatch", "payouts", builder.write("payouts", record), record["payout_id"])

        self._queued_payouts.append((day, write))
