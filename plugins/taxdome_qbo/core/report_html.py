"""The reconciliation report a finance person opens without help: one self-contained HTML page, from plain data.

Self-contained means it opens offline and nothing on it is fetched: styles are inline, charts are inline
SVG drawn here, and a Content-Security-Policy forbids any load a future edit might add by mistake. The only
addresses on the page are the QuickBooks deep links, which a reader follows by clicking. All money arrives
as integer cents and is written from them exactly; only chart coordinates are floats.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html import escape

from taxdome_qbo.core.money import format_money
from taxdome_qbo.core.reconciliation_checks import MEASURE_LABELS  # each declared beside its check
from taxdome_qbo.core.reconciliation_period import balances_left_out

# -- the report's data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    measure: str
    period: str  # total | YYYY-MM | YYYY-MM-DD
    dimension: str  # '' or the processor
    taxdome_cents: int
    qbo_cents: int
    difference_cents: int


@dataclass(frozen=True)
class ExceptionRow:
    seq: int
    difference_class: str
    explained: bool
    object_kind: str
    taxdome_id: str | None
    qbo_entity: str | None
    qbo_id: str | None
    measure: str | None
    taxdome_cents: int | None
    qbo_cents: int | None
    difference_cents: int | None
    detail: str
    qbo_link: str | None


@dataclass(frozen=True)
class DqResult:
    check_name: str
    table_name: str
    engine: str
    severity: str  # critical | warning
    success: bool
    evaluated_rows: int | None
    unexpected_count: int | None
    observed: str | None
    unexpected_ids: tuple[str, ...]
    description: str
    checked_at: datetime | None


@dataclass(frozen=True)
class ReconciliationReport:
    recon_run_id: str
    realm_id: str
    company_name: str | None
    period_from: date | None
    period_to: date | None
    started_at: datetime | None
    finished_at: datetime | None
    unexplained: int
    summary: Sequence[SummaryRow]
    exceptions: Sequence[ExceptionRow]
    dq_run_id: str | None = None
    dq_results: Sequence[DqResult] = field(default_factory=tuple)

    @property
    def clean(self) -> bool:
        return self.unexplained == 0

    @property
    def company(self) -> str:
        if self.company_name:
            return f"{self.company_name} (realm {self.realm_id})"
        return f"realm {self.realm_id}"

    @property
    def period(self) -> str:
        if self.period_from and self.period_to:
            return f"{self.period_from:%Y-%m-%d} to {self.period_to:%Y-%m-%d}"
        if self.period_from:
            return f"from {self.period_from:%Y-%m-%d}"
        if self.period_to:
            return f"until {self.period_to:%Y-%m-%d}"
        return "all dates"

    @property
    def balances_left_out(self) -> str | None:
        """Why this run compared no balances (its period ended before the day it ran), or None. A run recorded
        before periods left balances out compared them, whatever its period: its summary holds them."""
        if any(row.measure == "customer_balance" for row in self.summary):
            return None
        return balances_left_out(self.period_to, self.started_at.date() if self.started_at else None)

    @property
    def headline(self) -> str:
        if self.clean:
            return "Clean: QuickBooks says exactly what TaxDome says"
        noun = "difference" if self.unexplained == 1 else "differences"
        return f"{self.unexplained:,} unexplained {noun}"


# -- labels finance reads ----------------------------------------------------------------------------------

# The totals named first (the Overview, finance's alert), in the order finance reads them.
HEADLINE_MEASURES = ("invoiced", "collected_gross", "fees", "net", "refunds")
MONTHLY_MEASURES = ("invoiced", "collected_gross", "fees", "net", "refunds", "credits")
PROCESSOR_LABELS = {
    "stripe": "Stripe",
    "cpacharge": "CPACharge",
    "taxdome_payments": "TaxDome Payments",
    "none": "No processor",
    "unmatched": "Not matched to TaxDome",
}
# Unexplained classes first, in the order a reader works through them; the explained class last.
CLASS_LABELS = {
    "missing_in_qbo": "Missing in QuickBooks",
    "extra_in_qbo": "Extra in QuickBooks",
    "amount_mismatch": "Amount mismatch",
    "customer_mismatch": "Customer mismatch",
    "field_mismatch": "Date or account mismatch",
    "duplicate_in_qbo": "Duplicate in QuickBooks",
    "out_of_scope": "Out of scope by rule",
}
CLASS_MEANINGS = {
    "missing_in_qbo": "In TaxDome and in the sync's scope, but not found in QuickBooks.",
    "extra_in_qbo": "In QuickBooks without a TaxDome marker, or matching nothing in TaxDome; named as QuickBooks shows it (type, number, customer, date, amount).",
    "amount_mismatch": "In both, with different amounts.",
    "customer_mismatch": "In both, for different customers (or the customer was renamed in QuickBooks).",
    "field_mismatch": "In both, with another date or deposit account.",
    "duplicate_in_qbo": "One TaxDome object appears more than once in QuickBooks.",
    "out_of_scope": "Differs on purpose: a sync rule keeps it out of QuickBooks (the rule is in the detail).",
}
HTML_ROWS_PER_CLASS = 1000  # a browser stays quick; the CSV and the workbook list every exception

TAXDOME_COLOR = "#2f6db5"
QBO_COLOR = "#2ca01c"  # QuickBooks' green
DIFFERENCE_COLOR = "#c62828"


def measure_label(measure: str | None) -> str:
    return MEASURE_LABELS.get(measure or "", (measure or "").replace("_", " ").capitalize())


def processor_label(processor: str) -> str:
    return PROCESSOR_LABELS.get(processor, processor.replace("_", " ").capitalize())


def class_label(difference_class: str) -> str:
    return CLASS_LABELS.get(difference_class, difference_class.replace("_", " ").capitalize())


def class_order(difference_classes: Iterable[str]) -> list[str]:
    """The classes present, known ones in CLASS_LABELS order, then any other alphabetically."""
    known = list(CLASS_LABELS)
    return sorted(set(difference_classes), key=lambda c: (known.index(c) if c in known else len(known), c))


def format_timestamp(moment: datetime | None) -> str:
    if moment is None:
        return ""
    # Warehouse timestamps are UTC; SQLite hands them back without a zone.
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    return f"{utc:%Y-%m-%d %H:%M} UTC"


# -- charts (inline SVG) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    values: Sequence[int]  # cents, one per category


def _nice_step(span_cents: int, ticks: int = 5) -> int:
    """The smallest 1, 2 or 5 × 10^k whole-unit step (in cents) that covers the span in `ticks` steps."""
    step = 100
    while True:
        for multiple in (1, 2, 5):
            if step * multiple * ticks >= span_cents:
                return step * multiple
        step *= 10


def _axis(values: Iterable[int]) -> tuple[int, int, int]:
    """(low, high, step) in cents: zero is always on the axis and both ends are whole steps."""
    values = list(values)
    low, high = min([0, *values]), max([0, *values])
    step = _nice_step(high - low)
    return (low // step) * step, (-(-high // step) * step) or step, step


def _axis_label(cents: int) -> str:
    return f"{cents // 100:,}"  # ticks are whole units by construction


def _legend(series: Sequence[Series], *, x: float, y: float, differences: bool) -> list[str]:
    parts = []
    for entry in series:
        parts.append(f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{entry.color}"/>')
        parts.append(f'<text x="{x + 17:.1f}" y="{y:.1f}">{escape(entry.label)}</text>')
        x += 30 + 7.5 * len(entry.label)
    if differences:
        parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" fill="{DIFFERENCE_COLOR}" font-weight="bold">≠ differs</text>'
        )
    return parts


def _frame(title: str, width: int, height: int, body: list[str]) -> str:
    return (
        f'<figure class="chart" style="max-width: {width}px">'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" font-family="Helvetica, Arial, sans-serif" font-size="12">'
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>'
        + "".join(body)
        + "</svg></figure>"
    )


class _Plot:
    """A chart's geometry: categories across, cents up (zero always on the axis), legend and grid drawn."""

    HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 300, 80, 10, 56, 40
    LABEL_WIDTH = 70  # room a category label needs, so crowded axes label every n-th category only

    def __init__(self, width: int, categories: Sequence[str], series: Sequence[Series]) -> None:
        self.width, self.categories, self.series = width, categories, series
        self.plot_width = width - self.LEFT - self.RIGHT
        self.low, self.high, self.step = _axis(v for s in series for v in s.values)
        self.scale = (self.HEIGHT - self.TOP - self.BOTTOM) / (self.high - self.low)
        self.slot = self.plot_width / max(len(categories), 1)
        self.differing = [len({s.values[i] for s in series}) > 1 for i in range(len(categories))]

    def y_of(self, cents: int) -> float:
        return self.TOP + (self.high - cents) * self.scale

    def center_of(self, index: int) -> float:
        return self.LEFT + (index + 0.5) * self.slot

    def background(self) -> list[str]:
        """Legend, horizontal grid with whole-unit labels, and the category labels (red ≠ where they differ)."""
        body = _legend(self.series, x=self.LEFT, y=38, differences=any(self.differing))
        for tick in range(self.low, self.high + 1, self.step):
            y = self.y_of(tick)
            body.append(
                f'<line x1="{self.LEFT}" y1="{y:.1f}" x2="{self.width - self.RIGHT}" y2="{y:.1f}" stroke="#ddd"/>'
            )
            body.append(
                f'<text x="{self.LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_axis_label(tick)}</text>'
            )
        for index, differs in enumerate(self.differing):  # marked even where crowding leaves no label
            if differs:
                body.append(
                    f'<circle cx="{self.center_of(index):.1f}" cy="{self.HEIGHT - self.BOTTOM + 3}" r="2.5" '
                    f'fill="{DIFFERENCE_COLOR}"/>'
                )
        label_every = max(1, -(-len(self.categories) * self.LABEL_WIDTH // self.plot_width))
        for index in range(0, len(self.categories), label_every):
            differs = self.differing[index]
            body.append(
                f'<text x="{self.center_of(index):.1f}" y="{self.HEIGHT - self.BOTTOM + 16}" text-anchor="middle" '
                f'fill="{DIFFERENCE_COLOR if differs else "#333"}">{escape(self.categories[index])}'
                f"{' ≠' if differs else ''}</text>"
            )
        return body

    def baseline(self) -> str:
        y = self.y_of(0)
        return (
            f'<line x1="{self.LEFT}" y1="{y:.1f}" x2="{self.width - self.RIGHT}" y2="{y:.1f}" stroke="#555"/>'
        )


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, width: int = 560) -> str:
    """Grouped bars per category, one per series; a category where the series disagree is marked ≠."""
    plot = _Plot(width, categories, series)
    body = plot.background()
    bar = plot.slot * 0.8 / max(len(series), 1)
    for index, category in enumerate(categories):
        first_x = plot.LEFT + (index + 0.1) * plot.slot
        for number, entry in enumerate(series):
            value = entry.values[index]
            top_y, bottom_y = sorted((plot.y_of(value), plot.y_of(0)))
            tip = f"{entry.label} · {category}: {format_money(value)}"
            body.append(
                f'<rect x="{first_x + number * bar:.1f}" y="{top_y:.1f}" width="{bar * 0.95:.1f}" '
                f'height="{max(bottom_y - top_y, 0.5):.1f}" fill="{entry.color}"><title>{escape(tip)}</title></rect>'
            )
    body.append(plot.baseline())
    return _frame(title, width, plot.HEIGHT, body)


def line_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, width: int = 1000) -> str:
    """One line per series over many categories (days); points where the series disagree are ringed."""
    plot = _Plot(width, categories, series)
    body = plot.background()
    body.append(plot.baseline())
    # Later series are drawn dashed over earlier ones, so two equal lines still show both colors.
    for number, entry in enumerate(series):
        points = " ".join(f"{plot.center_of(i):.1f},{plot.y_of(v):.1f}" for i, v in enumerate(entry.values))
        dash = ' stroke-dasharray="6 4"' if number else ""
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{entry.color}" stroke-width="2"{dash}/>'
        )
        if len(categories) <= 31:  # dots (with exact amounts) while they do not crowd the line
            for index, value in enumerate(entry.values):
                tip = f"{entry.label} · {categories[index]}: {format_money(value)}"
                body.append(
                    f'<circle cx="{plot.center_of(index):.1f}" cy="{plot.y_of(value):.1f}" r="3" '
                    f'fill="{entry.color}"><title>{escape(tip)}</title></circle>'
                )
    for index, differs in enumerate(plot.differing):
        if differs:
            values = ", ".join(f"{s.label} {format_money(s.values[index])}" for s in series)
            body.append(
                f'<circle cx="{plot.center_of(index):.1f}" cy="{plot.y_of(series[0].values[index]):.1f}" r="7" '
                f'fill="none" stroke="{DIFFERENCE_COLOR}" stroke-width="2"><title>{escape(categories[index])}: '
                f"{escape(values)}</title></circle>"
            )
    return _frame(title, width, plot.HEIGHT, body)


def _both_sides(rows: Sequence[SummaryRow], categories: Sequence[str], key) -> list[Series]:
    by_category = {key(row): row for row in rows}
    empty = SummaryRow("", "", "", 0, 0, 0)
    picked = [by_category.get(category, empty) for category in categories]
    return [
        Series("TaxDome", TAXDOME_COLOR, [row.taxdome_cents for row in picked]),
        Series("QuickBooks", QBO_COLOR, [row.qbo_cents for row in picked]),
    ]


# -- the page --------------------------------------------------------------------------------------------

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 24px auto; max-width: 1180px;
       padding: 0 16px; line-height: 1.4; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px;
     border-bottom: 2px solid #ddd; padding-bottom: 4px; } h3 { font-size: 15px; margin-top: 20px; }
.meta { color: #555; margin: 2px 0; }
.verdict { font-size: 20px; font-weight: bold; padding: 12px 16px; border-radius: 6px; margin: 16px 0; }
.verdict.clean { background: #e8f5e9; color: #1b5e20; border: 1px solid #a5d6a7; }
.verdict.differences { background: #ffebee; color: #b71c1c; border: 1px solid #ef9a9a; }
.verdict-detail { display: block; font-size: 14px; font-weight: normal; margin-top: 4px; color: #333; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f3f5f7; }
td.money, th.money { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.differs td { background: #fff3f3; } td.differs { color: #b71c1c; font-weight: bold; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 12px; font-weight: bold; }
.pass { background: #e8f5e9; color: #1b5e20; } .fail { background: #ffebee; color: #b71c1c; }
.explained { background: #eceff1; color: #37474f; }
.note { color: #555; font-size: 13px; }
.charts { display: flex; flex-wrap: wrap; gap: 0 32px; }
figure.chart { margin: 12px 0 20px; flex: 1 1 480px; } figure.chart svg { width: 100%; height: auto; }
@media print {
  body { margin: 0; max-width: none; } nav { display: none; }
  figure.chart, tr { break-inside: avoid; } h2, h3 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""
# Nothing may be fetched: no scripts, fonts, images or styles from anywhere (inline <style> only), no base
# rewriting, no forms. Links still open on a click (CSP does not govern navigation).
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _money_cell(cents: int | None, *, differs: bool = False) -> str:
    css = "money differs" if differs else "money"
    return f'<td class="{css}">{format_money(cents)}</td>'


def _difference_row(cells: list[str], row: SummaryRow) -> str:
    css = ' class="differs"' if row.difference_cents else ""
    return (
        f"<tr{css}>{''.join(cells)}{_money_cell(row.taxdome_cents)}{_money_cell(row.qbo_cents)}"
        f"{_money_cell(row.difference_cents, differs=bool(row.difference_cents))}</tr>"
    )


def _sides_header(*first: str) -> str:
    names = "".join(f"<th>{escape(name)}</th>" for name in first)
    return f'<tr>{names}<th class="money">TaxDome</th><th class="money">QuickBooks</th><th class="money">Difference (TaxDome − QuickBooks)</th></tr>'


def _measure_key(measure: str) -> tuple[int, str]:
    known = list(MEASURE_LABELS)
    return (known.index(measure) if measure in known else len(known), measure)


def _is_month(period: str) -> bool:
    return len(period) == 7 and period[4] == "-"


def _is_day(period: str) -> bool:
    return len(period) == 10 and period[4] == "-" and period[7] == "-"


def _totals_section(summary: Sequence[SummaryRow]) -> str:
    totals = sorted(
        (r for r in summary if r.period == "total" and not r.dimension), key=lambda r: _measure_key(r.measure)
    )
    if not totals:
        return '<h2 id="totals">Totals</h2><p class="note">The reconciliation recorded no totals.</p>'
    rows = "".join(_difference_row([f"<td>{escape(measure_label(r.measure))}</td>"], r) for r in totals)
    return f'<h2 id="totals">Totals for the period</h2><table>{_sides_header("Measure")}{rows}</table>'


def _monthly_section(summary: Sequence[SummaryRow]) -> str:
    monthly = [
        r for r in summary if _is_month(r.period) and not r.dimension and r.measure in MONTHLY_MEASURES
    ]
    months = sorted({r.period for r in monthly})
    if not months:
        return '<h2 id="months">Per month</h2><p class="note">No monthly totals were recorded.</p>'
    charts = []
    for measure in ("invoiced", "collected_gross", "net"):
        rows = [r for r in monthly if r.measure == measure]
        if rows:
            series = _both_sides(rows, months, key=lambda r: r.period)
            charts.append(bar_chart(f"{measure_label(measure)} per month", months, series))
    table_rows = []
    for month in months:
        in_month = sorted((r for r in monthly if r.period == month), key=lambda r: _measure_key(r.measure))
        for position, row in enumerate(in_month):
            month_cell = f'<th rowspan="{len(in_month)}">{escape(month)}</th>' if position == 0 else ""
            table_rows.append(
                _difference_row([month_cell, f"<td>{escape(measure_label(row.measure))}</td>"], row)
            )
    return (
        f'<h2 id="months">Per month</h2><div class="charts">{"".join(charts)}</div>'
        f"<table>{_sides_header('Month', 'Measure')}{''.join(table_rows)}</table>"
    )


def _daily_net_section(summary: Sequence[SummaryRow]) -> str:
    daily = [r for r in summary if r.measure == "net" and _is_day(r.period) and not r.dimension]
    if not daily:
        return ""
    days = sorted({r.period for r in daily})
    chart = line_chart("Net (gross − fees) per day", days, _both_sides(daily, days, key=lambda r: r.period))
    differing = sorted((r for r in daily if r.difference_cents), key=lambda r: r.period)
    if differing:
        rows = "".join(_difference_row([f"<td>{escape(r.period)}</td>"], r) for r in differing)
        listing = f"<p>Days whose net differs:</p><table>{_sides_header('Day')}{rows}</table>"
    else:
        listing = f'<p class="note">The net agrees on all {len(days):,} days.</p>'
    return f'<h2 id="days">Net per day</h2>{chart}{listing}'


def _processor_section(summary: Sequence[SummaryRow]) -> str:
    by_processor = [r for r in summary if r.dimension and r.measure in ("fees", "net")]
    if not by_processor:
        return ""
    known = list(PROCESSOR_LABELS)
    processors = sorted(
        {r.dimension for r in by_processor}, key=lambda p: (known.index(p) if p in known else len(known), p)
    )
    labels = [processor_label(p) for p in processors]
    fee_totals = [r for r in by_processor if r.measure == "fees" and r.period == "total"]
    chart = (
        bar_chart(
            "Processing fees by processor",
            labels,
            _both_sides(fee_totals, processors, key=lambda r: r.dimension),
        )
        if fee_totals
        else ""
    )
    ordered = sorted(
        by_processor,
        key=lambda r: (r.period != "total", r.period, processors.index(r.dimension), _measure_key(r.measure)),
    )
    rows = "".join(
        _difference_row(
            [
                f"<td>{escape(r.period)}</td>",
                f"<td>{escape(processor_label(r.dimension))}</td>",
                f"<td>{escape(measure_label(r.measure))}</td>",
            ],
            r,
        )
        for r in ordered
    )
    return (
        f'<h2 id="processors">Fees and net by processor</h2>{chart}'
        f"<table>{_sides_header('Period', 'Processor', 'Measure')}{rows}</table>"
    )


def _link(url: str | None, text: str) -> str:
    # Only web addresses become links: a stored value is data, never a script to run on a click.
    if url and url.startswith(("https://", "http://")):
        return f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{escape(text)}</a>'
    return escape(text)


def _exceptions_section(exceptions: Sequence[ExceptionRow]) -> str:
    if not exceptions:
        return '<h2 id="exceptions">Exceptions</h2><p class="note">No differences: every object matched.</p>'
    grouped: dict[str, list[ExceptionRow]] = defaultdict(list)
    for row in exceptions:
        grouped[row.difference_class].append(row)
    classes = class_order(grouped)
    overview = "".join(
        f'<tr><td><a href="#class-{escape(c)}">{escape(class_label(c))}</a></td>'
        f'<td class="money">{len(grouped[c]):,}</td>'
        f'<td class="money">{sum(not r.explained for r in grouped[c]):,}</td></tr>'
        for c in classes
    )
    parts = [
        '<h2 id="exceptions">Exceptions by class</h2>',
        '<table><tr><th>Class</th><th class="money">Differences</th><th class="money">Unexplained</th></tr>',
        overview,
        "</table>",
    ]
    for difference_class in classes:
        rows = grouped[difference_class]
        shown = rows[:HTML_ROWS_PER_CLASS]
        parts.append(
            f'<h3 id="class-{escape(difference_class)}">{escape(class_label(difference_class))} '
            f'({len(rows):,})</h3><p class="note">{escape(CLASS_MEANINGS.get(difference_class, ""))}</p>'
        )
        if len(shown) < len(rows):
            parts.append(
                f'<p class="note">The first {len(shown):,} of {len(rows):,} are listed here; '
                "exceptions.csv and reconciliation.xlsx have them all.</p>"
            )
        parts.append(
            "<table><tr><th>#</th><th>Object</th><th>TaxDome id</th><th>In QuickBooks</th><th>Measure</th>"
            '<th class="money">TaxDome</th><th class="money">QuickBooks</th><th class="money">Difference (TaxDome − QuickBooks)</th>'
            "<th>Detail</th></tr>"
        )
        for row in shown:
            qbo = " ".join(part for part in (row.qbo_entity, row.qbo_id) if part)
            badge = ' <span class="badge explained">explained</span>' if row.explained else ""
            parts.append(
                f"<tr><td>{row.seq}</td><td>{escape(row.object_kind)}</td><td>{escape(row.taxdome_id or '')}</td>"
                f"<td>{_link(row.qbo_link, qbo or ('open' if row.qbo_link else ''))}</td>"
                f"<td>{escape(measure_label(row.measure))}</td>{_money_cell(row.taxdome_cents)}"
                f"{_money_cell(row.qbo_cents)}{_money_cell(row.difference_cents, differs=bool(row.difference_cents))}"
                f"<td>{escape(row.detail)}{badge}</td></tr>"
            )
        parts.append("</table>")
    return "".join(parts)


def _dq_section(dq_run_id: str | None, results: Sequence[DqResult]) -> str:
    heading = '<h2 id="quality">Data quality</h2>'
    if dq_run_id is None:
        return f'{heading}<p class="note">No sync run was given, so no data-quality results are shown.</p>'
    if not results:
        return f'{heading}<p class="note">Sync run {escape(dq_run_id)} recorded no data-quality results.</p>'
    failed = [r for r in results if not r.success]
    critical = sum(r.severity == "critical" for r in failed)
    verdict = (
        f"all {len(results):,} checks passed"
        if not failed
        else f"{len(failed):,} of {len(results):,} checks failed ({critical:,} critical)"
    )
    ordered = sorted(results, key=lambda r: (r.success, r.severity != "critical", r.check_name))
    rows = []
    for r in ordered:
        badge = (
            '<span class="badge pass">pass</span>' if r.success else '<span class="badge fail">FAIL</span>'
        )
        examples = ", ".join(r.unexpected_ids[:10]) + (" …" if len(r.unexpected_ids) > 10 else "")
        rows.append(
            f"<tr><td>{badge}</td><td>{escape(r.severity)}</td><td>{escape(r.check_name)}</td>"
            f"<td>{escape(r.table_name)}</td><td>{escape(r.engine)}</td>"
            f'<td class="money">{"" if r.evaluated_rows is None else f"{r.evaluated_rows:,}"}</td>'
            f'<td class="money">{"" if r.unexpected_count is None else f"{r.unexpected_count:,}"}</td>'
            f"<td>{escape(r.observed or '')}</td><td>{escape(examples)}</td><td>{escape(r.description)}</td></tr>"
        )
    return (
        f"{heading}<p>Checks of sync run {escape(dq_run_id)} before its load: {escape(verdict)}.</p>"
        "<table><tr><th>Result</th><th>Severity</th><th>Check</th><th>Table</th><th>Engine</th>"
        '<th class="money">Rows checked</th><th class="money">Unexpected</th><th>Observed</th>'
        f"<th>Unexpected TaxDome ids</th><th>What it checks</th></tr>{''.join(rows)}</table>"
    )


def _verdict_detail(report: ReconciliationReport) -> str:
    """What the differences are, in a line: unexplained per class, then how many a rule explains."""
    unexplained = [e.difference_class for e in report.exceptions if not e.explained]
    parts = [f"{class_label(c)}: {unexplained.count(c):,}" for c in class_order(unexplained)]
    explained = sum(e.explained for e in report.exceptions)
    if explained:
        parts.append(f"{explained:,} explained by a sync rule")
    if parts:
        return " · ".join(parts)
    return "Every object matched." if report.clean else "No single object carries them: see the totals below."


def render_html(report: ReconciliationReport) -> str:
    """The whole page as text (UTF-8 when written)."""
    verdict_class = "clean" if report.clean else "differences"
    title = f"Reconciliation TaxDome vs QuickBooks — {report.company}, {report.period}"
    run_times = " · ".join(
        part
        for part in (
            f"started {format_timestamp(report.started_at)}" if report.started_at else "",
            f"finished {format_timestamp(report.finished_at)}" if report.finished_at else "",
        )
        if part
    )
    sections = [  # (anchor, menu label, html); a section with nothing to show is left out
        ("totals", "Totals", _totals_section(report.summary)),
        ("months", "Per month", _monthly_section(report.summary)),
        ("days", "Per day", _daily_net_section(report.summary)),
        ("processors", "By processor", _processor_section(report.summary)),
        ("exceptions", "Exceptions", _exceptions_section(report.exceptions)),
        ("quality", "Data quality", _dq_section(report.dq_run_id, report.dq_results)),
    ]
    menu = "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label, html in sections if html)
    left_out = f'<p class="note">{escape(report.balances_left_out)}</p>' if report.balances_left_out else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        # Browsers otherwise look up the hosts of links on the page before anyone clicks.
        '<meta http-equiv="x-dns-prefetch-control" content="off">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        "<h1>Reconciliation: TaxDome vs QuickBooks Online</h1>"
        f'<p class="meta">Company: <strong>{escape(report.company)}</strong> · '
        f"Period: <strong>{escape(report.period)}</strong></p>"
        f'<p class="meta">Run {escape(report.recon_run_id)}{" · " + escape(run_times) if run_times else ""}</p>'
        f"{left_out}"
        f'<div class="verdict {verdict_class}">{escape(report.headline)}'
        f'<span class="verdict-detail">{escape(_verdict_detail(report))}</span></div>'
        f"<nav>{menu}</nav>"
        + "".join(html for _, _, html in sections)
        + '<p class="note">Amounts are exact to the cent. The same data is in summary.csv, exceptions.csv and '
        "reconciliation.xlsx next to this page.</p></body></html>\n"
    )


def parse_unexpected_ids(stored: str | None) -> tuple[str, ...]:
    """dq_results.unexpected_ids is a JSON list; anything else is shown as it is rather than lost."""
    if not stored:
        return ()
    try:
        ids = json.loads(stored)
    except ValueError:
        return (stored,)
    return tuple(str(i) for i in ids) if isinstance(ids, list) else (str(ids),)
