"""TaxDome against QuickBooks, to the cent: per object and in totals, net of processing fees.

Pure: staged TaxDome frames, the QBO copies read back, the sync's verdicts and sync state in; a summary
(measure × period × dimension: TaxDome, QBO, difference) and the exceptions (one row per difference, with
its class) out. Nothing here reads a database or QBO.

Which TaxDome objects QBO must hold is the sync's decision: an object whose latest verdict is `synced` is
in scope and must have exactly one QBO counterpart with the same amounts and customer; one the rules keep
out (skipped, do not sync, not synced by a rule) is an explained difference naming the rule; one that
failed, or is not synced because something it needs failed (the verdict's `caused_by`), is an unexplained
one naming that failure: only a sync rule explains a difference. QBO objects are matched through the sync state (and the marker
`taxdome:<kind>:<id>` every created object carries); a QBO transaction of the period that matches nothing
is extra. Amounts are integer cents: differences are exact, with no tolerance unless one is given.

This module prepares the named frames the checks read, typed, once, and runs the checks of
core/reconciliation_checks.py (what each compares) in their order; core/reconciliation_findings.py holds
what they share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from taxdome_qbo.core.reconciliation_checks import CHECKS, ReconciliationCheck
from taxdome_qbo.core.reconciliation_findings import (
    EXCEPTION_COLUMNS,
    SUMMARY_COLUMNS,
    Findings,
    ReconciliationSettings,
    exceptions_frame,
    summary_frame,
)

__all__ = [
    "EXCEPTION_COLUMNS",
    "SOURCE_TYPES",
    "SUMMARY_COLUMNS",
    "QboSide",
    "Reconciliation",
    "ReconciliationSettings",
    "TaxDomeSide",
    "named_frames",
    "reconcile",
    "run_check",
]


@dataclass(frozen=True)
class TaxDomeSide:
    """The staged firm (rows a full export no longer lists already left out)."""

    accounts: pd.DataFrame  # account_id, account_name
    invoices: (
        pd.DataFrame
    )  # invoice_id, invoice_number, account_id, posted_date, status, tax_amount_cents, total_cents
    payments: (
        pd.DataFrame
    )  # payment_id, account_id, payment_date, amount_cents, method, processor, processing_fee_cents
    applications: pd.DataFrame  # payment_id, invoice_id, amount_cents
    refunds: pd.DataFrame  # refund_id, payment_id, account_id, refund_date, amount_cents
    payouts: pd.DataFrame  # payout_id, payout_date, processor, gross_cents, fee_cents, net_cents, payment_ids


@dataclass(frozen=True)
class QboSide:
    """The QBO copies read back (`stg_qbo__*`), one company."""

    customers: pd.DataFrame  # qbo_id, display_name, balance_cents, marker
    invoices: (
        pd.DataFrame
    )  # qbo_id, doc_number, txn_date, customer_id, total_cents, tax_cents, balance_cents, marker
    invoice_lines: pd.DataFrame  # invoice_id, item_id, amount_cents
    payments: (
        pd.DataFrame
    )  # qbo_id, payment_ref, txn_date, customer_id, total_cents, deposit_account_id, marker
    payment_links: pd.DataFrame  # payment_id, txn_type, txn_id, amount_cents
    credit_memos: pd.DataFrame  # qbo_id, doc_number, txn_date, customer_id, total_cents, marker
    purchases: (
        pd.DataFrame
    )  # qbo_id, doc_number, txn_date, payee_name, expense_account_id, total_cents, marker
    refund_receipts: pd.DataFrame  # qbo_id, doc_number, txn_date, customer_id, total_cents, marker


# How every input column is typed, whatever the frame's length: ids and text as text (an empty frame or a
# kind never read would otherwise get object or int64 columns, which cannot be joined to text ids), money as
# integer cents (nullable: what is absent stays absent, never a float), dates as datetimes.
ID = TEXT = "str"
CENTS = "Int64"
DATE = "date"
_TAXDOME_TYPES = {
    "accounts": {"account_id": ID, "account_name": TEXT},
    "invoices": {
        "invoice_id": ID,
        "invoice_number": ID,
        "account_id": ID,
        "posted_date": DATE,
        "status": TEXT,
        "tax_amount_cents": CENTS,
        "total_cents": CENTS,
    },
    "payments": {
        "payment_id": ID,
        "account_id": ID,
        "payment_date": DATE,
        "amount_cents": CENTS,
        "method": TEXT,
        "processor": TEXT,
        "processing_fee_cents": CENTS,
    },
    "applications": {"payment_id": ID, "invoice_id": ID, "amount_cents": CENTS},
    "refunds": {
        "refund_id": ID,
        "payment_id": ID,
        "account_id": ID,
        "refund_date": DATE,
        "amount_cents": CENTS,
    },
    "payouts": {
        "payout_id": ID,
        "payout_date": DATE,
        "processor": TEXT,
        "gross_cents": CENTS,
        "fee_cents": CENTS,
        "net_cents": CENTS,
        "payment_ids": TEXT,
    },
}
_QBO_TRANSACTION = {"qbo_id": ID, "txn_date": DATE, "customer_id": ID, "total_cents": CENTS, "marker": TEXT}
_QBO_SALES_FORM = _QBO_TRANSACTION | {"doc_number": TEXT}
_QBO_TYPES = {
    "customers": {"qbo_id": ID, "display_name": TEXT, "balance_cents": CENTS, "marker": TEXT},
    "invoices": _QBO_SALES_FORM | {"tax_cents": CENTS, "balance_cents": CENTS},
    "invoice_lines": {"invoice_id": ID, "item_id": ID, "amount_cents": CENTS},
    "payments": _QBO_TRANSACTION | {"deposit_account_id": ID, "payment_ref": TEXT},
    "payment_links": {"payment_id": ID, "txn_type": TEXT, "txn_id": ID, "amount_cents": CENTS},
    "credit_memos": _QBO_SALES_FORM,
    "purchases": {
        "qbo_id": ID,
        "doc_number": TEXT,
        "txn_date": DATE,
        "payee_name": TEXT,
        "expense_account_id": ID,
        "total_cents": CENTS,
        "marker": TEXT,
    },
    "refund_receipts": _QBO_SALES_FORM,
}
_VERDICT_TYPES = {"taxdome_kind": TEXT, "taxdome_id": ID, "status": TEXT, "reason": TEXT, "caused_by": TEXT}
_STATE_TYPES = {"taxdome_kind": TEXT, "taxdome_id": ID, "qbo_entity": TEXT, "qbo_id": ID, "status": TEXT}


def _typed(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """The columns of `types`, each in its type (a column `frame` lacks: all absent); the others are left
    out, as no check reads them (a million invoices' descriptions would only take memory)."""
    columns = {}
    for column, kind in types.items():
        values = (
            frame[column] if column in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        )
        columns[column] = pd.to_datetime(values, errors="coerce") if kind == DATE else values.astype(kind)
    return pd.DataFrame(columns, index=frame.index)


@dataclass
class Reconciliation:
    summary: pd.DataFrame
    exceptions: pd.DataFrame
    objects_in_scope: dict[str, int] = field(default_factory=dict)

    @property
    def unexplained(self) -> int:
        return int((~self.exceptions["explained"].astype(bool)).sum())


# The inputs by the names checks read them by, and how each is typed.
SOURCE_TYPES = {
    **{f"taxdome.{name}": types for name, types in _TAXDOME_TYPES.items()},
    **{f"qbo.{name}": types for name, types in _QBO_TYPES.items()},
    "verdicts": _VERDICT_TYPES,
    "state": _STATE_TYPES,
}


def _failure_keys(kinds: pd.Series, taxdome_ids: pd.Series) -> pd.Series:
    """`kind:id` per row, as a verdict's `caused_by` names a failed object (planner.failure_key)."""
    return kinds.astype(str) + ":" + taxdome_ids.astype(str)


class _SyncDecisions:
    """The verdicts and the sync state, grouped by kind once: what `verdicts.<kind>`, `qbo_ids.<kind>` and
    `failure_reasons` are."""

    def __init__(self, verdicts: pd.DataFrame, state: pd.DataFrame) -> None:
        # Grouped by the kinds' own arrays: as NumPy arrays they would be millions of Python strings.
        synced = state[state["status"] == "synced"]
        qbo_ids = synced.set_index("taxdome_id")["qbo_id"]
        self._no_qbo_ids = qbo_ids.iloc[:0]
        self._qbo_ids_by_kind = dict(iter(qbo_ids.groupby(synced["taxdome_kind"].array)))
        by_id = verdicts.set_index("taxdome_id")[["status", "reason", "caused_by"]].set_axis(
            ["verdict", "verdict_reason", "caused_by"], axis=1
        )
        self._no_verdicts = by_id.iloc[:0]
        self._verdicts_by_kind = dict(iter(by_id.groupby(verdicts["taxdome_kind"].array)))
        # `kind:id` -> why it failed, for the failed objects a failure-caused absence names (a few among
        # millions of verdicts).
        named = verdicts["caused_by"].dropna().astype(str)
        failed = verdicts[verdicts["taxdome_id"].isin(set(named.str.split(":", n=1).str[1]))]
        keys = _failure_keys(failed["taxdome_kind"], failed["taxdome_id"])
        self.failure_reasons = pd.Series(failed["reason"].to_numpy(), index=keys.to_numpy())[
            keys.isin(set(named)).to_numpy()
        ]

    def verdicts_of(self, kind: str) -> pd.DataFrame:
        """TaxDome id -> the latest verdict (`verdict`, `verdict_reason`, `caused_by`) of the objects of `kind`."""
        return self._verdicts_by_kind.get(kind, self._no_verdicts)

    def qbo_ids(self, kind: str) -> pd.Series:
        """TaxDome id -> QBO id of the objects of `kind` the sync state says QBO holds."""
        return self._qbo_ids_by_kind.get(kind, self._no_qbo_ids)


def named_frames(
    sources: Mapping[str, pd.DataFrame], wanted: Iterable[str]
) -> dict[str, pd.DataFrame | pd.Series]:
    """The frames named `wanted`, built from `sources` (frames named as in SOURCE_TYPES; one not given is
    empty): each source typed, `verdicts.<kind>`, `qbo_ids.<kind>` and `failure_reasons` from the verdicts and
    the state. Every input is typed here, once: no check meets an untyped (empty) frame."""
    typed = {name: _typed(sources.get(name, pd.DataFrame()), types) for name, types in SOURCE_TYPES.items()}
    decisions = _SyncDecisions(typed["verdicts"], typed["state"])
    frames: dict[str, pd.DataFrame | pd.Series] = {}
    for name in wanted:
        prefix, _, kind = name.partition(".")
        if name in typed:
            frames[name] = typed[name]
        elif name == "failure_reasons":
            frames[name] = decisions.failure_reasons
        elif prefix == "verdicts" and kind:
            frames[name] = decisions.verdicts_of(kind)
        elif prefix == "qbo_ids" and kind:
            frames[name] = decisions.qbo_ids(kind)
        else:
            raise KeyError(f"no reconciliation frame is named {name!r}")
    return frames


def run_check(
    check: ReconciliationCheck, sources: Mapping[str, pd.DataFrame], settings: ReconciliationSettings
) -> Findings:
    """One check on `sources` (see `named_frames`), given only the frames it declares."""
    return check.run(named_frames(sources, check.reads), settings)


def _sources(
    taxdome: TaxDomeSide, qbo: QboSide, verdicts: pd.DataFrame, state: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    return {
        **{f"taxdome.{name}": getattr(taxdome, name) for name in _TAXDOME_TYPES},
        **{f"qbo.{name}": getattr(qbo, name) for name in _QBO_TYPES},
        "verdicts": verdicts,
        "state": state,
    }


def reconcile(
    taxdome: TaxDomeSide,
    qbo: QboSide,
    verdicts: pd.DataFrame,
    state: pd.DataFrame,
    settings: ReconciliationSettings,
) -> Reconciliation:
    """Compare the sync's scope of TaxDome with QBO: every check of CHECKS, in order.

    :param verdicts: the latest verdict of every TaxDome object (`taxdome_kind, taxdome_id, status, reason`,
        optionally `caused_by`: the failed object that keeps a not_synced one out, see planner.STATUS_COLUMNS).
    :param state: the company's sync state (`taxdome_kind, taxdome_id, qbo_entity, qbo_id, status`).
    """
    frames = named_frames(
        _sources(taxdome, qbo, verdicts, state),
        dict.fromkeys(name for check in CHECKS for name in check.reads),
    )
    found = [check.run({name: frames[name] for name in check.reads}, settings) for check in CHECKS]
    exceptions = exceptions_frame([rows for findings in found for rows in findings.exception_frames])
    for column in ("taxdome_cents", "qbo_cents", "difference_cents"):
        exceptions[column] = pd.array(pd.to_numeric(exceptions[column], errors="coerce"), dtype="Int64")
    summary = summary_frame([totals for findings in found for totals in findings.totals])
    in_scope = {kind: count for findings in found for kind, count in findings.in_scope.items()}
    return Reconciliation(summary, exceptions, in_scope)
