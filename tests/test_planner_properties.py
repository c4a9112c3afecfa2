"""Invariants of the planner over generated firms (hypothesis draws the firm and the settings)."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd
from export_builder import validate_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_builder import no_state

from taxdome_qbo.core.planner import PlanOptions, build_plan
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.core.vocabulary import REAL_MONEY_METHODS, StagedFirm
from taxdome_qbo.demo import generate_export
from taxdome_qbo.demo.planning import demo_company as qbo_company
from taxdome_qbo.demo.planning import state_after_success as state_after

firm_settings = st.builds(
    FirmSettings,
    account_scope=st.sampled_from(["with_activity", "all"]),
    sync_start_date=st.sampled_from([None, dt.date(2025, 6, 1), dt.date(2026, 1, 1)]),
    integration_date=st.sampled_from([None, dt.date(2025, 7, 1)]),
    sync_payments=st.booleans(),
    automated_sales_tax=st.booleans(),
)


def generated_firm(seed: int, accounts: int) -> StagedFirm:
    with tempfile.TemporaryDirectory() as folder:
        generate_export(Path(folder) / "export", accounts=accounts, seed=seed)
        validated = validate_folder(Path(folder) / "export")
    return StagedFirm(**{name: validated[name].staged for name in StagedFirm.__dataclass_fields__})


def planned_cents(plan, kind: str, action: str = "create") -> int:
    rows = plan.operations[(plan.operations["taxdome_kind"] == kind) & (plan.operations["action"] == action)]
    return int(rows["amount_cents"].sum())


def synced_ids(plan, kind: str) -> set[str]:
    statuses = plan.statuses
    return set(statuses[(statuses["taxdome_kind"] == kind) & (statuses["status"] == "synced")]["taxdome_id"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), accounts=st.integers(3, 25), firm=firm_settings)
def test_plan_invariants(seed, accounts, firm):
    staged = generated_firm(seed, accounts)
    company = qbo_company(items=[("40", "Bookkeeping", True)])
    plan = build_plan(staged, firm, company, no_state())

    # Every staged object has exactly one status.
    expected = {("account", i) for i in staged.accounts["account_id"]} | {
        ("service", i) for i in staged.services["service_id"]
    }
    expected |= {("invoice", i) for i in staged.invoices["invoice_id"]} | {
        ("payment", i) for i in staged.payments["payment_id"]
    }
    expected |= {("refund", i) for i in staged.refunds["refund_id"]}
    keys = list(zip(plan.statuses["taxdome_kind"], plan.statuses["taxdome_id"], strict=True))
    assert len(keys) == len(set(keys)) and set(keys) == expected

    # Money is conserved: what is planned is exactly what TaxDome says for the synced objects.
    invoices = staged.invoices.set_index("invoice_id")
    assert planned_cents(plan, "invoice") == int(
        invoices.loc[sorted(synced_ids(plan, "invoice")), "total_cents"].sum()
    )
    payments = staged.payments.set_index("payment_id")
    money_payments = payments[payments["method"].isin(REAL_MONEY_METHODS)]
    synced_money = money_payments.loc[sorted(synced_ids(plan, "payment") & set(money_payments.index))]
    assert planned_cents(plan, "payment") == int(synced_money["amount_cents"].sum())
    assert planned_cents(plan, "fee") == int(synced_money["processing_fee_cents"].sum())
    refunds = staged.refunds.set_index("refund_id")
    assert planned_cents(plan, "refund") == int(
        refunds.loc[sorted(synced_ids(plan, "refund")), "amount_cents"].sum()
    )
    for row in plan.operations[plan.operations["taxdome_kind"] == "invoice"].itertuples():
        lines = json.loads(row.payload)["Line"]
        tax = json.loads(row.payload).get("TxnTaxDetail", {}).get("TotalTax", "0")
        assert (
            sum(round(float(line["Amount"]) * 100) for line in lines) + round(float(tax) * 100)
            == row.amount_cents
        )

    # Nothing of an opted-out account or dated before the sync date is planned.
    opted_out = set(staged.accounts.loc[staged.accounts["qbo_sync"] == "do_not_sync", "account_id"])
    planned = plan.operations
    for kind, frame, key, date_column in (
        ("invoice", staged.invoices, "invoice_id", "posted_date"),
        ("payment", staged.payments, "payment_id", "payment_date"),
        ("refund", staged.refunds, "refund_id", "refund_date"),
    ):
        ids = set(planned.loc[planned["taxdome_kind"] == kind, "taxdome_id"])
        rows = frame[frame[key].isin(ids)]
        assert not set(rows["account_id"]) & opted_out
        if firm.sync_start_date:
            assert (rows[date_column].astype(str) >= firm.sync_start_date.isoformat()).all()
    assert not set(planned.loc[planned["taxdome_kind"] == "account", "taxdome_id"]) & opted_out

    # Sent to a sink as they are planned, the operations are the same, with the same order (seq).
    sent = []
    build_plan(staged, firm, company, no_state(), sink=sent.append)
    received = pd.concat(sent).sort_values("seq", ignore_index=True) if sent else plan.operations.head(0)
    pd.testing.assert_frame_equal(received, plan.operations)

    # A second plan after a successful sync of the first has nothing to do.
    again = build_plan(staged, firm, company, state_after(plan), PlanOptions())
    assert again.operations.empty, again.operations[["taxdome_kind", "taxdome_id", "action", "reason"]].head()
