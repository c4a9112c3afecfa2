"""What the alerts say: each message's subject and lines, made from a run's facts (README, "Alerts").

Pure: the glue (`taxdome_qbo/alerts.py`) gathers the facts and sends the messages through Airflow's
notifiers. A message names DAGs, tasks, runs, the QuickBooks company, classes and amounts; never a secret
(a URL's credentials are cut from a failure's reason) nor a client's data beyond names and amounts: a
failure's reason is its first line only, which names no TaxDome object (the ids follow on later lines).
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from taxdome_qbo.core.money import format_money
from taxdome_qbo.core.report_html import HEADLINE_MEASURES, class_label, measure_label

SUBJECT_PREFIX = "[taxdome-qbo]"
REASON_LIMIT = 300
RUNBOOK_FAILURES = "docs/runbook.md#what-a-failure-means"
RUNBOOK_OVERDUE = "docs/runbook.md#a-sync-that-has-not-finished"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)


@dataclass(frozen=True)
class Alert:
    subject: str
    lines: tuple[str, ...]

    def text(self) -> str:
        return "\n".join(self.lines)

    def html(self) -> str:
        """The e-mail body: the lines as they are, escaped (a name with `<` or `&` stays text)."""
        body = "<br>\n".join(html.escape(line) for line in self.lines)
        return f'<html><body style="font-family: sans-serif">\n{body}\n</body></html>'

    def slack_text(self) -> str:
        """The Slack message: the subject in bold, then the lines; `&`, `<`, `>` escaped as Slack requires
        (unescaped, `<...>` would be read as a link or a mention)."""
        return f"*{_slack_escape(self.subject)}*\n{_slack_escape(self.text())}"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def one_line_reason(error: str) -> str:
    """The first non-empty line of an error, without a URL's user and password, cut to REASON_LIMIT."""
    first = next((line.strip() for line in error.splitlines() if line.strip()), "no reason was given")
    first = _URL_CREDENTIALS.sub(r"\g<scheme>", first)
    return first if len(first) <= REASON_LIMIT else first[: REASON_LIMIT - 1] + "…"


# -- a failed task -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureAdvice:
    """What the data team does about a failure whose reason says `marker` (the runbook's list, in short)."""

    marker: str
    what_to_do: str


# In the order of the runbook's "What a failure means"; the first whose marker the reason contains applies.
FAILURE_ADVICE = (
    FailureAdvice(
        "lacks required",
        "the export is incomplete or not an export: fix or remove its folder, then clear the task.",
    ),
    FailureAdvice(
        "firm settings",
        "correct the setting the reason names (a DAG param or the taxdome_qbo_settings Variable), then clear "
        "the task.",
    ),
    FailureAdvice(
        "critical data-quality checks failed",
        "nothing was written to QuickBooks. Fix the data in TaxDome and load a new export, then clear "
        "`check` (dq_results holds every check of the run).",
    ),
    FailureAdvice(
        "synced objects",
        "if TaxDome really deleted them, trigger with allow_mass_delete: true; if the export is partial, use "
        "export_mode: incremental.",
    ),
    FailureAdvice(
        "is being written by",
        "another writer holds the QuickBooks company's lease; run it again once that is done.",
    ),
    FailureAdvice(
        "unexplained difference",
        "open the report (the reconciliation's Reconciliation report link); fix each difference in TaxDome "
        "or QuickBooks, or `python -m taxdome_qbo retry`, then run the sync or the reconciliation again.",
    ),
    FailureAdvice(
        "still queued or running",
        "look at the taxdome_qbo_sync run in the UI; once it has finished or was marked failed, clear "
        "`wait_for_sync`.",
    ),
    FailureAdvice(
        "refused the sync's requests",
        "QuickBooks refuses the company: make sure the connected user is still an admin and the subscription "
        "active, reconnect (`python -m taxdome_qbo reconnect`), then clear the task.",
    ),
)
RETRIED_FAILURE = FailureAdvice(
    "",
    "it was retried and failed each time (a database or QuickBooks unreachable, …); once the cause is "
    "fixed, clearing the task is safe: nothing is duplicated.",
)


def failure_advice(reason: str) -> FailureAdvice:
    folded = reason.lower()
    return next((advice for advice in FAILURE_ADVICE if advice.marker in folded), RETRIED_FAILURE)


def task_failed(
    *, dag_id: str, task_id: str, run_id: str, try_number: int, error: str, log_url: str
) -> Alert:
    """For the data team: which DAG, task and run failed, why in one line, what to do, and its log."""
    reason = one_line_reason(error)
    return Alert(
        f"{SUBJECT_PREFIX} {dag_id}: task {task_id} failed",
        (
            f"DAG: {dag_id}",
            f"Task: {task_id} (try {try_number})",
            f"Run: {run_id}",
            f"Reason: {reason}",
            f"What to do: {failure_advice(reason).what_to_do}",
            f"Runbook: {RUNBOOK_FAILURES}",
            f"Log: {log_url}",
        ),
    )


# -- a sync that has not finished --------------------------------------------------------------------------

# A run in one of these states has finished: its own outcome was told (a failure by the failed task's alert).
FINISHED_STATES = frozenset({"success", "failed"})


def sync_overdue(
    *, dag_id: str, run_id: str, state: str, queued_at: dt.datetime, deadline: dt.datetime, run_url: str
) -> Alert:
    """For the data team: a run of the sync still queued or running at its deadline."""
    minutes = round((deadline - queued_at).total_seconds() / 60)
    return Alert(
        f"{SUBJECT_PREFIX} {dag_id}: run not finished {minutes} minute{'' if minutes == 1 else 's'} after it "
        "was queued",
        (
            f"DAG: {dag_id}",
            f"Run: {run_id}",
            f"Queued at: {queued_at:%Y-%m-%d %H:%M} UTC; deadline {deadline:%Y-%m-%d %H:%M} UTC",
            f"State: {state}",
            "What to do: open the run: a task waiting for the qbo_api pool or the company's lease, a long load "
            "(its log counts the batches), or a scheduler or worker that stopped.",
            f"Runbook: {RUNBOOK_OVERDUE}",
            f"Run in the UI: {run_url}",
        ),
    )


# -- a reconciliation's verdict for finance ----------------------------------------------------------------


@dataclass(frozen=True)
class Total:
    measure: str
    taxdome_cents: int | None
    qbo_cents: int | None
    difference_cents: int | None


@dataclass(frozen=True)
class UnexplainedClass:
    difference_class: str
    differences: int
    amount_cents: int  # the differences' amounts added up regardless of sign: what is at stake


@dataclass(frozen=True)
class ReconciliationFacts:
    recon_run_id: str
    company_name: str | None
    period_from: dt.date | None
    period_to: dt.date | None
    verdict: str  # clean | differences | superseded
    unexplained: int
    totals: Sequence[Total]
    unexplained_by_class: Sequence[UnexplainedClass]
    report_url: str


def finance_hears(facts: ReconciliationFacts, *, on_clean: bool) -> bool:
    """Unexplained differences always; a clean run when finance asked for it; a superseded comparison never
    (it judged nothing: the reconciliation after the sync that changed the data will)."""
    if facts.verdict == "differences":
        return True
    return facts.verdict == "clean" and on_clean


def _period(facts: ReconciliationFacts) -> str:
    start = f"{facts.period_from:%Y-%m-%d}" if facts.period_from else "the first date"
    end = f"{facts.period_to:%Y-%m-%d}" if facts.period_to else "today"
    return f"{start} to {end}"


def _total_line(total: Total) -> str:
    return (
        f"  {measure_label(total.measure)}: TaxDome {format_money(total.taxdome_cents) or '-'}, QuickBooks "
        f"{format_money(total.qbo_cents) or '-'}, difference {format_money(total.difference_cents) or '-'}"
    )


def reconciliation_verdict(facts: ReconciliationFacts, *, attachment: str | None) -> Alert:
    """For finance: the verdict, the headline totals, the unexplained differences by class, and where the
    report is (`attachment`: the attached workbook's name; None: only linked)."""
    company = " ".join((facts.company_name or "QuickBooks").split())  # one line: it is in the subject
    if facts.unexplained:
        noun = "difference" if facts.unexplained == 1 else "differences"
        short = f"{facts.unexplained:,} unexplained {noun}"
        verdict = f"{short} between TaxDome and QuickBooks"
    else:
        short, verdict = "clean", "clean: QuickBooks says exactly what TaxDome says"
    order = {measure: i for i, measure in enumerate(HEADLINE_MEASURES)}
    headline = sorted((t for t in facts.totals if t.measure in order), key=lambda t: order[t.measure])
    lines = [f"Reconciliation of {company}, {_period(facts)}: {verdict}.", "", "Totals for the period:"]
    lines += [_total_line(total) for total in headline] or ["  none recorded"]
    if facts.unexplained_by_class:
        lines += ["", "Unexplained differences by class:"]
        lines += [
            f"  {class_label(c.difference_class)}: {c.differences:,} ({format_money(c.amount_cents)})"
            for c in facts.unexplained_by_class
        ]
    lines.append("")
    if attachment:
        lines.append(f"The report is attached ({attachment}) and in the UI: {facts.report_url}")
    else:
        lines.append(f"The report: {facts.report_url}")
    return Alert(f"{SUBJECT_PREFIX} Reconciliation of {company}, {_period(facts)}: {short}", tuple(lines))
