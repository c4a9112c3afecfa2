"""The TaxDome ↔ QuickBooks view, served by the real api-server application (Airflow's app factory with the
plugins folder loaded) to SimpleAuthManager's users: `op` may edit the DAGs, `viewer` may only read."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from export_builder import replace_row, write_export
from load_harness import deployment_on_emulator, stage
from quickbooks.objects import Vendor
from ui_server import bearer, token_of

from taxdome_qbo import dag_tasks
from taxdome_qbo.cli import main as cli_main
from taxdome_qbo.core.money import format_cents
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.services import pipeline, ui_pages, warehouse
from taxdome_qbo.services.company_lease import company_lease
from taxdome_qbo.ui import issues, web

pytestmark = pytest.mark.airflow

HOSTILE_NAME = "Zoë <script>alert(1)</script>"
# The account A2 of the base export gets a name QuickBooks refuses (a vendor has it) and that must stay inert.
ACCOUNTS = replace_row(
    "accounts.csv",
    "A2,",
    f"A2,{HOSTILE_NAME},Individual,zoe@example.com,2025-04-01T10:00:00Z,2026-01-02T10:00:00Z,false,auto,",
)


@pytest.fixture
def synced_firm(api_server, emulator, warehouse_engine_from_connection, tmp_path, monkeypatch):
    """The base export staged, planned and loaded into an emulator company where account A2 fails (a vendor
    has its name): what the pages must show."""
    engine = warehouse_engine_from_connection
    company = deployment_on_emulator(emulator, monkeypatch, tmp_path / "reports")
    stage(engine, write_export(tmp_path / "export", **{"accounts.csv": ACCOUNTS}))
    vendor = Vendor()
    vendor.DisplayName = HOSTILE_NAME
    vendor.save(qb=emulator.quickbooks(company))
    assert cli_main(["retry", "--all"]) == 1  # plans and loads everything; A2 fails
    return {"engine": engine, "company": company, "vendor": vendor}


def finished_action(engine, timeout_seconds: float = 120) -> sa.Row:
    """The one action recorded, once it is finished (a retry runs in the api-server's background)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        with engine.connect() as conn:
            (action,) = conn.execute(sa.select(warehouse.ui_actions)).all()
        if action.finished_at is not None:
            return action
        assert time.monotonic() < deadline, f"still running after {timeout_seconds} s: {action}"
        time.sleep(0.2)


def latest_status(engine, kind: str, taxdome_id: str) -> str:
    table = warehouse.sync_object_status
    with engine.connect() as conn:
        return conn.execute(
            sa.select(table.c.status)
            .select_from(
                table.join(warehouse.sync_plan_runs, table.c.run_id == warehouse.sync_plan_runs.c.run_id)
            )
            .where(table.c.taxdome_kind == kind, table.c.taxdome_id == taxdome_id)
            .order_by(warehouse.sync_plan_runs.c.planned_at.desc())
            .limit(1)
        ).scalar_one()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/taxdome-qbo/"),
        ("GET", "/taxdome-qbo/sync-runs/some_run"),
        ("GET", "/taxdome-qbo/sync-issues"),
        ("POST", "/taxdome-qbo/sync-issues/retry"),
        ("POST", "/taxdome-qbo/overrides"),
    ],
)
def test_every_endpoint_wants_credentials(api_server, method, path):
    answer = api_server.request(method, path)
    assert answer.status_code == 401


def test_the_plugin_adds_the_view_to_the_ui_navigation(api_server):
    answer = api_server.get("/api/v2/plugins", headers=bearer(api_server, "victor"))
    assert answer.status_code == 200
    (plugin,) = [p for p in answer.json()["plugins"] if p["name"] == "taxdome_qbo"]
    (view,) = plugin["external_views"]
    assert view["href"] == "/taxdome-qbo/" and view["destination"] == "nav"
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/taxdome-qbo"


def test_the_pages_show_the_warehouse_numbers_and_a_viewer_cannot_act(api_server, synced_firm):
    engine = synced_firm["engine"]
    session = QuickBooksHook().get_session()
    pipeline.read_back(engine, session, full_read=True)
    reconciled = pipeline.reconcile(engine, session, dag_tasks.firm_settings(), "recon-ui")
    viewer = bearer(api_server, "victor")
    with engine.connect() as conn:
        run_id, receipt = conn.execute(
            sa.select(warehouse.sync_plan_runs.c.run_id, warehouse.sync_plan_runs.c.load_receipt)
        ).one()
        planned_invoices = conn.execute(
            sa.select(sa.func.count()).where(
                warehouse.sync_plan.c.run_id == run_id, warehouse.sync_plan.c.taxdome_kind == "invoice"
            )
        ).scalar_one()
        invoiced = conn.execute(
            sa.select(warehouse.rpt_reconciliation_summary).where(
                warehouse.rpt_reconciliation_summary.c.measure == "invoiced",
                warehouse.rpt_reconciliation_summary.c.period == "total",
                warehouse.rpt_reconciliation_summary.c.dimension == "",
            )
        ).one()
    requests = json.loads(receipt)["requests"]

    overview = api_server.get("/taxdome-qbo/", headers=viewer)
    assert overview.status_code == 200
    page = overview.text
    company = synced_firm["company"]
    assert f"{company['company_name']}</strong>, realm {company['realm_id']}: connected since" in page
    assert f'<td>invoice</td><td>create</td><td class="number">{planned_invoices}</td>' in page
    assert f"{requests} requests" in page
    assert '<td>accounts.csv</td><td class="number">2</td>' in page
    assert f"{reconciled['unexplained']} unexplained difference(s)" in page and reconciled["unexplained"]
    assert (
        f'<td>invoiced</td><td class="number">{format_cents(invoiced.taxdome_cents)}</td>'
        f'<td class="number">{format_cents(invoiced.qbo_cents)}</td>'
        f'<td class="number">{format_cents(invoiced.difference_cents)}</td>'
    ) in page
    assert '<svg id="trend"' in page
    for link in ("/taxdome-qbo/quarantine", "/taxdome-qbo/reconciliation", "/taxdome-qbo/quality"):
        assert f'href="{link}"' in page

    run_page = api_server.get(f"/taxdome-qbo/sync-runs/{run_id}", headers=viewer)
    assert run_page.status_code == 200 and run_id in run_page.text
    assert api_server.get("/taxdome-qbo/sync-runs/no_such_run", headers=viewer).status_code == 404

    issues = api_server.get("/taxdome-qbo/sync-issues?category=accounts&status=failed", headers=viewer)
    assert issues.status_code == 200
    assert "<td>A2</td>" in issues.text and "belongs to a QuickBooks vendor" in issues.text
    assert (
        "<script>alert(1)</script>" not in issues.text
        and "&lt;script&gt;alert(1)&lt;/script&gt;" in issues.text
    )
    assert "<form" not in issues.text.split("</nav>")[1].replace('<form method="get"', "")
    assert "Retry" not in issues.text

    with engine.connect() as conn:
        unsynced = conn.execute(
            sa.select(warehouse.sync_object_status.c.taxdome_kind, warehouse.sync_object_status.c.taxdome_id)
            .where(
                warehouse.sync_object_status.c.run_id == run_id,
                warehouse.sync_object_status.c.status.in_(["failed", "not_synced", "skipped"]),
            )
            .order_by(warehouse.sync_object_status.c.taxdome_kind, warehouse.sync_object_status.c.taxdome_id)
        ).all()
    assert len(unsynced) > 2
    second = api_server.get("/taxdome-qbo/sync-issues?page=2&size=1", headers=viewer).text
    assert f"{len(unsynced)} object(s), page 2 of {len(unsynced)}." in second
    kind, taxdome_id = unsynced[1]
    assert f"<td>{kind}</td><td>{taxdome_id}</td>" in second
    first_kind, first_id = unsynced[0]
    assert f"<td>{first_kind}</td><td>{first_id}</td>" not in second

    for path, form in (
        ("/taxdome-qbo/sync-issues/retry", {"scope": "object", "target": "account:A2"}),
        ("/taxdome-qbo/overrides", {"kind": "account", "taxdome_id": "A2", "decision": "unsync"}),
    ):
        assert api_server.post(path, data=form, headers=viewer).status_code == 403
    assert latest_status(engine, "account", "A2") == "failed"


def test_an_editor_retries_a_failed_object_and_is_recorded(api_server, synced_firm, emulator):
    engine, vendor = synced_firm["engine"], synced_firm["vendor"]
    vendor.DisplayName = "Zoë (supplier)"
    vendor.save(qb=emulator.quickbooks(synced_firm["company"]))
    editor = bearer(api_server, "olga")
    assert "Retry" in api_server.get("/taxdome-qbo/sync-issues", headers=editor).text

    answer = api_server.post(
        "/taxdome-qbo/sync-issues/retry", data={"scope": "object", "target": "account:A2"}, headers=editor
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/taxdome-qbo/sync-issues"
    action = finished_action(engine)
    assert latest_status(engine, "account", "A2") == "synced"
    assert (action.user_name, action.action, action.target) == ("olga", "retry", "account:A2")
    assert "account: created 1" in action.outcome
    listed = api_server.get("/taxdome-qbo/sync-issues", headers=editor).text
    assert "<td>olga</td><td>retry</td><td>account:A2</td>" in listed


def test_a_retry_answers_at_once_and_runs_in_the_background_until_its_outcome_is_in(api_server, synced_firm):
    """While a sync holds the company, a retry cannot run: the page still answers at once, lists the retry as
    running (and refreshes itself), then shows why it did not run."""
    engine, realm_id = synced_firm["engine"], synced_firm["company"]["realm_id"]
    editor = bearer(api_server, "olga")
    with company_lease(engine, realm_id, "load task of run scheduled__2026-12-05"):
        started = time.monotonic()
        answer = api_server.post("/taxdome-qbo/sync-issues/retry", data={"scope": "all"}, headers=editor)
        answered_in = time.monotonic() - started
        listed = api_server.get("/taxdome-qbo/sync-issues", headers=editor).text
        action = finished_action(engine)

    assert answer.status_code == 303 and answered_in < issues.RETRY_WAIT_SECONDS
    assert f'<td class="muted">{issues.RETRY_RUNNING}</td>' in listed
    assert f'<meta http-equiv="refresh" content="{issues.RUNNING_REFRESH_SECONDS}">' in listed
    assert (action.user_name, action.action, action.target) == ("olga", "retry", "all")
    assert (
        action.outcome.startswith("did not run: ")
        and "load task of run scheduled__2026-12-05" in action.outcome
    )
    assert latest_status(engine, "account", "A2") == "failed"
    assert "http-equiv" not in api_server.get("/taxdome-qbo/sync-issues", headers=editor).text


def test_a_retry_its_stopped_api_server_left_running_stops_refreshing_the_page_after_an_hour(
    api_server, synced_firm
):
    engine, editor = synced_firm["engine"], bearer(api_server, "olga")
    refresh = f'<meta http-equiv="refresh" content="{issues.RUNNING_REFRESH_SECONDS}">'
    action_id = ui_pages.record_action(
        engine, user_name="olga", action="retry", target="all", outcome=issues.RETRY_RUNNING, finished=False
    )
    assert refresh in api_server.get("/taxdome-qbo/sync-issues", headers=editor).text

    with engine.begin() as conn:
        conn.execute(
            warehouse.ui_actions.update()
            .where(warehouse.ui_actions.c.id == action_id)
            .values(taken_at=datetime.now(UTC) - issues.RUNNING_REFRESH_FOR - timedelta(minutes=1))
        )
    listed = api_server.get("/taxdome-qbo/sync-issues", headers=editor).text
    assert refresh not in listed and f'<td class="muted">{issues.RETRY_RUNNING}</td>' in listed


def test_the_session_cookie_works_and_its_forms_must_come_from_the_view(api_server, synced_firm):
    engine = synced_firm["engine"]
    api_server.cookies.set("_token", token_of(api_server, "olga"))
    try:
        assert api_server.get("/taxdome-qbo/sync-issues").status_code == 200
        form = {"kind": "payment", "taxdome_id": "P2", "decision": "unsync"}
        cross_site = api_server.post(
            "/taxdome-qbo/overrides", data=form, headers={"Origin": "https://evil.example"}
        )
        assert cross_site.status_code == 403
        same_site = api_server.post(
            "/taxdome-qbo/overrides", data=form, headers={"Origin": "http://testserver"}
        )
        assert same_site.status_code == 303
    finally:
        api_server.cookies.clear()
    with engine.connect() as conn:
        (override,) = conn.execute(sa.select(warehouse.sync_overrides)).all()
        (action,) = conn.execute(sa.select(warehouse.ui_actions)).all()
    assert (override.taxdome_kind, override.taxdome_id, bool(override.sync)) == ("payment", "P2", False)
    assert (action.user_name, action.action, action.target) == ("olga", "unsync", "payment:P2")


def test_the_view_takes_up_a_changed_warehouse_connection_once_the_recheck_interval_passed(
    tmp_path, monkeypatch
):
    def point_warehouse_at(name: str) -> None:
        connection = {"conn_type": "sqlite", "host": str(tmp_path / name)}
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps(connection))

    def recheck_is_due() -> None:
        engines.checked_at -= engines.recheck_seconds

    engines = web.WarehouseEngines(recheck_seconds=60.0)
    point_warehouse_at("first.db")
    first = engines.current()
    point_warehouse_at("second.db")
    assert engines.current() is first  # within the interval: no lookup per request

    recheck_is_due()
    second = engines.current()
    assert second is not first and second.url.database == str(tmp_path / "second.db")

    point_warehouse_at("first.db")
    recheck_is_due()
    assert engines.current() is first  # one engine (one pool) per warehouse, kept


@pytest.mark.parametrize(
    ("run_id", "segment"),
    [
        ("manual__2026-12-04T23:00:00+00:00", "manual__2026-12-04T23:00:00+00:00"),
        ("a/../b?c#d%e", "a%2F..%2Fb%3Fc%23d%25e"),
    ],
)
def test_a_run_id_is_one_path_segment_the_airflow_ui_does_not_rewrite(run_id, segment):
    assert web.templates.from_string("{{ run_id | path_segment }}").render(run_id=run_id) == segment
