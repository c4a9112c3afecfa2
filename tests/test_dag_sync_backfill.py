"""A real backfill of the sync over a firm's history: a scheduler, a dag-processor and an api-server
(LocalExecutor, SQLite metadata) run what `airflow backfill create` makes over three months, against the QBO
emulator. Each month is a run whose data interval is the month and which syncs only what is dated in it;
the months run in date order although the backfill lets all three run at once; the scheduled run that the
unpaused DAG starts meanwhile waits for the backfill, then finds nothing left to write; and the company ends
up holding exactly what one full run lands in another company."""

from __future__ import annotations

import itertools
import json
import shutil

import pytest
from cryptography.fernet import Fernet
from load_harness import load, plan, qbo_objects, seeded_company, session_for, stage
from local_cluster import local_cluster
from test_dag_reconcile_backfill import create_backfill
from test_sync_backfill import comparable, firm  # noqa: F401 (firm is a fixture)

from qbo_emulator.admin import airflow_connection
from taxdome_qbo import deployment as deploy
from taxdome_qbo.services import warehouse

pytestmark = [pytest.mark.airflow, pytest.mark.deployment]

SYNC, RECONCILE = "taxdome_qbo_sync", "taxdome_qbo_reconcile"
FINISHED = {"success", "failed"}
MONTHS = {
    "2026-01-01": "2026-01-01 to 2026-01-31",
    "2026-02-01": "2026-02-01 to 2026-02-28",
    "2026-03-01": "2026-03-01 to 2026-03-31",
}


def _finished_runs(api: deploy.AirflowApi) -> dict[str, dict]:
    """The backfill's runs by the month they start, and the scheduled run, once all have finished."""
    runs = api.runs(SYNC)
    backfilled = {r["logical_date"][:10]: r for r in runs if r["run_type"] == "backfill"}
    scheduled = [r for r in runs if r["run_type"] == "scheduled"]
    everything = [*backfilled.values(), *scheduled]
    if set(backfilled) == set(MONTHS) and scheduled and all(r["state"] in FINISHED for r in everything):
        return backfilled | {"scheduled": scheduled[0]}
    return {}


def _returned(api: deploy.AirflowApi, run_id: str, task_id: str) -> dict:
    path = f"dags/{SYNC}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    return api.get(path, deserialize=True)["value"]


def _full_run_company(emulator, firm, tmp_path) -> dict:  # noqa: F811 (the fixture's value)
    """Another company, loaded by one full run of the same firm from a warehouse of its own."""
    company = seeded_company(emulator, firm)
    engine = warehouse.sqlite_engine(str(tmp_path / "full-run.db"))
    try:
        warehouse.create_schema(engine)
        stage(engine, firm.export)
        session = session_for(engine, emulator, company)
        plan(engine, session, firm, "full")
        load(engine, session, "full")
    finally:
        engine.dispose()
    return company


def test_a_backfill_syncs_a_firms_history_month_by_month_in_date_order(
    airflow_db,
    emulator,
    firm,  # noqa: F811 (the fixture)
    tmp_path,
):
    company = seeded_company(emulator, firm)
    home = tmp_path / "airflow"
    shutil.copytree(firm.export, home / "landing" / "2026-04-01")  # the export the first month stages
    warehouse_path = tmp_path / "warehouse.db"
    settings = {
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(warehouse_path)}),
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT": json.dumps(airflow_connection(emulator.base_url, company)),
        "AIRFLOW_VAR_TAXDOME_QBO_SETTINGS": json.dumps(firm.settings),
        "TAXDOME_QBO_REPORTS_DIR": str(tmp_path / "reports"),
    }
    with local_cluster(home, settings, (SYNC, RECONCILE)) as (cluster, api):
        api.patch(f"dags/{RECONCILE}", {"is_paused": True})  # not what this test is about

        # All three months may run at once (`--max-active-runs` defaults to 10); unpausing the DAG for the
        # backfill also starts its hourly schedule.
        created = create_backfill(cluster, SYNC, "--from-date", "2026-01-01", "--to-date", "2026-03-01")
        api.unpause([SYNC])
        runs = deploy.wait_for(
            lambda: _finished_runs(api), "the backfill and the scheduled run", 600, cluster, 3
        )

        assert {key: run["state"] for key, run in runs.items()} == dict.fromkeys(
            [*MONTHS, "scheduled"], "success"
        ), created
        tasks = {key: api.task_instances(SYNC, run["dag_run_id"]) for key, run in runs.items()}
        for month, period in MONTHS.items():
            planned = _returned(api, runs[month]["dag_run_id"], "plan")
            assert planned["period"] == period
            assert planned["operations"] > 0, month  # every month has history of its own
        # In date order: a month starts once the month before has loaded; the scheduled run after them all.
        order = [*MONTHS, "scheduled"]
        for earlier, later in itertools.pairwise(order):
            assert tasks[later]["extract"]["start_date"] >= tasks[earlier]["load"]["end_date"], (
                earlier,
                later,
            )
        assert tasks["scheduled"]["load"]["state"] == "skipped"  # the backfill left it nothing to write

    full = _full_run_company(emulator, firm, tmp_path)
    assert comparable(qbo_objects(emulator, company["realm_id"])) == comparable(
        qbo_objects(emulator, full["realm_id"])
    )
