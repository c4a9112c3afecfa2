"""Alerts through Airflow's own notifiers: the SMTP provider's `SmtpNotifier` and the Slack provider's
`SlackWebhookNotifier`, each used only when its connection exists (README, "Alerts").

- `task_failed`: every task's `on_failure_callback` (the DAGs' default_args): the data team, by e-mail and
  Slack.
- `sync_overdue`: the sync's deadline alert (`sync_deadline`), a `SyncCallback` the executor runs when a run
  is still queued or running N minutes after it was queued: the data team.
- `reconciliation_verdict`: the reconciliation's `verdict` task, succeeded or failed: finance, by e-mail, with
  the report's workbook attached.

What the messages say is `core/alerts.py`'s. Sending never fails the pipeline: a notifier that fails is
logged and the next one is tried. The notifiers are called through `notify`, not as callables, so that
Airflow does not render the messages as Jinja templates: a name or a reason holding `{{ … }}` stays text.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseHook, DeadlineAlert, SyncCallback, Variable, conf
from airflow.sdk.definitions.deadline import BaseDeadlineReference, DeadlineReference, deadline_reference
from airflow.sdk.exceptions import AirflowNotFoundException

from taxdome_qbo.core import alerts
from taxdome_qbo.core.settings import SETTINGS_VARIABLE, AlertSettings, SettingsError, resolve_alert_settings
from taxdome_qbo.dag_tasks import folder_at
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.links import view_url
from taxdome_qbo.services import alert_facts, ui_reports

log = logging.getLogger(__name__)

SMTP_CONN_ID = "taxdome_qbo_smtp"
SLACK_CONN_ID = "taxdome_qbo_slack"
# Read when the DAG file is parsed, like the schedule: a deadline is part of the DAG's definition. Unset, the
# sync has none: Airflow 3.3.2's `dag.test()` (`airflow dags test`, `make demo`) fails a run of a DAG with a
# deadline when it succeeds (it looks the deadline up by an id only the scheduler's copy of the DAG has).
DEADLINE_SETTING = "TAXDOME_QBO_SYNC_DEADLINE_MINUTES"
# A larger workbook is linked, not attached: mail servers commonly refuse messages over 10-25 MB.
ATTACHMENT_LIMIT_BYTES = 10_000_000


def _configured(conn_id: str) -> bool:
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def alert_settings() -> AlertSettings:
    """The alert keys of the `taxdome_qbo_settings` Variable; a bad value is logged and the alert goes to
    the channels that need no address (Slack)."""
    try:
        return resolve_alert_settings(Variable.get(SETTINGS_VARIABLE, default=None, deserialize_json=True))
    except SettingsError as error:
        log.error("alert settings: %s; no e-mail is sent until it is corrected", error)
        return AlertSettings()


def send(alert: alerts.Alert, *, emails: Sequence[str], slack: bool, files: Sequence[str] = ()) -> list[str]:
    """Send `alert` by e-mail to `emails` and to Slack (when `slack`), through whichever of the two
    connections exist. Returns the channels it went out on; a channel that fails is logged, never raised."""
    notifiers: list[tuple[str, Any]] = []
    if emails and _configured(SMTP_CONN_ID):
        notifiers.append(
            (
                "e-mail",
                SmtpNotifier(
                    to=list(emails),
                    subject=alert.subject,
                    html_content=alert.html(),
                    files=list(files) or None,
                    smtp_conn_id=SMTP_CONN_ID,
                ),
            )
        )
    if slack and _configured(SLACK_CONN_ID):
        notifiers.append(
            ("Slack", SlackWebhookNotifier(slack_webhook_conn_id=SLACK_CONN_ID, text=alert.slack_text()))
        )
    sent = []
    for channel, notifier in notifiers:
        try:
            notifier.notify({})
        except Exception:
            log.exception("alert %r not sent by %s (the pipeline goes on)", alert.subject, channel)
        else:
            sent.append(channel)
    if not notifiers:
        log.info("alert %r: no channel configured for it, nothing sent", alert.subject)
    return sent


# -- a failed task -----------------------------------------------------------------------------------------


def task_failed(context: dict) -> None:
    """`on_failure_callback` of every task: a failure after its last try (a retry is not alerted)."""
    try:
        ti = context["ti"]
        alert = alerts.task_failed(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            try_number=ti.try_number,
            error=str(context.get("exception") or ""),
            log_url=ti.log_url,
        )
        send(alert, emails=alert_settings().data_team_emails, slack=True)
    except Exception:
        log.exception("the failure alert could not be made or sent (the task's own failure stands)")


# -- a sync that has not finished --------------------------------------------------------------------------


@deadline_reference(DeadlineReference.TYPES.DAGRUN_QUEUED)
class SyncRunQueuedAt(BaseDeadlineReference):
    """When the run was queued: Airflow's `DeadlineReference.DAGRUN_QUEUED_AT`, under a name of our own.

    Airflow 3.3.2 fails every clear of a run holding an unmissed deadline on DAGRUN_QUEUED_AT (the clear
    re-anchors it and reads its stored interval wrongly: apache/airflow#70368), and clearing a failed task
    is how the runbook resumes a sync. A custom reference is not re-anchored on a clear (its deadline stays
    N minutes after the first queueing), so clearing works. Registered by the plugin, so the scheduler can
    evaluate it."""

    required_kwargs = frozenset({"dag_id", "run_id"})

    def _evaluate_with(self, *, session: Any, dag_id: str, run_id: str, **kwargs: Any) -> dt.datetime | None:
        # Core's model, imported here: only the scheduler evaluates a reference, the DAG file only names it.
        from airflow.models import DagRun
        from sqlalchemy import select

        return session.scalar(
            select(DagRun.queued_at).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )


def sync_deadline() -> DeadlineAlert | None:
    """The sync DAG's deadline: a run not finished N minutes after it was queued calls `sync_overdue`; N is
    TAXDOME_QBO_SYNC_DEADLINE_MINUTES, no deadline when it is unset or 0."""
    minutes = int(os.environ.get(DEADLINE_SETTING) or 0)
    if minutes <= 0:
        return None
    return DeadlineAlert(
        reference=SyncRunQueuedAt(),
        interval=dt.timedelta(minutes=minutes),
        callback=SyncCallback(sync_overdue),
        name="sync not finished in time",
    )


def _moment(value: str | dt.datetime) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return moment.astimezone(dt.UTC)


def run_url(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI, under `[api] base_url` as Airflow's own log links are."""
    base_url = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base_url}/dags/{quote(dag_id)}/runs/{quote(run_id)}"


def sync_overdue(context: dict) -> None:
    """The deadline's callback, run by the executor with the context the scheduler gives a missed deadline:
    the run as the REST API shows it when the deadline passed, and the deadline. A run that has finished by
    then (it failed: its failed task was alerted) is not alerted again."""
    run, deadline = context["dag_run"], context["deadline"]
    if run["state"] in alerts.FINISHED_STATES:
        log.info("run %s %s at its deadline: no overdue alert", run["dag_run_id"], run["state"])
        return
    alert = alerts.sync_overdue(
        dag_id=run["dag_id"],
        run_id=run["dag_run_id"],
        state=run["state"],
        queued_at=_moment(run["queued_at"]),
        deadline=_moment(deadline["deadline_time"]),
        run_url=run_url(run["dag_id"], run["dag_run_id"]),
    )
    send(alert, emails=alert_settings().data_team_emails, slack=True)


# -- a reconciliation's verdict for finance ----------------------------------------------------------------


def reconciliation_verdict(context: dict) -> None:
    """`verdict`'s callback, succeeded or failed: finance hears of unexplained differences always, of a
    clean run when `finance_on_clean`, of a comparison a sync superseded never."""
    try:
        settings = alert_settings()
        if not (settings.finance_emails and _configured(SMTP_CONN_ID)):
            log.info(
                "finance is not told of this reconciliation: it needs finance_emails in %s and the %s connection",
                SETTINGS_VARIABLE,
                SMTP_CONN_ID,
            )
            return
        ti = context["ti"]
        receipt = ti.xcom_pull(task_ids="reconcile")
        engine = WarehouseHook().get_engine()
        facts = alert_facts.reconciliation_facts(
            engine,
            receipt["recon_run_id"],
            company_name=receipt.get("company_name"),
            report_url=view_url("reconciliation", ti.run_id),
        )
        if not alerts.finance_hears(facts, on_clean=settings.finance_on_clean):
            log.info("reconciliation %s is %s: finance is not told", facts.recon_run_id, facts.verdict)
            return
        _send_with_workbook(engine, facts, settings.finance_emails)
    except Exception:
        log.exception("finance's reconciliation alert could not be made or sent (the verdict stands)")


def _send_with_workbook(engine: Any, facts: alerts.ReconciliationFacts, emails: Sequence[str]) -> None:
    workbook = ui_reports.report_document(engine, facts.recon_run_id, ui_reports.ReportFormat.XLSX, folder_at)
    if len(workbook.content) > ATTACHMENT_LIMIT_BYTES:
        send(alerts.reconciliation_verdict(facts, attachment=None), emails=emails, slack=False)
        return
    with tempfile.TemporaryDirectory(prefix="taxdome-qbo-alert-") as folder:
        path = Path(folder) / workbook.filename
        path.write_bytes(workbook.content)
        alert = alerts.reconciliation_verdict(facts, attachment=workbook.filename)
        send(alert, emails=emails, slack=False, files=[str(path)])
