"""Money as integer cents, and its one text form: what exports, QBO payloads and messages all write."""

from __future__ import annotations


def format_cents(cents: int) -> str:
    """Cents as a plain decimal with exactly two places ("1234.50", "-25.00"); exact, never via a float."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"
