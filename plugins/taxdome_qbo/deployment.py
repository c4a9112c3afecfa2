"""Airflow's components as separate processes on this machine, the way a deployment runs them.

`make up` runs the local deployment (api-server, scheduler, dag-processor and triggerer on the embedded
defaults, with the QBO emulator when no real QuickBooks is connected) and `make down` stops exactly what it
started, by the pids it recorded. The Celery test tier starts the scale-out deployment with the same
`Deployment` and the settings of `celery_settings`, which docker-compose.yaml repeats for containers.

Every component runs in a session of its own, so stopping it (or killing it, as a crashed machine would)
takes its children along: a Celery worker's pool processes and the task processes they supervise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

REPOSITORY = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))  # the CLI of this virtualenv's Airflow
PIDS_FILE = "deployment.pids.json"
STOP_GRACE_SECONDS = 20.0
ADMIN_USER = "admin"

# Settings every deployment of the project shares, whatever hosts its services run on: docker-compose.yaml
# sets the same values (tests/test_compose.py checks it), and the Celery test tier runs with them.
SHARED_SETTINGS = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
    # A worker that stops heartbeating (killed, its machine gone) has its task retried within a minute
    # instead of Airflow's default five.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
}
CELERY_EXECUTOR = "CeleryExecutor"
LOCAL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def local_settings(home: Path) -> dict[str, str]:
    """The embedded deployment: the LocalExecutor runs tasks as children of the scheduler, four at a time
    (one sync and one reconciliation never need more; Airflow's default of 32 idle processes only costs
    memory), over SQLite metadata in `home`. The scheduler, the dag-processor and a backfill being created
    write that file at once: each waits up to a minute for SQLite's write lock, not the default 5 s."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
    }


def celery_settings(*, metadata_url: str, result_backend_url: str, broker_url: str) -> dict[str, str]:
    """The CeleryExecutor deployment: PostgreSQL metadata, a PostgreSQL result backend, a Redis broker."""
    return SHARED_SETTINGS | {
        "AIRFLOW__CORE__EXECUTOR": CELERY_EXECUTOR,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
    }


def project_settings(home: Path) -> dict[str, str]:
    """Where this checkout's DAGs and plugins are, and the Airflow home the components share."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPOSITORY / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPOSITORY / "plugins"),
    }


def api_settings(port: int) -> dict[str, str]:
    """The api-server on the loopback, and where the task processes reach its execution API."""
    return {
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
    }


@dataclass(frozen=True)
class Component:
    """One process of the deployment: its name (its log is `<name>.log`), command line and own settings."""

    name: str
    argv: tuple[str, ...]
    settings: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def airflow(cls, name: str, *arguments: str, **settings: str) -> Component:
        return cls(name, (AIRFLOW, *arguments), settings)


def celery_worker(number: int, log_server_port: int, concurrency: int = 2) -> Component:
    """A Celery worker with a node name and a log server port of its own (two may share a machine)."""
    return Component.airflow(
        f"worker-{number}",
        "celery",
        "worker",
        "--celery-hostname",
        f"worker-{number}@%h",
        "--concurrency",
        str(concurrency),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(log_server_port),
    )


class Deployment:
    """Starts components with one environment, records their pids in the Airflow home, stops them by pid."""

    def __init__(self, home: Path, environment: Mapping[str, str]):
        self.home = home
        self.environment = dict(environment)
        self.log_dir = home / "logs" / "components"
        self.processes: dict[str, subprocess.Popen] = {}
        self.killed: set[str] = set()

    @property
    def pids_file(self) -> Path:
        return self.home / PIDS_FILE

    def run(self, *arguments: str, timeout: float = 600) -> str:
        """An `airflow` command to completion with the deployment's settings (a migration, a pool)."""
        done = subprocess.run(
            [AIRFLOW, *arguments],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(
                f"airflow {' '.join(arguments)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        return done.stdout

    def start(self, component: Component) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{component.name}.log", "ab") as log:
            process = subprocess.Popen(
                component.argv,
                env=self.environment | dict(component.settings),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.home,
            )
        self.processes[component.name] = process
        self._record_pids()
        return process

    def _record_pids(self) -> None:
        recorded = {name: {"pid": p.pid, "started": _start_time(p.pid)} for name, p in self.processes.items()}
        self.pids_file.write_text(json.dumps(recorded, indent=2))

    def exited(self) -> dict[str, int]:
        """Components that stopped by themselves, with their exit codes."""
        return {
            name: code
            for name, p in self.processes.items()
            if name not in self.killed and (code := p.poll()) is not None
        }

    def kill(self, name: str) -> None:
        """SIGKILL a component and every process of its session, as a machine crash would."""
        process = self.processes[name]
        self.killed.add(name)
        _signal_session(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """SIGTERM every component (and its session), SIGKILL what is left after the grace period."""
        stop_recorded(self.pids_file)
        for process in self.processes.values():
            if process.poll() is None:
                process.wait(timeout=5)

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def process_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, parent, process group, ...), or None
    for no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process: a recorded pid reused by another process does not match."""
    stat = process_stat(pid)
    return stat[19] if stat else None


def _signal_session(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def _running(record: Mapping) -> bool:
    """Still the recorded process, and not a zombie (exited, waiting for its parent to read its status)."""
    stat = process_stat(record["pid"])
    return stat is not None and stat[0] != "Z" and stat[19] == record["started"]


def stop_recorded(pids_file: Path, grace_seconds: float = STOP_GRACE_SECONDS) -> list[str]:
    """Stop the components a pids file lists (only those still the processes it recorded); returns their
    names. Each gets SIGTERM, then SIGKILL with its whole session after the grace period."""
    if not pids_file.exists():
        return []
    recorded = json.loads(pids_file.read_text())
    alive = {name: record for name, record in recorded.items() if _running(record)}
    for record in alive.values():
        _signal_session(record["pid"], signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(_running(r) for r in alive.values()):
        time.sleep(0.2)
    for record in alive.values():
        _signal_session(record["pid"], signal.SIGKILL)
    pids_file.unlink()
    return sorted(alive)


def wait_for(check, what: str, timeout: float, deployment: Deployment | None = None, interval: float = 1.0):
    """Poll `check` until it returns something true; a component exiting meanwhile fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if deployment is not None and (gone := deployment.exited()):
            tails = "\n".join(
                f"--- {name} (exit {code}):\n{deployment.log_tail(name)}" for name, code in gone.items()
            )
            raise RuntimeError(f"waiting for {what}: component(s) exited\n{tails}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


class AirflowApi:
    """The REST API as a client uses it: a JWT from /auth/token, then /api/v2 with it."""

    def __init__(self, base_url: str, username: str, password: str):
        self.base_url = base_url.rstrip("/")
        # Longer than the SQLite metadata database's busy timeout (60 s, above): an api-server waiting for the
        # scheduler's write lock answers late, not never (a PATCH gave up at 30 s in a clean-clone run).
        self.client = httpx.Client(base_url=self.base_url, timeout=90)
        self.credentials = {"username": username, "password": password}

    def answering(self) -> bool:
        try:
            return self.client.get("/api/v2/monitor/health").status_code == 200
        except httpx.TransportError:
            return False

    def log_in(self) -> None:
        token = (
            self.client.post("/auth/token", json=self.credentials).raise_for_status().json()["access_token"]
        )
        self.client.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params) -> dict:
        return self.client.get(f"/api/v2/{path}", params=params).raise_for_status().json()

    def post(self, path: str, body: dict) -> dict:
        return self.client.post(f"/api/v2/{path}", json=body).raise_for_status().json()

    def patch(self, path: str, body: dict) -> dict:
        return self.client.patch(f"/api/v2/{path}", json=body).raise_for_status().json()

    def dag_registered(self, dag_id: str) -> bool:
        return self.client.get(f"/api/v2/dags/{dag_id}").status_code == 200

    def import_errors(self) -> list[str]:
        """The DAG files Airflow could not import, each with the end of its traceback."""
        listed = self.get("importErrors")["import_errors"]
        return [f"{error['filename']}:\n{error['stack_trace'][-1500:]}" for error in listed]

    def registered(self, dag_ids: Iterable[str]) -> bool:
        """Whether every DAG is parsed and registered; a DAG file that fails to import fails at once."""
        if errors := self.import_errors():
            raise RuntimeError("DAG files failed to import:\n" + "\n".join(errors))
        return all(self.dag_registered(dag_id) for dag_id in dag_ids)

    def unpause(self, dag_ids: Iterable[str]) -> None:
        for dag_id in dag_ids:
            self.patch(f"dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        body = {"logical_date": None, "conf": conf or {}}
        return self.post(f"dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"dags/{dag_id}/dagRuns/{run_id}")["state"]

    def run_seconds(self, dag_id: str, run_id: str) -> float:
        """How long a finished run took, from its start to its end."""
        run = self.get(f"dags/{dag_id}/dagRuns/{run_id}")
        return (
            datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])
        ).total_seconds()

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"dags/{dag_id}/dagRuns", order_by="run_after", limit=100)["dag_runs"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        listed = self.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti for ti in listed}


# --- `make up` / `make down` -------------------------------------------------------------------------------

PROJECT_DAGS = ("taxdome_qbo_sync", "taxdome_qbo_reconcile")
STARTUP_TIMEOUT_SECONDS = 240.0


def _quickbooks_configured(deployment: Deployment) -> bool:
    if deployment.environment.get("AIRFLOW_CONN_QUICKBOOKS_DEFAULT"):
        return True
    try:
        deployment.run("connections", "get", "quickbooks_default", timeout=120)
    except RuntimeError:
        return False
    return True


def _connect_emulator(deployment: Deployment, port: int, export: Path, time_scale: float) -> str:
    from qbo_emulator.admin import airflow_connection
    from qbo_emulator.testing import EmulatorHandle, emulator_command, wait_until_answering
    from taxdome_qbo.demo.qbo_seed import seed_company

    url = f"http://127.0.0.1:{port}"
    process = deployment.start(
        Component(
            "qbo-emulator",
            tuple(emulator_command(port, deployment.home / "qbo-emulator.db", {"time_scale": time_scale})),
        )
    )
    if not wait_until_answering(url, process):
        raise RuntimeError(
            f"the QBO emulator could not listen on {url}:\n{deployment.log_tail('qbo-emulator')}"
        )
    emulator = EmulatorHandle(url, process=None, db_path=None)
    company = emulator.companies()[0]
    if export.exists():
        seed_company(emulator.quickbooks(company), export)
    return json.dumps(airflow_connection(url, company, 60.0 * time_scale))


def admin_password(home: Path) -> str:
    """The admin's password, which the api-server generates on its first start."""
    return json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())[ADMIN_USER]


def up(home: Path, api_port: int, emulator_port: int, demo_export: Path, time_scale: float) -> int:
    deployment = Deployment(home, os.environ | project_settings(home) | api_settings(api_port))
    if deployment.pids_file.exists() and any(
        _running(r) for r in json.loads(deployment.pids_file.read_text()).values()
    ):
        print(f"already running (make down stops it): http://127.0.0.1:{api_port}")
        return 0
    # What the user's environment sets wins over the local defaults.
    deployment.environment = SHARED_SETTINGS | local_settings(home) | deployment.environment
    try:
        deployment.run("db", "migrate")
        if not _quickbooks_configured(deployment):
            deployment.environment["AIRFLOW_CONN_QUICKBOOKS_DEFAULT"] = _connect_emulator(
                deployment, emulator_port, demo_export, time_scale
            )
            print(
                f"QuickBooks: the bundled emulator on 127.0.0.1:{emulator_port} (state in {home}/qbo-emulator.db)"
            )
        for name in LOCAL_COMPONENTS:
            deployment.start(Component.airflow(name, name))
        api = AirflowApi(f"http://127.0.0.1:{api_port}", ADMIN_USER, "")
        wait_for(api.answering, "the api-server", STARTUP_TIMEOUT_SECONDS, deployment)
        api.credentials["password"] = admin_password(home)
        api.log_in()
        wait_for(
            lambda: api.registered(PROJECT_DAGS),
            "the DAGs parsed",
            STARTUP_TIMEOUT_SECONDS,
            deployment,
        )
        api.unpause(PROJECT_DAGS)
    except BaseException:
        print(f"start failed; component logs in {deployment.log_dir}", file=sys.stderr)
        stop_recorded(deployment.pids_file)
        raise
    print(
        f"Airflow is up: open http://127.0.0.1:{api_port} and log in as {ADMIN_USER} / {api.credentials['password']}\n"
        f"  (the password is in {home}/simple_auth_manager_passwords.json.generated)\n"
        f"  TaxDome ↔ QuickBooks in its navigation, or http://127.0.0.1:{api_port}/taxdome-qbo/\n"
        f"  {', '.join(PROJECT_DAGS)} unpaused; component logs in {deployment.log_dir}; `make down` stops it."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taxdome_qbo.deployment", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument(
        "--home", type=Path, default=Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
    )
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--emulator-port", type=int, default=8765)
    parser.add_argument(
        "--demo-export", type=Path, help="the demo export the emulator's company is seeded for"
    )
    parser.add_argument("--time-scale", type=float, default=0.1, help="the emulator's minute, in minutes")
    args = parser.parse_args(argv)
    if args.command == "down":
        stopped = stop_recorded(args.home / PIDS_FILE)
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        return 0
    return up(
        args.home,
        args.api_port,
        args.emulator_port,
        args.demo_export or Path("/nonexistent"),
        args.time_scale,
    )


if __name__ == "__main__":
    sys.exit(main())
