"""A backfill run's period (core/sync_period.py): which operations and verdicts of a full plan belong to it."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from export_builder import drop_row, replace_row, with_rows
from planning_builder import no_state, staged_firm

from taxdome_qbo.core.planner import Plan, PlanOptions, build_plan
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.core.sync_period import PeriodSelection, SyncPeriod
from taxdome_qbo.core.vocabulary import OPERATION_COLUMNS
from taxdome_qbo.demo.planning import demo_company, state_after_success

JANUARY = SyncPeriod(dt.date(2026, 1, 1), dt.date(2026, 1, 31))
FEBRUARY = SyncPeriod(dt.date(2026, 2, 1), dt.date(2026, 2, 28))
COMPANY = {"items": [("40", "Bookkeeping", True)]}

# I1 posted on January 31, paid by P1 on February 1 (its fee and refund R1 follow); I2 and its payment P2 in
# January; I3 posted in February, paid in advance by P3 dated January 20.
ACROSS_THE_EDGE = {
    "invoices.csv": with_rows(
        "invoices.csv",
        "I3,INV-0003,A2,2026-02-03,,Paid,USD,,95.00,,2026-02-03T09:00:00Z",
    ).replace("I1,INV-0001,A1,2026-01-05", "I1,INV-0001,A1,2026-01-31"),
    "invoice_lines.csv": with_rows("invoice_lines.csv", "I3,1,S2,Bookkeeping,,95.00,1,95.00,false"),
    "payments.csv": with_rows(
        "payments.csv", "P3,A2,2026-01-20,95.00,cash,none,,0,USD,true,,2026-01-20T09:00:00Z"
    ).replace("P1,A1,2026-01-07", "P1,A1,2026-02-01"),
    "payment_applications.csv": with_rows("payment_applications.csv", "P3,I3,95.00"),
    "refunds.csv": replace_row(
        "refunds.csv", "R1,", "R1,P1,A1,2026-01-25,50.00,Goodwill"
    ),  # dated before its payment: it follows the payment
}


def full_plan(staged, state=None, period=None):
    options = PlanOptions(allow_mass_delete=True, period=period)
    return build_plan(
        staged, FirmSettings(), demo_company(**COMPANY), no_state() if state is None else state, options
    )


def period_plan(staged, period, state=None) -> Plan:
    """What a period run records: its operations (as the planning service sends them) and verdicts."""
    selection = PeriodSelection(staged, period)
    kept = []
    plan = build_plan(
        staged,
        FirmSettings(),
        demo_company(**COMPANY),
        no_state() if state is None else state,
        PlanOptions(period=period),
        sink=lambda frame: kept.append(selection.operations(frame)),
    )
    names = selection.needed_names()
    frames = [*kept, *([] if names is None else [names])]
    operations = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(OPERATION_COLUMNS))
    )
    return Plan(operations, selection.statuses(plan.statuses))


def selected(staged, period, state=None):
    """The operations a period run records, and every object's verdict and reason."""
    plan = period_plan(staged, period, state)
    verdicts = plan.statuses
    return keys(plan.operations), {
        (kind, taxdome_id): (status, reason)
        for kind, taxdome_id, status, reason in zip(
            verdicts["taxdome_kind"],
            verdicts["taxdome_id"],
            verdicts["status"],
            verdicts["reason"],
            strict=True,
        )
    }


def keys(frame):
    return set(zip(frame["taxdome_kind"], frame["taxdome_id"], strict=True))


@pytest.fixture
def firm(tmp_path):
    return staged_firm(tmp_path / "export", **ACROSS_THE_EDGE)


def test_an_invoice_of_the_last_day_is_in_its_month_and_its_next_day_payment_in_the_next(firm):
    january, january_verdicts = selected(firm, JANUARY)
    february, february_verdicts = selected(firm, FEBRUARY)
    assert january == {
        ("account", "A1"),
        ("account", "A2"),
        ("service", "S1"),
        ("service", "S2"),
        ("invoice", "I1"),
        ("invoice", "I2"),
        ("payment", "P2"),
    }
    # P1 (February 1) pays I1; its fee and its refund follow it; P3, paid ahead on January 20 for an invoice
    # posted in February, lands with that invoice; February needs customers and items January created.
    assert february == {
        ("account", "A1"),
        ("account", "A2"),
        ("service", "S2"),
        ("invoice", "I3"),
        ("payment", "P1"),
        ("payment", "P3"),
        ("fee", "P1"),
        ("refund", "R1"),
    }
    waiting = {key: reason for key, (status, reason) in january_verdicts.items() if status == "not_synced"}
    assert set(waiting) == {("payment", "P1"), ("payment", "P3"), ("refund", "R1"), ("invoice", "I3")}
    assert waiting[("payment", "P3")].startswith("dated 2026-02-03, outside this backfill run's period")
    assert january_verdicts[("invoice", "I1")][0] == january_verdicts[("payment", "P2")][0] == "synced"
    waiting = {key for key, (status, _) in february_verdicts.items() if status == "not_synced"}
    assert waiting == {("invoice", "I1"), ("invoice", "I2"), ("payment", "P2"), ("service", "S1")}


def test_the_months_together_write_exactly_what_one_full_plan_writes(firm):
    full = keys(full_plan(firm).operations)
    january, _ = selected(firm, JANUARY)
    february, _ = selected(firm, FEBRUARY)
    assert january | february == full
    assert january & february == {("account", "A1"), ("account", "A2"), ("service", "S2")}


def test_a_month_planned_again_after_its_load_writes_nothing(firm):
    state = state_after_success(period_plan(firm, JANUARY))
    assert selected(firm, JANUARY, state)[0] == set()
    february = period_plan(firm, FEBRUARY, state)
    assert keys(february.operations) == {
        ("invoice", "I3"),
        ("payment", "P1"),
        ("payment", "P3"),
        ("fee", "P1"),
        ("refund", "R1"),
    }
    state = state_after_success(february, state)
    assert selected(firm, JANUARY, state)[0] == set() and selected(firm, FEBRUARY, state)[0] == set()


def test_a_period_run_deletes_nothing_a_full_run_would(tmp_path):
    synced = staged_firm(tmp_path / "before")
    state = state_after_success(full_plan(synced))
    without_p2 = staged_firm(
        tmp_path / "after",
        **{
            "payments.csv": drop_row("payments.csv", "P2,"),
            "payment_applications.csv": drop_row("payment_applications.csv", "P2,"),
        },
    )
    deletes = full_plan(without_p2, state).operations.query("action == 'delete'")
    assert list(deletes["taxdome_id"]) == ["P2"]
    assert full_plan(without_p2, state, period=JANUARY).operations.query("action == 'delete'").empty


def test_a_period_cannot_end_before_it_begins():
    with pytest.raises(ValueError, match="cannot end"):
        SyncPeriod(dt.date(2026, 2, 1), dt.date(2026, 1, 31))


def test_a_payment_whose_credit_a_later_month_spends_lands_in_that_month(tmp_path):
    # P4 (January 10) is left unapplied: client credit. In February, P5 spends that credit on I4: a full
    # run's P4 links I4, so neither P4 nor its fee can land before February.
    firm = staged_firm(
        tmp_path / "export",
        **{
            "invoices.csv": with_rows(
                "invoices.csv", "I4,INV-0004,A2,2026-02-10,,Paid,USD,,95.00,,2026-02-10T09:00:00Z"
            ),
            "invoice_lines.csv": with_rows("invoice_lines.csv", "I4,1,S2,Bookkeeping,,95.00,1,95.00,false"),
            "payments.csv": with_rows(
                "payments.csv",
                "P4,A2,2026-01-10,100.00,card,stripe,ch_4,3.20,USD,true,,2026-01-10T09:00:00Z",
                "P5,A2,2026-02-10,95.00,credit_balance,none,,0,USD,true,,2026-02-10T09:00:00Z",
            ),
            "payment_applications.csv": with_rows("payment_applications.csv", "P5,I4,95.00"),
        },
    )
    p4 = period_plan(firm, FEBRUARY).operations.query("taxdome_id == 'P4'")
    assert "@invoice:I4" in p4["payload"].iloc[0]
    january, verdicts = selected(firm, JANUARY)
    assert not {("payment", "P4"), ("fee", "P4")} & january  # its fee follows it
    assert verdicts[("payment", "P4")][1].startswith("dated 2026-02-10, outside")
    assert {("payment", "P4"), ("fee", "P4")} <= selected(firm, FEBRUARY)[0]
