"""A reconciliation's period at its edges, pure: which days a data interval covers in any time zone, which
objects a period compares (an invoice dated the last day of a month belongs to that month, a payment dated
the first day of the next to the next), and the balances a period that has ended leaves out, saying why."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pendulum
import pytest
from test_reconciliation_checks import (
    CUSTOMERS,
    INVOICES,
    PAYMENTS,
    QBO_INVOICES,
    QBO_PAYMENTS,
    STATE,
    VERDICTS,
    exceptions,
    frame,
    synced,
    totals,
)

from taxdome_qbo.core import reconciliation_checks as checks
from taxdome_qbo.core.reconciliation import run_check
from taxdome_qbo.core.reconciliation_findings import ReconciliationSettings
from taxdome_qbo.core.reconciliation_period import EmptyInterval, balances_left_out, period_of_interval
from taxdome_qbo.core.report_html import ReconciliationReport, SummaryRow, render_html

JANUARY = (date(2026, 1, 1), date(2026, 1, 31))


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [
        ("UTC", _utc(2026, 1, 1), _utc(2026, 2, 1)),
        # West of UTC a month starts at 05:00 UTC; east of it on the last day of the month before.
        ("America/New_York", _utc(2026, 1, 1, 5), _utc(2026, 2, 1, 5)),
        ("Asia/Tokyo", _utc(2025, 12, 31, 15), _utc(2026, 1, 31, 15)),
        ("Asia/Kolkata", _utc(2025, 12, 31, 18, 30), _utc(2026, 1, 31, 18, 30)),
    ],
)
def test_a_months_interval_is_that_month_in_the_timetables_time_zone(zone, start, end):
    assert period_of_interval(start, end, pendulum.timezone(zone)) == JANUARY
    # Pendulum's own DateTimes, as Airflow's context gives them, say the same.
    assert (
        period_of_interval(pendulum.instance(start), pendulum.instance(end), pendulum.timezone(zone))
        == JANUARY
    )


def test_a_month_across_a_daylight_saving_change_keeps_all_its_days():
    new_york = pendulum.timezone("America/New_York")
    march = pendulum.datetime(2026, 3, 1, tz=new_york), pendulum.datetime(2026, 4, 1, tz=new_york)
    assert (march[1] - march[0]) != timedelta(days=31)  # 31 days less the hour the clocks skip
    assert period_of_interval(*march, new_york) == (date(2026, 3, 1), date(2026, 3, 31))


def test_only_days_that_begin_inside_the_interval_belong_to_it():
    utc = pendulum.timezone("UTC")
    # From 02:00 on the 1st to 02:00 on the 1st of the next month: the 1st began before, the next 1st inside.
    assert period_of_interval(_utc(2026, 1, 1, 2), _utc(2026, 2, 1, 2), utc) == (
        date(2026, 1, 2),
        date(2026, 2, 1),
    )
    assert period_of_interval(_utc(2026, 1, 31), _utc(2026, 2, 1), utc) == (
        date(2026, 1, 31),
        date(2026, 1, 31),
    )
    with pytest.raises(EmptyInterval, match="no day begins"):
        period_of_interval(_utc(2026, 1, 31, 1), _utc(2026, 2, 1), utc)


# An invoice dated the last day of January, paid by a payment dated the first day of February, and an
# invoice of February 1. QuickBooks holds all three; the January invoice's balance there is wrong (still open).
SOURCES = {
    "taxdome.invoices": frame(
        INVOICES,
        ("I1", "INV-1", "A1", "2026-01-31", "Paid", 0, 10000),
        ("I2", "INV-2", "A1", "2026-02-01", "Open", 0, 5000),
    ),
    "taxdome.payments": frame(PAYMENTS, ("P1", "A1", "2026-02-01", 10000, "card", "stripe", 320)),
    "taxdome.applications": frame("payment_id invoice_id amount_cents", ("P1", "I1", 10000)),
    "verdicts": frame(
        VERDICTS,
        ("invoice", "I1", "synced", "created", None),
        ("invoice", "I2", "synced", "created", None),
        ("payment", "P1", "synced", "created", None),
    ),
    "state": frame(
        STATE,
        synced("account", "A1", "Customer", "1"),
        synced("invoice", "I1", "Invoice", "10"),
        synced("invoice", "I2", "Invoice", "11"),
        synced("payment", "P1", "Payment", "20"),
        synced("fee", "P1", "Purchase", "30"),
    ),
    "qbo.invoices": frame(
        QBO_INVOICES,
        ("10", "taxdome:invoice:I1", "2026-01-31", "1", 10000, 0, 10000),
        ("11", "taxdome:invoice:I2", "2026-02-01", "1", 5000, 0, 5000),
    ),
    "qbo.payments": frame(QBO_PAYMENTS, ("20", "taxdome:payment:P1", "2026-02-01", "1", 10000, "35")),
    "qbo.payment_links": frame("payment_id txn_type txn_id amount_cents", ("20", "Invoice", "10", 10000)),
    "qbo.purchases": frame(
        "qbo_id marker txn_date expense_account_id total_cents",
        ("30", "taxdome:fee:P1", "2026-02-01", "60", 320),
    ),
    "qbo.customers": frame(CUSTOMERS, ("1", "taxdome:account:A1", "A1", 15000)),
}
READ_BACK_ON = date(2026, 3, 5)
JANUARY_CLOSED = ReconciliationSettings(period_from=JANUARY[0], period_to=JANUARY[1], as_of=READ_BACK_ON)
FEBRUARY_CLOSED = replace(JANUARY_CLOSED, period_from=date(2026, 2, 1), period_to=date(2026, 2, 28))
TO_TODAY = replace(JANUARY_CLOSED, period_to=READ_BACK_ON)


def test_an_invoice_dated_the_last_day_of_a_month_belongs_to_that_month_and_its_next_day_payment_to_the_next():
    january_invoices = run_check(checks.invoices, SOURCES, JANUARY_CLOSED)
    february_invoices = run_check(checks.invoices, SOURCES, FEBRUARY_CLOSED)
    january_payments = run_check(checks.payments, SOURCES, JANUARY_CLOSED)
    february_payments = run_check(checks.payments, SOURCES, FEBRUARY_CLOSED)

    assert totals(january_invoices, "invoiced") == {"2026-01": (10000, 10000), "total": (10000, 10000)}
    assert totals(february_invoices, "invoiced") == {"2026-02": (5000, 5000), "total": (5000, 5000)}
    assert (january_invoices.in_scope, february_invoices.in_scope) == ({"invoice": 1}, {"invoice": 1})
    assert january_payments.in_scope == {"payment": 0} and totals(january_payments, "collected_gross") == {}
    assert totals(february_payments, "collected_gross") == {
        "2026-02": (10000, 10000),
        "total": (10000, 10000),
    }
    assert totals(february_payments, "net") == {
        "2026-02": (9680, 9680),
        "2026-02-01": (9680, 9680),
        "total": (9680, 9680),
    }
    assert [
        exceptions(f) for f in (january_invoices, february_invoices, january_payments, february_payments)
    ] == [
        [],
        [],
        [],
        [],
    ]


def test_a_closed_period_leaves_balances_out_and_a_period_running_to_the_read_back_compares_them():
    closed_invoices = run_check(checks.invoices, SOURCES, JANUARY_CLOSED)
    closed_customers = run_check(checks.customer_balances, SOURCES, JANUARY_CLOSED)
    open_invoices = run_check(checks.invoices, SOURCES, TO_TODAY)
    open_customers = run_check(checks.customer_balances, SOURCES, TO_TODAY)

    assert exceptions(closed_invoices) == [] and totals(closed_customers, "customer_balance") == {}
    assert set(closed_invoices.summary()["measure"]) == {"invoiced", "tax"}
    # QuickBooks still has the January invoice open: seen only where balances are compared.
    assert exceptions(open_invoices) == [
        ("amount_mismatch", False, "invoice", "I1", "10", "balance", 0, 10000, -10000,
         "paid in TaxDome, open in QuickBooks"),
    ]  # fmt: skip
    assert totals(open_customers, "customer_balance") == {"total": (5000, 15000)}


@pytest.mark.parametrize(
    ("period_to", "as_of", "left_out"),
    [
        (date(2026, 1, 31), date(2026, 2, 1), True),  # read back the day after the period: moved since
        (date(2026, 1, 31), date(2026, 1, 31), False),  # read back on its last day: the period's own balances
        (date(2026, 12, 31), date(2026, 3, 5), False),  # a period running past the read-back
        (None, date(2026, 3, 5), False),
        (date(2026, 1, 31), None, False),
    ],
)
def test_balances_are_left_out_exactly_when_the_period_ended_before_quickbooks_was_read(
    period_to, as_of, left_out
):
    reason = balances_left_out(period_to, as_of)
    assert (reason is not None) == left_out
    settings = ReconciliationSettings(period_to=period_to, as_of=as_of)
    assert settings.compares_balances is not left_out
    if left_out:
        assert "Customer balances" in reason and "2026-02-01" in reason and "2026-01-31" in reason


def test_the_report_of_a_closed_period_says_which_balances_it_left_out_and_why():
    def page(period_to: date, summary: tuple[SummaryRow, ...] = ()) -> str:
        report = ReconciliationReport(
            recon_run_id="backfill__2026-01-01T00:00:00+00:00",
            realm_id="123",
            company_name="Firm",
            period_from=JANUARY[0],
            period_to=period_to,
            started_at=datetime(2026, 3, 5, 9, tzinfo=UTC),
            finished_at=datetime(2026, 3, 5, 9, 1, tzinfo=UTC),
            unexplained=0,
            summary=summary,
            exceptions=(),
        )
        return render_html(report)

    assert "Customer balances, invoices&#x27; open balances" in page(JANUARY[1])
    assert "Period: <strong>2026-01-01 to 2026-01-31</strong>" in page(JANUARY[1])
    assert "are left out" not in page(READ_BACK_ON)
    # A run recorded before periods left balances out compared them: its report says nothing is left out.
    compared = (SummaryRow("customer_balance", "total", "", 5000, 5000, 0),)
    assert "are left out" not in page(JANUARY[1], compared)
