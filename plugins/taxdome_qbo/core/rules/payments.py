"""Real money becomes a QuickBooks payment applied to the invoices it pays (R10), unless payment sync is off
(R15); a payment of a credit balance or a promotional credit is handed to the credit rules (R7, R11), its
processing fee to the fee rules (R12, R20)."""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any, NamedTuple

import pandas as pd

from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.plan_memory import rows
from taxdome_qbo.core.rules.base import RuleBook, linked_line, ref
from taxdome_qbo.core.vocabulary import (
    FAILED,
    MAX_PAYMENT_REF,
    SKIPPED,
    SYNCED,
    date_text,
    marker,
    symbolic,
)


class _Application(NamedTuple):
    """What a payment pays of one invoice."""

    invoice_id: str
    amount_cents: int


class PaymentRules(RuleBook):
    """R10, R15: the `payment` kind."""

    def _payment_gate(self, payment) -> bool:
        payment_id = payment.payment_id
        if not self._account_gate("payment", payment_id, payment.account_id, payment.payment_date, "paid on"):
            return False
        if not self.settings.sync_payments:
            self.status("payment", payment_id, SKIPPED, "payment sync is switched off in the firm settings")
            return False
        if not bool(payment.sync_to_qbo):
            self.status("payment", payment_id, SKIPPED, "this payment is set not to sync to QuickBooks")
            return False
        return True

    def _applications(self) -> dict[str, list[_Application]]:
        by_payment: dict[str, list[_Application]] = defaultdict(list)
        applications = self.staged.payment_applications.sort_values(["payment_id", "invoice_id"])
        made = map(  # each by a C call, not the namedtuple's Python __new__
            functools.partial(tuple.__new__, _Application),
            zip(applications["invoice_id"].tolist(), applications["amount_cents"].tolist(), strict=True),
        )
        for payment_id, application in zip(applications["payment_id"].tolist(), made, strict=True):
            by_payment[payment_id].append(application)
        return by_payment

    @functools.cached_property
    def payments_by_date(self) -> pd.DataFrame:
        return self.staged.payments.sort_values(["payment_date", "payment_id"])

    def _would_sync(self, payment) -> bool:
        return (
            payment.account_id in self.synced_accounts
            and not self._before_sync_date(payment.payment_date)
            and self.settings.sync_payments
            and bool(payment.sync_to_qbo)
        )

    def _plan_payments(self, credit_use: dict[str, list[tuple[str, str, int, str]]]) -> None:
        for payment in rows(self.payments_by_date):
            payment_id = payment.payment_id
            if not self._payment_gate(payment):
                continue
            applications = self.applications_by_payment[payment.payment_id]
            if payment.method == "credit_balance":
                self._credit_balance_status(payment, applications)
                continue
            if payment.method == "promotional_credit":
                self._plan_credit_memo(payment, applications, credit_use.get(payment_id, []))
                continue
            if "deposit_to_account" in self.refs.missing:
                self.status("payment", payment_id, FAILED, self.refs.missing["deposit_to_account"])
                continue
            self._plan_money_payment(payment, applications, credit_use.get(payment_id, []))

    def _linked_lines(self, applications: list, extra_uses: list) -> tuple[list[dict], list[str], int]:
        lines, notes, applied = [], [], 0
        for application in applications:
            cents = int(application.amount_cents)
            if application.invoice_id in self.synced_invoices:
                lines.append(linked_line(cents, symbolic("invoice", application.invoice_id), "Invoice"))
                applied += cents
            else:
                invoice_status = self.statuses["invoice"].get(application.invoice_id)
                why = "it is not in the export" if invoice_status is None else invoice_status[1]
                notes.append(
                    f"{format_cents(cents)} for invoice {application.invoice_id} stays unapplied ({why})"
                )
        for credit_payment, invoice_id, cents, _kind in extra_uses:
            lines.append(linked_line(cents, symbolic("invoice", invoice_id), "Invoice"))
            applied += cents
            notes.append(
                f"{format_cents(cents)} of its credit pays invoice {invoice_id} (credit balance payment {credit_payment})"
            )
        return lines, notes, applied

    def _plan_money_payment(self, payment, applications: list, credit_use: list) -> None:
        payment_id = payment.payment_id
        lines, notes, applied = self._linked_lines(applications, credit_use)
        gross = int(payment.amount_cents)
        reference = payment.processor_txn_id if isinstance(payment.processor_txn_id, str) else payment_id
        day = date_text(payment.payment_date)
        payload: dict[str, Any] = {
            "TotalAmt": format_cents(gross),
            "TxnDate": day,
            "CustomerRef": ref(symbolic("account", payment.account_id)),
            "DepositToAccountRef": ref(self.refs.ids["deposit_to_account"]),
            "PaymentRefNum": reference[:MAX_PAYMENT_REF],
            "Line": lines,
            "PrivateNote": marker("payment", payment_id),
        }
        if gross > applied:
            notes.append(f"{format_cents(gross - applied)} stays unapplied as client credit")
        summary = f"{payment.method} payment of {format_cents(gross)}" + (
            f"; {'; '.join(notes)}" if notes else ""
        )
        reason = self.write(
            "payment",
            payment_id,
            "Payment",
            payload,
            gross,
            summary,
            sort_key=f"{day}|{payment_id}",
        )
        self.synced_payments.add(payment_id)
        self.status("payment", payment_id, SYNCED, reason, "Payment")
        fee = int(payment.processing_fee_cents or 0)
        if fee > 0:
            self._plan_fee(payment, fee)
