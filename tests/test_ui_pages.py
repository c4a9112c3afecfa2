"""The Quarantine, Reconciliation and Data-quality pages, served by the real api-server application to a
viewer, on a firm whose export had bad rows (one carrying markup) and whose reconciliation found differences:
every number on a page is the warehouse's, every value escaped, every download attached."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest
from export_builder import with_rows, write_export
from load_harness import deployment_on_emulator, stage
from markupsafe import escape
from quickbooks.objects import Vendor
from test_ui_reports import RENUMBERED_INVOICE, RENUMBERED_INVOICE_LINE, stray_invoice_in_quickbooks
from ui_server import OUTSIDER, bearer

from taxdome_qbo import dag_tasks
from taxdome_qbo.cli import main as cli_main
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.services import pipeline, ui_reports
from taxdome_qbo.services.ui_reports import QuarantineFilter, ReportFormat

pytestmark = pytest.mark.airflow

SCRIPT = "<script>alert(1)</script>"
# A nameless account (refused by staging) whose e-mail is markup: it must reach the page inert.
HOSTILE_ACCOUNT = f"A9,,Company,{SCRIPT},2025-03-01T10:00:00Z,2026-01-02T10:00:00Z,false,auto,"
UNDATED_INVOICE = "I9,INV-9,A1,notadate,,Paid,USD,,10.00,,2026-01-05T09:00:00Z"
RUN_ID = "sync-ui"
RECON_ID = "recon-ui"
NEW_PATHS = [
    "/taxdome-qbo/quarantine",
    "/taxdome-qbo/quarantine.csv",
    "/taxdome-qbo/reconciliation",
    f"/taxdome-qbo/reconciliation/{RECON_ID}",
    *(f"/taxdome-qbo/reconciliation/{RECON_ID}/{name}" for name in ("report.html", "exceptions.csv")),
    *(f"/taxdome-qbo/reconciliation/{RECON_ID}/{name}" for name in ("summary.csv", "report.xlsx")),
    "/taxdome-qbo/quality",
]


@pytest.fixture(scope="module")
def viewer(api_server) -> dict:
    return bearer(api_server, "victor")


@pytest.fixture
def reconciled_firm(api_server, emulator, warehouse_engine_from_connection, tmp_path, monkeypatch):
    """An export named `=cmd` with two bad rows and a renumbered invoice (a data-quality warning) staged and
    checked, loaded into an emulator company where
    account A2 fails (a vendor has its name) and someone made an invoice by hand, read back, reconciled and
    reported."""
    engine = warehouse_engine_from_connection
    reports_dir = tmp_path / "reports"
    company = deployment_on_emulator(emulator, monkeypatch, reports_dir)
    stage(
        engine,
        write_export(
            tmp_path / "landing" / "=cmd",
            accounts_csv=with_rows("accounts.csv", HOSTILE_ACCOUNT),
            invoices_csv=with_rows("invoices.csv", UNDATED_INVOICE, RENUMBERED_INVOICE),
            invoice_lines_csv=with_rows("invoice_lines.csv", RENUMBERED_INVOICE_LINE),
        ),
    )
    settings = dag_tasks.firm_settings()
    pipeline.check(engine, RUN_ID, export_mode="full", home_currency=settings.home_currency)
    vendor = Vendor()
    vendor.DisplayName = "Zoë Müller"
    vendor.save(qb=emulator.quickbooks(company))
    assert cli_main(["retry", "--all"]) == 1  # A2 fails
    stray_invoice_in_quickbooks(emulator, company)
    session = QuickBooksHook().get_session()
    pipeline.read_back(engine, session, full_read=True)
    receipt = pipeline.reconcile(engine, session, settings, RECON_ID)
    pipeline.report(engine, receipt, reports_dir, RECON_ID)
    return engine


@pytest.mark.parametrize("path", NEW_PATHS)
def test_every_page_wants_credentials(api_server, path):
    assert api_server.get(path).status_code == 401


@pytest.mark.parametrize("path", ["/taxdome-qbo/", "/taxdome-qbo/sync-issues", *NEW_PATHS])
def test_a_user_who_may_not_read_the_taxdome_dags_sees_no_page(api_server, path):
    answer = api_server.get(path, headers=bearer(api_server, OUTSIDER))
    assert answer.status_code == 403
    assert "may read the taxdome_qbo_sync DAG" in answer.json()["detail"]


def test_the_quarantine_page_shows_the_staged_rejects_escaped_and_filters_them(
    api_server, viewer, reconciled_firm
):
    engine = reconciled_firm
    rejected = ui_reports.rejected_rows(engine)
    assert rejected.total == 2
    page = api_server.get("/taxdome-qbo/quarantine", headers=viewer)
    assert page.status_code == 200
    assert "2 row(s), page 1 of 1." in page.text
    for row in rejected.items:
        assert (
            f'<td>{row.source_file}</td><td class="number">{row.source_line}</td>\n'
            f"    <td>{escape(row.reason)}</td>"
        ) in page.text
    assert SCRIPT not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    (batch,) = ui_reports.quarantine_batches(engine)
    assert f'<option value="{batch.batch_id}">=cmd' in page.text
    assert '<option value="accounts.csv">accounts.csv</option>' in page.text

    only_invoices = api_server.get("/taxdome-qbo/quarantine?file=invoices.csv", headers=viewer).text
    assert "1 row(s), page 1 of 1." in only_invoices and "<td>accounts.csv</td>" not in only_invoices
    second = api_server.get("/taxdome-qbo/quarantine?size=1&page=2", headers=viewer).text
    assert "2 row(s), page 2 of 2." in second
    assert f"<td>{rejected.items[1].source_file}</td>" in second
    assert f"<td>{rejected.items[0].source_file}</td>" not in second
    assert api_server.get("/taxdome-qbo/quarantine?page=0", headers=viewer).status_code == 422


def test_the_quarantine_csv_is_attached_with_formulas_made_inert(api_server, viewer, reconciled_firm):
    answer = api_server.get("/taxdome-qbo/quarantine.csv?reason=account_name", headers=viewer)
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == 'attachment; filename="quarantine.csv"'
    assert answer.headers["content-type"].startswith("text/csv")
    header, *rows = list(csv.reader(io.StringIO(answer.text)))
    assert header == ui_reports.QUARANTINE_CSV_HEADER
    expected = "".join(
        ui_reports.rejected_rows_csv(reconciled_firm, QuarantineFilter(reason_contains="account_name"))
    )
    assert answer.text == expected and len(rows) == 1
    assert rows[0][0] == "'=cmd" and rows[0][2] == "accounts.csv"


def test_the_reconciliation_pages_show_the_runs_exceptions_and_quickbooks_links(
    api_server, viewer, reconciled_firm
):
    engine = reconciled_firm
    run = ui_reports.reconciliation_run(engine, RECON_ID)
    assert run.verdict == "differences" and run.unexplained
    runs = api_server.get("/taxdome-qbo/reconciliation", headers=viewer).text
    assert f'<a href="/taxdome-qbo/reconciliation/{RECON_ID}">{RECON_ID}</a>' in runs
    assert f'<td class="failed">differences</td>\n    <td class="number">{run.unexplained}</td>' in runs

    page = api_server.get(f"/taxdome-qbo/reconciliation/{RECON_ID}?size=500", headers=viewer)
    assert page.status_code == 200
    assert f"{run.unexplained} unexplained difference(s)" in page.text
    exceptions = ui_reports.reconciliation_exceptions(engine, RECON_ID, page_size=500)
    assert f"{exceptions.total} exception(s)" in page.text
    linked = [e for e in exceptions.items if e.qbo_link]
    assert linked, "the invoice made by hand links to QuickBooks"
    for e in linked:
        assert f'<a href="{escape(e.qbo_link)}" target="_blank" rel="noopener">' in page.text
    for name in ("report.html", "exceptions.csv", "summary.csv", "report.xlsx"):
        assert f'href="/taxdome-qbo/reconciliation/{RECON_ID}/{name}"' in page.text

    for count in ui_reports.exception_classes(engine, RECON_ID):
        explained = "yes" if count.explained else "no"
        filtered = api_server.get(
            f"/taxdome-qbo/reconciliation/{RECON_ID}?class={count.difference_class}&explained={explained}",
            headers=viewer,
        ).text
        assert f"{count.differences} exception(s)" in filtered
    assert (
        api_server.get(f"/taxdome-qbo/reconciliation/{RECON_ID}?explained=maybe", headers=viewer).status_code
        == 422
    )


def test_the_report_documents_are_served_from_the_stored_report(api_server, viewer, reconciled_firm):
    base = f"/taxdome-qbo/reconciliation/{RECON_ID}"
    report = api_server.get(f"{base}/report.html", headers=viewer)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "script-src" not in report.headers["content-security-policy"]
    assert "default-src 'none'" in report.headers["content-security-policy"]
    assert report.headers["content-disposition"] == "inline"
    stored = Path(ui_reports.reconciliation_run(reconciled_firm, RECON_ID).report_location)
    assert report.content == stored.read_bytes()

    for name, document in (
        ("exceptions.csv", ReportFormat.EXCEPTIONS_CSV),
        ("summary.csv", ReportFormat.SUMMARY_CSV),
        ("report.xlsx", ReportFormat.XLSX),
    ):
        answer = api_server.get(f"{base}/{name}", headers=viewer)
        assert answer.status_code == 200 and answer.headers["content-type"] == document.media_type
        assert answer.headers["content-disposition"].startswith("attachment; filename=")
        assert answer.content == (stored.parent / document.file_name).read_bytes()
    workbook = openpyxl.load_workbook(
        io.BytesIO(api_server.get(f"{base}/report.xlsx", headers=viewer).content)
    )
    assert workbook.sheetnames


@pytest.mark.parametrize(
    "path",
    [
        "/taxdome-qbo/reconciliation/no-such-run",
        "/taxdome-qbo/reconciliation/no-such-run/report.html",
        "/taxdome-qbo/reconciliation/..%2Fx",
        "/taxdome-qbo/reconciliation/..%2Fx/report.html",
        "/taxdome-qbo/reconciliation/../x",
        f"/taxdome-qbo/reconciliation/{RECON_ID}/..%2F..%2Fetc%2Fpasswd",
        f"/taxdome-qbo/reconciliation/{RECON_ID}/report.pdf",
        "/taxdome-qbo/quality?run=no-such-run",
    ],
)
def test_an_unknown_run_is_not_found(api_server, viewer, reconciled_firm, path):
    assert api_server.get(path, headers=viewer).status_code == 404


def test_the_quality_page_shows_a_runs_checks_and_failing_ids(api_server, viewer, reconciled_firm):
    engine = reconciled_firm
    (run,) = [r for r in ui_reports.quality_runs(engine).items if r.run_id == RUN_ID]
    page = api_server.get(f"/taxdome-qbo/quality?run={RUN_ID}", headers=viewer)
    assert page.status_code == 200
    assert f"<strong>{RUN_ID}</strong>" in page.text
    assert f'<td class="number">{run.checks}</td>\n    <td class="number">{run.failed}</td>' in page.text
    checks = ui_reports.quality_checks(engine, RUN_ID)
    for check in checks:
        status = "passed" if check.success else "failed"
        assert (
            f"<tr><td>{check.check_name}</td><td>{check.table_name}</td><td>{check.severity}</td>"
            in page.text
        )
        assert f">{status}</td>" in page.text
    failing = [c for c in checks if c.unexpected_ids]
    assert failing, "the export has a row a check fails"
    check = failing[0]
    ids = api_server.get(f"/taxdome-qbo/quality?run={RUN_ID}&check={check.check_name}", headers=viewer).text
    listed = ui_reports.failing_ids(engine, RUN_ID, check.check_name)
    assert f"{listed.total} id(s) kept" in ids
    for taxdome_id in listed.items:
        assert f"<li>{escape(taxdome_id)}</li>" in ids
