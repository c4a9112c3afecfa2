"""Integer-cent arithmetic for the demo export: half-up rounding and processor fees."""

from __future__ import annotations

from dataclasses import dataclass


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest integer, ties away from zero, like Decimal's ROUND_HALF_UP."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


@dataclass(frozen=True)
class FeeSchedule:
    """A processor's fee: basis points of the amount (rounded half-up) plus a fixed part, maybe capped."""

    basis_points: int
    fixed_cents: int = 0
    cap_cents: int | None = None

    def fee_cents(self, amount_cents: int) -> int:
        fee = round_half_up(amount_cents * self.basis_points, 10_000) + self.fixed_cents
        return fee if self.cap_cents is None else min(fee, self.cap_cents)


# (method, processor) -> fee. Stripe and TaxDome Payments publish 2.9% + $0.30 for cards and Stripe 0.8%
# capped at $5.00 for ACH (reference/taxdome.md §3.4). CPACharge publishes no per-transaction rate (it bills
# one monthly fee), so the demo assumes 2.75% + $0.00 per card payment to give finance a fee to reconcile.
PROCESSING_FEES: dict[tuple[str, str], FeeSchedule] = {
    ("card", "stripe"): FeeSchedule(basis_points=290, fixed_cents=30),
    ("card", "taxdome_payments"): FeeSchedule(basis_points=290, fixed_cents=30),
    ("card", "cpacharge"): FeeSchedule(basis_points=275),
    ("ach", "stripe"): FeeSchedule(basis_points=80, cap_cents=500),
}


def processing_fee_cents(method: str, processor: str, amount_cents: int) -> int:
    """The fee a processor keeps on a payment; 0 for money that went through no processor."""
    schedule = PROCESSING_FEES.get((method, processor))
    return 0 if schedule is None else schedule.fee_cents(amount_cents)
