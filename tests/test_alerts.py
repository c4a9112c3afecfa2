"""Alerts received by real servers the tests start on 127.0.0.1: an SMTP server (aiosmtpd) for the e-mails
and an HTTP server standing in for Slack's incoming webhook. The failure and the finance alerts are proven on
the path a user takes (`dag.test()` runs whose tasks really fail or judge); the overdue-sync alert as Airflow
runs it: the scheduler's own code creates the run's deadline and marks it missed, and the executor's own
function runs the callback."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import io
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import openpyxl
import pytest
import structlog
from aiosmtpd.controller import Controller
from airflow.dag_processing.dagbag import DagBag
from export_builder import write_export
from load_harness import BASE_FIRM_SETTINGS, company_for_base_export, set_invoice_amount

from qbo_emulator.admin import airflow_connection
from qbo_emulator.testing import free_port
from taxdome_qbo import alerts
from taxdome_qbo.core import alerts as messages

DATA_TEAM = ["data-team@firm.example", "oncall@firm.example"]
FINANCE = ["controller@firm.example"]
BASE_URL = "https://airflow.firm.example"


@dataclass
class Mailbox:
    """What the SMTP server received: one parsed message per delivery, with its envelope's recipients."""

    messages: list[tuple[list[str], email.message.EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture
def slack():
    """An incoming webhook: every POST's JSON body, answered as Slack does (200, `ok`)."""
    received: list[dict] = []

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(
                {"path": self.path, "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))}
            )
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield received, server.server_address[1]
    server.shutdown()
    server.server_close()


def _smtp_connection(port: int) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {
                "from_email": "airflow@firm.example",
                "disable_tls": True,
                "disable_ssl": True,
                "retry_limit": 0,
                "timeout": 5,
            },
        }
    )


def _slack_connection(port: int) -> str:
    return json.dumps(
        {
            "conn_type": "slackwebhook",
            "password": f"http://127.0.0.1:{port}/services/T0001/B0001/secret-token",
        }
    )


@pytest.fixture
def alert_settings(monkeypatch):
    settings = BASE_FIRM_SETTINGS | {"data_team_emails": DATA_TEAM, "finance_emails": FINANCE}
    monkeypatch.setenv("AIRFLOW_VAR_TAXDOME_QBO_SETTINGS", json.dumps(settings))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    return settings


@pytest.fixture
def channels(mailbox, slack, alert_settings, monkeypatch):
    """Both alert connections, pointing at the servers."""
    monkeypatch.setenv("AIRFLOW_CONN_TAXDOME_QBO_SMTP", _smtp_connection(mailbox[1]))
    monkeypatch.setenv("AIRFLOW_CONN_TAXDOME_QBO_SLACK", _slack_connection(slack[1]))
    return mailbox[0], slack[0]


def _body(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


@pytest.fixture
def dags(airflow_db):
    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags


# -- a failed task -----------------------------------------------------------------------------------------


def test_a_task_that_fails_in_a_run_alerts_the_data_team_by_email_and_slack(
    dags, channels, warehouse_file, tmp_path
):
    inbox, posts = channels
    export = write_export(tmp_path / "export", accounts_csv=None)  # an export without its accounts.csv

    run = dags["taxdome_qbo_sync"].test(run_conf={"export_dir": str(export)})

    assert run.state == "failed"
    [(recipients, message)] = inbox.messages
    assert recipients == DATA_TEAM
    assert message["Subject"] == "[taxdome-qbo] taxdome_qbo_sync: task extract failed"
    assert message["From"] == "airflow@firm.example"
    body = _body(message)
    log_url = f"{BASE_URL}/dags/taxdome_qbo_sync/runs/{quote(run.run_id)}/tasks/extract?try_number=1"
    assert (
        "DAG: taxdome_qbo_sync" in body and "Task: extract (try 1)" in body and f"Run: {run.run_id}" in body
    )
    assert "Reason: export " in body and "lacks required files: accounts.csv" in body
    assert "What to do: the export is incomplete or not an export: fix or remove its folder" in body
    assert f"Log: {log_url}" in body
    [post] = posts
    assert post["path"] == "/services/T0001/B0001/secret-token"
    text = post["body"]["text"]
    assert text.startswith("*[taxdome-qbo] taxdome_qbo_sync: task extract failed*\n")
    assert "lacks required files: accounts.csv" in text and f"Log: {log_url}" in text
    assert "secret-token" not in body + text


def test_without_alert_connections_nothing_is_sent(mailbox, slack, alert_settings, caplog):
    alert = messages.task_failed(
        dag_id="taxdome_qbo_sync", task_id="load", run_id="r1", try_number=3, error="boom", log_url="u"
    )
    with caplog.at_level(logging.INFO, logger="taxdome_qbo.alerts"):
        assert alerts.send(alert, emails=DATA_TEAM, slack=True) == []
    assert mailbox[0].messages == [] and slack[0] == []
    assert "no channel configured for it, nothing sent" in caplog.text


def test_a_channel_whose_server_is_down_is_logged_and_the_other_still_sends(
    slack, alert_settings, monkeypatch, caplog
):
    monkeypatch.setenv("AIRFLOW_CONN_TAXDOME_QBO_SMTP", _smtp_connection(free_port()))  # nothing listens
    monkeypatch.setenv("AIRFLOW_CONN_TAXDOME_QBO_SLACK", _slack_connection(slack[1]))
    alert = messages.task_failed(
        dag_id="taxdome_qbo_sync", task_id="load", run_id="r1", try_number=3, error="boom", log_url="u"
    )

    with caplog.at_level(logging.ERROR, logger="taxdome_qbo.alerts"):
        assert alerts.send(alert, emails=DATA_TEAM, slack=True) == ["Slack"]

    assert "not sent by e-mail (the pipeline goes on)" in caplog.text
    assert [post["body"]["text"].splitlines()[0] for post in slack[0]] == [f"*{alert.subject}*"]


def test_a_failure_alert_whose_servers_are_down_leaves_the_run_as_its_tasks_left_it(
    dags, alert_settings, warehouse_file, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("AIRFLOW_CONN_TAXDOME_QBO_SMTP", _smtp_connection(free_port()))
    monkeypatch.setenv("AIRFLOW_CONN_TAXDOME_QBO_SLACK", _slack_connection(free_port()))
    export = write_export(tmp_path / "export", accounts_csv=None)

    with caplog.at_level(logging.ERROR, logger="taxdome_qbo.alerts"):
        run = dags["taxdome_qbo_sync"].test(run_conf={"export_dir": str(export)})

    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["extract"] == "failed" and states["stage"] == "upstream_failed"
    assert "not sent by e-mail" in caplog.text and "not sent by Slack" in caplog.text


def test_a_message_stays_text_and_carries_no_credentials(channels):
    inbox, posts = channels
    error = "export s3://AKIAEXAMPLE:s3cr3t@bucket/2026-12-04 is <b>{{ var.value.taxdome_qbo_settings }}</b>\nI42 A7"
    alert = messages.task_failed(
        dag_id="taxdome_qbo_sync", task_id="extract", run_id="r1", try_number=1, error=error, log_url="u"
    )

    assert alerts.send(alert, emails=DATA_TEAM, slack=True) == ["e-mail", "Slack"]

    body, text = _body(inbox.messages[0][1]), posts[0]["body"]["text"]
    # Not rendered by Jinja, escaped for HTML and for Slack, the credentials cut, the second line left out.
    assert "s3://bucket/2026-12-04 is &lt;b&gt;{{ var.value.taxdome_qbo_settings }}&lt;/b&gt;" in body
    assert "s3://bucket/2026-12-04 is &lt;b&gt;{{ var.value.taxdome_qbo_settings }}&lt;/b&gt;" in text
    assert not any(secret in body + text for secret in ("s3cr3t", "AKIAEXAMPLE", "I42"))


def test_alert_settings_are_checked_and_sit_beside_the_firm_settings():
    from taxdome_qbo.core.settings import (
        AlertSettings,
        SettingsError,
        resolve_alert_settings,
        resolve_settings,
    )

    variable = {"sync_start_date": "2026-01-01", "finance_emails": "a@firm.example, b@firm.example"}
    assert resolve_settings(variable, None).sync_start_date == dt.date(2026, 1, 1)
    assert resolve_alert_settings(variable | {"finance_on_clean": "yes"}) == AlertSettings(
        finance_emails=("a@firm.example", "b@firm.example"), finance_on_clean=True
    )
    with pytest.raises(SettingsError, match="not an e-mail address: finance team"):
        resolve_alert_settings({"finance_emails": ["finance team"]})
    with pytest.raises(SettingsError, match="unknown keys: finance_email"):
        resolve_settings({"finance_email": "a@firm.example"}, None)


# -- a sync that has not finished --------------------------------------------------------------------------


def test_a_sync_run_past_its_deadline_alerts_the_data_team_as_the_scheduler_and_executor_run_it(
    airflow_db, channels, monkeypatch
):
    """The DAG's deadline as the scheduler handles it: `create_dagrun` of the serialized DAG computes the
    deadline from our reference (the plugin registers it), a clear re-queues the run without Airflow's
    DAGRUN_QUEUED_AT clear bug, the scheduler's `handle_miss` queues the callback with its context, and the
    executor's `execute_callback` (what a worker's callback supervisor calls) sends it. A run that succeeds
    in time has its deadline removed: nothing is sent for it."""
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models import DagRun, Deadline
    from airflow.models.dagbag import DBDagBag
    from airflow.models.taskinstance import clear_task_instances
    from airflow.sdk.execution_time.callback_supervisor import execute_callback
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    inbox, posts = channels
    # The DAGs serialized now, though an earlier test's dag.test() wrote them within the last 30 s.
    monkeypatch.setenv("AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL", "0")

    def serialize_dags() -> None:
        sync_bag_to_db(DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]), "dags-folder", None)

    monkeypatch.setenv(alerts.DEADLINE_SETTING, "120")
    serialize_dags()
    late, in_time = (f"manual__deadline-{uuid.uuid4().hex[:8]}" for _ in range(2))

    def queued_run(run_id: str, session) -> DagRun:
        scheduler_dag = DBDagBag().get_latest_version_of_dag("taxdome_qbo_sync", session=session)
        now = dt.datetime.now(dt.UTC)
        return scheduler_dag.create_dagrun(
            run_id=run_id,
            logical_date=None,
            data_interval=None,
            run_after=now,
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.QUEUED,
            session=session,
        )

    try:
        with create_session() as session:
            run = queued_run(late, session)
            session.flush()
            [deadline] = session.scalars(select(Deadline).where(Deadline.dagrun_id == run.id)).all()
            assert deadline.deadline_time == run.queued_at + dt.timedelta(minutes=120)
            # Clearing a task re-queues the run; with DAGRUN_QUEUED_AT this raises in Airflow 3.3.2.
            clear_task_instances(run.get_task_instances(session=session)[:1], session)
            deadline.handle_miss(session)
            deadline_id = deadline.id

            finished = queued_run(in_time, session)
            session.flush()
            finished.state = DagRunState.RUNNING
            for ti in finished.get_task_instances(session=session):
                ti.state = TaskInstanceState.SUCCESS
            session.flush()
            finished.update_state(session=session)
            assert finished.state == DagRunState.SUCCESS
            assert not session.scalars(select(Deadline).where(Deadline.dagrun_id == finished.id)).all()
        with create_session() as session:
            data = session.scalar(select(Deadline).where(Deadline.id == deadline_id)).callback.data
        ok, error = execute_callback(
            data["path"], data["kwargs"], None, None, structlog.get_logger("test_alerts")
        )
        assert (ok, error) == (True, None)
    finally:
        with create_session() as session:
            for run in session.scalars(select(DagRun).where(DagRun.run_id.in_([late, in_time]))):
                session.delete(run)
        monkeypatch.delenv(alerts.DEADLINE_SETTING)
        serialize_dags()  # the other tests' runs go on without a deadline

    [(recipients, message)] = inbox.messages
    assert recipients == DATA_TEAM
    assert message["Subject"] == (
        "[taxdome-qbo] taxdome_qbo_sync: run not finished 120 minutes after it was queued"
    )
    body = _body(message)
    assert f"Run: {late}" in body and "State: queued" in body
    assert f"Run in the UI: {BASE_URL}/dags/taxdome_qbo_sync/runs/{quote(late)}" in body
    assert "docs/runbook.md#a-sync-that-has-not-finished" in body
    [post] = posts
    assert late in post["body"]["text"] and "not finished 120 minutes" in post["body"]["text"]


def test_a_run_that_failed_before_its_deadline_is_not_alerted_again(channels):
    queued = dt.datetime(2026, 12, 4, 9, tzinfo=dt.UTC)
    context = {
        "dag_run": {
            "dag_id": "taxdome_qbo_sync",
            "dag_run_id": "scheduled__2026-12-04T09:00:00+00:00",
            "state": "failed",
            "queued_at": queued.isoformat(),
        },
        "deadline": {"id": "d1", "deadline_time": queued + dt.timedelta(hours=2)},
    }
    alerts.sync_overdue(context)
    assert channels[0].messages == [] and channels[1] == []


# -- each reconciliation's verdict for finance -------------------------------------------------------------


def _workbook_sheets(message: email.message.EmailMessage) -> tuple[str, list[str]]:
    [attachment] = list(message.iter_attachments())
    book = openpyxl.load_workbook(io.BytesIO(attachment.get_content()), read_only=True)
    return attachment.get_filename(), book.sheetnames


def test_finance_is_told_of_differences_always_of_clean_runs_on_request_and_of_superseded_never():
    facts = messages.ReconciliationFacts(
        recon_run_id="manual__1",
        company_name="Harbor & Pine\nCPAs",
        period_from=dt.date(2026, 1, 1),
        period_to=dt.date(2026, 1, 31),
        verdict="differences",
        unexplained=1,
        totals=[
            messages.Total("customer_balance", 1, 1, 0),
            messages.Total("invoiced", 150000, 145000, 5000),
        ],
        unexplained_by_class=[messages.UnexplainedClass("missing_in_qbo", 1, 5000)],
        report_url="https://airflow.example/taxdome-qbo/reconciliation/manual__1",
    )
    alert = messages.reconciliation_verdict(facts, attachment=None)  # a workbook too large to attach

    assert alert.subject == (
        "[taxdome-qbo] Reconciliation of Harbor & Pine CPAs, 2026-01-01 to 2026-01-31: 1 unexplained difference"
    )
    assert alert.lines[3:] == (
        "  Invoiced: TaxDome 1,500.00, QuickBooks 1,450.00, difference 50.00",  # headline measures only
        "",
        "Unexplained differences by class:",
        "  Missing in QuickBooks: 1 (50.00)",
        "",
        "The report: https://airflow.example/taxdome-qbo/reconciliation/manual__1",
    )
    clean = dataclasses.replace(facts, verdict="clean", unexplained=0, unexplained_by_class=[])
    superseded = dataclasses.replace(facts, verdict="superseded")
    assert [messages.finance_hears(f, on_clean=False) for f in (facts, clean, superseded)] == [
        True,
        False,
        False,
    ]
    assert [messages.finance_hears(f, on_clean=True) for f in (facts, clean, superseded)] == [
        True,
        True,
        False,
    ]


def test_finance_hears_each_verdict_with_the_workbook_and_the_data_team_a_failed_verdict(
    dags, channels, alert_settings, emulator, warehouse_file, tmp_path, monkeypatch
):
    inbox, posts = channels
    company = company_for_base_export(emulator)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(airflow_connection(emulator.base_url, company))
    )
    monkeypatch.setenv("TAXDOME_QBO_REPORTS_DIR", str(tmp_path / "reports"))
    sync, reconcile = dags["taxdome_qbo_sync"], dags["taxdome_qbo_reconcile"]
    assert sync.test(run_conf={"export_dir": str(write_export(tmp_path / "export"))}).state == "success"

    assert reconcile.test().state == "success"
    assert inbox.messages == [] and posts == []  # clean, and finance_on_clean is off

    monkeypatch.setenv(
        "AIRFLOW_VAR_TAXDOME_QBO_SETTINGS", json.dumps(alert_settings | {"finance_on_clean": True})
    )
    clean = reconcile.test()
    assert clean.state == "success"
    [(recipients, message)] = inbox.messages
    assert recipients == FINANCE
    assert message["Subject"].startswith("[taxdome-qbo] Reconciliation of ")
    assert message["Subject"].endswith(": clean")
    body = _body(message)
    assert "clean: QuickBooks says exactly what TaxDome says" in body and "Invoiced: TaxDome " in body
    assert "Unexplained differences by class" not in body
    report_url = f"{BASE_URL}/taxdome-qbo/reconciliation/{clean.run_id}"
    filename, sheets = _workbook_sheets(message)
    assert filename.endswith("reconciliation.xlsx") and "Summary" in sheets
    assert f"The report is attached ({filename}) and in the UI: {report_url}" in body
    assert posts == []  # finance's alert is e-mail only
    inbox.messages.clear()

    set_invoice_amount(emulator, company, "taxdome:invoice:I2", "260.00")

    differing = reconcile.test()

    assert differing.state == "failed"
    by_recipients = {tuple(recipients): message for recipients, message in inbox.messages}
    assert set(by_recipients) == {tuple(DATA_TEAM), tuple(FINANCE)}
    finance = by_recipients[tuple(FINANCE)]
    assert finance["Subject"].endswith(": 2 unexplained differences")
    body = _body(finance)
    assert "2 unexplained differences between TaxDome and QuickBooks" in body
    assert "Unexplained differences by class:" in body and "Amount mismatch: " in body
    assert "I2" not in body  # the classes and amounts; the objects are in the workbook
    assert _workbook_sheets(finance)[0].endswith("reconciliation.xlsx")
    failed = by_recipients[tuple(DATA_TEAM)]
    assert failed["Subject"] == "[taxdome-qbo] taxdome_qbo_reconcile: task verdict failed"
    assert "What to do: open the report" in _body(failed)
    [post] = posts
    assert "task verdict failed" in post["body"]["text"]


@pytest.mark.deployment
def test_a_real_scheduler_alerts_a_sync_run_still_queued_at_its_deadline(tmp_path, channels):
    """Airflow's components as processes: the api-server creates the triggered run and its deadline (one
    minute), the run stays queued (the sync DAG is left paused), the scheduler marks the deadline missed and
    its LocalExecutor runs the callback, which reaches the connections and the Variable through the
    execution API."""
    from taxdome_qbo import deployment as deploy

    inbox, posts = channels
    home, api_port = tmp_path / "airflow", free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TAXDOME"))}
    alerting = {k: v for k, v in os.environ.items() if k.startswith(("AIRFLOW_CONN_TAXDOME", "AIRFLOW_VAR"))}
    environment = (
        inherited
        | deploy.SHARED_SETTINGS
        | deploy.local_settings(home)
        | deploy.project_settings(home)
        | deploy.api_settings(api_port)
        | alerting
        | {alerts.DEADLINE_SETTING: "1"}
    )
    deployment = deploy.Deployment(home, environment)
    deployment.run("db", "migrate")
    try:
        for name in ("api-server", "scheduler", "dag-processor"):
            deployment.start(deploy.Component.airflow(name, name))
        api = deploy.AirflowApi(f"http://127.0.0.1:{api_port}", deploy.ADMIN_USER, "")
        deploy.wait_for(api.answering, "the api-server", deploy.STARTUP_TIMEOUT_SECONDS, deployment)
        api.credentials["password"] = deploy.admin_password(home)
        api.log_in()
        deploy.wait_for(lambda: api.registered(["taxdome_qbo_sync"]), "the DAG parsed", 240, deployment)
        run_id = api.trigger("taxdome_qbo_sync")

        deploy.wait_for(lambda: inbox.messages, "the overdue alert", 240, deployment, interval=2)

        assert api.run_state("taxdome_qbo_sync", run_id) == "queued"
    finally:
        deployment.stop()
    [(recipients, message)] = inbox.messages
    assert recipients == DATA_TEAM
    assert (
        message["Subject"] == "[taxdome-qbo] taxdome_qbo_sync: run not finished 1 minute after it was queued"
    )
    body = _body(message)
    assert f"Run: {run_id}" in body and "State: queued" in body
    assert f"http://127.0.0.1:{api_port}/dags/taxdome_qbo_sync/runs/{quote(run_id)}" in body
    assert [run_id in post["body"]["text"] for post in posts] == [True]
