"""The reconciliation reports: an HTML page that opens offline (checked in a real headless Chromium), two CSV
files and an XLSX workbook, written from a reconciliation run inserted straight into the warehouse."""

from __future__ import annotations

import csv
import json
import re
import struct
import subprocess
import zlib
from datetime import UTC, date, datetime
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from taxdome_qbo.core import report_html
from taxdome_qbo.core.reconciliation import QboSide, ReconciliationSettings, TaxDomeSide, reconcile
from taxdome_qbo.services import reconciliation as recon_service
from taxdome_qbo.services import reports, warehouse

RUN_ID = "recon__2026-03-31"
DQ_RUN_ID = "scheduled__2026-03-31T00:00:00+00:00"
REALM = "9130354519120123"
INVOICE_LINK = f"https://app.qbo.intuit.com/app/invoice?txnId=145&companyId={REALM}"
PAYMENT_LINK = f"https://app.qbo.intuit.com/app/recvpayment?txnId=88&companyId={REALM}"
DUPLICATE_LINK = f"https://app.qbo.intuit.com/app/invoice?txnId=151&companyId={REALM}"
QBO_LINKS = {INVOICE_LINK, PAYMENT_LINK, DUPLICATE_LINK}
CHROMIUM = Path("/usr/bin/chromium")

MONTHS = ("2026-01", "2026-02", "2026-03")
# measure -> per month (TaxDome, QBO) in cents; February holds the planted differences.
MONTHLY = {
    "invoiced": [(1_250_000, 1_250_000), (1_830_456, 1_827_000), (990_000, 990_000)],
    "collected_gross": [(1_000_000, 1_000_000), (1_500_000, 1_450_000), (800_000, 800_000)],
    "fees": [(29_300, 29_300), (43_800, 42_350), (23_500, 23_500)],
    "net": [(970_700, 970_700), (1_456_200, 1_407_650), (776_500, 776_500)],
    "refunds": [(0, 0), (12_000, 12_000), (0, 0)],
    "credits": [(5_000, 5_000), (0, 0), (0, 0)],
}
EXTRA_TOTALS = {"tax": (50_000, 50_000), "customer_balance": (123_456_789, 123_456_789)}
BY_PROCESSOR = {  # processor -> (fees TaxDome, fees QBO, net TaxDome, net QBO)
    "stripe": (60_000, 58_550, 2_000_000, 1_951_450),
    "cpacharge": (30_000, 30_000, 900_000, 900_000),
    "taxdome_payments": (6_600, 6_600, 303_400, 303_400),
    "none": (0, 0, 0, 0),
}
DAILY_NET = {
    "2026-01-15": (970_700, 970_700),
    "2026-02-10": (1_456_200, 1_407_650),
    "2026-03-05": (776_500, 776_500),
}


def exception(
    seq, difference_class, kind, taxdome_id, qbo_entity, qbo_id, measure, td, qbo, detail, link=None
):
    difference = None if td is None and qbo is None else (qbo or 0) - (td or 0)
    return {
        "recon_run_id": RUN_ID,
        "seq": seq,
        "difference_class": difference_class,
        "explained": difference_class == "out_of_scope",
        "object_kind": kind,
        "taxdome_id": taxdome_id,
        "qbo_entity": qbo_entity,
        "qbo_id": qbo_id,
        "measure": measure,
        "taxdome_cents": td,
        "qbo_cents": qbo,
        "difference_cents": difference,
        "detail": detail,
        "qbo_link": link,
    }


EXCEPTIONS = [
    exception(1, "amount_mismatch", "invoice", "I7", "Invoice", "145", "invoiced", 123_456, 120_000,
              "total edited in QuickBooks by hand", INVOICE_LINK),
    exception(2, "missing_in_qbo", "payment", "P3", None, None, "collected_gross", 50_000, None,
              "payment deleted in QuickBooks"),
    exception(3, "missing_in_qbo", "fee", "P3", None, None, "fees", 1_450, None, "processing fee missing"),
    exception(4, "extra_in_qbo", "payment", None, "Payment", "88", "collected_gross", None, 2_500,
              "carries no TaxDome marker and matches no TaxDome payment", PAYMENT_LINK),
    exception(5, "duplicate_in_qbo", "invoice", "I9", "Invoice", "151", "invoiced", 10_000, 20_000,
              "I9 is also invoice 150", DUPLICATE_LINK),
    exception(6, "customer_mismatch", "invoice", "I11", "Invoice", "152", None, None, None,
              "customer in QuickBooks is 'Acme & Sons <Ltd>' <script>alert(1)</script>", "javascript:alert(1)"),
    exception(7, "out_of_scope", "payment", "P20", None, None, "collected_gross", 7_500, None,
              "R5: account A5 is set to Do not sync"),
]  # fmt: skip
DQ_RESULTS = [
    (
        "invoice_total_equals_lines",
        "stg_taxdome__invoices",
        "gx",
        "critical",
        False,
        120,
        2,
        None,
        ["I7", "I8"],
    ),
    ("payment_amount_not_negative", "stg_taxdome__payments", "gx", "warning", True, 80, 0, None, []),
    ("row_count_drift", "stg_taxdome__invoices", "sql", "warning", False, 120, None, "+35 %", None),
]


def summary_rows() -> list[dict]:
    rows = []

    def add(measure, period, dimension, td, qbo):
        rows.append(
            {
                "recon_run_id": RUN_ID,
                "measure": measure,
                "period": period,
                "dimension": dimension,
                "taxdome_cents": td,
                "qbo_cents": qbo,
                "difference_cents": qbo - td,
            }
        )

    for measure, per_month in MONTHLY.items():
        for month, (td, qbo) in zip(MONTHS, per_month, strict=True):
            add(measure, month, "", td, qbo)
        add(measure, "total", "", sum(td for td, _ in per_month), sum(qbo for _, qbo in per_month))
    for measure, (td, qbo) in EXTRA_TOTALS.items():
        add(measure, "total", "", td, qbo)
    for processor, (fees_td, fees_qbo, net_td, net_qbo) in BY_PROCESSOR.items():
        add("fees", "total", processor, fees_td, fees_qbo)
        add("net", "total", processor, net_td, net_qbo)
    for day, (td, qbo) in DAILY_NET.items():
        add("net", day, "", td, qbo)
    return rows


def insert_run(engine, *, clean: bool = False) -> None:
    warehouse.create_schema(engine)
    exceptions = [e for e in EXCEPTIONS if e["explained"]] if clean else EXCEPTIONS
    with engine.begin() as conn:
        conn.execute(
            warehouse.reconciliation_runs.insert(),
            {
                "recon_run_id": RUN_ID,
                "realm_id": REALM,
                "period_from": date(2026, 1, 1),
                "period_to": date(2026, 3, 31),
                "started_at": datetime(2026, 4, 1, 6, 0, tzinfo=UTC),
                "finished_at": datetime(2026, 4, 1, 6, 2, tzinfo=UTC),
                "verdict": "clean" if clean else "differences",
                "unexplained": sum(not e["explained"] for e in exceptions),
            },
        )
        conn.execute(warehouse.rpt_reconciliation_summary.insert(), summary_rows())
        conn.execute(warehouse.rpt_reconciliation_exceptions.insert(), exceptions)
        conn.execute(
            warehouse.dq_results.insert(),
            [
                {
                    "run_id": DQ_RUN_ID,
                    "check_name": name,
                    "table_name": table,
                    "engine": engine_name,
                    "severity": severity,
                    "success": success,
                    "evaluated_rows": evaluated,
                    "unexpected_count": unexpected,
                    "observed": observed,
                    "unexpected_ids": None if ids is None else json.dumps(ids),
                    "description": f"{name.replace('_', ' ')}",
                    "checked_at": datetime(2026, 3, 31, 23, 59, tzinfo=UTC),
                }
                for name, table, engine_name, severity, success, evaluated, unexpected, observed, ids in DQ_RESULTS
            ],
        )


@pytest.fixture
def written(sqlite_engine, tmp_path) -> dict[str, str]:
    insert_run(sqlite_engine)
    return reports.write_reports(
        sqlite_engine,
        RUN_ID,
        tmp_path / "reports" / "run",
        dq_run_id=DQ_RUN_ID,
        company_name="Smith & Co CPAs",
    )


def page(written) -> str:
    return Path(written["html"]).read_text(encoding="utf-8")


def visible_text(html: str) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded), whitespace collapsed."""

    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts: list[str] = []

        def handle_data(self, data):
            self.parts.append(data)

    parser = Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.parts))


# -- what the page says ------------------------------------------------------------------------------------


def test_every_format_is_written_into_the_folder(written, tmp_path):
    folder = tmp_path / "reports" / "run"
    assert written == {
        "html": str(folder / "reconciliation.html"),
        "summary_csv": str(folder / "summary.csv"),
        "exceptions_csv": str(folder / "exceptions.csv"),
        "xlsx": str(folder / "reconciliation.xlsx"),
    }
    assert all(Path(location).stat().st_size > 0 for location in written.values())


def test_the_page_gives_the_verdict_company_period_and_amounts_to_the_cent(written):
    text = visible_text(page(written))
    assert "6 unexplained differences" in text
    assert "Smith & Co CPAs (realm 9130354519120123)" in text
    assert "2026-01-01 to 2026-03-31" in text
    # Totals per measure: invoiced 40,704.56 vs 40,670.00; a nine-digit balance grouped exactly.
    assert "Invoiced 40,704.56 40,670.00 -34.56" in text
    assert "Customer balances 1,234,567.89 1,234,567.89 0.00" in text
    assert "Net (gross − fees) 32,034.00 31,548.50 -485.50" in text
    # Per month, fees and net by processor, and the one day whose net differs.
    assert "2026-02 Invoiced 18,304.56 18,270.00 -34.56" in text
    assert "total Stripe Processing fees 600.00 585.50 -14.50" in text
    assert "2026-02-10 14,562.00 14,076.50 -485.50" in text


def test_the_page_draws_its_charts_as_inline_svg(written):
    html = page(written)
    titles = re.findall(r'<svg [^>]*aria-label="([^"]+)"', html)
    assert titles == [
        "Invoiced per month",
        "Collected (gross) per month",
        "Net (gross − fees) per month",
        "Net (gross − fees) per day",
        "Processing fees by processor",
    ]
    # Bars carry exact amounts as tooltips, and February's differing bars are marked.
    assert "<title>QuickBooks · 2026-02: 18,270.00</title>" in html
    assert ">2026-02 ≠</text>" in html


def test_exceptions_are_grouped_by_class_with_ids_links_and_amounts(written):
    html = page(written)
    text = visible_text(html)
    headings = re.findall(r'<h3 id="class-[a-z_]+">([^<]+)</h3>', html)
    assert headings == [
        "Missing in QuickBooks (2)",
        "Extra in QuickBooks (1)",
        "Amount mismatch (1)",
        "Customer mismatch (1)",
        "Duplicate in QuickBooks (1)",
        "Out of scope by rule (1)",
    ]
    assert "1 invoice I7 Invoice 145 Invoiced 1,234.56 1,200.00 -34.56" in text
    assert "2 payment P3 Collected (gross) 500.00 -500.00 payment deleted in QuickBooks" in text
    assert (
        f'<a href="{INVOICE_LINK.replace("&", "&amp;")}" target="_blank" rel="noopener noreferrer">' in html
    )
    assert "R5: account A5 is set to Do not sync explained" in text


def test_data_is_escaped_and_only_web_addresses_become_links(written):
    html = page(written)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Acme &amp; Sons &lt;Ltd&gt;" in html
    assert 'href="javascript:' not in html


def test_the_page_shows_the_data_quality_results_of_the_sync_run(written):
    text = visible_text(page(written))
    assert f"Checks of sync run {DQ_RUN_ID} before its load: 2 of 3 checks failed (1 critical)." in text
    assert "FAIL critical invoice_total_equals_lines stg_taxdome__invoices gx 120 2 I7, I8" in text
    assert "FAIL warning row_count_drift stg_taxdome__invoices sql 120 +35 %" in text
    assert "pass warning payment_amount_not_negative" in text


def test_a_clean_run_says_so(sqlite_engine, tmp_path):
    insert_run(sqlite_engine, clean=True)
    written = reports.write_reports(sqlite_engine, RUN_ID, tmp_path / "clean")
    text = visible_text(page(written))
    assert "Clean: QuickBooks says exactly what TaxDome says" in text
    assert "realm 9130354519120123" in text
    assert "Out of scope by rule (1)" in text
    assert "No sync run was given, so no data-quality results are shown." in text
    assert 'class="verdict clean"' in page(written)


def test_a_long_class_is_cut_short_on_the_page_but_complete_in_the_files(
    written, sqlite_engine, tmp_path, monkeypatch
):
    monkeypatch.setattr(report_html, "HTML_ROWS_PER_CLASS", 1)
    again = reports.write_reports(sqlite_engine, RUN_ID, tmp_path / "short")
    assert "The first 1 of 2 are listed here" in visible_text(page(again))
    assert "processing fee missing" not in page(again)
    with open(again["exceptions_csv"], encoding="utf-8", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(EXCEPTIONS)


def test_an_unknown_run_is_refused(sqlite_engine, tmp_path):
    with pytest.raises(reports.ReconciliationRunNotFound, match="nope"):
        reports.write_reports(sqlite_engine, "nope", tmp_path / "none")


# -- nothing leaves the machine ---------------------------------------------------------------------------


class Resources(HTMLParser):
    """Every tag and every attribute that can make a browser fetch or navigate."""

    FETCHING_TAGS = frozenset(
        {
            "script", "link", "img", "iframe", "frame", "object", "embed", "base", "video", "audio", "source",
            "track", "image", "use", "feimage", "form", "input", "meta",
        }
    )  # fmt: skip
    ADDRESS_ATTRIBUTES = frozenset(
        {
            "src", "srcset", "href", "xlink:href", "data", "poster", "action", "formaction", "background",
            "manifest", "ping", "content",
        }
    )  # fmt: skip

    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.addresses: list[tuple[str, str, str]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in self.ADDRESS_ATTRIBUTES:
                self.addresses.append((tag, name, value or ""))
            if name == "style":
                self.styles.append(value or "")

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def assert_loads_nothing(html: str) -> None:
    resources = Resources()
    resources.feed(html)
    assert resources.tags & Resources.FETCHING_TAGS <= {"meta"}
    for tag, attribute, value in resources.addresses:
        if tag == "meta":  # charset, policy and viewport: no address among them
            assert "://" not in value and "url" not in value.lower(), value
        else:  # a link the reader may click: an anchor in the page or a QuickBooks deep link
            assert (tag, attribute) == ("a", "href"), (tag, attribute, value)
            assert value.startswith("#") or value in QBO_LINKS, value
    assert not [style for style in resources.styles if re.search(r"url\s*\(|@import|@font-face", style, re.I)]
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_the_page_references_nothing_outside_itself(written):
    assert_loads_nothing(page(written))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def png_colors(data: bytes) -> set[tuple[int, int, int]]:
    """The distinct RGB colors of an 8-bit RGB/RGBA PNG, decoded with the standard library."""
    width, height = png_size(data)
    bit_depth, color_type = data[24], data[25]
    assert bit_depth == 8 and color_type in (2, 6)
    channels = 3 if color_type == 2 else 4
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            chunks.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    colors = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                up_left = previous[i - channels] if i >= channels else 0
                estimate = left + up - up_left
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + predictor) & 0xFF
        colors.update(zip(line[0::channels], line[1::channels], line[2::channels], strict=True))
        previous = line
    return colors


def hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def chromium(url: str, workdir: Path) -> tuple[bytes, list[tuple[str, dict]]]:
    """Open `url` in headless Chromium; its screenshot and net log events (type name, params)."""
    screenshot, net_log = workdir / "page.png", workdir / "netlog.json"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-features=NetworkTimeServiceQuerying",
        "--hide-scrollbars",
        # Every host name resolves to nothing, so no request could reach another machine, by mistake or not.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--log-net-log={net_log}",
        f"--user-data-dir={workdir / 'profile'}",
        f"--screenshot={screenshot}",
        "--window-size=1280,2400",
        url,
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    log = json.loads(net_log.read_text(encoding="utf-8"))
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    events = [(names[event["type"]], event.get("params") or {}) for event in log["events"]]
    return screenshot.read_bytes(), events


def page_requests(events: list[tuple[str, dict]]) -> list[str]:
    """Requests the page made. Chromium's own background requests (update checks, account lookups) have no
    initiator ("not an origin"); anything a page loads names the page's origin ("null" for a file)."""
    return [
        params["url"]
        for name, params in events
        if name == "URL_REQUEST_START_JOB" and params.get("initiator", "not an origin") != "not an origin"
    ]


def connection_attempts(events: list[tuple[str, dict]]) -> list[dict]:
    """TCP connections tried to any address (none can be: no name resolves). The resolver's IPv6 routing
    probe "connects" a UDP socket, which sends nothing, so it is not counted."""
    return [params for name, params in events if name in ("TCP_CONNECT", "TCP_CONNECT_ATTEMPT")]


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"
)


@needs_chromium
def test_chromium_renders_the_page_with_its_charts_and_no_request_leaves_the_machine(written, tmp_path):
    screenshot, events = chromium(Path(written["html"]).as_uri(), tmp_path)
    keep = Path(__file__).resolve().parents[1] / ".airflow" / "pytest" / "reconciliation-screenshot.png"
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_bytes(screenshot)  # to look at after the run

    assert png_size(screenshot) == (1280, 2400)
    colors = png_colors(screenshot)
    assert len(colors) > 50  # text, charts and tables, not a blank or error page
    assert {hex_rgb(report_html.TAXDOME_COLOR), hex_rgb(report_html.QBO_COLOR)} <= colors  # the bars
    assert page_requests(events) == []
    assert connection_attempts(events) == []
    assert_loads_nothing(page(written))


@needs_chromium
def test_the_net_log_check_catches_a_page_that_loads_from_the_web(tmp_path):
    """The control: the same check sees a stylesheet, an image and a CSS background asked of other hosts."""
    control = tmp_path / "control.html"
    control.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://fonts.example.invalid/a.css"></head>'
        '<body><img src="https://images.example.invalid/a.png">'
        '<div style="background: url(https://images.example.invalid/b.png)">x</div></body></html>',
        encoding="utf-8",
    )
    _, events = chromium(control.as_uri(), tmp_path)
    assert set(page_requests(events)) == {
        "https://fonts.example.invalid/a.css",
        "https://images.example.invalid/a.png",
        "https://images.example.invalid/b.png",
    }
    assert connection_attempts(events) == []
    with pytest.raises(AssertionError):
        assert_loads_nothing(control.read_text(encoding="utf-8"))


# -- CSV and XLSX ------------------------------------------------------------------------------------------


def test_the_csv_files_hold_every_row_with_money_as_decimal_text(written):
    with open(written["summary_csv"], encoding="utf-8", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert len(summary) == len(summary_rows())
    assert {"measure": "invoiced", "period": "total", "dimension": "", "taxdome": "40704.56", "qbo": "40670.00",
            "difference": "-34.56"} in summary  # fmt: skip
    assert {"measure": "fees", "period": "total", "dimension": "stripe", "taxdome": "600.00", "qbo": "585.50",
            "difference": "-14.50"} in summary  # fmt: skip
    with open(written["exceptions_csv"], encoding="utf-8", newline="") as handle:
        exceptions = list(csv.DictReader(handle))
    assert [row["seq"] for row in exceptions] == [str(e["seq"]) for e in EXCEPTIONS]
    assert exceptions[0] == {
        "seq": "1",
        "difference_class": "amount_mismatch",
        "explained": "false",
        "object_kind": "invoice",
        "taxdome_id": "I7",
        "qbo_entity": "Invoice",
        "qbo_id": "145",
        "measure": "invoiced",
        "taxdome": "1234.56",
        "qbo": "1200.00",
        "difference": "-34.56",
        "detail": "total edited in QuickBooks by hand",
        "qbo_link": INVOICE_LINK,
    }
    assert exceptions[3]["taxdome"] == "" and exceptions[3]["qbo"] == "25.00"
    assert exceptions[6]["explained"] == "true"


def test_the_workbook_has_a_summary_and_a_sheet_per_class_with_formats(written):
    book = openpyxl.load_workbook(written["xlsx"])
    assert book.sheetnames == [
        "Run",
        "Summary",
        "Missing in QuickBooks",
        "Extra in QuickBooks",
        "Amount mismatch",
        "Customer mismatch",
        "Duplicate in QuickBooks",
        "Out of scope by rule",
        "Data quality",
    ]
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        assert all(cell.font.bold for cell in sheet[1]), sheet.title
        assert sheet.column_dimensions["A"].width > 5, sheet.title

    run = {row[0]: row[1] for row in book["Run"].iter_rows(min_row=2, values_only=True)}
    assert run["Verdict"] == "6 unexplained differences"
    assert run["Period from"] == datetime(2026, 1, 1)
    assert book["Run"]["B5"].number_format == "yyyy-mm-dd"

    summary = book["Summary"]
    rows = list(summary.iter_rows(min_row=2, values_only=True))
    invoiced = next(r for r in rows if r[6] == "invoiced" and r[1] == "total")
    assert invoiced[:6] == ("Invoiced", "total", None, 40704.56, 40670.0, -34.56)
    balance = next(r for r in rows if r[6] == "customer_balance")
    assert balance[3] == 1234567.89
    assert summary["D2"].number_format == "#,##0.00"

    mismatch = book["Amount mismatch"]
    assert [c.value for c in mismatch[2]][:10] == [1, "no", "invoice", "I7", "Invoice", "145", "Invoiced", 1234.56, 1200.0, -34.56]  # fmt: skip
    assert mismatch["H2"].number_format == "#,##0.00"
    assert mismatch["L2"].hyperlink.target == INVOICE_LINK
    assert book["Customer mismatch"]["L2"].value == "javascript:alert(1)"
    assert book["Customer mismatch"]["L2"].hyperlink is None
    assert book["Missing in QuickBooks"].max_row == 3

    quality = book["Data quality"]
    assert [c.value for c in quality[2]][:9] == ["FAIL", "critical", "invoice_total_equals_lines", "stg_taxdome__invoices", "gx", 120, 2, None, "I7, I8"]  # fmt: skip
    assert quality["K2"].number_format == "yyyy-mm-dd hh:mm"


def test_an_invoice_only_quickbooks_has_reads_as_finance_finds_it_there_in_every_format(
    sqlite_engine, tmp_path
):
    """From the reconciliation through the warehouse to the page (escaped), the CSV and the workbook."""
    empty = pd.DataFrame()
    qbo = QboSide(
        customers=pd.DataFrame(
            [("7", "Acme & Co <Ltd>", 12000, None)],
            columns=["qbo_id", "display_name", "balance_cents", "marker"],
        ),
        invoices=pd.DataFrame(
            [("90", "1042", "2026-03-01", "7", 12000, 0, 12000, None)],
            columns=[
                "qbo_id",
                "doc_number",
                "txn_date",
                "customer_id",
                "total_cents",
                "tax_cents",
                "balance_cents",
                "marker",
            ],
        ),
        **dict.fromkeys(
            ("invoice_lines", "payments", "payment_links", "credit_memos", "purchases", "refund_receipts"),
            empty,
        ),
    )
    taxdome = TaxDomeSide(
        **dict.fromkeys(("accounts", "invoices", "payments", "applications", "refunds", "payouts"), empty)
    )
    settings = ReconciliationSettings(
        period_from=date(2026, 1, 1), period_to=date(2026, 3, 31), app_url="https://app.qbo.intuit.com/app"
    )
    result = reconcile(taxdome, qbo, empty, empty, settings)
    warehouse.create_schema(sqlite_engine)
    recon_service.record(sqlite_engine, RUN_ID, REALM, "sync-1", result, settings)

    written = reports.write_reports(sqlite_engine, RUN_ID, tmp_path / "run")

    named = "Invoice no. 1042 for Acme & Co <Ltd>, dated 2026-03-01, $120.00: carries no TaxDome marker"
    html = page(written)
    assert escape(named) in html and "<Ltd>" not in html
    assert named in visible_text(html)
    with open(written["exceptions_csv"], encoding="utf-8", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert (row["difference_class"], row["qbo_id"], row["qbo"], row["detail"]) == (
        "extra_in_qbo",
        "90",
        "120.00",
        named,
    )
    sheet = openpyxl.load_workbook(written["xlsx"])["Extra in QuickBooks"]
    assert [cell.value for cell in sheet[2]][4:] == [
        "Invoice", "90", "Amount", None, 120.0, -120.0, named, "https://app.qbo.intuit.com/app/invoice?txnId=90"
    ]  # fmt: skip


# -- an object store --------------------------------------------------------------------------------------


def test_an_object_storage_path_works_as_the_folder(sqlite_engine, tmp_path):
    """The glue passes Airflow's ObjectStoragePath (for s3://, gs://, ...); fsspec's file:// stands in here."""
    from airflow.sdk import ObjectStoragePath

    insert_run(sqlite_engine)
    folder = ObjectStoragePath(f"file://{tmp_path}/store/recon run")
    written = reports.write_reports(sqlite_engine, RUN_ID, folder, dq_run_id=DQ_RUN_ID)
    assert written["html"] == f"file://{tmp_path}/store/recon run/reconciliation.html"
    local = tmp_path / "store" / "recon run"
    assert "6 unexplained differences" in (local / "reconciliation.html").read_text(encoding="utf-8")
    assert openpyxl.load_workbook(local / "reconciliation.xlsx").sheetnames[:2] == ["Run", "Summary"]
    assert (local / "exceptions.csv").read_bytes().startswith(b"seq,difference_class,")


def test_the_reports_read_alike_from_sqlite_and_postgresql(warehouse_engine, tmp_path):
    insert_run(warehouse_engine)
    written = reports.write_reports(warehouse_engine, RUN_ID, tmp_path / "db", dq_run_id=DQ_RUN_ID)
    text = visible_text(page(written))
    assert "6 unexplained differences" in text
    assert "started 2026-04-01 06:00 UTC · finished 2026-04-01 06:02 UTC" in text
    assert "1 invoice I7 Invoice 145 Invoiced 1,234.56 1,200.00 -34.56" in text
    with open(written["exceptions_csv"], encoding="utf-8", newline="") as handle:
        assert [row["explained"] for row in csv.DictReader(handle)] == ["false"] * 6 + ["true"]
    run = openpyxl.load_workbook(written["xlsx"])["Run"]
    assert run["B8"].value == datetime(2026, 4, 1, 6, 0)  # Started (UTC)


def test_a_class_longer_than_an_excel_sheet_is_cut_short_and_says_so(sqlite_engine, tmp_path, monkeypatch):
    monkeypatch.setattr(reports, "EXCEL_MAX_ROWS", 2)  # a header and one difference
    insert_run(sqlite_engine)
    book = openpyxl.load_workbook(reports.write_reports(sqlite_engine, RUN_ID, tmp_path / "cut")["xlsx"])
    assert book["Missing in QuickBooks"].max_row == 2
    notes = [row[1] for row in book["Run"].iter_rows(min_row=2, values_only=True) if row[0] == "Note"]
    assert notes == ["Missing in QuickBooks: the sheet lists the first 1 of 2; exceptions.csv has all"]
