"""What the Quarantine, Reconciliation and Data-quality pages show, read from the warehouse a page at a time.

Every function takes the warehouse engine and returns small typed results (money in integer cents), never a
table: lists are paged in SQL (`LIMIT`/`OFFSET`, at most `MAX_PAGE_SIZE` rows, with the count of what the
filters match) and filtered there, so a page costs the same on a firm of a million invoices as on a small
one. The SQL is in `include/sql/ui_reports/`, values always bound.

Nothing here is found by a path the client sends: a reconciliation's report documents are found by the run
id in `reconciliation_runs`, then read from the location the reconciliation recorded there. An id the
warehouse does not hold raises `NotFound`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core.escaping import inert_row
from taxdome_qbo.core.report_html import (
    DqResult,
    ExceptionRow,
    ReconciliationReport,
    parse_unexpected_ids,
    render_html,
)
from taxdome_qbo.paths import run_folder_name
from taxdome_qbo.services import reports, sql, warehouse
from taxdome_qbo.services.reports import ReportFolder

MAX_PAGE_SIZE = 500
FILTER_CHOICES_LIMIT = 200  # batches, and files × reasons, offered in a page's filters
CSV_CHUNK_ROWS = MAX_PAGE_SIZE
EVERY_ROW = 2**62  # a LIMIT both databases take (PostgreSQL's LIMIT NULL is SQLite's error)

Item = TypeVar("Item")


class NotFound(LookupError):
    """The warehouse holds no such run."""


@dataclass(frozen=True)
class Page(Generic[Item]):
    items: tuple[Item, ...]
    page: int  # from 1
    page_size: int
    total: int  # rows the filters match, on every page

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _limits(page: int, page_size: int) -> dict[str, int]:
    if page < 1:
        raise ValueError(f"page {page}: pages count from 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page size {page_size}: between 1 and {MAX_PAGE_SIZE}")
    return {"limit": page_size, "offset": (page - 1) * page_size}


def _typed(name: str, **types: sa.types.TypeEngine) -> sa.TextualSelect:
    """The statement with the types of its date and time columns (SQLite returns them as text otherwise)."""
    return sql.statement(name).columns(**types)


def _page_rows(
    conn: Connection, statement: sa.Executable, key: str, page: int, page_size: int, **params
) -> tuple[list[sa.Row], int]:
    """The rows of one page of a `ui_reports/*_page` statement, whose first column is the total and which
    returns one row with a NULL `key` when the page is empty; and the total."""
    rows = conn.execute(statement, {**params, **_limits(page, page_size)}).all()
    return [row for row in rows if row._mapping[key] is not None], int(rows[0].total)


# -- Quarantine --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineFilter:
    """Rows of one batch, one file, whose reason contains a text (case-insensitive); None: any."""

    batch_id: str | None = None
    source_file: str | None = None
    reason_contains: str | None = None

    def params(self) -> dict[str, str | None]:
        pattern = None
        if self.reason_contains:
            escaped = self.reason_contains.lower().translate({ord(c): "\\" + c for c in "\\%_"})
            pattern = f"%{escaped}%"
        return {"batch_id": self.batch_id, "source_file": self.source_file, "reason_pattern": pattern}


@dataclass(frozen=True)
class RejectedRow:
    batch_id: str
    export_name: str
    source_file: str
    source_line: int
    reason: str
    raw: str  # the row as read, a JSON object of column -> text

    @property
    def values(self) -> dict[str, str]:
        return json.loads(self.raw)


@dataclass(frozen=True)
class QuarantineBatch:
    batch_id: str
    export_name: str
    started_at: datetime
    rows_rejected: int


@dataclass(frozen=True)
class QuarantineReason:
    source_file: str
    reason: str
    rows: int


_REJECTED_PAGE = "ui_reports/select_rejected_page"


def _rejected_page(conn: Connection, where: QuarantineFilter, page: int, page_size: int) -> Page[RejectedRow]:
    rows, total = _page_rows(
        conn, sql.statement(_REJECTED_PAGE), "batch_id", page, page_size, **where.params()
    )
    items = tuple(
        RejectedRow(r.batch_id, r.export_name, r.source_file, int(r.source_line), r.reason, r.raw)
        for r in rows
    )
    return Page(items, page, page_size, total)


def rejected_rows(
    engine: Engine, where: QuarantineFilter = QuarantineFilter(), *, page: int = 1, page_size: int = 100
) -> Page[RejectedRow]:
    """Quarantined rows matching `where`, newest batch first, then by file and line."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        return _rejected_page(conn, where, page, page_size)


QUARANTINE_CSV_HEADER = ["export", "batch_id", "file", "line", "reason", "raw"]


def rejected_rows_csv(engine: Engine, where: QuarantineFilter = QuarantineFilter()) -> Iterator[str]:
    """The rows `where` matches as CSV text, a chunk of up to `CSV_CHUNK_ROWS` rows at a time (the header
    first), for a streamed download; text made inert for spreadsheets like every CSV we write
    (core/escaping.py), so an export named `=cmd` reads `'=cmd`.

    One query, sorted once, its rows fetched a chunk at a time (a server-side cursor on PostgreSQL): a
    quarantine of any size streams in constant memory, and the connection stays open until the last chunk
    is taken or the generator is closed (a client that hangs up).
    """
    warehouse.create_schema(engine)
    numeric = frozenset({QUARANTINE_CSV_HEADER.index("line")})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(QUARANTINE_CSV_HEADER)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=CSV_CHUNK_ROWS).execute(
            sql.statement(_REJECTED_PAGE), {**where.params(), "limit": EVERY_ROW, "offset": 0}
        )
        # The statement's rows: the matching rows, or one row of NULLs beside the count when none match.
        for rows in result.partitions(CSV_CHUNK_ROWS):
            writer.writerows(
                inert_row([r.export_name, r.batch_id, r.source_file, r.source_line, r.reason, r.raw], numeric)
                for r in rows
                if r.batch_id is not None
            )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()


def quarantine_batches(engine: Engine) -> list[QuarantineBatch]:
    """The batches that quarantined rows, newest first (the latest `FILTER_CHOICES_LIMIT`)."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            _typed("ui_reports/select_quarantine_batches", started_at=warehouse.UTC_TIMESTAMP),
            {"limit": FILTER_CHOICES_LIMIT},
        ).all()
    return [QuarantineBatch(r.batch_id, r.export_name, r.started_at, int(r.rows_rejected)) for r in rows]


def quarantine_reasons(engine: Engine, batch_id: str | None = None) -> list[QuarantineReason]:
    """The files and reasons of the quarantined rows of `batch_id` (None: of every batch), most frequent
    first (the first `FILTER_CHOICES_LIMIT`): the file filter's choices and the reasons to search for."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        rows = sql.fetch_all(
            conn, "ui_reports/select_quarantine_reasons", batch_id=batch_id, limit=FILTER_CHOICES_LIMIT
        )
    return [QuarantineReason(r.source_file, r.reason, int(r.row_count)) for r in rows]


# -- Reconciliation ----------------------------------------------------------------------------------------

_RUN_TYPES = {
    "period_from": sa.Date(),
    "period_to": sa.Date(),
    "started_at": warehouse.UTC_TIMESTAMP,
    "finished_at": warehouse.UTC_TIMESTAMP,
}


@dataclass(frozen=True)
class ReconciliationRun:
    recon_run_id: str
    realm_id: str
    sync_run_id: str | None
    period_from: date | None
    period_to: date | None
    started_at: datetime
    finished_at: datetime | None
    verdict: str | None  # clean | differences | superseded; None while it runs
    unexplained: int | None
    report_location: str | None  # where the reconciliation wrote its HTML report

    @classmethod
    def of(cls, row: sa.Row) -> ReconciliationRun:
        return cls(**{name: row._mapping[name] for name in cls.__dataclass_fields__})


def reconciliation_runs(engine: Engine, *, page: int = 1, page_size: int = 50) -> Page[ReconciliationRun]:
    """Reconciliation runs with their verdicts and periods, newest first."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        rows, total = _page_rows(
            conn,
            _typed("ui_reports/select_reconciliation_runs_page", **_RUN_TYPES),
            "recon_run_id",
            page,
            page_size,
        )
    return Page(tuple(ReconciliationRun.of(r) for r in rows), page, page_size, total)


def _run(conn: Connection, recon_run_id: str) -> ReconciliationRun:
    row = conn.execute(
        _typed("ui_reports/select_reconciliation_run", **_RUN_TYPES), {"recon_run_id": recon_run_id}
    ).one_or_none()
    if row is None:
        raise NotFound(f"no reconciliation run {recon_run_id!r}")
    return ReconciliationRun.of(row)


def reconciliation_run(engine: Engine, recon_run_id: str) -> ReconciliationRun:
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        return _run(conn, recon_run_id)


@dataclass(frozen=True)
class ClassCount:
    difference_class: str
    explained: bool
    differences: int


def exception_classes(engine: Engine, recon_run_id: str) -> list[ClassCount]:
    """A run's exceptions counted by class and explained flag (unexplained first): the class filter's
    choices. NotFound when there is no such run."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        _run(conn, recon_run_id)
        rows = sql.fetch_all(conn, "reconciliation/select_class_counts", recon_run_id=recon_run_id)
    return [ClassCount(r.difference_class, bool(r.explained), int(r.differences)) for r in rows]


def reconciliation_exceptions(
    engine: Engine,
    recon_run_id: str,
    *,
    difference_class: str | None = None,
    explained: bool | None = None,
    page: int = 1,
    page_size: int = 100,
) -> Page[ExceptionRow]:
    """A run's exceptions in the reconciliation's order, of one class and explained or not (None: any), as
    the reports have them (`ExceptionRow`, with the QuickBooks link the reconciliation recorded). NotFound
    when there is no such run."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        _run(conn, recon_run_id)
        rows, total = _page_rows(
            conn,
            sql.statement("ui_reports/select_exceptions_page"),
            "seq",
            page,
            page_size,
            recon_run_id=recon_run_id,
            difference_class=difference_class,
            explained=explained,
        )
    items = tuple(
        ExceptionRow(
            **{name: row._mapping[name] for name in ExceptionRow.__dataclass_fields__}
            | {"explained": bool(row.explained)}
        )
        for row in rows
    )
    return Page(items, page, page_size, total)


class ReportFormat(Enum):
    """A reconciliation's report documents: the file the reconciliation wrote, and its media type."""

    HTML = (reports.HTML_FILE, "text/html; charset=utf-8")
    EXCEPTIONS_CSV = (reports.EXCEPTIONS_CSV, "text/csv; charset=utf-8")
    SUMMARY_CSV = (reports.SUMMARY_CSV, "text/csv; charset=utf-8")
    XLSX = (reports.XLSX_FILE, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    def __init__(self, file_name: str, media_type: str) -> None:
        self.file_name = file_name
        self.media_type = media_type

    def render(self, report: ReconciliationReport) -> bytes:
        """This document made from the report's rows, as `reports.write_reports` writes it."""
        if self is ReportFormat.XLSX:
            return reports.workbook_bytes(report)
        if self is ReportFormat.HTML:
            return render_html(report).encode("utf-8")
        handle = io.StringIO(newline="")
        write = (
            reports.write_summary_csv if self is ReportFormat.SUMMARY_CSV else reports.write_exceptions_csv
        )
        write(report, handle)
        return handle.getvalue().encode("utf-8")


@dataclass(frozen=True)
class ReportDocument:
    content: bytes
    media_type: str
    filename: str  # for a download: the run's folder name (safe characters only) and the file's name
    regenerated: bool  # made from the warehouse rows because the stored file is gone


# Turns the folder the reconciliation recorded (a local path, or an object-store URL) into something to open
# files in: `pathlib.Path`, or the Airflow glue's `ObjectStoragePath` for URLs.
FolderAt = Callable[[str], ReportFolder]


def report_document(
    engine: Engine,
    recon_run_id: str,
    document: ReportFormat,
    folder_at: FolderAt,
    *,
    company_name: str | None = None,
) -> ReportDocument:
    """One report document of the run, found by its id in `reconciliation_runs` (NotFound without one).

    Served from where the reconciliation stored it: the folder of the HTML report the run recorded
    (`report_location`), opened through `folder_at`, so a local folder and an object store both work. When
    the run recorded no report, or the stored file is gone (a cleaned-up folder, another worker's disk), the
    document is regenerated from the run's rows in the warehouse with `services/reports.py`, with the
    data-quality results of the sync run it followed; `company_name` then names the company (the warehouse
    keeps only its realm id). The `regenerated` flag says which happened.
    """
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        run = _run(conn, recon_run_id)
    filename = f"{run_folder_name(recon_run_id)}-{document.file_name}"
    stored = _stored_document(run.report_location, document, folder_at)
    if stored is not None:
        return ReportDocument(stored, document.media_type, filename, regenerated=False)
    report = reports.read_report(engine, recon_run_id, dq_run_id=run.sync_run_id, company_name=company_name)
    return ReportDocument(document.render(report), document.media_type, filename, regenerated=True)


def _stored_document(location: str | None, document: ReportFormat, folder_at: FolderAt) -> bytes | None:
    """The document's bytes from the folder of the recorded HTML report; None when there is none."""
    suffix = "/" + reports.HTML_FILE
    if location is None or not location.endswith(suffix):
        return None
    try:
        with (folder_at(location.removesuffix(suffix)) / document.file_name).open("rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


# -- Data quality ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QualityRun:
    run_id: str
    checked_at: datetime
    checks: int
    failed: int
    critical_failed: int


def quality_runs(engine: Engine, *, page: int = 1, page_size: int = 50) -> Page[QualityRun]:
    """The sync runs whose staged data was checked, newest first, with their checks counted."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        rows, total = _page_rows(
            conn,
            _typed("ui_reports/select_quality_runs_page", checked_at=warehouse.UTC_TIMESTAMP),
            "run_id",
            page,
            page_size,
        )
    items = tuple(
        QualityRun(r.run_id, r.checked_at, int(r.checks), int(r.failed), int(r.critical_failed)) for r in rows
    )
    return Page(items, page, page_size, total)


_QUALITY_CHECKS = "ui_reports/select_quality_checks"


def _quality_checks(engine: Engine, run_id: str, check_name: str | None) -> list[DqResult]:
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            _typed(_QUALITY_CHECKS, checked_at=warehouse.UTC_TIMESTAMP),
            {"run_id": run_id, "check_name": check_name},
        ).all()
    return [
        DqResult(
            **{name: row._mapping[name] for name in DqResult.__dataclass_fields__}
            | {"success": bool(row.success), "unexpected_ids": parse_unexpected_ids(row.unexpected_ids)}
        )
        for row in rows
    ]


def quality_checks(engine: Engine, run_id: str) -> list[DqResult]:
    """A run's checks with severity, status and their first failing TaxDome ids, failures first (critical,
    then warnings), then by name; a run has tens of checks. NotFound when the run was not checked."""
    checks = _quality_checks(engine, run_id, None)
    if not checks:
        raise NotFound(f"no data-quality checks of run {run_id!r}")
    return checks


def failing_ids(
    engine: Engine, run_id: str, check_name: str, *, page: int = 1, page_size: int = 100
) -> Page[str]:
    """The failing TaxDome ids one check kept (its first ones, `quality_checks.UNEXPECTED_IDS_KEPT` at most), a page
    at a time. NotFound when the run has no such check."""
    limits = _limits(page, page_size)
    found = _quality_checks(engine, run_id, check_name)
    if not found:
        raise NotFound(f"no data-quality check {check_name!r} of run {run_id!r}")
    ids = found[0].unexpected_ids
    start = limits["offset"]
    return Page(tuple(ids[start : start + page_size]), page, page_size, len(ids))
