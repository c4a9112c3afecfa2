"""Money as integer cents, and its text forms: the plain one exports, QBO payloads and messages all write,
and the grouped one people read in reports."""

from __future__ import annotations


def format_cents(cents: int) -> str:
    """Cents as a plain decimal with exactly two places ("1234.50", "-25.00"); exact, never via a float."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def format_money(cents: int | None) -> str:
    """1,234.56 from cents, exactly (grouping an int never goes through a float); empty when unknown."""
    if cents is None:
        return ""
    whole, part = format_cents(cents).split(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{part}"
