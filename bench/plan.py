"""Planning benchmark: a generated firm of about 1,000,000 invoices planned against a sync state of its size.

Targets on the 2-core reference machine: at most 60 s and 3 GB peak RSS per plan. Two plans are measured,
each in a process of its own (as the plan task runs one plan): the first plan (nothing synced yet: every
object is created), and the steady state (against the sync state a successful load of the first plan
leaves: every payload is rebuilt and compared by hash, nothing is written). As the plan task records a plan
while it is made, the operations go to a file as the planner sends them (part of the measure).

    make bench
    .venv/bin/python bench/plan.py --accounts 10000
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from taxdome_qbo.core.planner import build_plan
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.core.validation import validate_export
from taxdome_qbo.core.vocabulary import STATE_COLUMNS, Plan, StagedFirm
from taxdome_qbo.demo.planning import company_seeded_for, state_after_success
from taxdome_qbo.services.export_reader import ExportReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import (
    OUT,
    ensure_export,
    firm_command_line,
    run_in_own_process,
    within_targets,
)  # the staging benchmark's export


class OperationsFile:
    """A plan's operations written as the planner sends them (the stand-in for recording them)."""

    def __init__(self, path: Path):
        self.path = path
        self.operations = 0
        self._writer: pq.ParquetWriter | None = None

    def __call__(self, operations: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(operations, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)
        self.operations += len(operations)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def read(self) -> pd.DataFrame:
        """Every operation, in execution order."""
        return pd.read_parquet(self.path).sort_values("seq", ignore_index=True)


def run_one(scenario: str, export: Path) -> dict:
    validated = {v.export_file.name: v.staged for v in validate_export(ExportReader(export).read)}
    staged = StagedFirm(**{name: validated[name] for name in StagedFirm.__dataclass_fields__})
    del validated
    state_file = OUT / f"{export.name}-sync-state.parquet"
    state = pd.read_parquet(state_file) if scenario == "steady" else pd.DataFrame(columns=list(STATE_COLUMNS))
    settings = FirmSettings()
    company = company_seeded_for(staged)
    operations = OperationsFile(OUT / f"{export.name}-{scenario}-operations.parquet")
    started = time.perf_counter()
    plan = build_plan(staged, settings, company, state, sink=operations)
    operations.close()
    seconds = time.perf_counter() - started
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if scenario == "first":
        state_after_success(Plan(operations.read(), plan.statuses)).to_parquet(state_file)
    return {
        "scenario": scenario,
        "seconds": round(seconds, 1),
        "operations": operations.operations,
        "statuses": len(plan.statuses),
        "state": len(state),
        "invoices": len(staged.invoices),
        "peak_rss_mb": peak,
    }


def main() -> int:
    args = firm_command_line(__doc__, run_one, case="SCENARIO", backends=False)
    if args is None:
        return 0

    export, _ = ensure_export(args.accounts, args.seed)
    for scenario in ("first", "steady"):
        run = run_in_own_process(__file__, scenario, export)
        verdict = within_targets(run, seconds=60)
        print(
            f"{scenario} plan of {run['invoices']:,} invoices against a sync state of {run['state']:,} objects: "
            f"{run['operations']:,} operations, {run['statuses']:,} statuses in {run['seconds']} s, "
            f"peak RSS {run['peak_rss_mb']} MB  [{verdict}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
