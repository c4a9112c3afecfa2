"""Money as integer cents, and its text forms: the plain one exports, QBO payloads and messages all write,
and the grouped one people read in reports."""

from __future__ import annotations


def format_cents(cents: int) -> str:
    """Cents as a plain decimal with exactly two places ("1234.50", "-25.00"); exact, never via a float."""
    # %-formatting a divmod is the fastest exact form: the planner formats millions of amounts.
    if cents < 0:
        return "-%d.%02d" % divmod(-cents, 100)  # noqa: UP031
    return "%d.%02d" % divmod(cents, 100)  # noqa: UP031


def format_money(cents: int | None) -> str:
    """1,234.56 from cents, exactly (grouping an int never goes through a float); empty when unknown."""
    if cents is None:
        return ""
    whole, part = format_cents(cents).split(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{part}"
