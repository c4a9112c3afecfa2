"""A payment's processing fee becomes a QuickBooks expense, so the deposit nets out as in the bank (R12, R20)."""

from __future__ import annotations

from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.rules.base import RuleBook, ref
from taxdome_qbo.core.vocabulary import (
    FAILED,
    date_text,
    marker,
)


class FeeRules(RuleBook):
    """R12, R20: the `fee` kind."""

    def _plan_fee(self, payment, fee: int) -> None:
        for setting in ("fee_paid_from_account", "fee_expense_account"):
            if setting in self.refs.missing:
                self.status(
                    "payment",
                    payment.payment_id,
                    FAILED,
                    f"its processing fee cannot be recorded: {self.refs.missing[setting]}",
                )
                return
        day = date_text(payment.payment_date)
        payload = {
            "PaymentType": "Cash",
            "TxnDate": day,
            "AccountRef": ref(self.refs.ids["fee_paid_from_account"]),
            "TotalAmt": format_cents(fee),
            "Line": [
                {
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "Amount": format_cents(fee),
                    "Description": f"{payment.processor} processing fee of payment {payment.payment_id}",
                    "AccountBasedExpenseLineDetail": {
                        "AccountRef": ref(self.refs.ids["fee_expense_account"])
                    },
                }
            ],
            "PrivateNote": marker("fee", payment.payment_id),
        }
        self.write(
            "fee",
            payment.payment_id,
            "Purchase",
            payload,
            fee,
            f"{payment.processor} processing fee of {format_cents(fee)}",
            sort_key=f"{day}|{payment.payment_id}",
        )
