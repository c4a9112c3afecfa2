"""The sync's task path benchmark: a dry run of `taxdome_qbo_sync` (extract, stage, check, plan) on a generated
firm of about 1,000,000 invoices, on a fresh SQLite warehouse and on a fresh PostgreSQL database.

Each task runs in a process of its own, as a deployment runs it: the function its @task body calls
(`dag_tasks.resolve_exports`, `stage_exports`, `check_quality`, `plan_sync`), with the DAG's params of a dry
run, the connections `warehouse_default` and `quickbooks_default` and the firm settings Variable given by
environment variables (AIRFLOW_CONN_*, AIRFLOW_VAR_*), against a running QBO emulator whose company is
seeded as `make demo` seeds it. So each task's time is its body's, warehouse writes, preview and
the preview included (the operations file is written on demand since issue 15, not by the task), and its peak RSS is its own process's (Airflow's imports included).

Targets on the 2-core reference machine: stage + check + plan at most 120 s, the plan at most 45 s, no task
above 3 GB. A warehouse is never reused: a plan against an earlier run's sync state plans differently. At the
end the two databases' counts per kind and action (sync_plan) and per kind and status (sync_object_status)
are compared: the same export must give the same plan on both.

    make bench
    .venv/bin/python bench/task_path.py --accounts 10000 --backends sqlite
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

from qbo_emulator.admin import airflow_connection
from qbo_emulator.testing import running_emulator
from taxdome_qbo.demo.qbo_seed import seed_company
from taxdome_qbo.services import warehouse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import OUT, POSTGRES, ensure_export, firm_command_line, manifest_of, run_in_own_process

TASKS = ("extract", "stage", "check", "plan")
# Run after the tasks, not part of the path: what a person asking for the plan's operations file waits for.
ON_DEMAND = ("plan-operations",)
TARGET_SECONDS = {"plan": 45.0, "stage + check + plan": 120.0}
TARGET_PEAK_RSS_MB = 3072
RUN_ID = "manual__bench_task_path"
# Seeding a large firm's company (thousands of customers matched by hand) goes beyond QBO's request limits;
# the tasks then run against QBO's own limits again.
UNTHROTTLED = {"requests_per_minute": 10**9, "max_concurrent_requests": 10**6}
QBO_LIMITS = {"requests_per_minute": 500, "max_concurrent_requests": 10}


def dry_run_params(export: Path) -> dict:
    """The DAG's params of a manual dry run of `export` (the firm settings come from the Variable)."""
    return {
        "export_dir": str(export),
        "dry_run": True,
        "export_mode": "full",
        "allow_mass_delete": False,
        "period_from": None,
        "period_to": None,
        "landing_dir": None,
    }


# Where the plan task's time goes: these functions of planning.py (or of what it imports) are timed.
PLAN_STEPS = {
    "read staged": ("planning", "read_staged_firm"),
    "plan (core)": ("planning", "build_plan"),  # the operations are written meanwhile, by another process
    "preview": ("planning", "preview_markdown"),
}


def time_plan_steps() -> dict[str, float]:
    """Wrap PLAN_STEPS to add up their seconds (in the returned dict) as the task calls them."""
    from taxdome_qbo.services import planning, warehouse

    modules = {"planning": planning, "warehouse": warehouse}
    spent: dict[str, float] = {}
    for step, (module, name) in PLAN_STEPS.items():
        function = getattr(modules[module], name, None)
        if function is None:
            continue

        def timed(*args, _function=function, _step=step, **kwargs):
            started = time.perf_counter()
            try:
                return _function(*args, **kwargs)
            finally:
                spent[_step] = spent.get(_step, 0.0) + time.perf_counter() - started

        setattr(modules[module], name, timed)
    return spent


def manual_run_context(params: dict) -> dict:
    """What the plan task's body reads of its Airflow context, for a manual run of the DAG."""
    return {"params": params, "run_id": RUN_ID, "dag_run": SimpleNamespace(run_type="manual")}


def run_one(task: str, export: Path) -> dict:
    """One task body, in this process; the connections and the Variable are in the environment."""
    from taxdome_qbo import dag_tasks

    params = dry_run_params(export)
    steps = time_plan_steps() if task == "plan" else {}
    started = time.perf_counter()
    if task == "extract":
        receipt = dag_tasks.resolve_exports(params)
    elif task == "stage":
        receipt = dag_tasks.stage_exports([str(export)], RUN_ID)
    elif task == "check":
        receipt = dag_tasks.check_quality(params, RUN_ID)
    elif task == "plan-operations":
        from taxdome_qbo import cli

        receipt = cli.main(["plan-operations", "--run-id", RUN_ID])
    else:
        receipt = dag_tasks.plan_sync(manual_run_context(params))
    seconds = time.perf_counter() - started
    if steps:
        # The rest of the task: its lease, QuickBooks' names, the plan's inputs, the statuses' writing.
        steps["other"] = seconds - sum(steps.values())
    return {
        "task": task,
        "seconds": round(seconds, 1),
        "peak_rss_mb": peak_rss_mb(),
        "steps": {step: round(seconds, 1) for step, seconds in steps.items()},
        "receipt": receipt,
    }


def peak_rss_mb() -> int:
    """This process's peak resident memory since it started its program (VmHWM). Not ru_maxrss: Linux keeps
    that across exec, so a child would report its parent's peak (this benchmark's, with the seeded export)."""
    status = Path("/proc/self/status").read_text()
    return round(
        int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    )


@contextmanager
def fresh_warehouse(backend: str, scratch: Path) -> Iterator[tuple[dict, sa.Engine]]:
    """A new, empty warehouse: its Airflow connection and an engine on it. A PostgreSQL database of its own,
    dropped at the end."""
    if backend == "sqlite":
        path = scratch / "warehouse.db"
        engine = warehouse.sqlite_engine(str(path))
        try:
            yield {"conn_type": "sqlite", "host": str(path)}, engine
        finally:
            engine.dispose()
        return
    database = f"tdq_bench_task_path_{uuid.uuid4().hex[:8]}"
    admin = warehouse.postgres_engine(**POSTGRES).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    engine = warehouse.postgres_engine(**(POSTGRES | {"database": database}))
    try:
        yield (
            {
                "conn_type": "postgres",
                "host": POSTGRES["host"],
                "port": POSTGRES["port"],
                "schema": database,
                "login": POSTGRES["user"],
            },
            engine,
        )
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def plan_counts(engine: sa.Engine) -> dict[str, dict[str, int]]:
    """Operations per kind and action, objects per kind and status, counted from the run's rows."""
    plan, statuses = warehouse.sync_plan, warehouse.sync_object_status
    with engine.connect() as conn:
        actions = conn.execute(
            sa.select(plan.c.taxdome_kind, plan.c.action, sa.func.count())
            .where(plan.c.run_id == RUN_ID)
            .group_by(plan.c.taxdome_kind, plan.c.action)
        ).all()
        verdicts = conn.execute(
            sa.select(statuses.c.taxdome_kind, statuses.c.status, sa.func.count())
            .where(statuses.c.run_id == RUN_ID)
            .group_by(statuses.c.taxdome_kind, statuses.c.status)
        ).all()
    return {
        "actions": {f"{kind}.{action}": n for kind, action, n in sorted(actions)},
        "statuses": {f"{kind}.{status}": n for kind, status, n in sorted(verdicts)},
    }


def run_backend(backend: str, export: Path, connection: dict, scratch: Path) -> dict:
    """The four tasks one after the other, each in its own process, on a fresh warehouse."""
    with fresh_warehouse(backend, scratch) as (warehouse_connection, engine):
        os.environ["AIRFLOW_CONN_WAREHOUSE_DEFAULT"] = json.dumps(warehouse_connection)
        os.environ["TAXDOME_QBO_REPORTS_DIR"] = str(scratch / f"reports-{backend}")
        os.environ["AIRFLOW_CONN_QUICKBOOKS_DEFAULT"] = json.dumps(connection)
        runs = {}
        for task in TASKS + ON_DEMAND:
            try:
                runs[task] = run_in_own_process(__file__, task, export)
            except subprocess.CalledProcessError as failed:
                sys.exit(f"{backend} {task} failed:\n{failed.stderr[-6000:]}")
            print(f"  {backend} {task}: {runs[task]['seconds']} s, peak RSS {runs[task]['peak_rss_mb']} MB")
        assert runs["extract"]["receipt"] == [str(export)], runs["extract"]["receipt"]
        counted = plan_counts(engine)
        csv = scratch / f"reports-{backend}"
        csv_bytes = sum(f.stat().st_size for f in csv.rglob("plan_operations*"))
        shutil.rmtree(csv, ignore_errors=True)
    return {"backend": backend, "tasks": runs, "counts": counted, "operations_file_mb": csv_bytes / 2**20}


def report(result: dict, load: str) -> None:
    tasks = result["tasks"]
    path = sum(tasks[t]["seconds"] for t in ("stage", "check", "plan"))
    peak = max(run["peak_rss_mb"] for run in tasks.values())
    plan = tasks["plan"]["receipt"]

    def verdict(ok: bool) -> str:
        return "OK" if ok else "OVER TARGET"

    print(f"\n{result['backend']} (load average before the run: {load})")
    print(f"  {'task':<22}{'seconds':>9}{'target':>9}{'peak RSS MB':>13}")
    for task, run in tasks.items():
        if task in ON_DEMAND:
            continue
        target = TARGET_SECONDS.get(task)
        print(
            f"  {task:<22}{run['seconds']:>9}{'' if target is None else target:>9}{run['peak_rss_mb']:>13}"
            + ("" if target is None else f"  {verdict(run['seconds'] <= target)}")
        )
    print(
        f"  {'stage + check + plan':<22}{path:>9.1f}{TARGET_SECONDS['stage + check + plan']:>9}{peak:>13}"
        f"  {verdict(path <= TARGET_SECONDS['stage + check + plan'] and peak <= TARGET_PEAK_RSS_MB)}"
    )
    print(
        f"  plan: {plan['operations']:,} operations, {sum(plan['statuses'].values()):,} statuses; "
        f"operations file {result['operations_file_mb']:.0f} MB"
    )
    for task in ON_DEMAND:
        print(
            f"  on demand, not in the path: {task} {tasks[task]['seconds']} s, peak RSS {tasks[task]['peak_rss_mb']} MB"
        )
    print("  plan task's steps (s): " + ", ".join(f"{k} {v}" for k, v in tasks["plan"]["steps"].items()))


def compare(results: list[dict]) -> bool:
    """The same export planned on both databases: the same counts per kind and action, kind and status."""
    first, second = results
    same = True
    for measure in ("actions", "statuses"):
        a, b = first["counts"][measure], second["counts"][measure]
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                same = False
                print(f"  {measure} {key}: {first['backend']} {a.get(key)}, {second['backend']} {b.get(key)}")
    print(
        "\nSQLite and PostgreSQL: "
        + ("identical counts per kind x action and kind x status" if same else "the counts differ (above)")
    )
    return same


def load_average() -> str:
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


def main() -> int:
    args = firm_command_line(__doc__, run_one, case="TASK", backends=True)
    if args is None:
        return 0
    export, generated = ensure_export(args.accounts, args.seed)
    manifest = manifest_of(export)
    print(
        f"export {export.name}: {manifest['counts']['invoices.csv']:,} invoices "
        f"({f'generated in {generated:.0f} s' if generated else 'reused'})"
    )
    os.environ["AIRFLOW_VAR_TAXDOME_QBO_SETTINGS"] = json.dumps(manifest["firm_settings"])
    results = []
    with tempfile.TemporaryDirectory(dir=OUT) as home, running_emulator(**UNTHROTTLED) as emulator:
        os.environ["AIRFLOW_HOME"] = home  # the token key file the QuickBooks hook generates
        company = emulator.companies()[0]
        seeded = seed_company(emulator.quickbooks(company), export)
        emulator.configure(**QBO_LIMITS)
        emulator.admin("DELETE", "requests")
        print(f"emulator {emulator.base_url}: company {company['realm_id']} seeded with {seeded}")
        connection = airflow_connection(emulator.base_url, company)
        for backend in args.backends:
            load = load_average()
            with tempfile.TemporaryDirectory(dir=OUT) as scratch:
                result = run_backend(backend, export, connection, Path(scratch))
            report(result, load)
            results.append(result)
        served = emulator.admin("GET", "requests").json()["counts_by_operation"]
        print(f"\nthe emulator served {served} (a dry run reads only)")
    if len(results) == 2:
        compare(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
