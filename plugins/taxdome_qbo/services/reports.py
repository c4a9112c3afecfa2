"""A reconciliation run's reports, written into a folder: the HTML page, two CSV files and an XLSX workbook.

The folder is anything path-like with `/`, `.open(mode)` and `.mkdir(parents=, exist_ok=)`: a
`pathlib.Path`, or the Airflow glue's `ObjectStoragePath` for an object-store URL. On an object store every
file is written through `.open`; on the local file system reports carry TaxDome's and QuickBooks' data, so
folders are created 0700 and files 0600 (object stores have no modes: their access is the bucket's).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa
import xlsxwriter
from sqlalchemy.engine import Engine

from taxdome_qbo.core import reconciliation
from taxdome_qbo.core.escaping import write_csv
from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.report_html import (
    DqResult,
    ExceptionRow,
    ReconciliationReport,
    SummaryRow,
    class_label,
    class_order,
    measure_label,
    parse_unexpected_ids,
    processor_label,
    render_html,
)
from taxdome_qbo.services import warehouse
from taxdome_qbo.services.local_files import open_private, private_folder

HTML_FILE = "reconciliation.html"
EXCEPTIONS_CSV = "exceptions.csv"
SUMMARY_CSV = "summary.csv"
XLSX_FILE = "reconciliation.xlsx"

# The reconciliation's columns, money written as decimal text (`taxdome_cents` → `taxdome`).
SUMMARY_COLUMNS = [column.removesuffix("_cents") for column in reconciliation.SUMMARY_COLUMNS]
EXCEPTION_COLUMNS = ["seq", *(column.removesuffix("_cents") for column in reconciliation.EXCEPTION_COLUMNS)]
MONEY_COLUMNS = frozenset({"taxdome", "qbo", "difference"})  # decimal text we write from cents: never escaped
EXCEL_MAX_LINKS_PER_SHEET = 65_530  # Excel's own limit; later links are written as plain text
EXCEL_MAX_ROWS = 1_048_576  # a class with more differences lists the first ones; the CSV has them all


class ReportFolder(Protocol):
    def __truediv__(self, name: str) -> ReportFolder: ...
    def open(self, mode: str, **kwargs: Any) -> Any: ...
    def mkdir(self, *, parents: bool, exist_ok: bool) -> None: ...


class ReconciliationRunNotFound(LookupError):
    pass


def write_reports(
    engine: Engine,
    recon_run_id: str,
    folder: ReportFolder,
    *,
    dq_run_id: str | None = None,
    company_name: str | None = None,
) -> dict[str, str]:
    """Write the run's reports into `folder` (created if missing); returns each format's location.

    `dq_run_id` is the sync run whose data-quality results the page shows; `company_name` is QuickBooks'
    name of the company, when the caller knows it (the warehouse keeps only the realm id).
    """
    report = read_report(engine, recon_run_id, dq_run_id=dq_run_id, company_name=company_name)
    private_folder(folder)
    with open_private(folder / HTML_FILE, "w", encoding="utf-8") as handle:
        handle.write(render_html(report))
    with open_private(folder / SUMMARY_CSV, "w", encoding="utf-8", newline="") as handle:
        write_summary_csv(report, handle)
    with open_private(folder / EXCEPTIONS_CSV, "w", encoding="utf-8", newline="") as handle:
        write_exceptions_csv(report, handle)
    with open_private(folder / XLSX_FILE, "wb") as handle:
        handle.write(workbook_bytes(report))
    return {
        "html": str(folder / HTML_FILE),
        "summary_csv": str(folder / SUMMARY_CSV),
        "exceptions_csv": str(folder / EXCEPTIONS_CSV),
        "xlsx": str(folder / XLSX_FILE),
    }


def read_report(
    engine: Engine, recon_run_id: str, *, dq_run_id: str | None = None, company_name: str | None = None
) -> ReconciliationReport:
    """Everything the reports show, read from the warehouse."""
    runs = warehouse.reconciliation_runs
    summary = warehouse.rpt_reconciliation_summary
    exceptions = warehouse.rpt_reconciliation_exceptions
    dq = warehouse.dq_results
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        run = conn.execute(sa.select(runs).where(runs.c.recon_run_id == recon_run_id)).one_or_none()
        if run is None:
            raise ReconciliationRunNotFound(
                f"reconciliation run {recon_run_id!r} is not in reconciliation_runs"
            )
        summary_rows = conn.execute(
            sa.select(
                summary.c.measure,
                summary.c.period,
                summary.c.dimension,
                summary.c.taxdome_cents,
                summary.c.qbo_cents,
                summary.c.difference_cents,
            )
            .where(summary.c.recon_run_id == recon_run_id)
            .order_by(summary.c.measure, summary.c.period, summary.c.dimension)
        ).all()
        exception_rows = conn.execute(
            sa.select(*(c for c in exceptions.c if c.name != "recon_run_id"))
            .where(exceptions.c.recon_run_id == recon_run_id)
            .order_by(exceptions.c.seq)
        ).all()
        dq_rows = (
            conn.execute(sa.select(dq).where(dq.c.run_id == dq_run_id).order_by(dq.c.check_name)).all()
            if dq_run_id is not None
            else []
        )
    exception_list = [
        ExceptionRow(**{**row._asdict(), "explained": bool(row.explained)}) for row in exception_rows
    ]
    # The reconciliation's own count wins (it may count differences no single object carries); a report
    # written before the run recorded its verdict counts the unexplained exceptions itself.
    unexplained = run.unexplained
    if unexplained is None:
        unexplained = sum(not e.explained for e in exception_list)
    return ReconciliationReport(
        recon_run_id=run.recon_run_id,
        realm_id=run.realm_id,
        company_name=company_name,
        period_from=run.period_from,
        period_to=run.period_to,
        started_at=run.started_at,
        finished_at=run.finished_at,
        unexplained=unexplained,
        summary=[SummaryRow(*row) for row in summary_rows],
        exceptions=exception_list,
        dq_run_id=dq_run_id,
        dq_results=[
            DqResult(
                check_name=row.check_name,
                table_name=row.table_name,
                engine=row.engine,
                severity=row.severity,
                success=bool(row.success),
                evaluated_rows=row.evaluated_rows,
                unexpected_count=row.unexpected_count,
                observed=row.observed,
                unexpected_ids=parse_unexpected_ids(row.unexpected_ids),
                description=row.description,
                checked_at=row.checked_at,
            )
            for row in dq_rows
        ],
    )


# -- CSV ---------------------------------------------------------------------------------------------------


def _decimal_text(cents: int | None) -> str:
    return "" if cents is None else format_cents(cents)


def _amount_texts(row: SummaryRow | ExceptionRow) -> list[str]:
    """TaxDome, QuickBooks and their difference as decimal text with two places."""
    return [_decimal_text(cents) for cents in (row.taxdome_cents, row.qbo_cents, row.difference_cents)]


def write_summary_csv(report: ReconciliationReport, handle) -> None:
    """One row per measure × period × dimension; money as decimal text with two places, text made inert for
    spreadsheets (core/escaping.py)."""
    write_csv(
        handle,
        SUMMARY_COLUMNS,
        ([row.measure, row.period, row.dimension, *_amount_texts(row)] for row in report.summary),
        numeric=MONEY_COLUMNS,
    )


def write_exceptions_csv(report: ReconciliationReport, handle) -> None:
    """One row per difference, in the reconciliation's order; money as decimal text with two places, TaxDome
    and QuickBooks text made inert for spreadsheets (core/escaping.py)."""
    write_csv(
        handle,
        EXCEPTION_COLUMNS,
        (
            [
                row.seq,
                row.difference_class,
                "true" if row.explained else "false",
                row.object_kind,
                row.taxdome_id or "",
                row.qbo_entity or "",
                row.qbo_id or "",
                row.measure or "",
                *_amount_texts(row),
                row.detail,
                row.qbo_link or "",
            ]
            for row in report.exceptions
        ),
        numeric={"seq", *MONEY_COLUMNS},
    )


# -- XLSX --------------------------------------------------------------------------------------------------


def _money_value(cents: int | None) -> float | None:
    # An xlsx cell holds an IEEE double, so the exact Decimal becomes the double nearest to it: the same
    # number Excel stores when someone types the amount, shown exactly by the 2-place money format.
    return None if cents is None else float(Decimal(cents) / 100)


def _utc_naive(moment: datetime | None) -> datetime | None:
    # Excel has no time zones; warehouse timestamps are UTC (SQLite returns them without a zone).
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _sheet_name(label: str, taken: set[str]) -> str:
    """A valid, unique sheet name: Excel forbids []:*?/\\ and allows 31 characters."""
    name = "".join("_" if ch in "[]:*?/\\" else ch for ch in label)[:31]
    candidate, number = name, 2
    while candidate.lower() in taken:
        suffix = f" ({number})"
        candidate, number = name[: 31 - len(suffix)] + suffix, number + 1
    taken.add(candidate.lower())
    return candidate


class _Sheets:
    """The workbook's formats, and tables with a bold frozen header row and set column widths."""

    def __init__(self, book: xlsxwriter.Workbook) -> None:
        self.book = book
        self.header = book.add_format({"bold": True, "bg_color": "#F3F5F7", "bottom": 1})
        self.money = book.add_format({"num_format": "#,##0.00"})
        self.date = book.add_format({"num_format": "yyyy-mm-dd"})
        self.timestamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        self.bold = book.add_format({"bold": True})
        self.taken: set[str] = set()

    def table(self, label: str, columns: list[tuple[str, int]]):
        sheet = self.book.add_worksheet(_sheet_name(label, self.taken))
        for index, (title, width) in enumerate(columns):
            sheet.set_column(index, index, width)
            sheet.write_string(0, index, title, self.header)
        sheet.freeze_panes(1, 0)
        return sheet

    @staticmethod
    def text_cell(sheet, row: int, col: int, text: str | None) -> None:
        if text:  # nothing at all rather than an empty string, so Excel's blank tests and filters see a blank
            sheet.write_string(row, col, text)

    def money_cell(self, sheet, row: int, col: int, cents: int | None) -> None:
        if cents is None:
            sheet.write_blank(row, col, None, self.money)
        else:
            sheet.write_number(row, col, _money_value(cents), self.money)


def workbook_bytes(report: ReconciliationReport) -> bytes:
    """The workbook for finance: Run, Summary, one sheet per exception class present, Data quality."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_urls": False})
    sheets = _Sheets(book)
    by_class = {
        difference_class: [e for e in report.exceptions if e.difference_class == difference_class]
        for difference_class in class_order(e.difference_class for e in report.exceptions)
    }
    cut_short = [
        f"{class_label(c)}: the sheet lists the first {EXCEL_MAX_ROWS - 1:,} of {len(rows):,}; exceptions.csv has all"
        for c, rows in by_class.items()
        if len(rows) >= EXCEL_MAX_ROWS
    ]
    left_out = [report.balances_left_out] if report.balances_left_out else []
    _run_sheet(sheets, report, left_out + cut_short)
    _summary_sheet(sheets, report)
    for difference_class, rows in by_class.items():
        _exception_sheet(sheets, difference_class, rows[: EXCEL_MAX_ROWS - 1])
    if report.dq_run_id is not None:
        _dq_sheet(sheets, report)
    book.close()
    return buffer.getvalue()


def _run_sheet(sheets: _Sheets, report: ReconciliationReport, notes: list[str]) -> None:
    sheet = sheets.table("Run", [("Item", 24), ("Value", 60)])
    # Typed writes only: xlsxwriter's write() would make a company named `=1+1` a formula.
    facts: list[tuple[str, Any, Any, Any]] = [
        ("Verdict", report.headline, sheet.write_string, sheets.bold),
        ("Unexplained differences", report.unexplained, sheet.write_number, None),
        ("Company", report.company, sheet.write_string, None),
        ("Period from", report.period_from, sheet.write_datetime, sheets.date),
        ("Period to", report.period_to, sheet.write_datetime, sheets.date),
        ("Reconciliation run", report.recon_run_id, sheet.write_string, None),
        ("Started (UTC)", _utc_naive(report.started_at), sheet.write_datetime, sheets.timestamp),
        ("Finished (UTC)", _utc_naive(report.finished_at), sheet.write_datetime, sheets.timestamp),
        ("Data-quality run", report.dq_run_id, sheet.write_string, None),
        *(("Note", note, sheet.write_string, sheets.bold) for note in notes),
    ]
    for row, (item, value, write, cell_format) in enumerate(facts, start=1):
        sheet.write_string(row, 0, item)
        if value is None:
            sheet.write_blank(row, 1, None, cell_format)
        else:
            write(row, 1, value, cell_format)


def _summary_sheet(sheets: _Sheets, report: ReconciliationReport) -> None:
    sheet = sheets.table(
        "Summary",
        [
            ("Measure", 22),
            ("Period", 12),
            ("Processor", 18),
            ("TaxDome", 16),
            ("QuickBooks", 16),
            ("Difference (TaxDome − QuickBooks)", 16),
            ("Measure code", 18),
        ],
    )
    for row, entry in enumerate(report.summary, start=1):
        sheet.write_string(row, 0, measure_label(entry.measure))
        sheet.write_string(row, 1, entry.period)
        sheets.text_cell(sheet, row, 2, processor_label(entry.dimension) if entry.dimension else None)
        sheets.money_cell(sheet, row, 3, entry.taxdome_cents)
        sheets.money_cell(sheet, row, 4, entry.qbo_cents)
        sheets.money_cell(sheet, row, 5, entry.difference_cents)
        sheet.write_string(row, 6, entry.measure)
    sheet.autofilter(0, 0, max(len(report.summary), 1), 6)


def _exception_sheet(sheets: _Sheets, difference_class: str, rows: list[ExceptionRow]) -> None:
    sheet = sheets.table(
        class_label(difference_class),
        [
            ("Seq", 8),
            ("Explained", 10),
            ("Object", 12),
            ("TaxDome id", 16),
            ("QBO entity", 14),
            ("QBO id", 10),
            ("Measure", 20),
            ("TaxDome", 14),
            ("QuickBooks", 14),
            ("Difference (TaxDome − QuickBooks)", 14),
            ("Detail", 60),
            ("QuickBooks link", 50),
        ],
    )
    for row, entry in enumerate(rows, start=1):
        sheet.write_number(row, 0, entry.seq)
        sheet.write_string(row, 1, "yes" if entry.explained else "no")
        sheet.write_string(row, 2, entry.object_kind)
        sheets.text_cell(sheet, row, 3, entry.taxdome_id)
        sheets.text_cell(sheet, row, 4, entry.qbo_entity)
        sheets.text_cell(sheet, row, 5, entry.qbo_id)
        sheets.text_cell(sheet, row, 6, measure_label(entry.measure))
        sheets.money_cell(sheet, row, 7, entry.taxdome_cents)
        sheets.money_cell(sheet, row, 8, entry.qbo_cents)
        sheets.money_cell(sheet, row, 9, entry.difference_cents)
        sheet.write_string(row, 10, entry.detail)
        link = entry.qbo_link
        if link and link.startswith(("https://", "http://")) and row <= EXCEL_MAX_LINKS_PER_SHEET:
            sheet.write_url(row, 11, link)
        else:
            sheets.text_cell(sheet, row, 11, link)
    sheet.autofilter(0, 0, max(len(rows), 1), 11)


def _dq_sheet(sheets: _Sheets, report: ReconciliationReport) -> None:
    sheet = sheets.table(
        "Data quality",
        [
            ("Result", 8),
            ("Severity", 10),
            ("Check", 36),
            ("Table", 28),
            ("Engine", 8),
            ("Rows checked", 13),
            ("Unexpected", 11),
            ("Observed", 24),
            ("Unexpected TaxDome ids", 40),
            ("What it checks", 60),
            ("Checked (UTC)", 17),
        ],
    )
    for row, result in enumerate(report.dq_results, start=1):
        sheet.write_string(row, 0, "pass" if result.success else "FAIL")
        sheet.write_string(row, 1, result.severity)
        sheet.write_string(row, 2, result.check_name)
        sheet.write_string(row, 3, result.table_name)
        sheet.write_string(row, 4, result.engine)
        for col, count in ((5, result.evaluated_rows), (6, result.unexpected_count)):
            if count is not None:
                sheet.write_number(row, col, count)
        sheets.text_cell(sheet, row, 7, result.observed)
        sheets.text_cell(sheet, row, 8, ", ".join(result.unexpected_ids))
        sheet.write_string(row, 9, result.description)
        checked_at = _utc_naive(result.checked_at)
        if checked_at is not None:
            sheet.write_datetime(row, 10, checked_at, sheets.timestamp)
