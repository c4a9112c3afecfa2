"""When a sync run need not plan (services/plan_inputs.py, core/plan_inputs.py): the plan's inputs compared
with the last plan's, the load's outcome, the sync state and QuickBooks' change data capture; through
`pipeline.check` and `pipeline.plan` on SQLite and PostgreSQL against the emulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time

import pytest
import sqlalchemy as sa
from export_builder import with_rows, write_export
from load_harness import BASE_FIRM_SETTINGS, company_for_base_export, session_for
from quickbooks.objects.preferences import Preferences

from taxdome_qbo.core import plan_inputs as rules
from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.settings import resolve_settings
from taxdome_qbo.core.sync_period import SyncPeriod
from taxdome_qbo.services import pipeline, plan_inputs, planning, qbo_client, sync_issues, warehouse

SETTINGS = resolve_settings(BASE_FIRM_SETTINGS, None)
FULL = PlanOptions(export_mode="full", allow_mass_delete=False)


@dataclasses.dataclass
class Synced:
    """The base export staged, checked, planned and loaded (run sync-1) into a company of its own."""

    engine: sa.Engine
    emulator: object
    company: dict
    session: qbo_client.QboSession
    tmp_path: object

    def check(self, run_id: str) -> dict:
        return pipeline.check(self.engine, run_id, export_mode="full", home_currency="USD")

    def plan(self, run_id: str, settings=SETTINGS, options=FULL, **flags) -> dict:
        flags.setdefault("dry_run", False)
        return pipeline.plan(
            self.engine, self.session, settings, options, run_id, reports_root=self.tmp_path / "r", **flags
        )

    def skip_reason(self, run_id: str, **kwargs) -> str:
        with pytest.raises(pipeline.Skipped) as skipped:
            self.plan(run_id, **kwargs)
        return str(skipped.value)

    def decision(self, **kwargs) -> plan_inputs.Decision:
        inputs = plan_inputs.plan_inputs(self.engine, self.session.realm_id, SETTINGS, FULL)
        return plan_inputs.decide(self.engine, self.session, inputs, **kwargs)


@pytest.fixture
def synced(warehouse_engine, emulator, tmp_path) -> Synced:
    company = company_for_base_export(emulator)
    # QuickBooks stamps a change in whole seconds: one made in the second the plan begins reading the company
    # is taken for a change after it. The company's set-up is a second older than the plan.
    time.sleep(1)
    pipeline.stage(warehouse_engine, [write_export(tmp_path / "export")], "sync-1")
    session = session_for(warehouse_engine, emulator, company)
    firm = Synced(warehouse_engine, emulator, company, session, tmp_path)
    firm.check("sync-1")
    assert firm.plan("sync-1")["operations"] > 0
    assert pipeline.load(firm.engine, lambda: firm.session, "sync-1").failed == 0
    return firm


def test_the_run_after_a_complete_load_plans_nothing_and_says_why(synced):
    reason = synced.skip_reason("sync-2")
    assert reason.startswith("nothing changed since run sync-1 (planned ")
    assert "10 operation(s) loaded" in reason and "no new export (latest export, 1 staged)" in reason
    # What a plan would find then: nothing to write (the sync's premise, checked on this firm).
    assert synced.plan("forced", even_if_unchanged=True)["operations"] == 0


def test_a_changed_override_plans_again(synced):
    sync_issues.set_override(synced.engine, "payment", "P2", sync=False)
    decision = synced.decision()
    assert decision.plan and "sync overrides: count 0 → 1" in decision.reason


def test_a_write_of_unknown_outcome_or_a_state_written_since_plans_again(synced):
    state = warehouse.qbo_sync_state
    with synced.engine.begin() as conn:
        conn.execute(
            state.update()
            .where(state.c.taxdome_kind == "account", state.c.taxdome_id == "A1")
            .values(updated_at=dt.datetime.now(dt.UTC))
        )
    decision = synced.decision()
    assert decision.plan and "the sync state was written at" in decision.reason
    with synced.engine.begin() as conn:
        conn.execute(state.update().where(state.c.taxdome_id == "A1").values(pending_action="update"))
    assert "1 write(s) to QuickBooks have an unknown outcome" in synced.decision().reason


def test_a_change_of_tax_mode_in_quickbooks_plans_again(synced):
    preferences = Preferences.get(qb=synced.session.client)
    preferences.TaxPrefs.PartnerTaxEnabled = True
    preferences.save(qb=synced.session.client)
    decision = synced.decision()
    assert decision.plan
    assert "QuickBooks settings the plan reads: automated_sales_tax false → true" in decision.reason


def test_quickbooks_changes_cdc_cannot_vouch_for_plan_again(synced, monkeypatch):
    assert (
        "longer ago than QBO's change data capture answers for"
        in synced.decision(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).reason
    )
    # The sync's own customers (created by sync-1's load) are changes CDC reports: at its cap it could
    # have left out someone else's.
    monkeypatch.setattr(qbo_client, "CDC_MAX_OBJECTS", 2)
    assert "QuickBooks reports at least 2 changes since the last plan" in synced.decision().reason


def test_a_dry_run_always_plans_and_leaves_the_next_run_to_plan_what_it_showed(synced, tmp_path):
    assert synced.plan("preview", dry_run=True)["operations"] == 0
    assert not synced.decision().plan, "a preview of nothing leaves nothing to do"

    more = with_rows("invoices.csv", "I3,INV-0003,A2,2026-01-11,,Unpaid,USD,,95.00,,2026-01-11T09:00:00Z")
    lines = with_rows("invoice_lines.csv", "I3,1,S2,Bookkeeping,,95.00,1,95.00,false")
    export = write_export(tmp_path / "export-2", invoices_csv=more, invoice_lines_csv=lines)
    pipeline.stage(synced.engine, [export], "preview-2")
    assert synced.plan("preview-2", dry_run=True)["operations"] == 1
    decision = synced.decision()
    assert (
        decision.plan
        and decision.reason == "run preview-2 was a dry run: its 1 operation(s) were not written"
    )


def test_a_period_or_a_plan_without_recorded_inputs_plans_again(synced):
    january = PlanOptions(export_mode="full", period=SyncPeriod(dt.date(2026, 1, 1), dt.date(2026, 1, 31)))
    inputs = plan_inputs.plan_inputs(synced.engine, synced.session.realm_id, SETTINGS, january)
    decision = plan_inputs.decide(synced.engine, synced.session, inputs)
    assert decision.plan and "plan options: period empty → '2026-01-01 to 2026-01-31'" in decision.reason

    reference = qbo_client.fetch_reference(synced.session)
    planning.plan_sync(synced.engine, reference, SETTINGS, FULL, "by-hand", dry_run=False)
    assert synced.decision().reason == "the last plan (run by-hand) recorded no inputs"


def test_a_run_that_plans_on_an_already_checked_firm_shows_that_checks_results(synced):
    assert synced.check("sync-2")["same_as_run"] == "sync-1"
    dq = warehouse.dq_results

    def results(run_id: str) -> list[tuple]:
        with synced.engine.connect() as conn:
            rows = conn.execute(sa.select(dq).where(dq.c.run_id == run_id).order_by(dq.c.check_name))
            return [row[1:] for row in rows]

    assert results("sync-2") == []
    assert synced.skip_reason("sync-2")  # skipped: writes nothing, not even the checks' results
    assert results("sync-2") == []
    synced.plan("sync-2", settings=dataclasses.replace(SETTINGS, account_scope="all"))
    assert results("sync-2") == results("sync-1") != []


def test_a_new_export_checks_again_and_the_retry_always_plans(synced, tmp_path):
    pipeline.stage(synced.engine, [write_export(tmp_path / "export-2")], "sync-3")
    assert "same_as_run" not in synced.check("sync-3")
    decision = synced.decision()
    assert decision.plan and decision.reason.startswith(
        "changed since run sync-1: staged exports: exports 1 → 2"
    )
    planned, _ = pipeline.retry(
        synced.engine,
        synced.session.realm_id,
        lambda: synced.session,
        SETTINGS,
        export_mode="full",
        selection=None,
        reports_root=tmp_path / "r",
    )
    assert planned["operations"] == 0
    assert synced.decision().reason.startswith(f"nothing changed since run {planned['run_id']}")


def test_differences_name_each_changed_input_in_words():
    before = {"staged": {"exports": 1}, "settings": {"tax_item": "Sales Tax", "fee_paid_from_account": None}}
    now = {"staged": {"exports": 1}, "settings": {"tax_item": "VAT", "fee_paid_from_account": "Checking"}}
    assert rules.differences(before, now) == [
        "firm settings: tax_item 'Sales Tax' → 'VAT', fee_paid_from_account empty → 'Checking'"
    ]
    assert rules.differences({}, {"code": {"sources": "ab"}}) == [
        "the sync's code: empty → {'sources': 'ab'}"
    ]
    assert rules.differences(now, now) == []


def test_only_a_loads_finished_outcomes_leave_nothing_to_do():
    receipt = {"outcomes": {"account": {"created": 2, "linked": 1}, "payment": {"deferred": 3, "failed": 1}}}
    assert rules.left_to_do(receipt) == {"deferred": 3, "failed": 1}
    assert rules.left_to_do({"outcomes": {"invoice": {"already_done": 4, "updated": 1}}}) == {}
    assert rules.left_to_do({"outcomes": {"invoice": {"something_new": 1}}}) == {"something_new": 1}


def test_an_object_is_the_syncs_own_write_only_at_the_version_the_sync_state_recorded():
    changed = {
        "Customer": [
            {"Id": "1", "SyncToken": "0", "DisplayName": "Ours"},
            {"Id": "2", "SyncToken": "3", "DisplayName": "Edited after us"},
            {"Id": "3", "status": "Deleted"},
        ],
        "Account": [{"Id": "9", "SyncToken": "1", "Name": "Checking"}],
    }
    written = {("Customer", "1", "0"), ("Customer", "2", "2")}
    assert rules.foreign_changes(changed, written) == [
        ("Customer", "2", "'Edited after us' edited"),
        ("Customer", "3", "deleted"),
        ("Account", "9", "'Checking' edited"),
    ]


def test_the_change_captured_entities_are_every_name_list_the_plan_reads():
    reference_fields = {f.name for f in dataclasses.fields(qbo_client.QboReference)} - {"realm_id"}
    assert set(rules.CHANGE_CAPTURED) | set(rules.READ_AGAIN) == reference_fields
    assert json.loads(json.dumps(plan_inputs.code_version())) == plan_inputs.code_version()
