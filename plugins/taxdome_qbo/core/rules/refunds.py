"""Refunds become QuickBooks refund receipts of their synced payment (R13)."""

from __future__ import annotations

from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.plan_memory import rows
from taxdome_qbo.core.rules.base import RuleBook, ref
from taxdome_qbo.core.vocabulary import (
    MAX_PAYMENT_REF,
    NOT_SYNCED,
    SYNCED,
    date_text,
    marker,
    symbolic,
)


class RefundRules(RuleBook):
    """R13: the `refund` kind."""

    def _plan_refunds(self) -> None:
        for refund in rows(self.staged.refunds.sort_values(["refund_date", "refund_id"])):
            refund_id = refund.refund_id
            if not self._account_gate(
                "refund", refund_id, refund.account_id, refund.refund_date, "refunded on"
            ):
                continue
            if refund.payment_id not in self.synced_payments:
                payment_status = self.statuses["payment"].get(
                    refund.payment_id, (None, "it is not in the export")
                )
                self.status(
                    "refund",
                    refund_id,
                    NOT_SYNCED,
                    f"its payment {refund.payment_id} is not synced as money received: {payment_status[1]}",
                    caused_by=self.failure_behind("payment", refund.payment_id),
                )
                continue
            amount = int(refund.amount_cents)
            day = date_text(refund.refund_date)
            reason_text = refund.reason if isinstance(refund.reason, str) else "Refund"
            payload = {
                "TxnDate": day,
                "CustomerRef": ref(symbolic("account", refund.account_id)),
                "DepositToAccountRef": ref(self.refs.ids["deposit_to_account"]),
                "TotalAmt": format_cents(amount),
                "PaymentRefNum": refund_id[:MAX_PAYMENT_REF],
                "Line": [
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": format_cents(amount),
                        "Description": f"{reason_text} (payment {refund.payment_id})"[:4000],
                        "SalesItemLineDetail": {"ItemRef": ref(self.refs.ids["default_sales_item"])},
                    }
                ],
                "PrivateNote": marker("refund", refund_id),
            }
            reason = self.write(
                "refund",
                refund_id,
                "RefundReceipt",
                payload,
                amount,
                f"refund of {format_cents(amount)} from payment {refund.payment_id}",
                sort_key=f"{day}|{refund_id}",
            )
            self.status("refund", refund_id, SYNCED, reason, "RefundReceipt")
