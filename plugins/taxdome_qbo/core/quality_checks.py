"""The data-quality checks of the staged firm, run before anything is written to QuickBooks (issue 6 §1).

Pure definitions: which table and columns, what is expected, how severe a failure is and what it means. The
checks are data, not Great Expectations objects, so this layer neither imports GX nor pays for it;
`services/quality.py` runs them. Two engines:
- `gx`: Great Expectations on pandas frames of the staged tables, and on frames derived from them here (an
  invoice's total beside its lines + tax, a payment beside what is applied and refunded from it);
- `sql`: what a database states best: references to rows that are not staged (one query for every
  `ReferenceCheck`, built from its tables and column), and how many rows each file of the latest export read
  against the export before it (a statement of `include/sql/quality/`).

A `critical` failure stops the run before `plan`, so nothing reaches QuickBooks; a `warning` is reported and
the run goes on. Critical means "QuickBooks would get wrong numbers or a write it refuses"; payouts are
warnings throughout because the load sends nothing of them.

The checks judge what the planner plans from: every staged row, except in `full` export mode the rows the
latest export no longer lists (deleted in TaxDome), with the lines and applications of such invoices and
payments, exactly as the planner leaves them out. References are checked on every staged row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd

from taxdome_qbo.core.export_contract import (
    ACCOUNTS,
    EXPORT_FILES,
    INVOICE_LINES,
    INVOICES,
    PAYMENT_APPLICATIONS,
    PAYMENTS,
    PAYOUTS,
    REFUNDS,
    ExportFile,
    Kind,
)


class Severity(StrEnum):
    CRITICAL = "critical"  # the load stops: nothing is written to QuickBooks
    WARNING = "warning"  # reported, the run goes on


# Exports are cut in the firm's time zone, hours off UTC, and a post-dated check is recorded a day or two
# ahead; beyond a few days a date is more likely a typo (2062 for 2026) that would post to a period nobody
# looks at.
FUTURE_DATE_TOLERANCE_DAYS = 3
# A full export that reads a fifth fewer rows of a file than the export before it is more likely cut short
# than a firm that deleted a fifth of its invoices overnight.
MAX_SHRINK_PERCENT = 20
# TaxDome ids kept per failed check: enough to find the pattern, small enough for a log line and a row.
UNEXPECTED_IDS_KEPT = 20

ABSENCE_MARK = "_absent_since_batch"


@dataclass(frozen=True)
class Frame:
    """A frame the GX checks run on: a staged table, its list of columns, or a frame derived from tables.

    :param table: the warehouse table its rows (and the TaxDome ids reported) belong to.
    :param id_columns: the TaxDome key of a row; a compound key is reported as `I1/2`.
    """

    name: str
    table: str
    id_columns: tuple[str, ...]


@dataclass(frozen=True)
class Expectation:
    """One Great Expectations expectation: its class in `great_expectations.expectations` and arguments."""

    type: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        return expectation_columns(self.kwargs)


def expectation_columns(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns an expectation's arguments name (GX hands the same arguments back with its results)."""
    found = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return (*found, *kwargs.get("column_list", ()))


def observed_label(kwargs: Mapping[str, Any]) -> str:
    """What an observed value is about: `status`, `total_cents vs lines_plus_tax_cents`, or the table."""
    return " vs ".join(expectation_columns(kwargs)) or "table"


@dataclass(frozen=True)
class GxCheck:
    """A check run by Great Expectations: every expectation must hold on every row of its frame."""

    name: str
    frame: str
    severity: Severity
    description: str
    expectations: tuple[Expectation, ...]
    engine: Literal["gx"] = "gx"


@dataclass(frozen=True)
class SqlCheck:
    """A check run by a statement of `include/sql/` (bound parameters only)."""

    name: str
    statement: str
    table: str
    severity: Severity
    description: str
    engine: Literal["sql"] = "sql"


@dataclass(frozen=True)
class ReferenceCheck:
    """A check run in SQL: every staged row of `child` has a `column` value that a staged row of `parent` has
    in its own `column`. Each row that has none is reported by the child's TaxDome id, with its reference.
    """

    name: str
    child: ExportFile
    column: str
    parent: ExportFile
    severity: Severity
    description: str
    engine: Literal["sql"] = "sql"

    @property
    def table(self) -> str:
        return self.child.table


def _columns_frame(export_file: ExportFile) -> str:
    return f"{export_file.name}.columns"


STAGED_FRAMES = {f.name: Frame(f.name, f.table, f.key) for f in EXPORT_FILES}
COLUMN_FRAMES = {_columns_frame(f): Frame(_columns_frame(f), f.table, ()) for f in EXPORT_FILES}
DERIVED_FRAMES = {
    frame.name: frame
    for frame in (
        Frame("invoice_totals", INVOICES.table, ("invoice_id",)),
        Frame("invoice_payments", INVOICES.table, ("invoice_id",)),
        Frame("payment_uses", PAYMENTS.table, ("payment_id",)),
        Frame("payout_amounts", PAYOUTS.table, ("payout_id",)),
    )
}
FRAMES = STAGED_FRAMES | COLUMN_FRAMES | DERIVED_FRAMES
# The staged columns each derived frame is computed from (beyond the keys).
DERIVATION_INPUTS = {
    "invoices": ("total_cents", "tax_amount_cents"),
    "invoice_lines": ("amount_cents",),
    "payments": ("amount_cents",),
    "payment_applications": ("amount_cents",),
    "refunds": ("payment_id", "amount_cents"),
    "payouts": ("gross_cents", "fee_cents", "net_cents"),
}


def _severity(export_file: ExportFile) -> Severity:
    return Severity.WARNING if export_file is PAYOUTS else Severity.CRITICAL


def _in_sets(
    export_file: ExportFile, check: str, description: str, value_sets: Mapping[str, list]
) -> list[GxCheck]:
    """A check that each named column holds only values of its set; none when no column is named."""
    if not value_sets:
        return []
    expectations = tuple(
        Expectation("ExpectColumnValuesToBeInSet", {"column": column, "value_set": values})
        for column, values in value_sets.items()
    )
    return [
        GxCheck(
            f"{export_file.name}.{check}", export_file.name, _severity(export_file), description, expectations
        )
    ]


def _contract_checks(export_file: ExportFile, *, today: dt.date, home_currency: str) -> list[GxCheck]:
    """The checks every file gets from the contract: columns, keys, required values, enums, signs, dates."""
    name, columns = export_file.name, export_file.columns
    checks = [
        GxCheck(
            f"{name}.schema",
            _columns_frame(export_file),
            _severity(export_file),
            f"{export_file.table} has every column of the export contract",
            (
                Expectation(
                    "ExpectTableColumnsToMatchSet",
                    {"column_set": [c.stored_name for c in columns], "exact_match": False},
                ),
            ),
        ),
        GxCheck(
            f"{name}.required_values",
            name,
            _severity(export_file),
            "required and defaulted columns have a value in every row: "
            + ", ".join(c.stored_name for c in columns if c.required or c.default is not None),
            tuple(
                Expectation("ExpectColumnValuesToNotBeNull", {"column": c.stored_name})
                for c in columns
                if c.required or c.default is not None
            ),
        ),
        GxCheck(
            f"{name}.unique_ids",
            name,
            _severity(export_file),
            f"one row per {' + '.join(export_file.key)}",
            (
                Expectation("ExpectColumnValuesToBeUnique", {"column": export_file.key[0]})
                if len(export_file.key) == 1
                else Expectation("ExpectCompoundColumnsToBeUnique", {"column_list": list(export_file.key)}),
            ),
        ),
    ]
    enums = [c for c in columns if c.kind is Kind.ENUM]
    checks += _in_sets(
        export_file,
        "known_values",
        "values the sync rules know: " + "; ".join(f"{c.name} in {', '.join(c.values)}" for c in enums),
        {c.name: list(c.values) for c in enums},
    )
    checks += _in_sets(
        export_file,
        "home_currency",
        f"amounts are in the firm's home currency {home_currency}: the sync sends them without a "
        "currency, so QuickBooks books them in its own",
        {c.name: [home_currency] for c in columns if c.kind is Kind.CURRENCY},
    )
    signed = [c for c in columns if c.kind is Kind.MONEY and c.min_cents is not None]
    if signed:
        checks.append(
            GxCheck(
                f"{name}.amounts_in_range",
                name,
                _severity(export_file),
                "; ".join(f"{c.stored_name} ≥ {c.min_cents}" for c in signed),
                tuple(
                    Expectation(
                        "ExpectColumnValuesToBeBetween", {"column": c.stored_name, "min_value": c.min_cents}
                    )
                    for c in signed
                ),
            )
        )
    # The required date of a file is when the invoice or the money happened; a due date is ahead by nature.
    latest = dt.datetime.combine(today + dt.timedelta(days=FUTURE_DATE_TOLERANCE_DAYS), dt.time())
    checks.extend(
        GxCheck(
            f"{name}.{c.name}_not_in_future",
            name,
            Severity.WARNING,
            f"{c.name} is at most {FUTURE_DATE_TOLERANCE_DAYS} days after the check day ({today.isoformat()})",
            (Expectation("ExpectColumnValuesToBeBetween", {"column": c.name, "max_value": latest}),),
        )
        for c in columns
        if c.kind is Kind.DATE and c.required
    )
    return checks


# A row lacking one of the two values is the required-values check's to report, not a comparison's.
_PAIR_OF_VALUES = {"ignore_row_if": "either_value_is_missing"}


def _not_above(column_a: str, column_b: str) -> Expectation:
    """Every row's `column_b` is at most its `column_a`."""
    return Expectation(
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": column_a, "column_B": column_b, "or_equal": True, **_PAIR_OF_VALUES},
    )


def _equal(column_a: str, column_b: str) -> Expectation:
    return Expectation(
        "ExpectColumnPairValuesToBeEqual", {"column_A": column_a, "column_B": column_b, **_PAIR_OF_VALUES}
    )


# Beyond the contract's rules for one row: a number QuickBooks needs unique, amounts across rows and tables.
BUSINESS_CHECKS = (
    GxCheck(
        "invoices.unique_numbers",
        "invoices",
        Severity.WARNING,
        "one invoice per invoice_number: QuickBooks refuses a second invoice with the same number (6140)",
        (Expectation("ExpectColumnValuesToBeUnique", {"column": "invoice_number"}),),
    ),
    GxCheck(
        "invoices.total_is_lines_plus_tax",
        "invoice_totals",
        Severity.CRITICAL,
        "an invoice's total_cents = the sum of its staged lines + tax_amount_cents, as QuickBooks adds them up",
        (_equal("total_cents", "lines_plus_tax_cents"),),
    ),
    GxCheck(
        "invoices.applied_within_total",
        "invoice_payments",
        Severity.CRITICAL,
        "payments applied to an invoice add up to at most its total",
        (_not_above("total_cents", "applied_cents"),),
    ),
    GxCheck(
        "payments.fee_within_amount",
        "payments",
        Severity.CRITICAL,
        "a payment's processing fee is at most the payment",
        (_not_above("amount_cents", "processing_fee_cents"),),
    ),
    GxCheck(
        "payments.applied_within_amount",
        "payment_uses",
        Severity.CRITICAL,
        "a payment's applications to invoices add up to at most the payment",
        (_not_above("amount_cents", "applied_cents"),),
    ),
    GxCheck(
        "payments.refunded_within_amount",
        "payment_uses",
        Severity.CRITICAL,
        "a payment's refunds add up to at most the payment",
        (_not_above("amount_cents", "refunded_cents"),),
    ),
    GxCheck(
        "payouts.fee_within_gross",
        "payouts",
        Severity.WARNING,
        "a payout's fee is at most its gross",
        (_not_above("gross_cents", "fee_cents"),),
    ),
    GxCheck(
        "payouts.net_is_gross_minus_fee",
        "payout_amounts",
        Severity.WARNING,
        "a payout's net = gross − fee",
        (_equal("net_cents", "gross_minus_fee_cents"),),
    ),
)

REFERENCE_CHECKS = (
    ReferenceCheck(
        "invoice_lines.unknown_invoice",
        INVOICE_LINES,
        "invoice_id",
        INVOICES,
        Severity.CRITICAL,
        "every invoice line belongs to a staged invoice",
    ),
    ReferenceCheck(
        "payment_applications.unknown_invoice",
        PAYMENT_APPLICATIONS,
        "invoice_id",
        INVOICES,
        Severity.CRITICAL,
        "every payment application pays a staged invoice",
    ),
    ReferenceCheck(
        "payment_applications.unknown_payment",
        PAYMENT_APPLICATIONS,
        "payment_id",
        PAYMENTS,
        Severity.CRITICAL,
        "every payment application comes from a staged payment",
    ),
    ReferenceCheck(
        "refunds.unknown_payment",
        REFUNDS,
        "payment_id",
        PAYMENTS,
        Severity.CRITICAL,
        "every refund refunds a staged payment",
    ),
    ReferenceCheck(
        "invoices.unknown_account",
        INVOICES,
        "account_id",
        ACCOUNTS,
        Severity.CRITICAL,
        "every invoice belongs to a staged account",
    ),
    ReferenceCheck(
        "payments.unknown_account",
        PAYMENTS,
        "account_id",
        ACCOUNTS,
        Severity.CRITICAL,
        "every payment belongs to a staged account",
    ),
)

ROW_COUNT_DRIFT_STATEMENT = "quality/select_row_count_drift"


def row_count_drift_check(export_file: ExportFile) -> SqlCheck:
    """Per file: the latest successful load read at most MAX_SHRINK_PERCENT % fewer rows than the one before."""
    return SqlCheck(
        f"{export_file.name}.row_count_drift",
        ROW_COUNT_DRIFT_STATEMENT,
        export_file.table,
        Severity.WARNING,
        f"{export_file.filename} of the latest export has at most {MAX_SHRINK_PERCENT} % fewer rows than the "
        "export loaded before it (a cut-short export would make a full-mode sync delete what it lacks)",
    )


def gx_checks(*, today: dt.date, home_currency: str) -> tuple[GxCheck, ...]:
    """Every GX check: the contract's checks of each file, then the business checks."""
    contract = [
        check
        for export_file in EXPORT_FILES
        for check in _contract_checks(export_file, today=today, home_currency=home_currency)
    ]
    return (*contract, *BUSINESS_CHECKS)


# Staging never marks lines and applications absent: they stand or fall with their invoice and payment.
_FOLLOWERS = {"invoice_lines": ("invoice_id",), "payment_applications": ("invoice_id", "payment_id")}
_PARENTS = {"invoice_id": "invoices", "payment_id": "payments"}


def columns_to_read(checks: tuple[GxCheck, ...]) -> dict[str, tuple[str, ...]]:
    """Per staged table, the columns the checks and derived frames need: reading only these keeps a firm
    of millions of rows quick (an invoice line has 13 columns; its checks need 4)."""
    needed = {}
    for export_file in EXPORT_FILES:
        from_checks = [
            column
            for check in checks
            if check.frame == export_file.name
            for expectation in check.expectations
            for column in expectation.columns
        ]
        absence = () if export_file.name in _FOLLOWERS else (ABSENCE_MARK,)
        wanted = [*export_file.key, *from_checks, *DERIVATION_INPUTS.get(export_file.name, ()), *absence]
        needed[export_file.name] = tuple(dict.fromkeys(wanted))
    return needed


def plannable(staged: Mapping[str, pd.DataFrame], export_mode: str) -> dict[str, pd.DataFrame]:
    """The staged rows the planner plans from: in `full` mode, without the rows the latest export no longer
    lists, nor the lines and applications of such invoices and payments (as the planner leaves them out).

    Lines and applications are matched against the few absent parents, not the million present ones.
    """
    if export_mode != "full":
        return dict(staged)
    present = {}
    for name, frame in staged.items():
        if name not in _FOLLOWERS:
            absent = frame[ABSENCE_MARK].notna()
            present[name] = frame[~absent] if absent.any() else frame
    for name, references in _FOLLOWERS.items():
        frame = staged[name]
        gone = np.zeros(len(frame), dtype=bool)
        for column in references:
            parents = staged[_PARENTS[column]]
            absent_ids = parents.loc[parents[ABSENCE_MARK].notna(), column]
            if len(absent_ids):
                gone |= frame[column].isin(absent_ids).to_numpy()
        present[name] = frame[~gone] if gone.any() else frame
    return present


def _cents(frame: pd.DataFrame, column: str) -> pd.Series:
    """A money column as nullable int64 (rows without a value are left to the required-values checks)."""
    return frame[column].astype("Int64")


def _sum_by(frame: pd.DataFrame, key: str, column: str) -> pd.Series:
    return _cents(frame, column).groupby(frame[key]).sum()


def _with_sums(parents: pd.DataFrame, key: str, sums: Mapping[str, pd.Series], *columns: str) -> pd.DataFrame:
    """Parents' `key` and `columns` beside sums of their children (0 without children), as plain int64.

    A row lacking one of its own amounts is left out: the required-values check reports it, and GX's pair
    expectations cannot compare a missing value.
    """
    frame = parents[[key]].reset_index(drop=True)
    for column in columns:
        frame[column] = _cents(parents, column).to_numpy()
    for name, sum_by_key in sums.items():
        frame[name] = sum_by_key.reindex(frame[key]).fillna(0).to_numpy()
    return frame.dropna().astype({c: "int64" for c in frame.columns if c != key}).reset_index(drop=True)


def derive_frames(staged: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The frames of DERIVED_FRAMES, from the plannable staged frames (money in integer cents throughout)."""
    invoices, payments = staged["invoices"], staged["payments"]
    invoice_totals = _with_sums(
        invoices,
        "invoice_id",
        {"lines_cents": _sum_by(staged["invoice_lines"], "invoice_id", "amount_cents")},
        "total_cents",
        "tax_amount_cents",
    )
    invoice_totals["lines_plus_tax_cents"] = (
        invoice_totals["lines_cents"] + invoice_totals["tax_amount_cents"]
    )
    applications = staged["payment_applications"]
    payouts = staged["payouts"]
    payout_amounts = pd.DataFrame(
        {
            "payout_id": payouts["payout_id"].to_numpy(),
            "net_cents": _cents(payouts, "net_cents").to_numpy(),
            "gross_minus_fee_cents": (
                _cents(payouts, "gross_cents") - _cents(payouts, "fee_cents")
            ).to_numpy(),
        }
    ).dropna()
    return {
        "invoice_totals": invoice_totals,
        "invoice_payments": _with_sums(
            invoices,
            "invoice_id",
            {"applied_cents": _sum_by(applications, "invoice_id", "amount_cents")},
            "total_cents",
        ),
        "payment_uses": _with_sums(
            payments,
            "payment_id",
            {
                "applied_cents": _sum_by(applications, "payment_id", "amount_cents"),
                "refunded_cents": _sum_by(staged["refunds"], "payment_id", "amount_cents"),
            },
            "amount_cents",
        ),
        "payout_amounts": payout_amounts.astype({"net_cents": "int64", "gross_minus_fee_cents": "int64"}),
    }


def taxdome_id(values: Mapping[str, Any], id_columns: tuple[str, ...]) -> str | None:
    """The TaxDome id of a row as reported: `I1`, or `I1/2` for a compound key; None when it has none."""
    parts = [values.get(column) for column in id_columns]
    if any(pd.isna(part) for part in parts):
        return None
    return "/".join(str(part) for part in parts)
