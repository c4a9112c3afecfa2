"""Skip benchmark: how long an hourly `taxdome_qbo_sync` run takes when nothing changed, by firm size.

For each firm (about 10 invoices per account) and database, the firm is first brought to where an hourly run
finds it once it is in step: its export staged from the landing folder and checked, planned by the plan
task's own service call (timed: what every hourly run cost before a run could skip), and that plan loaded.
The load is a perfect one written into the sync state as bench/plan.py makes it
(`demo.planning.state_after_success`), with the plan's receipt: loading a million invoices into the emulator
takes a day. The QuickBooks company is an emulator company seeded for the firm as `make demo` seeds it.

Then, with nothing changed, it times the run:
- its task bodies: `pipeline.check` (the checks not run again) and `pipeline.plan` (skipped), each through the
  connections the tasks use, best of three;
- a whole `dag.test()` run of taxdome_qbo_sync on the landing folder, with the state of each task, and that
  the warehouse's rows are the same after it (the rate governor's request slots aside).

Target: the run within 10 s at a million invoices, flat in firm size. Each firm runs in a process of its own.

    .venv/bin/python bench/plan_skip.py                               # 2,000, 10,000 and 100,000 accounts
    .venv/bin/python bench/plan_skip.py --sizes 2000 --backends sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import OUT, ensure_export, manifest_of  # the staging benchmark's exports

AIRFLOW_HOME = OUT / "plan-skip-airflow"
REPO = Path(__file__).resolve().parents[1]
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "root", "password": None}
BENCH_DATABASE = "tdq_plan_skip_bench"
SETUP_RUN, REPEATS = "bench-setup", 3
TARGET_SECONDS = 10.0
BOOKKEEPING = {"qbo_rate_governor", "qbo_rate_grants", "qbo_oauth_tokens"}


def _airflow_environment() -> None:
    """An Airflow home of the benchmark's own, set before Airflow is imported."""
    os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__LOAD_DEFAULT_CONNECTIONS"] = "False"
    os.environ["TAXDOME_QBO_REPORTS_DIR"] = str(OUT / "plan-skip-reports")


def _warehouse(backend: str):
    """A new warehouse and the `warehouse_default` connection that names it."""
    import sqlalchemy as sa

    from taxdome_qbo.services import warehouse

    if backend == "sqlite":
        path = OUT / "plan-skip-warehouse.db"
        for leftover in OUT.glob("plan-skip-warehouse.db*"):
            leftover.unlink()
        connection = {"conn_type": "sqlite", "host": str(path)}
        return warehouse.sqlite_engine(str(path)), connection
    admin = warehouse.postgres_engine(**POSTGRES, database="postgres")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {BENCH_DATABASE}"))
    admin.dispose()
    connection = {"conn_type": "postgres", "host": POSTGRES["host"], "port": POSTGRES["port"]}
    connection |= {"login": POSTGRES["user"], "schema": BENCH_DATABASE}
    return warehouse.postgres_engine(**POSTGRES, database=BENCH_DATABASE), connection


def drop_postgres_database() -> None:
    import sqlalchemy as sa

    from taxdome_qbo.services import warehouse

    admin = warehouse.postgres_engine(**POSTGRES, database="postgres")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
    admin.dispose()


def _landing(export: Path) -> Path:
    """A landing folder holding the export (its files hard-linked: same names, sizes and times)."""
    folder = OUT / f"plan-skip-landing-{export.name}" / export.name
    if not folder.exists():
        folder.mkdir(parents=True)
        for file in export.iterdir():
            os.link(file, folder / file.name)
    return folder.parent


def _loaded_as_planned(engine, run_id: str) -> int:
    """Write into the sync state what a load that did every operation of the run's plan leaves, and the
    load's receipt. Returns the objects of the sync state."""
    import pandas as pd
    import sqlalchemy as sa

    from taxdome_qbo.core.vocabulary import Plan
    from taxdome_qbo.demo.planning import state_after_success
    from taxdome_qbo.services import warehouse

    plan, runs = warehouse.sync_plan, warehouse.sync_plan_runs
    columns = ["seq", "taxdome_kind", "taxdome_id", "qbo_entity", "action", "payload_hash"]
    # A link's payload names the QuickBooks object it links to; the others' (a gigabyte at 1M) are not read.
    link_payload = sa.case((plan.c.action == "link", plan.c.payload), else_=sa.null()).label("payload")
    with engine.connect() as conn:
        realm_id = conn.execute(sa.select(runs.c.realm_id).where(runs.c.run_id == run_id)).scalar_one()
        rows = conn.execute(
            sa.select(*(plan.c[c] for c in columns), link_payload).where(plan.c.run_id == run_id)
        ).all()
    operations = pd.DataFrame.from_records(rows, columns=[*columns, "payload"]).sort_values("seq")
    del rows
    state = state_after_success(Plan(operations, pd.DataFrame()))
    outcomes: dict[str, dict[str, int]] = {}
    for (kind, action), n in operations.groupby(["taxdome_kind", "action"]).size().items():
        outcome = "linked" if action == "link" else f"{action}d"  # created, updated, reactivated, deleted
        outcomes.setdefault(kind, {})[outcome] = int(n)
    del operations
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    with engine.begin() as conn:
        warehouse.insert_frame(
            conn, warehouse.qbo_sync_state, state.assign(realm_id=realm_id, updated_at=now)
        )
        receipt = {"run_id": run_id, "realm_id": realm_id, "outcomes": outcomes}
        conn.execute(
            runs.update()
            .where(runs.c.run_id == run_id)
            .values(loaded_at=pd.Timestamp.now(tz="UTC").to_pydatetime(), load_receipt=json.dumps(receipt))
        )
    warehouse.refresh_statistics(engine, [warehouse.qbo_sync_state])
    return len(state)


def _contents(engine) -> dict[str, int]:
    """Per warehouse table (the request bookkeeping aside): its rows, and a digest of them for small ones."""
    import sqlalchemy as sa

    from taxdome_qbo.services import warehouse

    found = {}
    with engine.connect() as conn:
        for table in warehouse.metadata.sorted_tables:
            if table.name not in BOOKKEEPING:
                found[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                if found[table.name] < 10_000:
                    found[table.name] = hash(tuple(sorted(map(repr, conn.execute(sa.select(table))))))
    return found


def _best(call) -> tuple[float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return round(min(times), 2), result


def run_one(backend: str, export: Path) -> dict:
    _airflow_environment()
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    from qbo_emulator.admin import airflow_connection
    from qbo_emulator.testing import running_emulator
    from taxdome_qbo import dag_tasks
    from taxdome_qbo.core.planner import PlanOptions
    from taxdome_qbo.demo.qbo_seed import seed_company
    from taxdome_qbo.hooks.quickbooks import QuickBooksHook
    from taxdome_qbo.services import pipeline

    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    db.initdb()
    manifest = manifest_of(export)
    engine, connection = _warehouse(backend)
    landing = _landing(export)
    result: dict = {"backend": backend, "invoices": manifest["counts"]["invoices.csv"]}
    # Unthrottled: seeding the company of a large firm (its hand-matched customers) is not what this measures.
    with running_emulator(requests_per_minute=10**9, batch_requests_per_minute=10**9) as emulator:
        company = emulator.admin("POST", "companies").json()
        seed_company(emulator.quickbooks(company), export)
        os.environ["AIRFLOW_CONN_WAREHOUSE_DEFAULT"] = json.dumps(connection)
        os.environ["AIRFLOW_CONN_QUICKBOOKS_DEFAULT"] = json.dumps(
            airflow_connection(emulator.base_url, company)
        )
        os.environ["AIRFLOW_VAR_TAXDOME_QBO_SETTINGS"] = json.dumps(manifest["firm_settings"])
        params = {"export_mode": "full", "allow_mass_delete": False, "dry_run": False}
        settings = dag_tasks.firm_settings(params)
        options = PlanOptions(export_mode="full", allow_mass_delete=False)

        started = time.perf_counter()
        pipeline.stage(engine, pipeline.exports_to_stage(engine, export=None, landing=landing), SETUP_RUN)
        result["stage_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        pipeline.check(engine, SETUP_RUN, export_mode="full", home_currency=settings.home_currency)
        result["check_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        planned = pipeline.plan(
            engine,
            QuickBooksHook().governed_session("planned"),
            settings,
            options,
            SETUP_RUN,
            dry_run=False,
            reports_root=dag_tasks.reports_root(),
        )
        result["plan_seconds"] = round(time.perf_counter() - started, 1)
        result["operations"] = planned["operations"]
        result["sync_state"] = _loaded_as_planned(engine, SETUP_RUN)

        def check() -> dict:
            return pipeline.check(
                engine, "bench-quiet", export_mode="full", home_currency=settings.home_currency
            )

        def plan() -> str:
            try:
                pipeline.plan(
                    engine,
                    QuickBooksHook().governed_session("planned"),
                    dag_tasks.firm_settings(params),
                    options,
                    "bench-quiet",
                    dry_run=False,
                    reports_root=dag_tasks.reports_root(),
                )
            except pipeline.Skipped as skipped:
                return str(skipped)
            raise AssertionError("a run with nothing changed planned")

        before = _contents(engine)
        result["check_task_seconds"], checked = _best(check)
        assert checked["same_as_run"] == SETUP_RUN, checked
        result["plan_task_seconds"], result["skip_reason"] = _best(plan)

        # The first run in a process pays what a task process pays once (its first ObjectStoragePath loads
        # Airflow's plugins, the project's UI among them); the second shows the run without it.
        sync_dag = DagBag(dag_folder=str(REPO / "dags")).dags["taxdome_qbo_sync"]
        for name in ("dag_run", "dag_rerun"):
            started = time.perf_counter()
            run = sync_dag.test(run_conf={"landing_dir": str(landing)})
            result[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
            instances = run.get_task_instances()
            result[f"{name}_task_states"] = {ti.task_id: ti.state for ti in instances}
            result[f"{name}_task_seconds"] = {ti.task_id: round(ti.duration or 0, 2) for ti in instances}
        result["warehouse_unchanged"] = _contents(engine) == before
    engine.dispose()
    if backend == "postgres":
        drop_postgres_database()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[2_000, 10_000, 100_000], help="accounts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    parser.add_argument("--run-one", nargs=2, metavar=("BACKEND", "EXPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(args.run_one[0], Path(args.run_one[1]))))
        return 0
    for accounts in args.sizes:
        export, _ = ensure_export(accounts, args.seed)
        for backend in args.backends:
            output = subprocess.run(
                [sys.executable, __file__, "--run-one", backend, str(export)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            run = json.loads(output.strip().splitlines()[-1])
            verdict = "OK" if run["dag_run_seconds"] <= TARGET_SECONDS else "OVER TARGET"
            print(
                f"{backend}, {run['invoices']:,} invoices, sync state of {run['sync_state']:,} objects: set-up "
                f"stage {run['stage_seconds']} s, check {run['check_seconds']} s, plan {run['plan_seconds']} s "
                f"({run['operations']:,} operations). Nothing changed: check task {run['check_task_seconds']} s, "
                f"plan task {run['plan_task_seconds']} s (skipped); dag.test {run['dag_run_seconds']} s "
                f"[{verdict}] (tasks {run['dag_run_task_seconds']}), again {run['dag_rerun_seconds']} s "
                f"(tasks {run['dag_rerun_task_seconds']}); states {run['dag_rerun_task_states']}, warehouse "
                f"unchanged: {run['warehouse_unchanged']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
