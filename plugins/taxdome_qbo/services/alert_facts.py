"""The facts finance's alert states about a reconciliation run, read from the warehouse by the run's id (no
Airflow): its verdict, its headline totals and its unexplained differences by class. The workbook it attaches
is `ui_reports.report_document`'s, as the UI serves it."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from taxdome_qbo.core.alerts import ReconciliationFacts, Total, UnexplainedClass
from taxdome_qbo.core.report_html import class_order
from taxdome_qbo.services import sql, ui_reports


def reconciliation_facts(
    engine: Engine, recon_run_id: str, *, company_name: str | None, report_url: str
) -> ReconciliationFacts:
    """NotFound (ui_reports) when no reconciliation run has that id."""
    run = ui_reports.reconciliation_run(engine, recon_run_id)
    with engine.connect() as conn:
        totals = sql.fetch_all(conn, "ui/select_reconciliation_totals", recon_run_id=recon_run_id)
        classes = sql.fetch_all(conn, "alerts/select_unexplained_by_class", recon_run_id=recon_run_id)
    by_class = {row.difference_class: row for row in classes}
    return ReconciliationFacts(
        recon_run_id=recon_run_id,
        company_name=company_name,
        period_from=run.period_from,
        period_to=run.period_to,
        verdict=run.verdict or "",
        unexplained=run.unexplained or 0,
        totals=[Total(t.measure, t.taxdome_cents, t.qbo_cents, t.difference_cents) for t in totals],
        unexplained_by_class=[
            UnexplainedClass(name, int(by_class[name].differences), int(by_class[name].amount_cents))
            for name in class_order(by_class)
        ],
        report_url=report_url,
    )
