"""Credit: a payment from the client's credit balance consumes the oldest credit first (R7); a promotional
credit becomes a credit memo, and what it pays a zero-amount payment linking both (R11)."""

from __future__ import annotations

from collections import defaultdict

from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.plan_memory import rows
from taxdome_qbo.core.rules.base import RuleBook, linked_line, ref
from taxdome_qbo.core.vocabulary import (
    FAILED,
    NOT_SYNCED,
    REAL_MONEY_METHODS,
    SYNCED,
    date_text,
    marker,
    symbolic,
)


class CreditRules(RuleBook):
    """R7, R11: the `credit_memo` and `credit_application` kinds, and credit-balance payments."""

    def _allocate_credit_balance(self) -> dict[str, list[tuple[str, str, int, str]]]:
        """R7: what each credit-balance payment consumes, oldest credit first.

        Returns, per source (a real-money payment or a promotional credit), the (credit payment, invoice, cents,
        source kind) it pays. Fails a credit-balance payment when the client's credit falls short.
        """
        applications = self._applications()
        self.applications_by_payment = applications
        uses: dict[str, list[tuple[str, str, int, str]]] = defaultdict(list)
        payments = self.payments_by_date
        self.credit_failures: dict[str, str] = {}
        with_credit_use = set(payments.loc[payments["method"] == "credit_balance", "account_id"])
        by_account: dict[str, list] = defaultdict(list)
        for payment in rows(payments[payments["account_id"].isin(with_credit_use)]):
            by_account[payment.account_id].append(payment)
        for account_payments in by_account.values():
            available: list[list] = []  # [source id, kind, cents left], oldest first
            for payment in account_payments:
                if payment.method in REAL_MONEY_METHODS or payment.method == "promotional_credit":
                    applied_to_synced = sum(
                        int(a.amount_cents)
                        for a in applications[payment.payment_id]
                        if a.invoice_id in self.synced_invoices
                    )
                    left = int(payment.amount_cents) - applied_to_synced
                    kind = "payment" if payment.method in REAL_MONEY_METHODS else "credit_memo"
                    if left > 0 and self._would_sync(payment):
                        available.append([payment.payment_id, kind, left])
                    continue
                if payment.method != "credit_balance" or not self._would_sync(payment):
                    continue
                wanted = [a for a in applications[payment.payment_id] if a.invoice_id in self.synced_invoices]
                needed = sum(int(a.amount_cents) for a in wanted)
                on_hand = sum(source[2] for source in available)
                if needed > on_hand:
                    self.credit_failures[payment.payment_id] = (
                        f"the client's credit in QuickBooks is {format_cents(on_hand)}, short of the {format_cents(needed)} applied"
                    )
                    continue
                for application in wanted:
                    remaining = int(application.amount_cents)
                    for source in available:
                        if remaining == 0:
                            break
                        take = min(remaining, source[2])
                        if take:
                            uses[source[0]].append(
                                (payment.payment_id, application.invoice_id, take, source[1])
                            )
                            source[2] -= take
                            remaining -= take
        return uses

    def _plan_credit_memo(self, payment, applications: list, credit_use: list) -> None:
        """R11: a promotional credit is a credit memo; what it pays is a zero-amount payment linking both."""
        payment_id = payment.payment_id
        if "default_sales_item" in self.refs.missing:
            self.status("payment", payment_id, FAILED, self.refs.missing["default_sales_item"])
            return
        amount = int(payment.amount_cents)
        day = date_text(payment.payment_date)
        payload = {
            "TxnDate": day,
            "CustomerRef": ref(symbolic("account", payment.account_id)),
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": format_cents(amount),
                    "Description": "Promotional credit",
                    "SalesItemLineDetail": {"ItemRef": ref(self.refs.ids["default_sales_item"])},
                }
            ],
            "PrivateNote": marker("credit_memo", payment_id),
        }
        reason = self.write(
            "credit_memo",
            payment_id,
            "CreditMemo",
            payload,
            amount,
            f"promotional credit of {format_cents(amount)}",
            sort_key=f"{day}|{payment_id}",
        )
        uses = [
            (payment_id, a.invoice_id, int(a.amount_cents), "own")
            for a in applications
            if a.invoice_id in self.synced_invoices
        ]
        uses += [
            (credit_payment, invoice_id, cents, "credit_balance")
            for credit_payment, invoice_id, cents, _ in credit_use
        ]
        for credit_payment, invoice_id, cents, _origin in uses:
            application_id = f"{credit_payment}:{invoice_id}:{payment_id}"
            link = {
                "TotalAmt": "0.00",
                "TxnDate": day,
                "CustomerRef": ref(symbolic("account", payment.account_id)),
                "Line": [
                    linked_line(cents, symbolic("invoice", invoice_id), "Invoice"),
                    linked_line(cents, symbolic("credit_memo", payment_id), "CreditMemo"),
                ],
                "PrivateNote": marker("credit_application", application_id),
            }
            self.write(
                "credit_application",
                application_id,
                "Payment",
                link,
                cents,
                f"applies {format_cents(cents)} of promotional credit {payment_id} to invoice {invoice_id}",
                sort_key=f"{day}|{application_id}",
            )
        self.status("payment", payment_id, SYNCED, reason, "CreditMemo")

    def _credit_balance_status(self, payment, applications: list) -> None:
        payment_id = payment.payment_id
        if payment_id in self.credit_failures:
            self.status("payment", payment_id, FAILED, self.credit_failures[payment_id])
            return
        synced = [a for a in applications if a.invoice_id in self.synced_invoices]
        if not synced:
            failures = (self.failure_behind("invoice", a.invoice_id) for a in applications)
            self.status(
                "payment",
                payment_id,
                NOT_SYNCED,
                "paid from credit, but none of the invoices it pays is synced",
                caused_by=next((failure for failure in failures if failure), None),
            )
            return
        total = sum(int(a.amount_cents) for a in synced)
        self.status(
            "payment",
            payment_id,
            SYNCED,
            f"paid {format_cents(total)} from the client's QuickBooks credit (no new money)",
        )
