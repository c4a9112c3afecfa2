"""Command line: `python -m taxdome_qbo.demo generate --out DIR --accounts N --seed S [--bad-rows RATE]`, and
`python -m taxdome_qbo.demo seed-qbo --export DIR --emulator URL` (QuickBooks history for the demo company)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from taxdome_qbo.demo.bad_rows import KINDS
from taxdome_qbo.demo.generator import DEFAULT_END, DEFAULT_START, MANIFEST_NAME, generate_export


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("must be a fraction in [0, 1), e.g. 0.01")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m taxdome_qbo.demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write a synthetic TaxDome billing export folder")
    generate.add_argument("--out", type=Path, required=True, help="folder to write the CSV files to")
    generate.add_argument("--accounts", type=_positive, required=True, help="number of client accounts")
    generate.add_argument("--seed", type=int, required=True, help="same seed and arguments, same bytes")
    generate.add_argument(
        "--bad-rows",
        type=_fraction,
        default=0.0,
        help=f"fraction of data rows to make invalid; any value > 0 includes each of the {len(KINDS)} kinds",
    )
    generate.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START, help="first day of data")
    generate.add_argument("--end", type=date.fromisoformat, default=DEFAULT_END, help="last day of data")
    seed = commands.add_parser(
        "seed-qbo", help="give the emulator's first company a firm's QuickBooks history"
    )
    seed.add_argument("--export", type=Path, required=True, help="the demo export the company should fit")
    seed.add_argument("--emulator", required=True, help="the emulator's base URL")
    return parser


def _seed(args: argparse.Namespace) -> int:
    from qbo_emulator.testing import EmulatorHandle
    from taxdome_qbo.demo.qbo_seed import seed_company

    emulator = EmulatorHandle(args.emulator.rstrip("/"), process=None, db_path=None)
    created = seed_company(emulator.quickbooks(), args.export)
    print(
        f"QuickBooks demo company: {created['customers']} customers, {created['items']} items and "
        f"{created['vendors']} vendor added"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "seed-qbo":
        return _seed(args)
    if args.end <= args.start:
        print("--end must be after --start", file=sys.stderr)
        return 2
    manifest = generate_export(args.out, args.accounts, args.seed, args.bad_rows, args.start, args.end)
    for file_name, rows in manifest["counts"].items():
        print(f"{file_name:<26} {rows:>10,} rows")
    print(f"{len(manifest['bad_rows'])} bad rows; firm settings {manifest['firm_settings']}")
    print(f"manifest: {args.out / MANIFEST_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
