"""Which days a reconciliation compares, and what it cannot compare for a period that has ended.

TaxDome and QuickBooks date their transactions by calendar day, without a time. A reconciliation's period is
therefore a range of days, both ends included. A run of `taxdome_qbo_reconcile` scheduled or backfilled by
its timetable gets a data interval `[start, end)` of instants instead; its period is the days that begin
inside that interval, in the timetable's time zone: `[2026-01-01T00:00, 2026-02-01T00:00)` is January 1 to
January 31, so an invoice dated the last day of a month belongs to that month and one dated the first day of
the next to the next.

QuickBooks gives balances (a customer's open balance, an invoice's open balance and the payments applied to
it) only as they stand when it is read back. For a period that ended before that day they would be
figures of a later day, moved by payments after the period's end: such a period's reconciliation leaves
them out and its report says so (`balances_left_out`). The reconciliation after each load, whose period
runs to the day it reads QuickBooks, compares them.
"""

from __future__ import annotations

import datetime as dt

ONE_DAY = dt.timedelta(days=1)


class EmptyInterval(ValueError):
    """A data interval in which no day begins: it has no period to reconcile."""


def _begins_at_midnight(moment: dt.datetime) -> bool:
    return moment.time() == dt.time(0)


def period_of_interval(start: dt.datetime, end: dt.datetime, timezone: dt.tzinfo) -> tuple[dt.date, dt.date]:
    """The first and last day (both included) that begin in the data interval `[start, end)`, midnight taken
    in `timezone` (the timetable's: a month's interval in New York starts at 05:00 UTC and is still that
    month). Raises EmptyInterval when no day begins in it."""
    local_start, local_end = start.astimezone(timezone), end.astimezone(timezone)
    first = local_start.date() if _begins_at_midnight(local_start) else local_start.date() + ONE_DAY
    last = local_end.date() - ONE_DAY if _begins_at_midnight(local_end) else local_end.date()
    if first > last:
        raise EmptyInterval(f"no day begins between {start.isoformat()} and {end.isoformat()} in {timezone}")
    return first, last


def balances_left_out(period_to: dt.date | None, as_of: dt.date | None) -> str | None:
    """Why a reconciliation of a period ending `period_to`, reading QuickBooks on `as_of`, leaves the balances
    out; None when it compares them (the period runs to that day or later, or either is unknown)."""
    if period_to is None or as_of is None or period_to >= as_of:
        return None
    return (
        "Customer balances, invoices' open balances and the payments applied to each invoice are left out: "
        f"QuickBooks gives them as of {as_of:%Y-%m-%d}, when it was read back, not as of the period's end "
        f"({period_to:%Y-%m-%d}), and payments after that day move them. The reconciliation after each sync "
        "compares them."
    )
