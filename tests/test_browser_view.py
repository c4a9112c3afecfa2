"""The TaxDome ↔ QuickBooks view in headless Chromium, as people use it: logged in through Airflow's login
page, opened from the UI's navigation (the view is embedded in an iframe), on the demo firm of
tests/demo_firm.py. Every number a page shows is compared with the warehouse; the editor retries the failed
account and downloads the reports, the viewer sees no action and is refused one.

Each test keeps a screenshot of every page it visits in tests/artifacts/test_browser_view/<test>/;
`make screenshots` also writes the README's pictures of the pages to docs/screenshots/.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlsplit

import openpyxl
import pytest
import sqlalchemy as sa
from browser import logged_in_page, open_nav_entry, screenshot, table_cells, wait_until_settled
from playwright.sync_api import Frame, expect

from taxdome_qbo.core.money import format_cents
from taxdome_qbo.services import ui_reports, warehouse

pytestmark = pytest.mark.deployment

VIEW = "TaxDome ↔ QuickBooks"
RETRY_TIMEOUT_MS = 120_000


def open_view(chromium, airflow_ui, user: str) -> Frame:
    """Log in as `user`, open the view from the navigation: the frame that shows its Overview."""
    view = open_nav_entry(logged_in_page(chromium, airflow_ui, user), VIEW)
    expect(title(view, "Overview")).to_be_visible()
    return view


def title(view: Frame, text: str):
    return view.get_by_role("heading", name=text, level=1, exact=True)


def follow(view: Frame, link: str, page_title: str) -> None:
    """Click `link` in the view's own navigation and wait for the page it opens."""
    view.locator("nav").get_by_role("link", name=link, exact=True).click()
    expect(title(view, page_title)).to_be_visible()
    wait_until_settled(view)


def table_after(heading: str) -> str:
    """The selector of the first table after the section heading `heading`."""
    return f"xpath=//h2[normalize-space()='{heading}']/following-sibling::table[1]"


def object_row(view: Frame, taxdome_id: str):
    """The row of the object `taxdome_id` on the Sync issues page."""
    return view.locator("#objects tr").filter(has=view.get_by_role("cell", name=taxdome_id, exact=True))


def query(engine, statement) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(statement).all()


def money(cents: int | None) -> str:
    return "" if cents is None else format_cents(int(cents))


def latest_run(engine, *, loaded: bool) -> str:
    """The newest planned (or loaded) sync run: what the Overview shows, whichever test retried first."""
    runs = warehouse.sync_plan_runs
    newest = sa.select(runs.c.run_id).order_by(runs.c.planned_at.desc()).limit(1)
    (run,) = query(engine, newest.where(runs.c.loaded_at.is_not(None)) if loaded else newest)
    return run.run_id


def assert_export_loads_shown(view: Frame, engine) -> None:
    """The latest export's per-file counts are the batch's, and its quarantined rows those staging kept."""
    files = warehouse.export_batch_files
    (batch,) = query(engine, sa.select(warehouse.export_batches.c.batch_id))
    staged = {
        row.source_file: [str(row.rows_read), str(row.rows_staged), str(row.rows_rejected)]
        for row in query(engine, sa.select(files).where(files.c.batch_id == batch.batch_id))
    }
    shown = {file: counts for file, *counts in table_cells(view, "#exports table >> nth=1")}
    assert shown == staged
    rejected = warehouse.rejected_rows
    kept = query(engine, sa.select(rejected.c.source_file, sa.func.count()).group_by(rejected.c.source_file))
    assert {file: int(counts[2]) for file, counts in shown.items() if counts[2] != "0"} == dict(kept)


def assert_plan_and_load_shown(view: Frame, engine) -> None:
    """Operations and amounts per kind and action of the latest plan, outcomes per kind of the latest load."""
    plan = warehouse.sync_plan
    planned = query(
        engine,
        sa.select(plan.c.taxdome_kind, plan.c.action, sa.func.count(), sa.func.sum(plan.c.amount_cents))
        .where(plan.c.run_id == latest_run(engine, loaded=False))
        .group_by(plan.c.taxdome_kind, plan.c.action)
        .order_by(plan.c.taxdome_kind, plan.c.action),
    )
    assert table_cells(view, "#plan table") == [
        [kind, action, str(operations), money(amount)] for kind, action, operations, amount in planned
    ]
    runs = warehouse.sync_plan_runs
    (receipt,) = query(
        engine, sa.select(runs.c.load_receipt).where(runs.c.run_id == latest_run(engine, loaded=True))
    )
    loaded = json.loads(receipt.load_receipt)
    outcomes = sorted({outcome for by_kind in loaded["outcomes"].values() for outcome in by_kind})
    assert table_cells(view, "#load table") == [
        [kind, *(str(by_kind.get(outcome, 0)) for outcome in outcomes)]
        for kind, by_kind in loaded["outcomes"].items()
    ]
    expect(view.locator("#load")).to_contain_text(f"{loaded['requests']} requests")


def assert_reconciliation_shown(view: Frame, engine, recon_run_id: str) -> None:
    """The unexplained exceptions counted, and the totals of the whole period per measure."""
    exceptions = warehouse.rpt_reconciliation_exceptions
    ((unexplained,),) = query(
        engine,
        sa.select(sa.func.count()).where(
            exceptions.c.recon_run_id == recon_run_id, sa.not_(exceptions.c.explained)
        ),
    )
    assert unexplained
    expect(view.locator("#reconciliation")).to_contain_text(f"{unexplained} unexplained difference(s)")
    summary = warehouse.rpt_reconciliation_summary
    totals = query(
        engine,
        sa.select(
            summary.c.measure, summary.c.taxdome_cents, summary.c.qbo_cents, summary.c.difference_cents
        ).where(
            summary.c.recon_run_id == recon_run_id, summary.c.period == "total", summary.c.dimension == ""
        ),
    )
    assert sorted(table_cells(view, "#reconciliation table")) == sorted(
        [measure, money(ours), money(theirs), money(difference)]
        for measure, ours, theirs, difference in totals
    )


def test_the_editor_opens_the_view_from_the_navigation_and_sees_the_warehouses_numbers(
    airflow_ui, chromium, demo_firm
):
    engine = demo_firm.engine
    view = open_view(chromium, airflow_ui, "editor")
    screenshot(view.page, "1-overview", docs_name="overview")

    company = demo_firm.company
    expect(view.locator("#connection")).to_contain_text(
        f"Company {company['company_name']}, realm {company['realm_id']}: connected since"
    )
    expect(view.locator("nav")).to_contain_text("signed in as editor")
    assert_export_loads_shown(view, engine)
    assert_plan_and_load_shown(view, engine)
    assert_reconciliation_shown(view, engine, demo_firm.recon_run_id)

    run_id = latest_run(engine, loaded=False)
    view.locator("#plan").get_by_role("link", name=run_id).click()
    expect(title(view, f"Sync run {run_id}")).to_be_visible()
    wait_until_settled(view)
    assert unquote(urlsplit(view.url).path) == f"/taxdome-qbo/sync-runs/{run_id}"
    screenshot(view.page, "2-sync-run", docs_name="sync-run")
    status = warehouse.sync_object_status
    verdicts = query(
        engine,
        sa.select(status.c.taxdome_kind, status.c.status, sa.func.count())
        .where(status.c.run_id == run_id)
        .group_by(status.c.taxdome_kind, status.c.status),
    )
    assert sorted(table_cells(view, table_after("Verdicts"))) == sorted(
        [kind, verdict, str(objects)] for kind, verdict, objects in verdicts
    )


def test_the_quarantine_and_data_quality_pages_show_the_warehouses_rows(airflow_ui, chromium, demo_firm):
    engine = demo_firm.engine
    view = open_view(chromium, airflow_ui, "editor")

    follow(view, "Quarantine", "Quarantine")
    screenshot(view.page, "1-quarantine", docs_name="quarantine")
    rejected = warehouse.rejected_rows
    refused = query(engine, sa.select(rejected.c.source_file, rejected.c.source_line, rejected.c.reason))
    expect(view.get_by_text(f"{len(refused)} row(s), page 1 of 1.")).to_be_visible()
    shown = table_cells(view, "#rejected")
    assert Counter((file, int(line), reason) for _, file, line, reason, _ in shown) == Counter(
        (row.source_file, row.source_line, row.reason) for row in refused
    )
    with view.page.expect_download() as download:
        view.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == "quarantine.csv"
    downloaded = Path(download.value.path()).read_bytes().decode("utf-8")  # its \r\n kept
    header, *rows = list(csv.reader(io.StringIO(downloaded)))
    assert header == ui_reports.QUARANTINE_CSV_HEADER and len(rows) == len(refused)
    assert downloaded == "".join(ui_reports.rejected_rows_csv(engine))

    follow(view, "Data quality", "Data quality")
    screenshot(view.page, "2-data-quality", docs_name="data-quality")
    results = warehouse.dq_results
    checked = query(
        engine,
        sa.select(
            results.c.run_id,
            sa.func.count(),
            sa.func.sum(sa.case((results.c.success, 0), else_=1)),
            sa.func.sum(sa.case((sa.and_(~results.c.success, results.c.severity == "critical"), 1), else_=0)),
        ).group_by(results.c.run_id),
    )
    runs = table_cells(view, "#runs")
    assert sorted([run, *counts] for run, _checked_at, *counts in runs) == sorted(
        [run_id, str(checks), str(failed), str(critical)] for run_id, checks, failed, critical in checked
    )
    newest = runs[0][0]
    expect(view.locator("#runs strong")).to_have_text(newest)  # the run whose checks are shown
    expected = query(
        engine,
        sa.select(results.c.check_name, results.c.table_name, results.c.severity, results.c.success).where(
            results.c.run_id == newest
        ),
    )
    assert sorted(row[:4] for row in table_cells(view, "#checks")) == sorted(
        [name, table, severity, "passed" if success else "failed"]
        for name, table, severity, success in expected
    )


def test_the_editor_reads_a_reconciliation_its_html_report_and_its_workbook(
    airflow_ui, chromium, demo_firm, tmp_path
):
    engine, recon_run_id = demo_firm.engine, demo_firm.recon_run_id
    view = open_view(chromium, airflow_ui, "editor")

    follow(view, "Reconciliation", "Reconciliation")
    screenshot(view.page, "1-runs", docs_name="reconciliation-runs")
    runs = warehouse.reconciliation_runs
    (run,) = query(engine, sa.select(runs))
    ((shown_id, realm, _period, _started, _finished, verdict, unexplained),) = table_cells(view, "#runs")
    assert (shown_id, realm, verdict, unexplained) == (
        recon_run_id,
        demo_firm.company["realm_id"],
        run.verdict,
        str(run.unexplained),
    )

    view.locator("#runs").get_by_role("link", name=recon_run_id).click()
    expect(title(view, f"Reconciliation {recon_run_id}")).to_be_visible()
    wait_until_settled(view)
    expect(view.locator("#verdict")).to_contain_text(
        f"differences, {run.unexplained} unexplained difference(s)"
    )
    screenshot(view.page, "2-run")
    exceptions = warehouse.rpt_reconciliation_exceptions
    classes = query(
        engine,
        sa.select(exceptions.c.difference_class, exceptions.c.explained, sa.func.count())
        .where(exceptions.c.recon_run_id == recon_run_id)
        .group_by(exceptions.c.difference_class, exceptions.c.explained),
    )
    assert sorted(table_cells(view, "#classes")) == sorted(
        [name, "yes" if explained else "no", str(count)] for name, explained, count in classes
    )

    chosen, _, count = min(c for c in classes if not c.explained)
    view.get_by_label("Class").select_option(chosen)
    view.get_by_role("button", name="Show").click()
    view.wait_for_url(re.compile(rf"class={chosen}"))
    wait_until_settled(view)
    expect(view.get_by_text(re.compile(rf"^{count} exception\(s\)"))).to_be_visible()
    assert {row[0] for row in table_cells(view, "#exceptions")} == {chosen}
    screenshot(view.page, f"3-only-{chosen}", docs_name="reconciliation-run")

    with view.page.expect_download() as download:
        view.get_by_role("link", name="report.xlsx").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".xlsx"
    workbook = openpyxl.load_workbook(saved)
    assert {"Run", "Summary"} <= set(workbook.sheetnames)
    facts = dict(workbook["Run"].iter_rows(min_row=2, max_col=2, values_only=True))
    assert facts["Unexplained differences"] == run.unexplained
    assert facts["Reconciliation run"] == recon_run_id

    view.get_by_role("link", name="report.html").click()
    view.wait_for_url(re.compile(r"/report\.html$"))
    wait_until_settled(view)
    expect(view.get_by_role("heading", level=1)).to_have_text("Reconciliation: TaxDome vs QuickBooks Online")
    report = view.locator("body")
    expect(report).to_contain_text(f"Company: {demo_firm.company['company_name']}")
    expect(report).to_contain_text(f"{run.unexplained} unexplained differences")
    screenshot(view.page, "4-report", docs_name="report")


def test_the_viewer_sees_no_action_and_is_refused_one(airflow_ui, chromium, demo_firm):
    view = open_view(chromium, airflow_ui, "viewer")
    expect(view.locator("nav")).to_contain_text("signed in as viewer (view only)")
    follow(view, "Sync issues", "Sync issues")
    expect(view.locator("#objects td.failed").first).to_be_visible()  # a failed object, and no button
    screenshot(view.page, "sync-issues")

    assert view.locator("form[method=post]").count() == 0
    assert view.get_by_role("button").all_inner_texts() == ["Show"]  # the filter, nothing else
    refused = view.evaluate(
        """async target => {
            const answer = await fetch("/taxdome-qbo/sync-issues/retry", {method: "POST", body: new URLSearchParams(target)});
            return {status: answer.status, detail: (await answer.json()).detail};
        }""",
        {"scope": "object", "target": f"account:{demo_firm.failed_accounts()[0]}"},
    )
    assert refused == {"status": 403, "detail": "only users who may edit the taxdome_qbo_sync DAG may act"}
    actions = warehouse.ui_actions
    assert query(demo_firm.engine, sa.select(actions).where(actions.c.user_name == "viewer")) == []


def test_the_editor_retries_the_failed_account_once_its_cause_is_fixed(
    airflow_ui, chromium, demo_firm, emulator
):
    view = open_view(chromium, airflow_ui, "editor")
    follow(view, "Sync issues", "Sync issues")
    (failed,) = demo_firm.failed_accounts()
    row = object_row(view, failed)
    expect(row).to_contain_text(
        f"the name '{demo_firm.failing_vendor.DisplayName}' belongs to a QuickBooks vendor"
    )
    screenshot(view.page, "1-failed", docs_name="sync-issues")

    vendor = demo_firm.failing_vendor
    vendor.DisplayName = f"{vendor.DisplayName} (supplier)"
    vendor.save(qb=emulator.quickbooks(demo_firm.company))
    row.get_by_role("button", name="Retry", exact=True).click()

    # The retry plans and loads in the api-server's background; the page refreshes itself until it is done.
    expect(view.locator("#actions")).to_contain_text("account: created 1", timeout=RETRY_TIMEOUT_MS)
    _when, who, action, target, outcome = table_cells(view, "#actions")[0]
    assert (who, action, target) == ("editor", "retry", f"account:{failed}")
    assert "account: created 1" in outcome
    status = warehouse.sync_object_status
    runs = warehouse.sync_plan_runs
    ((retry_run, verdict),) = query(
        demo_firm.engine,
        sa.select(status.c.run_id, status.c.status)
        .join(runs, runs.c.run_id == status.c.run_id)
        .where(status.c.taxdome_kind == "account", status.c.taxdome_id == failed)
        .order_by(runs.c.planned_at.desc())
        .limit(1),
    )
    assert retry_run.startswith("retry__") and verdict == "synced"
    expect(object_row(view, failed)).to_have_count(0)
    view.locator("#actions").scroll_into_view_if_needed()
    screenshot(view.page, "2-retried")

    view.get_by_label("Category").select_option("accounts")
    view.get_by_label("Status").select_option("synced")
    view.get_by_role("button", name="Show").click()
    view.wait_for_url(re.compile(r"category=accounts&status=synced"))
    wait_until_settled(view)
    expect(object_row(view, failed)).to_contain_text("synced")
    screenshot(view.page, "3-synced")
