"""Staging benchmark: a generated export of about 1,000,000 invoices staged on SQLite and on PostgreSQL.

Targets on the 2-core reference machine: the whole export staged in at most 120 s on each database,
peak RSS at most 3 GB. Each database runs in a process of its own so its peak memory is its own.

    make bench                                   # 100,000 accounts ≈ 1M invoices
    .venv/bin/python bench/stage.py --accounts 10000 --backends sqlite
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from taxdome_qbo.core.settings import FirmSettings, resolve_settings
from taxdome_qbo.demo import generate_export
from taxdome_qbo.services import warehouse
from taxdome_qbo.services.staging import stage_export

OUT = Path(__file__).resolve().parent / "out"
POSTGRES = {"host": "127.0.0.1", "port": 5432, "database": "test", "user": "root", "password": None}
BENCH_SCHEMA = "bench_stage"


def engine_for(backend: str) -> sa.Engine:
    if backend == "sqlite":
        path = OUT / "bench-warehouse.db"
        for leftover in OUT.glob("bench-warehouse.db*"):
            leftover.unlink()
        return warehouse.sqlite_engine(str(path))
    admin = warehouse.postgres_engine(**POSTGRES)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {BENCH_SCHEMA} CASCADE"))
    admin.dispose()
    return warehouse.postgres_engine(**POSTGRES, search_path=BENCH_SCHEMA)


def run_one(backend: str, export: Path) -> dict:
    engine = engine_for(backend)
    started = time.perf_counter()
    result = stage_export(engine, export)
    elapsed = time.perf_counter() - started
    reload_started = time.perf_counter()
    reload = stage_export(engine, export)
    reload_elapsed = time.perf_counter() - reload_started
    assert reload.total("rows_inserted") == reload.total("rows_updated") == 0
    return {
        "backend": backend,
        "seconds": round(elapsed, 1),
        "phases": {k: round(v, 1) for k, v in result.seconds.items()},
        "reload_seconds": round(reload_elapsed, 1),
        "rows": result.total("rows_read"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "files": [
            {"file": f.source_file, "rows": f.rows_read, "write_seconds": round(f.write_seconds, 2)}
            for f in result.files
        ],
    }


def run_in_own_process(script: str, case: str, export: Path) -> dict:
    """`script --run-one CASE EXPORT` in a fresh interpreter, so its peak RSS is its own; its JSON result."""
    output = subprocess.run(
        [sys.executable, script, "--run-one", case, str(export)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def within_targets(run: dict, *, seconds: float, peak_rss_mb: int = 3072) -> str:
    return "OK" if run["seconds"] <= seconds and run["peak_rss_mb"] <= peak_rss_mb else "OVER TARGET"


def ensure_export(accounts: int, seed: int, *, bad_rows: float = 0.0) -> tuple[Path, float | None]:
    """The benchmarks' generated firm (with a share of bad rows, if asked), generated once in bench/out; the
    seconds its generation took, None when it was there already."""
    OUT.mkdir(exist_ok=True)
    export = OUT / f"export-{accounts}-accounts-seed-{seed}{'-bad-rows' if bad_rows else ''}"
    if (export / "_generator_manifest.json").exists():
        return export, None
    partial = export.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)  # an interrupted generation's
    started = time.perf_counter()
    generate_export(partial, accounts=accounts, seed=seed, bad_rows=bad_rows)
    partial.rename(export)
    return export, time.perf_counter() - started


def manifest_of(export: Path) -> dict:
    """What the generator says of the export: its rows per file and the firm's settings."""
    return json.loads((export / "_generator_manifest.json").read_text())


def firm_settings_of(export: Path) -> FirmSettings:
    return resolve_settings(manifest_of(export)["firm_settings"], None)


def firm_command_line(
    doc: str | None, run_one: Callable[[str, Path], dict], *, case: str, backends: bool
) -> argparse.Namespace | None:
    """The benchmarks' shared command line: the firm's size and seed and the databases (where it runs on
    both). With the hidden `--run-one CASE EXPORT` (how `run_in_own_process` starts a measurement) it runs
    `run_one`, prints its JSON result and returns None."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000, help="about 10 invoices per account")
    parser.add_argument("--seed", type=int, default=1)
    if backends:
        parser.add_argument(
            "--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
        )
    parser.add_argument("--run-one", nargs=2, metavar=(case, "EXPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.run_one:
        return args
    print(json.dumps(run_one(args.run_one[0], Path(args.run_one[1]))))
    return None


def main() -> int:
    args = firm_command_line(__doc__, run_one, case="BACKEND", backends=True)
    if args is None:
        return 0

    export, generate_seconds = ensure_export(args.accounts, args.seed)
    manifest = manifest_of(export)
    size_mb = sum(p.stat().st_size for p in export.glob("*.csv")) / 2**20
    generated = f"generated in {generate_seconds:.0f} s" if generate_seconds else "reused"
    print(f"export {export.name}: {size_mb:.0f} MB, {generated}; rows per file: {manifest['counts']}")
    for backend in args.backends:
        run = run_in_own_process(__file__, backend, export)
        verdict = within_targets(run, seconds=120)
        print(
            f"\n{backend}: {run['rows']:,} rows staged in {run['seconds']} s "
            f"({run['rows'] / run['seconds']:,.0f} rows/s; read and validate {run['phases']['read_and_validate']} s, "
            f"write {run['phases']['write']} s), "
            f"peak RSS {run['peak_rss_mb']} MB, reload of the same export {run['reload_seconds']} s  [{verdict}]"
        )
        for f in run["files"]:
            rate = f["rows"] / f["write_seconds"] if f["write_seconds"] else float("inf")
            print(
                f"  {f['file']:<26} {f['rows']:>10,} rows  write {f['write_seconds']:>6} s  {rate:>12,.0f} rows/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
