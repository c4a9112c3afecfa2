"""`make up` as a data-team member runs it on a fresh Airflow home: `python -m taxdome_qbo.deployment up`
migrates the embedded metadata database, starts the QBO emulator and Airflow's components, unpauses the DAGs
and says how to log in; the UI answers, the hourly run loads the export waiting in the landing folder, the
reconciliation follows; `down` stops every process it started, and only those."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from qbo_emulator.testing import free_port
from taxdome_qbo import deployment as deploy
from taxdome_qbo.demo.generator import generate_export

pytestmark = pytest.mark.deployment

SYNC, RECONCILE = "taxdome_qbo_sync", "taxdome_qbo_reconcile"


def _command(home: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TAXDOME"))}
    # What the Makefile exports to `make up`.
    environment |= deploy.project_settings(home) | {
        "AIRFLOW_VAR_TAXDOME_QBO_SETTINGS": (home / "settings.json").read_text()
    }
    return subprocess.run(
        [sys.executable, "-m", "taxdome_qbo.deployment", *arguments, "--home", str(home)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _alive_in(sessions: set[int]) -> list[str]:
    """Live (not zombie) processes whose process group is one of the components' sessions."""
    alive = []
    for proc in Path("/proc").glob("[0-9]*"):
        stat = deploy.process_stat(int(proc.name))
        if stat and stat[0] != "Z" and int(stat[2]) in sessions:
            alive.append(proc.name)
    return alive


def test_make_up_serves_the_ui_runs_the_sync_and_make_down_stops_it(tmp_path):
    home = tmp_path / "airflow"
    export = home / "landing" / "2026-10-31T2359-demo"
    manifest = generate_export(export, accounts=15, seed=5)
    (home / "settings.json").write_text(json.dumps(manifest["firm_settings"]))
    api_port = free_port()

    recorded: dict = {}
    started = _command(
        home,
        "up",
        "--api-port",
        str(api_port),
        "--emulator-port",
        str(free_port()),
        "--demo-export",
        str(export),
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        password = deploy.admin_password(home)
        assert f"http://127.0.0.1:{api_port}" in started.stdout and f"admin / {password}" in started.stdout
        assert httpx.get(f"http://127.0.0.1:{api_port}/", timeout=30).status_code == 200, "the UI's page"
        recorded = json.loads((home / deploy.PIDS_FILE).read_text())
        assert set(recorded) == {*deploy.LOCAL_COMPONENTS, "qbo-emulator"}
        assert "already running" in _command(home, "up", "--api-port", str(api_port)).stdout

        api = deploy.AirflowApi(f"http://127.0.0.1:{api_port}", deploy.ADMIN_USER, password)
        api.log_in()
        assert not api.get(f"dags/{SYNC}")["is_paused"] and not api.get(f"dags/{RECONCILE}")["is_paused"]
        [hourly] = deploy.wait_for(lambda: api.runs(SYNC), "the hourly run", 120)
        finished = deploy.wait_for(
            lambda: api.run_state(SYNC, hourly["dag_run_id"]) in ("success", "failed"), "the hourly run", 420
        )
        assert finished and api.run_state(SYNC, hourly["dag_run_id"]) == "success"
        assert api.task_instances(SYNC, hourly["dag_run_id"])["load"]["state"] == "success"

        def reconciliations() -> list[str]:
            return sorted(r["run_type"] for r in api.runs(RECONCILE))

        deploy.wait_for(
            lambda: "asset_triggered" in reconciliations(), "the reconciliation after the load", 120
        )
        # Beside it, the run of the month just closed, which the schedule made when the DAG was unpaused.
        assert reconciliations() == ["asset_triggered", "scheduled"]
        print(
            f"make up: the hourly sync of 15 accounts took {api.run_seconds(SYNC, hourly['dag_run_id']):.0f} s"
        )
    finally:
        stopped = _command(home, "down")
    assert stopped.returncode == 0 and "stopped: " in stopped.stdout, stopped.stdout + stopped.stderr
    assert not (home / deploy.PIDS_FILE).exists()
    sessions = {record["pid"] for record in recorded.values()}
    assert sessions and deploy.wait_for(lambda: not _alive_in(sessions), "the components gone", 10)
    assert "nothing was running" in _command(home, "down").stdout
