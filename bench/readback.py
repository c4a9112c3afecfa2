"""Read-back benchmark: the QuickBooks company of the benchmark firm read back through the emulator.

The company is what a perfect first load of the firm leaves. The emulator's first company gets what the demo
seeds (`make demo`: the items services copy, the customers accounts are matched to by hand), the firm is
planned against it (as read through the real clients), and every planned write is saved into the emulator's
state in process, through the emulator's own code (ids, totals, balances and payment links as a create over
HTTP would leave them; only HTTP is skipped, as a million creates through Intuit's limits would take days).

Then the emulator serves that state and `services/qbo_readback.read_back` reads the whole company (a full
read, as the first read-back after a load is) over HTTP into a SQLite warehouse, through python-quickbooks and
intuit-oauth, with Intuit's real limits on both sides (the emulator's default limits, the rate governor with
Intuit's): what the reconcile DAG's read_back task does. Timed: the read-back, its peak RSS (of the reading
process; the emulator's own is reported apart).

    make bench
    .venv/bin/python bench/readback.py --accounts 10000
"""

from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from qbo_emulator import entities
from qbo_emulator.company import Company
from qbo_emulator.config import EmulatorConfig
from qbo_emulator.errors import QboFault
from qbo_emulator.jsonutil import SharingDecoder
from qbo_emulator.service import Emulator
from qbo_emulator.storage import DECODED_TOGETHER
from qbo_emulator.testing import (
    EmulatorHandle,
    emulator_command,
    free_port,
    running_emulator,
    wait_until_answering,
)
from taxdome_qbo.core import load_rules
from taxdome_qbo.core.load_rules import UnresolvedReference
from taxdome_qbo.core.planner import build_plan
from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.core.validation import validate_export
from taxdome_qbo.core.vocabulary import STATE_COLUMNS, StagedFirm
from taxdome_qbo.demo.qbo_seed import seed_company
from taxdome_qbo.services import qbo_readback, warehouse
from taxdome_qbo.services.export_reader import ExportReader
from taxdome_qbo.services.qbo_client import QboCredentials, fetch_reference, open_session
from taxdome_qbo.services.qbo_rate import RateGovernor, RateLimits
from taxdome_qbo.services.qbo_tokens import TokenStore
from taxdome_qbo.services.token_cipher import TokenCipher

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plan import OperationsFile  # the planning benchmark's operations file
from reconcile import print_figures  # the reconciliation benchmark's figures beside their targets
from stage import (  # the staging benchmark's export
    OUT,
    ensure_export,
    firm_command_line,
    firm_settings_of,
    run_in_own_process,
)

REDIRECT_URI = "http://127.0.0.1/callback"
# Loading a million objects' state takes the emulator minutes before it answers.
EMULATOR_START_SECONDS = 3600.0
SAVED_PER_FLUSH = 10_000
STAGE_AND_PLAN_PEAK_RSS_MB = 3072


def _emulator_db(export: Path) -> Path:
    return OUT / f"{export.name}-readback-emulator.db"


def _credentials(base_url: str, company: dict) -> QboCredentials:
    return QboCredentials(
        company["client_id"],
        company["client_secret"],
        company["realm_id"],
        base_url,
        REDIRECT_URI,
        company["refresh_token"],
    )


def _kb_of(pid: int, field: str) -> int:
    """A `/proc/<pid>/status` figure (VmRSS, VmHWM) in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def _cpu_seconds_of(pid: int) -> float:
    """A process's CPU time so far (user and system), from `/proc/<pid>/stat`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _company_planned_against(export: Path, database: Path) -> tuple[str, QboReference]:
    """The emulator's first company in `database`, seeded as `make demo` seeds it for `export`: its realm and
    what the planner reads of it, through the real clients."""
    scratch_path = database.with_suffix(".tokens.db")
    scratch = warehouse.sqlite_engine(str(scratch_path))
    warehouse.create_schema(scratch)  # where the session keeps its tokens
    # Seeding is not measured: Intuit's limits are lifted for it (the emulator does not keep its settings).
    with running_emulator(
        str(database), requests_per_minute=10**9, max_concurrent_requests=10**6
    ) as emulator:
        company = emulator.companies()[0]
        seed_company(emulator.quickbooks(company), export)
        session = open_session(
            _credentials(emulator.base_url, company),
            TokenStore(scratch, company["realm_id"], TokenCipher.generated()),
        )
        reference = fetch_reference(session)
    scratch.dispose()
    scratch_path.unlink()
    return company["realm_id"], reference


def _first_plan(export: Path, reference: QboReference) -> tuple[OperationsFile, int]:
    """The firm's first plan against `reference`: its operations file and how many objects it fails."""
    validated = {v.export_file.name: v.staged for v in validate_export(ExportReader(export).read)}
    staged = StagedFirm(**{name: validated[name] for name in StagedFirm.__dataclass_fields__})
    settings = firm_settings_of(export)
    operations_file = OperationsFile(OUT / f"{export.name}-readback-operations.parquet")
    plan = build_plan(
        staged, settings, reference, pd.DataFrame(columns=list(STATE_COLUMNS)), sink=operations_file
    )
    operations_file.close()
    return operations_file, int(plan.statuses["status"].eq("failed").sum())


def _save_writes(company: Company, operations: pd.DataFrame) -> Counter[str]:
    """Every write of `operations` (in execution order) saved into `company` as the emulator saves a create
    or update sent over HTTP; the outcomes counted."""
    # The emulator refuses a duplicate number by scanning every sales form of the entity, which makes a
    # million creates quadratic: the check is off while seeding (in memory only; the stored preferences keep
    # it on) and the numbers' uniqueness is checked once at the end.
    sales_forms = next(company.all("Preferences"))["SalesFormsPrefs"]
    sales_forms["CustomTxnNumbers"] = False
    qbo_ids: dict[str, str] = {}
    outcomes: Counter[str] = Counter()
    # Decoded as the emulator decodes its stored state: the objects saved share their equal values.
    decoder = SharingDecoder()
    payloads = (
        payload
        for start in range(0, len(operations), DECODED_TOGETHER)
        for payload in decoder.loads(operations["payload"].iloc[start : start + DECODED_TOGETHER].tolist())
    )
    for number, (operation, payload) in enumerate(
        zip(operations.itertuples(index=False), payloads, strict=True), start=1
    ):
        reference_name = f"@{operation.taxdome_kind}:{operation.taxdome_id}"
        if operation.action == "link":
            qbo_ids[reference_name] = payload["Id"]
            outcomes["linked"] += 1
            continue
        try:
            body = load_rules.resolve(payload, qbo_ids.get)
            saved = entities.save(company, operation.qbo_entity, body, {})
        except UnresolvedReference:
            outcomes["waits for a refused write"] += 1
            continue
        except QboFault as fault:
            outcomes[f"refused ({fault.code})"] += 1
            continue
        qbo_ids[reference_name] = saved["Id"]
        outcomes[operation.action] += 1
        if number % SAVED_PER_FLUSH == 0:
            company.flush()
    company.flush()
    sales_forms["CustomTxnNumbers"] = True
    for entity in ("Invoice", "CreditMemo", "RefundReceipt"):
        numbers = Counter(obj.get("DocNumber") for obj in company.all(entity))
        repeated = [number for number, times in numbers.items() if times > 1]
        if repeated:
            raise ValueError(f"the plan gives {len(repeated)} numbers to two {entity}s, e.g. {repeated[0]}")
    return outcomes


def seed(export: Path) -> dict:
    """The emulator state of a perfect first load of the firm, in `_emulator_db(export)`."""
    database = _emulator_db(export)
    for leftover in database.parent.glob(f"{database.name}*"):
        leftover.unlink()
    realm_id, reference = _company_planned_against(export, database)
    operations_file, failed_in_plan = _first_plan(export, reference)
    started = time.perf_counter()
    emulated = Emulator(str(database), EmulatorConfig())
    company = emulated.companies[realm_id]
    columns = ["taxdome_kind", "taxdome_id", "qbo_entity", "action", "payload"]
    outcomes = _save_writes(company, operations_file.read()[columns])
    emulated.storage.close()
    operations_file.path.unlink()
    return {
        "case": "seed",
        "seconds": round(time.perf_counter() - started, 1),
        "operations": dict(outcomes),
        "failed_in_plan": failed_in_plan,
        "objects": {entity: len(objects) for entity, objects in company.objects.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _started_emulator(database: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        emulator_command(port, database, {}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + EMULATOR_START_SECONDS
    while True:
        try:
            if wait_until_answering(base_url, process):
                return process, base_url
            raise RuntimeError(f"the QBO emulator on {database} exited before answering")
        except TimeoutError:
            if time.monotonic() > deadline:
                process.kill()
                raise


def read(export: Path) -> dict:
    """A full read-back of the seeded company over HTTP, timed, in a process of its own."""
    started_at = time.perf_counter()
    process, base_url = _started_emulator(_emulator_db(export))
    emulator_start_seconds = time.perf_counter() - started_at
    try:
        company = EmulatorHandle(base_url, process, None).companies()[0]
        path = OUT / f"{export.name}-readback-warehouse.db"
        for leftover in path.parent.glob(f"{path.name}*"):
            leftover.unlink()
        engine = warehouse.sqlite_engine(str(path))
        warehouse.create_schema(engine)
        session = open_session(
            _credentials(base_url, company), TokenStore(engine, company["realm_id"], TokenCipher.generated())
        )
        session.govern(RateGovernor(engine, company["realm_id"], RateLimits()))
        rss_before_mb = _kb_of(os.getpid(), "VmRSS") // 1024
        emulator_cpu_before = _cpu_seconds_of(process.pid)
        started, cpu_started = time.perf_counter(), _cpu_seconds_of(os.getpid())
        receipt = qbo_readback.read_back(engine, session, incremental=False)
        seconds = time.perf_counter() - started
        cpu_seconds = _cpu_seconds_of(os.getpid()) - cpu_started
        emulator_cpu_seconds = _cpu_seconds_of(process.pid) - emulator_cpu_before
        with engine.connect() as conn:
            rows = {
                table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in (
                    *warehouse.QBO_COPIES.values(),
                    warehouse.stg_qbo_invoice_lines,
                    warehouse.stg_qbo_payment_links,
                )
            }
        engine.dispose()
        path.unlink()
        emulator_peak_mb = _kb_of(process.pid, "VmHWM") // 1024
    finally:
        process.terminate()
        process.wait(timeout=60)
    objects = sum(receipt.objects.values())
    return {
        "case": "read",
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "emulator_cpu_seconds": round(emulator_cpu_seconds, 1),
        "objects": objects,
        "objects_per_entity": receipt.objects,
        "rows": rows,
        "requests": session.stats.requests,
        "throttled": session.stats.throttled,
        "objects_per_second": round(objects / seconds),
        "rss_before_read_mb": rss_before_mb,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "emulator_start_seconds": round(emulator_start_seconds, 1),
        "emulator_peak_rss_mb": emulator_peak_mb,
    }


def main() -> int:
    args = firm_command_line(
        __doc__, lambda case, export: {"seed": seed, "read": read}[case](export), case="CASE", backends=False
    )
    if args is None:
        return 0
    export, _ = ensure_export(args.accounts, args.seed)
    seeded = run_in_own_process(__file__, "seed", export)
    print(
        f"the plan's writes saved into the emulator's state in {seeded['seconds']} s (peak RSS {seeded['peak_rss_mb']:,} MB): "
        f"{sum(seeded['objects'].values()):,} objects {seeded['objects']}; the plan's writes {seeded['operations']}"
    )
    run = run_in_own_process(__file__, "read", export)
    print(
        f"read back {run['objects']:,} objects {run['objects_per_entity']} in {run['requests']:,} requests "
        f"({run['throttled']} throttled), {run['objects_per_second']:,} objects/s; warehouse rows {run['rows']}; "
        f"the emulator loaded its state in {run['emulator_start_seconds']} s"
    )
    # Intuit's limit (500 requests in any minute) alone keeps a read of this many pages from being faster.
    limits = RateLimits()
    floor_seconds = (math.ceil(run["requests"] / limits.requests_per_window) - 1) * limits.window_seconds
    print_figures(
        [
            (
                f"full read-back of {run['objects']:,} objects",
                f"{run['seconds']} s",
                None,
                f"no target; Intuit's request limit alone: ≥ {floor_seconds:.0f} s",
            ),
            ("  CPU time of the reading process", f"{run['cpu_seconds']} s", None, ""),
            ("  CPU time of the emulator serving it", f"{run['emulator_cpu_seconds']} s", None, ""),
            (
                "  its peak RSS (reading process)",
                f"{run['peak_rss_mb']:,} MB",
                None,
                f"no target (staging and planning: ≤ {STAGE_AND_PLAN_PEAK_RSS_MB:,} MB)",
            ),
            ("  the emulator's peak RSS", f"{run['emulator_peak_rss_mb']:,} MB", None, ""),
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
