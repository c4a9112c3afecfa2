"""The use cases of `services.pipeline` without Airflow: a SQLite warehouse, the QBO emulator, a small export,
and plain paths for the landing folder and the reports."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from export_builder import write_export
from load_harness import (
    BASE_FIRM_SETTINGS,
    assert_qbo_matches_sync_state,
    company_for_base_export,
    objects_marked,
    session_for,
)
from quickbooks.objects import Vendor

from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.settings import resolve_settings
from taxdome_qbo.services import loading, pipeline, warehouse

SETTINGS = resolve_settings(BASE_FIRM_SETTINGS, None)
FULL = PlanOptions(export_mode="full", allow_mass_delete=False)


def never_connect():
    raise AssertionError("no session may be opened when there is nothing to write")


def recorded_run(engine, recon_run_id: str):
    runs = warehouse.reconciliation_runs
    with engine.connect() as conn:
        return conn.execute(sa.select(runs).where(runs.c.recon_run_id == recon_run_id)).one()


def tax_in_qbo(engine, recon_run_id: str) -> int:
    summary = warehouse.rpt_reconciliation_summary
    with engine.connect() as conn:
        return conn.execute(
            sa.select(summary.c.qbo_cents).where(
                summary.c.recon_run_id == recon_run_id,
                summary.c.measure == "tax",
                summary.c.period == "total",
            )
        ).scalar_one()


def test_an_export_goes_from_the_landing_folder_to_a_clean_verdict(sqlite_engine, emulator, tmp_path):
    engine = sqlite_engine
    company = company_for_base_export(emulator)
    realm_id = company["realm_id"]
    landing, reports_root = tmp_path / "landing", tmp_path / "reports"
    export = write_export(landing / "2026-01-10")

    assert pipeline.exports_to_stage(engine, export=None, landing=landing) == [export]
    [staged] = pipeline.stage(engine, [export], "sync-1")
    assert (staged["rows_rejected"], staged["export_name"]) == (0, "2026-01-10")
    assert pipeline.exports_to_stage(engine, export=None, landing=landing) == [], "staged: not found again"
    checked = pipeline.check(engine, "sync-1", export_mode="full", home_currency=SETTINGS.home_currency)
    assert checked["critical_failures"] == [] and checked["checks"] == checked["passed"]

    session = session_for(engine, emulator, company)
    planned = pipeline.plan(
        engine, session, SETTINGS, FULL, "sync-1", dry_run=False, reports_root=reports_root
    )
    preview = Path(planned["preview"])
    assert preview.parent == pipeline.run_folder(reports_root, "sync-1")
    assert f"Sync plan for QuickBooks company {realm_id} (plan)" in preview.read_text(encoding="utf-8")
    assert "`python -m taxdome_qbo plan-operations --run-id sync-1` writes" in preview.read_text(
        encoding="utf-8"
    )
    assert not (preview.parent / pipeline.PLAN_OPERATIONS).exists(), "written on demand, not by the plan"
    location = pipeline.write_plan_operations(engine, "sync-1", preview.parent)
    with gzip.open(location, "rt", encoding="utf-8") as handle:
        operations_csv = handle.read().splitlines()
    assert len(operations_csv) == planned["operations"] + 1  # a header, then one row per operation

    loaded = pipeline.load(engine, lambda: session, "sync-1")
    assert loaded.by_kind()["invoice"] == {"created": 2}
    assert loaded.by_kind()["account"] == {"created": 2}
    assert_qbo_matches_sync_state(engine, emulator, realm_id)
    dry = pipeline.plan(engine, session, SETTINGS, FULL, "dry-1", dry_run=True, reports_root=reports_root)
    assert "(dry run: nothing will be written to QuickBooks)" in Path(dry["preview"]).read_text(
        encoding="utf-8"
    )
    with pytest.raises(pipeline.Skipped, match="the plan is only a preview"):
        pipeline.load(engine, never_connect, "dry-1")

    read = pipeline.read_back(engine, session, full_read=True)
    assert read["realm_id"] == realm_id and read["objects"]["Invoice"] == 2
    assert read["sync_fingerprint"]["latest_loaded_at"] is not None
    receipt = pipeline.reconcile(engine, session, SETTINGS, "recon-1")
    assert (receipt["verdict"], receipt["unexplained"]) == ("clean", 0)
    assert receipt["company_name"].startswith("Emulated Company")
    written = pipeline.report(engine, receipt, reports_root, "recon-1")
    assert Path(written["html"]).parent == pipeline.run_folder(reports_root, "recon-1")
    assert recorded_run(engine, "recon-1").report_location == written["html"]
    assert pipeline.verdict(engine, receipt, written, read) is None


def test_the_reconciliation_defaults_its_period_and_decides_where_qbo_keeps_the_tax(
    sqlite_engine, emulator, tmp_path
):
    engine = sqlite_engine
    company = company_for_base_export(emulator)
    pipeline.stage(engine, [write_export(tmp_path / "export")], "sync-1")
    session = session_for(engine, emulator, company)
    pipeline.plan(engine, session, SETTINGS, FULL, "sync-1", dry_run=False, reports_root=tmp_path)
    pipeline.load(engine, lambda: session, "sync-1")
    pipeline.read_back(engine, session, full_read=True)

    pipeline.reconcile(engine, session, SETTINGS, "recon-defaults")
    pipeline.reconcile(
        engine,
        session,
        SETTINGS,
        "recon-january",
        period_from=dt.date(2026, 1, 6),
        period_to=dt.date(2026, 1, 31),
    )
    automated = resolve_settings({**BASE_FIRM_SETTINGS, "automated_sales_tax": True}, None)
    pipeline.reconcile(engine, session, automated, "recon-automated-tax")

    defaults = recorded_run(engine, "recon-defaults")
    assert (defaults.period_from, defaults.period_to) == (
        SETTINGS.sync_start_date,
        dt.datetime.now(dt.UTC).date(),
    )
    january = recorded_run(engine, "recon-january")
    assert (january.period_from, january.period_to) == (dt.date(2026, 1, 6), dt.date(2026, 1, 31))
    # Without automated sales tax the tax is a line of the firm's tax item; with it QBO computes the tax, so
    # a tax item line is not counted as tax.
    assert tax_in_qbo(engine, "recon-defaults") == 2219
    assert tax_in_qbo(engine, "recon-automated-tax") == 0


def test_retry_checks_plans_and_loads_only_what_is_named(sqlite_engine, emulator, tmp_path):
    engine = sqlite_engine
    company = company_for_base_export(emulator)
    realm_id = company["realm_id"]
    pipeline.stage(engine, [write_export(tmp_path / "export")], "sync-1")
    vendor = Vendor()
    vendor.DisplayName = "Zoë Müller"  # the name of account A2: QBO refuses a customer of that name
    vendor.save(qb=emulator.quickbooks(company))

    def retry(selection: loading.Selection | None):
        return pipeline.retry(
            engine,
            realm_id,
            lambda: session_for(engine, emulator, company),
            SETTINGS,
            export_mode="incremental",
            selection=selection,
            reports_root=tmp_path / "reports",
        )

    planned, loaded = retry(None)
    assert planned["run_id"].startswith("retry__")
    # The plan refuses account A2 (its name is a vendor's): it, and what needs it, wait; A1 is loaded.
    assert planned["statuses"]["failed"] == 1
    assert loaded.by_kind()["account"] == {"created": 1}
    assert Path(planned["preview"]).exists()

    vendor.DisplayName = "Zoë Müller (supplier)"
    vendor.save(qb=emulator.quickbooks(company))
    planned, loaded = retry(loading.Selection(frozenset({("account", "A2")})))

    assert (loaded.by_kind()["account"], loaded.by_kind()["invoice"]) == ({"created": 1}, {"created": 1})
    assert loaded.by_kind()["payment"] == {"created": 1}
    assert len(objects_marked(emulator, realm_id, "taxdome:account:A2")) == 1
    assert_qbo_matches_sync_state(engine, emulator, realm_id)
    with engine.connect() as conn:
        checked = conn.execute(
            sa.select(sa.func.count()).where(warehouse.dq_results.c.run_id == planned["run_id"])
        ).scalar()
    assert checked > 0, "the retry checked the staged firm under its own run id"

    planned, loaded = retry(None)
    assert planned["operations"] == 0 and loaded.by_kind() == {}, "nothing left: an empty load"


def test_retry_without_a_connected_company_or_with_critical_data_does_nothing(sqlite_engine, tmp_path):
    engine = sqlite_engine
    pipeline.stage(engine, [write_export(tmp_path / "export")], "sync-1")
    with engine.begin() as conn:  # a fee above its payment: staging refuses it, a check must catch it too
        conn.execute(
            sa.text("UPDATE stg_taxdome__payments SET processing_fee_cents = 50000 WHERE payment_id = 'P1'")
        )

    def retry(realm_id: str | None):
        return pipeline.retry(
            engine,
            realm_id,
            never_connect,
            SETTINGS,
            export_mode="full",
            selection=None,
            reports_root=tmp_path / "reports",
        )

    with pytest.raises(pipeline.Skipped, match="QuickBooks is not connected: nothing is retried"):
        retry(None)
    with pytest.raises(pipeline.Refused, match="critical data-quality checks failed") as refused:
        retry("9130")
    assert "payments.fee_within_amount" in str(refused.value) and "TaxDome ids: P1" in str(refused.value)


def test_a_run_without_plan_is_skipped_before_any_session_is_opened(sqlite_engine):
    with pytest.raises(pipeline.Skipped, match="run manual__1 has no plan"):
        pipeline.load(sqlite_engine, never_connect, "manual__1")


def test_an_export_lacking_a_required_file_is_refused_before_anything_is_staged(sqlite_engine, tmp_path):
    export = write_export(tmp_path / "landing" / "2026-01-10", invoices_csv=None)

    with pytest.raises(pipeline.Refused, match=re.escape("invoices.csv")):
        pipeline.exports_to_stage(sqlite_engine, export=export, landing=tmp_path / "landing")
    with pytest.raises(pipeline.Refused, match=re.escape(f"export {export}:")):
        pipeline.stage(sqlite_engine, [export], "sync-1")
