"""The services behind the Quarantine, Reconciliation and Data-quality pages, on data the real pipeline made:
two exports with bad rows staged, checked, planned, loaded into the QBO emulator, read back and reconciled,
on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
from export_builder import with_rows, write_export
from load_harness import BASE_FIRM_SETTINGS, company_for_base_export, objects_marked, session_for
from quickbooks.objects import Invoice, Vendor
from upath import UPath

from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.settings import resolve_settings
from taxdome_qbo.services import pipeline, reports, ui_reports
from taxdome_qbo.services.ui_reports import NotFound, QuarantineFilter, ReportFormat

SETTINGS = resolve_settings(BASE_FIRM_SETTINGS, None)
FULL = PlanOptions(export_mode="full", allow_mass_delete=False)

NAMELESS_ACCOUNT = "A9,,Company,x@example.com,2025-03-01T10:00:00Z,2026-01-02T10:00:00Z,false,auto,"
UNDATED_INVOICE = "I9,INV-9,A1,notadate,,Paid,USD,,10.00,,2026-01-05T09:00:00Z"
# A second invoice numbered INV-0001: a data-quality warning, then QuickBooks refuses it (6140).
RENUMBERED_INVOICE = "I3,INV-0001,A1,2026-01-07,,Unpaid,USD,,250.00,,2026-01-07T09:00:00Z"
RENUMBERED_INVOICE_LINE = "I3,1,S1,Tax return,,250.00,1,250.00,false"
UNSYNCED_PAYMENT = "P3,A1,2026-01-08,20.00,cash,none,,0,USD,false,,2026-01-08T09:00:00Z"
UNPRICED_PAYMENT = "P4,A1,2026-01-08,twenty,cash,none,,0,USD,true,,2026-01-08T09:00:00Z"


def export_files(*payments: str) -> dict[str, str]:
    return {
        "accounts_csv": with_rows("accounts.csv", NAMELESS_ACCOUNT),
        "invoices_csv": with_rows("invoices.csv", UNDATED_INVOICE, RENUMBERED_INVOICE),
        "invoice_lines_csv": with_rows("invoice_lines.csv", RENUMBERED_INVOICE_LINE),
        "payments_csv": with_rows("payments.csv", UNSYNCED_PAYMENT, *payments),
    }


@dataclass(frozen=True)
class Synced:
    engine: sa.Engine
    app_url: str
    first_batch: str  # the export named `=cmd`: two bad rows
    second_batch: str  # the next export: those two and an unpriced payment
    reports_root: Path


def stray_invoice_in_quickbooks(emulator, company) -> None:
    """An invoice someone made in QuickBooks only: an unexplained `extra_in_qbo` with its QuickBooks link."""
    qb = emulator.quickbooks(company)
    [(_, customer)] = objects_marked(emulator, company["realm_id"], "taxdome:account:A1")
    [(_, invoice)] = objects_marked(emulator, company["realm_id"], "taxdome:invoice:I1")
    item_ref = invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]
    Invoice.from_json(
        {
            "CustomerRef": {"value": customer["Id"]},
            "TxnDate": "2026-01-20",
            "Line": [
                {
                    "Amount": "75.00",
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": item_ref},
                }
            ],
        }
    ).save(qb=qb)


@pytest.fixture
def synced(warehouse_engine, emulator, tmp_path) -> Synced:
    engine = warehouse_engine
    company = company_for_base_export(emulator)
    vendor = Vendor()
    vendor.DisplayName = "Zoë Müller"  # account A2's name: QuickBooks refuses the customer, A2's objects wait
    vendor.save(qb=emulator.quickbooks(company))
    landing, reports_root = tmp_path / "landing", tmp_path / "reports"
    [first] = pipeline.stage(engine, [write_export(landing / "=cmd", **export_files())], "sync-0")
    [second] = pipeline.stage(
        engine, [write_export(landing / "2026-01-11", **export_files(UNPRICED_PAYMENT))], "sync-1"
    )
    assert (first["rows_rejected"], second["rows_rejected"]) == (2, 3)
    pipeline.check(engine, "sync-1", export_mode="full", home_currency=SETTINGS.home_currency)
    session = session_for(engine, emulator, company)
    pipeline.plan(engine, session, SETTINGS, FULL, "sync-1", dry_run=False, reports_root=reports_root)
    pipeline.load(engine, lambda: session, "sync-1")
    stray_invoice_in_quickbooks(emulator, company)
    pipeline.read_back(engine, session, full_read=True)
    receipt = pipeline.reconcile(engine, session, SETTINGS, "recon-1")
    pipeline.report(engine, receipt, reports_root, "recon-1")
    pipeline.reconcile(engine, session, SETTINGS, "recon-2")  # no report written: regenerated when asked
    return Synced(engine, session.app_url, first["batch_id"], second["batch_id"], reports_root)


def scalar(engine, statement: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(statement), params).scalar_one()


def every_page(fetch, page_size: int) -> list:
    first = fetch(page=1, page_size=page_size)
    return [
        item for number in range(1, first.pages + 1) for item in fetch(page=number, page_size=page_size).items
    ]


# -- Quarantine --------------------------------------------------------------------------------------------


def test_quarantine_pages_count_what_the_warehouse_holds_newest_batch_first(synced):
    engine = synced.engine
    assert scalar(engine, "SELECT COUNT(*) FROM stg_taxdome__rejected") == 5

    first, last, past = (ui_reports.rejected_rows(engine, page=n, page_size=2) for n in (1, 3, 4))
    assert (first.total, first.pages, len(first.items), len(last.items), past.items, past.total) == (
        5,
        3,
        2,
        1,
        (),
        5,
    )
    rows = every_page(lambda **paging: ui_reports.rejected_rows(engine, **paging), 2)
    assert [(r.batch_id, r.source_file, r.source_line) for r in rows] == [
        (synced.second_batch, "accounts.csv", 4),
        (synced.second_batch, "invoices.csv", 4),
        (synced.second_batch, "payments.csv", 5),
        (synced.first_batch, "accounts.csv", 4),
        (synced.first_batch, "invoices.csv", 4),
    ]
    unpriced = rows[2]
    assert unpriced.export_name == "2026-01-11" and "amount" in unpriced.reason
    assert unpriced.values["payment_id"] == "P4" and unpriced.values["amount"] == "twenty"
    assert rows[3] == ui_reports.RejectedRow(
        synced.first_batch, "=cmd", "accounts.csv", 4, "account_name is missing", rows[3].raw
    )


def test_quarantine_filters_by_batch_file_and_reason_text(synced):
    def lines(**where) -> list[tuple[str, int]]:
        page = ui_reports.rejected_rows(synced.engine, QuarantineFilter(**where), page_size=500)
        assert page.total == len(page.items)
        return [(r.source_file, r.source_line) for r in page.items]

    assert lines(batch_id=synced.first_batch) == [("accounts.csv", 4), ("invoices.csv", 4)]
    assert lines(source_file="invoices.csv") == [("invoices.csv", 4)] * 2
    assert lines(batch_id=synced.second_batch, source_file="payments.csv") == [("payments.csv", 5)]
    assert lines(reason_contains="IS NOT A DATE") == [("invoices.csv", 4)] * 2, "case does not matter"
    assert lines(reason_contains="'notadate'", batch_id=synced.first_batch) == [("invoices.csv", 4)]
    assert lines(reason_contains="%") == [] and lines(reason_contains="account_nam_") == [], "no wildcards"
    assert lines(reason_contains="account_name") == [("accounts.csv", 4)] * 2
    assert lines(batch_id="no-such-batch") == []

    assert [
        (b.batch_id, b.export_name, b.rows_rejected) for b in ui_reports.quarantine_batches(synced.engine)
    ] == [
        (synced.second_batch, "2026-01-11", 3),
        (synced.first_batch, "=cmd", 2),
    ]
    reasons = ui_reports.quarantine_reasons(synced.engine, synced.first_batch)
    assert sorted((r.source_file, r.reason, r.rows) for r in reasons) == [
        ("accounts.csv", "account_name is missing", 1),
        ("invoices.csv", "posted_date 'notadate' is not a date written YYYY-MM-DD", 1),
    ]
    assert sum(r.rows for r in ui_reports.quarantine_reasons(synced.engine)) == 5


def test_quarantine_pages_are_bounded(synced):
    for paging in ({"page": 0}, {"page_size": 0}, {"page_size": ui_reports.MAX_PAGE_SIZE + 1}):
        with pytest.raises(ValueError):
            ui_reports.rejected_rows(synced.engine, **paging)


def test_the_quarantine_csv_streams_a_filters_rows_in_chunks_with_formulas_made_inert(synced, monkeypatch):
    monkeypatch.setattr(ui_reports, "CSV_CHUNK_ROWS", 2)
    chunks = list(ui_reports.rejected_rows_csv(synced.engine))
    assert len(chunks) == 3, "5 rows, 2 a chunk"
    parsed = list(csv.reader(io.StringIO("".join(chunks))))
    assert parsed[0] == ui_reports.QUARANTINE_CSV_HEADER
    assert len(parsed) - 1 == scalar(synced.engine, "SELECT COUNT(*) FROM stg_taxdome__rejected")
    assert [row[0] for row in parsed[1:]] == ["2026-01-11"] * 3 + ["'=cmd"] * 2, "the export `=cmd` is text"
    assert parsed[4][1:4] == [synced.first_batch, "accounts.csv", "4"]
    assert parsed[4][5].startswith('{"account_id": "A9"')

    invoices_only = "".join(
        ui_reports.rejected_rows_csv(synced.engine, QuarantineFilter(source_file="invoices.csv"))
    )
    assert [row[2] for row in csv.reader(io.StringIO(invoices_only))] == [
        "file",
        "invoices.csv",
        "invoices.csv",
    ]
    nothing = list(ui_reports.rejected_rows_csv(synced.engine, QuarantineFilter(batch_id="none")))
    assert nothing == [",".join(ui_reports.QUARANTINE_CSV_HEADER) + "\r\n"]


# -- Reconciliation ----------------------------------------------------------------------------------------


def test_reconciliation_runs_newest_first_with_verdicts_and_periods(synced):
    page = ui_reports.reconciliation_runs(synced.engine, page_size=1)
    assert (page.total, page.pages) == (2, 2)
    [newest] = page.items
    [older] = ui_reports.reconciliation_runs(synced.engine, page=2, page_size=1).items
    assert (newest.recon_run_id, older.recon_run_id) == ("recon-2", "recon-1")
    assert ui_reports.reconciliation_runs(synced.engine, page=3, page_size=1).items == ()
    unexplained = scalar(
        synced.engine,
        "SELECT COUNT(*) FROM rpt_reconciliation__exceptions WHERE recon_run_id = 'recon-1' AND NOT explained",
    )
    assert (older.verdict, older.unexplained, older.sync_run_id) == ("differences", unexplained, "sync-1")
    assert older.period_from == SETTINGS.sync_start_date and older.period_to >= older.period_from
    assert older.report_location == str(
        pipeline.run_folder(synced.reports_root, "recon-1") / reports.HTML_FILE
    )
    assert newest.report_location is None and newest.started_at >= older.started_at
    assert ui_reports.reconciliation_run(synced.engine, "recon-1") == older


def test_a_runs_exceptions_filter_by_class_and_explanation_with_quickbooks_links(synced):
    engine = synced.engine
    every = every_page(lambda **paging: ui_reports.reconciliation_exceptions(engine, "recon-1", **paging), 2)
    assert [e.seq for e in every] == list(
        range(
            1,
            1
            + scalar(
                engine, "SELECT COUNT(*) FROM rpt_reconciliation__exceptions WHERE recon_run_id = 'recon-1'"
            ),
        )
    )
    classes = ui_reports.exception_classes(engine, "recon-1")
    assert {(c.difference_class, c.explained): c.differences for c in classes} == {
        ("missing_in_qbo", False): 3,  # I3 refused, I2 and P2 waiting for A2
        ("extra_in_qbo", False): 1,
        ("amount_mismatch", False): 1,  # A1's balance in QuickBooks includes the stray invoice
        ("out_of_scope", True): 1,  # P3, set not to sync
    }

    missing = ui_reports.reconciliation_exceptions(engine, "recon-1", difference_class="missing_in_qbo")
    assert sorted((e.object_kind, e.taxdome_id) for e in missing.items) == [
        ("invoice", "I2"),
        ("invoice", "I3"),
        ("payment", "P2"),
    ]
    [extra] = ui_reports.reconciliation_exceptions(engine, "recon-1", difference_class="extra_in_qbo").items
    assert (extra.object_kind, extra.taxdome_id, extra.qbo_cents, extra.explained) == (
        "invoice",
        None,
        7500,
        False,
    )
    assert extra.qbo_link == f"{synced.app_url}/invoice?txnId={extra.qbo_id}"
    [kept_out] = ui_reports.reconciliation_exceptions(engine, "recon-1", explained=True).items
    assert (kept_out.difference_class, kept_out.taxdome_id, kept_out.explained) == (
        "out_of_scope",
        "P3",
        True,
    )
    unexplained = ui_reports.reconciliation_exceptions(engine, "recon-1", explained=False, page_size=3)
    assert (unexplained.total, len(unexplained.items)) == (5, 3)
    [balance] = ui_reports.reconciliation_exceptions(
        engine, "recon-1", difference_class="amount_mismatch"
    ).items
    assert (balance.taxdome_id, balance.measure) == ("A1", "customer_balance")
    assert (balance.taxdome_cents, balance.qbo_cents, balance.difference_cents) == (0, 7500, -7500)
    assert balance.qbo_link == f"{synced.app_url}/customerdetail?nameId={balance.qbo_id}"
    none = ui_reports.reconciliation_exceptions(
        engine, "recon-1", difference_class="extra_in_qbo", explained=True
    )
    assert (none.total, none.items) == (0, ())


@pytest.mark.parametrize("run_id", ["no-such-run", "../x", "../recon-1", "recon-1/../recon-1"])
def test_a_run_the_warehouse_does_not_hold_is_not_found(synced, run_id):
    for lookup in (
        ui_reports.reconciliation_run,
        ui_reports.exception_classes,
        ui_reports.reconciliation_exceptions,
        lambda engine, run: ui_reports.report_document(engine, run, ReportFormat.HTML, Path),
    ):
        with pytest.raises(NotFound):
            lookup(synced.engine, run_id)


# -- Report documents --------------------------------------------------------------------------------------


def test_report_documents_are_served_from_where_the_reconciliation_stored_them(synced):
    folder = pipeline.run_folder(synced.reports_root, "recon-1")
    opened: list[str] = []

    def folder_at(location: str) -> Path:
        opened.append(location)
        return Path(location)

    for document in ReportFormat:
        served = ui_reports.report_document(synced.engine, "recon-1", document, folder_at)
        assert served.content == (folder / document.file_name).read_bytes()
        assert (served.regenerated, served.media_type) == (False, document.media_type)
        assert served.filename == f"{folder.name}-{document.file_name}"
    assert opened == [str(folder)] * len(ReportFormat)


def test_report_documents_whose_files_are_gone_are_regenerated_from_the_warehouse(synced):
    folder = pipeline.run_folder(synced.reports_root, "recon-1")
    stored = {document: (folder / document.file_name).read_bytes() for document in ReportFormat}
    shutil.rmtree(folder)

    def served(document: ReportFormat, run_id: str = "recon-1"):
        found = ui_reports.report_document(
            synced.engine, run_id, document, Path, company_name="Emulated Company"
        )
        assert found.regenerated
        return found.content

    assert served(ReportFormat.EXCEPTIONS_CSV) == stored[ReportFormat.EXCEPTIONS_CSV]
    assert served(ReportFormat.SUMMARY_CSV) == stored[ReportFormat.SUMMARY_CSV]
    html = served(ReportFormat.HTML).decode("utf-8")
    assert "recon-1" in html and "Emulated Company" in html and "invoices.unique_numbers" in html
    book = openpyxl.load_workbook(io.BytesIO(served(ReportFormat.XLSX)))
    assert {"Run", "Summary", "Data quality"} <= set(book.sheetnames)
    never_written = served(ReportFormat.EXCEPTIONS_CSV, "recon-2").decode("utf-8")
    assert never_written.splitlines()[0] == ",".join(reports.EXCEPTION_COLUMNS)


def test_report_documents_are_served_from_an_object_store(synced):
    receipt = {"recon_run_id": "recon-1", "sync_run_id": "sync-1", "company_name": "Emulated Company"}
    written = pipeline.report(
        synced.engine, receipt, UPath(f"memory://reports-{uuid.uuid4().hex}"), "recon-1"
    )
    assert written["html"].startswith("memory://")

    served = ui_reports.report_document(synced.engine, "recon-1", ReportFormat.SUMMARY_CSV, UPath)
    assert not served.regenerated
    assert served.content == UPath(written["summary_csv"]).read_bytes()


# -- Data quality ------------------------------------------------------------------------------------------


def test_data_quality_runs_checks_and_failing_ids(synced):
    engine = synced.engine
    [run] = ui_reports.quality_runs(engine).items
    checks = scalar(engine, "SELECT COUNT(*) FROM dq_results WHERE run_id = 'sync-1'")
    assert (run.run_id, run.checks, run.failed, run.critical_failed) == ("sync-1", checks, 1, 0)

    results = ui_reports.quality_checks(engine, "sync-1")
    assert len(results) == checks
    failed = results[0]
    assert (failed.check_name, failed.severity, failed.success) == (
        "invoices.unique_numbers",
        "warning",
        False,
    )
    assert failed.unexpected_ids == ("I1", "I3")
    assert all(result.success for result in results[1:])

    first = ui_reports.failing_ids(engine, "sync-1", "invoices.unique_numbers", page_size=1)
    second = ui_reports.failing_ids(engine, "sync-1", "invoices.unique_numbers", page=2, page_size=1)
    assert (first.items, second.items, first.total, first.pages) == (("I1",), ("I3",), 2, 2)
    passed = ui_reports.failing_ids(engine, "sync-1", "payments.fee_within_amount")
    assert (passed.items, passed.total) == ((), 0)
    with pytest.raises(NotFound):
        ui_reports.quality_checks(engine, "../sync-1")
    with pytest.raises(NotFound):
        ui_reports.failing_ids(engine, "sync-1", "no.such_check")
