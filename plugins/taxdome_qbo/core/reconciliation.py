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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from taxdome_qbo.core.load_rules import APP_PATHS
from taxdome_qbo.core.vocabulary import MAX_DISPLAY_NAME, REAL_MONEY_METHODS, qbo_name

MATCHED = "matched"
MISSING_IN_QBO = "missing_in_qbo"
EXTRA_IN_QBO = "extra_in_qbo"
AMOUNT_MISMATCH = "amount_mismatch"
CUSTOMER_MISMATCH = "customer_mismatch"
FIELD_MISMATCH = "field_mismatch"  # a date or deposit account other than TaxDome's
DUPLICATE_IN_QBO = "duplicate_in_qbo"
OUT_OF_SCOPE = "out_of_scope"
SUMMARY_COLUMNS = ("measure", "period", "dimension", "taxdome_cents", "qbo_cents", "difference_cents")
EXCEPTION_COLUMNS = (
    "difference_class",
    "explained",
    "object_kind",
    "taxdome_id",
    "qbo_entity",
    "qbo_id",
    "measure",
    "taxdome_cents",
    "qbo_cents",
    "difference_cents",
    "detail",
    "qbo_link",
)
TOTAL = "total"
_KEPT_OUT = frozenset({"skipped", "do_not_sync", "not_synced"})
# TaxDome object kind -> the QBO entity its counterpart is, and where that counterpart was read back.
_ENTITY = {
    "invoice": "Invoice",
    "payment": "Payment",
    "credit_memo": "CreditMemo",
    "fee": "Purchase",
    "refund": "RefundReceipt",
    "account": "Customer",
}


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
    invoices: pd.DataFrame  # qbo_id, txn_date, customer_id, total_cents, tax_cents, balance_cents, marker
    invoice_lines: pd.DataFrame  # invoice_id, item_id, amount_cents
    payments: pd.DataFrame  # qbo_id, txn_date, customer_id, total_cents, deposit_account_id, marker
    payment_links: pd.DataFrame  # payment_id, txn_type, txn_id, amount_cents
    credit_memos: pd.DataFrame  # qbo_id, txn_date, customer_id, total_cents, marker
    purchases: pd.DataFrame  # qbo_id, txn_date, expense_account_id, total_cents, marker
    refund_receipts: pd.DataFrame  # qbo_id, txn_date, customer_id, total_cents, marker


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
_QBO_TYPES = {
    "customers": {"qbo_id": ID, "display_name": TEXT, "balance_cents": CENTS, "marker": TEXT},
    "invoices": _QBO_TRANSACTION | {"tax_cents": CENTS, "balance_cents": CENTS},
    "invoice_lines": {"invoice_id": ID, "item_id": ID, "amount_cents": CENTS},
    "payments": _QBO_TRANSACTION | {"deposit_account_id": ID},
    "payment_links": {"payment_id": ID, "txn_type": TEXT, "txn_id": ID, "amount_cents": CENTS},
    "credit_memos": _QBO_TRANSACTION,
    "purchases": {
        "qbo_id": ID,
        "txn_date": DATE,
        "expense_account_id": ID,
        "total_cents": CENTS,
        "marker": TEXT,
    },
    "refund_receipts": _QBO_TRANSACTION,
}
_VERDICT_TYPES = {"taxdome_kind": TEXT, "taxdome_id": ID, "status": TEXT, "reason": TEXT, "caused_by": TEXT}
_STATE_TYPES = {"taxdome_kind": TEXT, "taxdome_id": ID, "qbo_entity": TEXT, "qbo_id": ID, "status": TEXT}


def _typed(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """`frame` with each column of `types` in its type (a column it lacks: all absent); other columns as they
    are."""
    frame = frame.reindex(columns=[*frame.columns, *(c for c in types if c not in frame.columns)])
    return frame.assign(
        **{
            column: pd.to_datetime(frame[column], errors="coerce")
            if kind == DATE
            else frame[column].astype(kind)
            for column, kind in types.items()
        }
    )


@dataclass(frozen=True)
class ReconciliationSettings:
    """The period (by transaction date, both ends included; None: open) and the company's ids the rules use."""

    period_from: dt.date | None = None
    period_to: dt.date | None = None
    tax_item_id: str | None = None  # without automated sales tax, tax is a line of this item
    fee_expense_account_id: str | None = None  # a QBO expense to it that matches no fee is an extra fee
    deposit_account_id: str | None = None  # where payments must be deposited
    app_url: str = ""
    tolerance_cents: int = 0


@dataclass
class Reconciliation:
    summary: pd.DataFrame
    exceptions: pd.DataFrame
    objects_in_scope: dict[str, int] = field(default_factory=dict)

    @property
    def unexplained(self) -> int:
        return int((~self.exceptions["explained"].astype(bool)).sum())


def _failure_keys(kinds: pd.Series, taxdome_ids: pd.Series) -> pd.Series:
    """`kind:id` per row, as a verdict's `caused_by` names a failed object (planner.failure_key)."""
    return kinds.astype(str) + ":" + taxdome_ids.astype(str)


def _isin(values: pd.Series, wanted) -> pd.Series:
    """Membership through Arrow: pandas tests Arrow strings against a large set one value at a time."""
    found = pc.is_in(pa.array(values.astype(str), pa.string()), value_set=pa.array(list(wanted), pa.string()))
    return pd.Series(pc.fill_null(found, False).to_numpy(zero_copy_only=False), index=values.index)


def _amounts(frame: pd.DataFrame, date: str, cents: str, processor: str | None = None) -> pd.DataFrame:
    """A side of a total: (date, cents[, processor]) of each object; `processor` names its column."""
    amounts = pd.DataFrame({"date": frame[date], "cents": frame[cents]})
    if processor is not None:
        amounts["processor"] = frame[processor]
    return amounts


def _qbo_amounts(
    paired: pd.DataFrame, extras: pd.DataFrame, cents: str = "total_cents", *, by_processor: bool = False
) -> pd.DataFrame:
    """QBO's side of a total: the counterparts of the in-scope objects and the extras of the period (whose
    processor nothing tells)."""
    matched = _amounts(paired, "txn_date_qbo", f"{cents}_qbo", "processor" if by_processor else None)
    extra = _amounts(extras, "txn_date", cents)
    if by_processor:
        extra["processor"] = "unmatched"
    return pd.concat([matched, extra])


def _rows(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    """`frame.assign(**columns)` with Series aligned to `frame` first: pandas would otherwise give an empty
    frame the Series' whole index."""
    return frame.assign(
        **{
            name: value.reindex(frame.index) if isinstance(value, pd.Series) else value
            for name, value in columns.items()
        }
    )


def _in_period(dates: pd.Series, settings: ReconciliationSettings) -> pd.Series:
    keep = pd.Series(True, index=dates.index)
    if settings.period_from is not None:
        keep &= dates >= pd.Timestamp(settings.period_from)
    if settings.period_to is not None:
        keep &= dates <= pd.Timestamp(settings.period_to)
    return keep


class _Exceptions:
    """Differences as they are found; one frame at the end (vectorized parts are added as frames)."""

    def __init__(self, settings: ReconciliationSettings) -> None:
        self.settings = settings
        self.frames: list[pd.DataFrame] = []

    def add(self, frame: pd.DataFrame, difference_class: str, *, explained: bool = False) -> None:
        if frame.empty:
            return
        rows = pd.DataFrame(index=frame.index)
        for column in EXCEPTION_COLUMNS:
            rows[column] = frame.get(column)
        rows["difference_class"] = difference_class
        rows["explained"] = explained
        pages = rows["qbo_entity"].map(APP_PATHS)
        known = pages.notna() & rows["qbo_id"].notna()
        rows["qbo_link"] = (
            self.settings.app_url + "/" + pages.fillna("") + rows["qbo_id"].astype(str)
        ).where(known, None)
        self.frames.append(rows)

    def frame(self) -> pd.DataFrame:
        if not self.frames:
            return pd.DataFrame({column: pd.Series(dtype=object) for column in EXCEPTION_COLUMNS})
        return pd.concat(self.frames, ignore_index=True)


class _Reconciler:
    def __init__(
        self,
        taxdome: TaxDomeSide,
        qbo: QboSide,
        verdicts: pd.DataFrame,
        state: pd.DataFrame,
        settings: ReconciliationSettings,
    ) -> None:
        # Every input typed here, once: the rules below never meet an untyped (empty) frame.
        self.taxdome = TaxDomeSide(
            **{name: _typed(getattr(taxdome, name), types) for name, types in _TAXDOME_TYPES.items()}
        )
        self.qbo = QboSide(**{name: _typed(getattr(qbo, name), types) for name, types in _QBO_TYPES.items()})
        verdicts, state = _typed(verdicts, _VERDICT_TYPES), _typed(state, _STATE_TYPES)
        self.settings = settings
        self.exceptions = _Exceptions(settings)
        self.totals: list[pd.DataFrame] = []  # measure, period, dimension, taxdome_cents, qbo_cents
        self.in_scope: dict[str, int] = {}
        synced = state[state["status"] == "synced"]
        qbo_ids = synced.set_index("taxdome_id")["qbo_id"]
        self._no_qbo_ids = qbo_ids.iloc[:0]
        self._qbo_ids_by_kind = dict(iter(qbo_ids.groupby(synced["taxdome_kind"].to_numpy())))
        self.customer_of_account = self.qbo_ids("account")
        by_id = verdicts.set_index("taxdome_id")[["status", "reason", "caused_by"]].set_axis(
            ["verdict", "verdict_reason", "caused_by"], axis=1
        )
        self._no_verdicts = by_id.iloc[:0]
        self._verdicts_by_kind = dict(iter(by_id.groupby(verdicts["taxdome_kind"].to_numpy())))
        # `kind:id` -> why it failed: what a failure-caused absence names.
        self._failure_reasons = pd.Series(
            verdicts["reason"].to_numpy(),
            index=_failure_keys(verdicts["taxdome_kind"], verdicts["taxdome_id"]),
        )
        self.claimed: dict[str, set[str]] = {entity: set() for entity in _ENTITY.values()}
        # kind -> the objects of the period QBO should hold but does not because they (or what they need)
        # failed: they count on TaxDome's side of the totals, so a failure shows there too.
        self.owed_absent: dict[str, pd.DataFrame] = {}

    def verdicts_of(self, kind: str) -> pd.DataFrame:
        """TaxDome id -> the latest verdict (`verdict`, `verdict_reason`, `caused_by`) of the objects of `kind`."""
        return self._verdicts_by_kind.get(kind, self._no_verdicts)

    def qbo_id_of(self, kind: str, taxdome_ids: pd.Series) -> pd.Series:
        """The QBO id of each TaxDome id of `kind`, as text (missing ones too: a kind with nothing synced would
        otherwise map to floats, which cannot be joined to QBO's ids)."""
        return taxdome_ids.map(self.qbo_ids(kind)).astype("str")

    def ruled_out(self, kind: str) -> pd.Series:
        """TaxDome id -> whether a sync rule (not a failure) keeps the object of `kind` out of QBO."""
        verdicts = self.verdicts_of(kind)
        return verdicts["verdict"].isin(_KEPT_OUT) & verdicts["caused_by"].isna()

    def failed_payments_note(self, payment_ids: pd.Series) -> pd.Series:
        """Per group of `payment_ids` (indexed by what they make up: an invoice, a payout), a note naming those
        QBO lacks because they or what they need failed: what a balance or payout difference comes from."""
        verdicts = self.verdicts_of("payment")
        ids = payment_ids.astype(str)
        failed = ids.map(verdicts["verdict"].eq("failed") | verdicts["caused_by"].notna()).fillna(
            False
        ).astype(bool) & ~ids.isin(self.qbo_ids("payment").index)
        if not failed.any():
            return pd.Series(dtype=str)
        named = ids[failed].groupby(level=0).agg(lambda group: ", ".join(sorted(set(group))))
        return "; QuickBooks lacks payment(s) that failed or wait for a failure: " + named

    def qbo_ids(self, kind: str) -> pd.Series:
        """TaxDome id -> QBO id of the objects of `kind` the sync state says QBO holds."""
        return self._qbo_ids_by_kind.get(kind, self._no_qbo_ids)

    # -- one kind of object --------------------------------------------------------------------------------
    def _scope(self, kind: str, objects: pd.DataFrame, id_column: str, date_column: str) -> pd.DataFrame:
        """The kind's objects of the period with their verdict and QBO id; the kept-out and failed ones
        become exceptions here. Returns the in-scope ones (verdict synced)."""
        objects = objects[_in_period(objects[date_column], self.settings)].copy()
        objects["taxdome_id"] = objects[id_column].astype(str)
        verdicts = self.verdicts_of(kind)
        objects = objects.join(verdicts, on="taxdome_id")
        objects["qbo_id"] = self.qbo_id_of(kind, objects["taxdome_id"])
        entity = _ENTITY[kind]
        objects["qbo_entity"] = entity
        objects["object_kind"] = kind
        return self._split_scope(objects, kind)

    def _split_scope(self, objects: pd.DataFrame, kind: str) -> pd.DataFrame:
        absent = objects["qbo_id"].isna()
        by_failure = objects["caused_by"].notna()
        kept_out = objects["verdict"].isin(_KEPT_OUT) & ~by_failure & absent
        self.exceptions.add(
            _rows(
                objects[kept_out],
                detail="kept out by the sync rules: " + objects["verdict_reason"].astype(str),
            ),
            OUT_OF_SCOPE,
            explained=True,
        )
        failed = objects["verdict"].eq("failed") & absent
        self.exceptions.add(
            _rows(
                objects[failed],
                detail="not in QuickBooks, it failed: " + objects["verdict_reason"].astype(str),
            ),
            MISSING_IN_QBO,
        )
        failure_caused = objects["verdict"].isin(_KEPT_OUT) & by_failure & absent
        self.owed_absent[kind] = objects[failed | failure_caused]
        behind = objects.loc[failure_caused, "caused_by"].astype(str)
        kinds_and_ids = behind.str.split(":", n=1)
        self.exceptions.add(
            _rows(
                objects.loc[behind.index],
                detail="not in QuickBooks: its "
                + kinds_and_ids.str[0].str.replace("_", " ")
                + " "
                + kinds_and_ids.str[1]
                + " failed: "
                + behind.map(self._failure_reasons).fillna("no reason recorded").astype(str),
            ),
            MISSING_IN_QBO,
        )
        in_scope = objects[objects["verdict"].eq("synced") | objects["qbo_id"].notna()]
        self.in_scope[kind] = len(in_scope)
        return in_scope

    def owed(self, in_scope: pd.DataFrame, kind: str) -> pd.DataFrame:
        """The in-scope objects of `kind` and those a failure kept out: everything QBO should hold."""
        return pd.concat([in_scope, self.owed_absent.get(kind, in_scope.iloc[:0])])

    def _pair(self, in_scope: pd.DataFrame, copy: pd.DataFrame, kind: str) -> pd.DataFrame:
        """In-scope objects joined to their QBO counterpart (columns suffixed `_qbo`); the unmatched become
        missing_in_qbo."""
        entity = _ENTITY[kind]
        paired = in_scope.merge(
            copy.add_suffix("_qbo"),
            how="left",
            left_on="qbo_id",
            right_on="qbo_id_qbo",
            validate="many_to_one",
        )
        missing = paired["qbo_id_qbo"].isna()
        self.exceptions.add(
            _rows(
                paired[missing],
                detail=np.where(
                    paired.loc[missing, "qbo_id"].isna(),
                    f"the sync says it is in QuickBooks, but no {entity} is recorded for it",
                    f"its {entity} is no longer in QuickBooks (deleted there?)",
                ),
            ),
            MISSING_IN_QBO,
        )
        self.claimed[entity].update(paired.loc[~missing, "qbo_id"])
        return paired[~missing]

    def _compare(self, paired: pd.DataFrame, measure: str, taxdome: str, qbo: str, what: str) -> None:
        difference = paired[taxdome] - paired[qbo]
        off = difference.abs() > self.settings.tolerance_cents
        rows = _rows(
            paired[off],
            measure=measure,
            taxdome_cents=paired.loc[off, taxdome],
            qbo_cents=paired.loc[off, qbo],
            difference_cents=difference[off],
            detail=f"{what} differs",
        )
        self.exceptions.add(rows, AMOUNT_MISMATCH)

    def _compare_customer(self, paired: pd.DataFrame, account_column: str) -> None:
        expected = paired[account_column].astype(str).map(self.customer_of_account)
        off = expected.notna() & (expected != paired["customer_id_qbo"].astype(str))
        rows = _rows(
            paired[off],
            measure="customer",
            detail="QuickBooks has it under customer "
            + paired.loc[off, "customer_id_qbo"].astype(str)
            + ", TaxDome's account "
            + paired.loc[off, account_column].astype(str)
            + " is customer "
            + expected[off].astype(str),
        )
        self.exceptions.add(rows, CUSTOMER_MISMATCH)

    def _compare_date(self, paired: pd.DataFrame, date_column: str) -> None:
        taxdome, qbo = paired[date_column], paired["txn_date_qbo"]
        off = taxdome.ne(qbo) & qbo.notna()
        rows = _rows(
            paired[off],
            measure="date",
            detail="dated "
            + qbo[off].dt.strftime("%Y-%m-%d")
            + " in QuickBooks, "
            + taxdome[off].dt.strftime("%Y-%m-%d")
            + " in TaxDome",
        )
        self.exceptions.add(rows, FIELD_MISMATCH)

    def _extras(self, copy: pd.DataFrame, kind: str, candidates: pd.Series | None = None) -> pd.DataFrame:
        """QBO objects of the period that no TaxDome object claims: a second copy of a synced object (same
        marker) is a duplicate, anything else is extra. Returns them (they count in QBO's totals)."""
        entity = _ENTITY[kind]
        in_period = copy[_in_period(copy["txn_date"], self.settings)]
        if candidates is not None:
            in_period = in_period[candidates.reindex(in_period.index, fill_value=False)]
        unclaimed = in_period[~_isin(in_period["qbo_id"], self.claimed[entity])]
        claimed_markers = set(copy.loc[_isin(copy["qbo_id"], self.claimed[entity]), "marker"].dropna())
        duplicate = _isin(unclaimed["marker"].fillna(""), claimed_markers)
        self.exceptions.add(
            _rows(
                unclaimed[duplicate],
                object_kind=kind,
                qbo_entity=entity,
                taxdome_id=unclaimed.loc[duplicate, "marker"].str.rsplit(":", n=1).str[-1],
                measure="amount",
                qbo_cents=unclaimed.loc[duplicate, "total_cents"],
                difference_cents=-unclaimed.loc[duplicate, "total_cents"],
                detail="a second QuickBooks copy of a synced object (same marker "
                + unclaimed.loc[duplicate, "marker"].astype(str)
                + ")",
            ),
            DUPLICATE_IN_QBO,
        )
        extra = unclaimed[~duplicate]
        self.exceptions.add(
            _rows(
                extra,
                object_kind=kind,
                qbo_entity=entity,
                measure="amount",
                qbo_cents=extra["total_cents"],
                difference_cents=-extra["total_cents"],
                detail=np.where(
                    extra["marker"].fillna("").str.startswith("taxdome:"),
                    "marked " + extra["marker"].fillna("") + ", which matches no TaxDome object in scope",
                    f"a {entity} that carries no TaxDome marker",
                ),
            ),
            EXTRA_IN_QBO,
        )
        return unclaimed

    def _total(self, measure: str, taxdome: pd.DataFrame, qbo: pd.DataFrame, *, dimension: str = "") -> None:
        """Sums by month (and by day for net) and in total of (date, cents[, dimension]) frames of both
        sides; summed before the periods are written out, so only the groups are formatted."""
        granularities = (("M", "%Y-%m"), ("D", "%Y-%m-%d")) if measure == "net" else (("M", "%Y-%m"),)
        for side, frame in (("taxdome_cents", taxdome), ("qbo_cents", qbo)):
            if frame.empty:
                continue
            days = pd.to_datetime(frame["date"]).to_numpy(dtype="datetime64[D]")
            dimensions = frame[dimension].astype(str).to_numpy() if dimension else np.full(len(frame), "")
            cents = frame["cents"].astype("int64").to_numpy()
            for unit, pattern in granularities:
                grouped = (
                    pd.DataFrame(
                        {"period": days.astype(f"datetime64[{unit}]"), "dimension": dimensions, side: cents}
                    )
                    .groupby(["period", "dimension"], as_index=False, dropna=False)[side]
                    .sum()
                )
                grouped["period"] = pd.to_datetime(grouped["period"]).dt.strftime(pattern)
                self.totals.append(grouped.assign(measure=measure))
            totals = (
                pd.DataFrame({"dimension": dimensions, side: cents})
                .groupby("dimension", as_index=False)[side]
                .sum()
            )
            self.totals.append(totals.assign(measure=measure, period=TOTAL))

    # -- the kinds -------------------------------------------------------------------------------------
    def invoices(self) -> None:
        taxdome = self.taxdome.invoices
        in_scope = self._scope("invoice", taxdome, "invoice_id", "posted_date")
        copy = self._qbo_invoices()
        paired = self._pair(in_scope, copy, "invoice")
        self._compare(paired, "invoiced", "total_cents", "total_cents_qbo", "the invoice total")
        self._compare(paired, "tax", "tax_amount_cents", "tax_cents_qbo", "the sales tax")
        self._compare_customer(paired, "account_id")
        self._balances(paired)
        extras = self._extras(copy, "invoice")
        owed = self.owed(in_scope, "invoice")
        self._total("invoiced", _amounts(owed, "posted_date", "total_cents"), _qbo_amounts(paired, extras))
        self._total(
            "tax",
            _amounts(owed, "posted_date", "tax_amount_cents"),
            _qbo_amounts(paired, extras, "tax_cents"),
        )
        self._applied(in_scope)

    def _balances(self, paired: pd.DataFrame) -> None:
        """Paid in TaxDome ⇔ nothing open in QBO. What the sync keeps out (a payment before the sync date, one
        set not to sync) leaves its part open in QBO: explained when QBO's balance is exactly that."""
        applications = self.taxdome.applications
        invoice_ids = applications["invoice_id"].astype(str)
        applied = applications.groupby(invoice_ids)["amount_cents"].sum()
        # A failed payment is owed to QBO: only the payments a rule keeps out leave their part open.
        ruled_out = applications["payment_id"].astype(str).map(self.ruled_out("payment"))
        owed = ~ruled_out.fillna(False).astype(bool)
        applied_owed = applications[owed].groupby(invoice_ids[owed])["amount_cents"].sum()
        ids = paired["taxdome_id"]
        open_cents = paired["total_cents"] - ids.map(applied).fillna(0).astype("int64")
        expected_in_qbo = paired["total_cents"] - ids.map(applied_owed).fillna(0).astype("int64")
        qbo = paired["balance_cents_qbo"]
        paid = paired["status"].eq("Paid")
        off = paid != qbo.eq(0)
        for mask, difference_class, explained in (
            (off & qbo.eq(expected_in_qbo), OUT_OF_SCOPE, True),
            (off & qbo.ne(expected_in_qbo), AMOUNT_MISMATCH, False),
        ):
            detail = np.where(
                paid[mask], "paid in TaxDome, open in QuickBooks", "open in TaxDome, paid in QuickBooks"
            )
            if explained:
                detail = (
                    detail + ": the payments that pay the rest are kept out of QuickBooks by the sync rules"
                )
            else:
                paying = pd.Series(applications["payment_id"].to_numpy(), index=invoice_ids.to_numpy())
                detail = detail + self.failed_payments_note(paying).reindex(ids[mask]).fillna("").to_numpy()
            self.exceptions.add(
                _rows(
                    paired[mask],
                    measure="balance",
                    taxdome_cents=open_cents,
                    qbo_cents=qbo,
                    difference_cents=open_cents - qbo,
                    detail=pd.Series(detail, index=paired.index[mask]),
                ),
                difference_class,
                explained=explained,
            )

    def _qbo_invoices(self) -> pd.DataFrame:
        """QBO invoices with their tax: TotalTax, plus the lines of the tax item without automated sales tax."""
        copy = self.qbo.invoices.copy()
        if self.settings.tax_item_id is not None:
            lines = self.qbo.invoice_lines
            tax_lines = lines[lines["item_id"].astype(str) == self.settings.tax_item_id]
            by_invoice = tax_lines.groupby("invoice_id")["amount_cents"].sum()
            copy["tax_cents"] += copy["qbo_id"].map(by_invoice).fillna(0).astype("int64")
        return copy

    def _applied(self, invoices: pd.DataFrame) -> None:
        """What pays each in-scope invoice: TaxDome's applications from payments the sync took to QBO (real
        money, promotional and balance credits) against QBO's payment links to it."""
        payment_verdicts = self.verdicts_of("payment")
        synced_payments = set(payment_verdicts.index[payment_verdicts["verdict"] == "synced"])
        applications = self.taxdome.applications
        applications = applications[_isin(applications["payment_id"], synced_payments)]
        taxdome = applications.groupby(applications["invoice_id"].astype(str))["amount_cents"].sum()
        links = self.qbo.payment_links
        qbo = links[links["txn_type"] == "Invoice"].groupby("txn_id")["amount_cents"].sum()
        paired = invoices[invoices["qbo_id"].notna()].copy()
        paired["applied_taxdome"] = paired["taxdome_id"].map(taxdome).fillna(0).astype("int64")
        paired["applied_qbo"] = paired["qbo_id"].map(qbo).fillna(0).astype("int64")
        self._compare(paired, "applied", "applied_taxdome", "applied_qbo", "what pays the invoice")

    def payments(self) -> None:
        payments = self.taxdome.payments
        money = payments[payments["method"].isin(REAL_MONEY_METHODS)]
        in_scope = self._scope("payment", money, "payment_id", "payment_date")
        copy = self.qbo.payments
        paired = self._pair(in_scope, copy, "payment")
        self._compare(paired, "collected_gross", "amount_cents", "total_cents_qbo", "the gross amount")
        self._compare_customer(paired, "account_id")
        self._compare_date(paired, "payment_date")
        if self.settings.deposit_account_id is not None:
            off = paired["deposit_account_id_qbo"].astype(str) != self.settings.deposit_account_id
            self.exceptions.add(
                _rows(
                    paired[off],
                    measure="deposit_account",
                    detail="deposited to account "
                    + paired.loc[off, "deposit_account_id_qbo"].astype(str)
                    + ", not "
                    + self.settings.deposit_account_id,
                ),
                FIELD_MISMATCH,
            )
        # Zero-amount payments that apply promotional credits belong to the credit memos (see credits()).
        applications = self.qbo_ids("credit_application")
        self.claimed["Payment"].update(applications)
        extras = self._extras(copy, "payment", copy["total_cents"].ne(0))
        owed = self.owed(in_scope, "payment")
        taxdome_fees, qbo_fees = self._fees(in_scope, owed)
        qbo_side = _qbo_amounts(paired, extras, by_processor=True)
        taxdome_side = _amounts(owed, "payment_date", "amount_cents", "processor")
        self._total("collected_gross", taxdome_side, qbo_side)
        self._total("collected_gross", taxdome_side, qbo_side, dimension="processor")
        self._total("fees", taxdome_fees, qbo_fees)
        self._total("fees", taxdome_fees, qbo_fees, dimension="processor")
        net_taxdome = pd.concat([taxdome_side, _rows(taxdome_fees, cents=-taxdome_fees["cents"])])
        net_qbo = pd.concat([qbo_side, _rows(qbo_fees, cents=-qbo_fees["cents"])])
        self._total("net", net_taxdome, net_qbo)
        self._total("net", net_taxdome, net_qbo, dimension="processor")

    def _fees(self, payments: pd.DataFrame, owed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Processing fees of the in-scope payments against QBO's expense purchases; (TaxDome, QBO) sides
        as (date, cents, processor), TaxDome's with the fees of the `owed` payments too."""
        with_fee = payments[payments["processing_fee_cents"] > 0].copy()
        with_fee["qbo_id"] = self.qbo_id_of("fee", with_fee["taxdome_id"])
        with_fee["qbo_entity"], with_fee["object_kind"] = "Purchase", "fee"
        copy = self.qbo.purchases
        paired = self._pair(with_fee, copy, "fee")
        self._compare(paired, "fees", "processing_fee_cents", "total_cents_qbo", "the processing fee")
        candidates = None
        if self.settings.fee_expense_account_id is not None:
            candidates = copy["expense_account_id"].astype(str).eq(
                self.settings.fee_expense_account_id
            ) | copy["marker"].fillna("").str.startswith("taxdome:fee:")
        extras = self._extras(copy, "fee", candidates)
        owed_fees = owed[owed["processing_fee_cents"] > 0]
        taxdome = _amounts(owed_fees, "payment_date", "processing_fee_cents", "processor")
        qbo = _qbo_amounts(paired, extras, by_processor=True)
        return taxdome, qbo

    def credits(self) -> None:
        """Promotional credits against credit memos."""
        payments = self.taxdome.payments
        promotional = payments[payments["method"] == "promotional_credit"]
        verdicts = self.verdicts_of("payment")
        in_scope = self._scope_credit(promotional, verdicts)
        copy = self.qbo.credit_memos
        paired = self._pair(in_scope, copy, "credit_memo")
        self._compare(paired, "credits", "amount_cents", "total_cents_qbo", "the credit")
        self._compare_customer(paired, "account_id")
        extras = self._extras(copy, "credit_memo")
        self._total(
            "credits",
            _amounts(self.owed(in_scope, "credit_memo"), "payment_date", "amount_cents"),
            _qbo_amounts(paired, extras),
        )

    def _scope_credit(self, promotional: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
        """A promotional credit's verdict is its payment's; its counterpart is a credit memo."""
        frame = promotional[_in_period(promotional["payment_date"], self.settings)].copy()
        frame["taxdome_id"] = frame["payment_id"].astype(str)
        frame = frame.join(verdicts, on="taxdome_id")
        frame["qbo_id"] = self.qbo_id_of("credit_memo", frame["taxdome_id"])
        frame["qbo_entity"], frame["object_kind"] = "CreditMemo", "credit_memo"
        return self._split_scope(frame, "credit_memo")

    def refunds(self) -> None:
        in_scope = self._scope("refund", self.taxdome.refunds, "refund_id", "refund_date")
        copy = self.qbo.refund_receipts
        paired = self._pair(in_scope, copy, "refund")
        self._compare(paired, "refunds", "amount_cents", "total_cents_qbo", "the refund")
        self._compare_customer(paired, "account_id")
        self._compare_date(paired, "refund_date")
        extras = self._extras(copy, "refund")
        self._total(
            "refunds",
            _amounts(self.owed(in_scope, "refund"), "refund_date", "amount_cents"),
            _qbo_amounts(paired, extras),
        )

    def customers(self) -> None:
        """A customer the sync created must still bear its account's name (a rename breaks TaxDome's match)."""
        accounts = _rows(self.taxdome.accounts, taxdome_id=lambda f: f["account_id"].astype(str))
        accounts["qbo_id"] = accounts["taxdome_id"].map(self.customer_of_account)
        paired = accounts[accounts["qbo_id"].notna()].merge(
            self.qbo.customers.add_suffix("_qbo"), left_on="qbo_id", right_on="qbo_id_qbo", how="left"
        )
        missing = paired["qbo_id_qbo"].isna()
        self.exceptions.add(
            _rows(
                paired[missing],
                object_kind="account",
                qbo_entity="Customer",
                detail="its QuickBooks customer is gone (deleted?)",
            ),
            MISSING_IN_QBO,
        )
        created = paired[~missing & paired["marker_qbo"].eq("taxdome:account:" + paired["taxdome_id"])]
        expected = created["account_name"].map(lambda name: qbo_name(str(name), MAX_DISPLAY_NAME))
        renamed = created[expected != created["display_name_qbo"]]
        self.exceptions.add(
            _rows(
                renamed,
                object_kind="account",
                qbo_entity="Customer",
                measure="name",
                detail="renamed in QuickBooks to '"
                + renamed["display_name_qbo"].astype(str)
                + "'; TaxDome's account is '"
                + renamed["account_name"].astype(str)
                + "'",
            ),
            CUSTOMER_MISMATCH,
        )
        self.in_scope["account"] = len(paired)

    def customer_balances(self) -> None:
        """Per synced account, over everything synced: TaxDome's invoices − payments − promotional credits
        against the customer's open balance in QBO."""
        accounts = self.customer_of_account
        if accounts.empty:
            return
        signed = []
        invoice_ids = self.qbo_ids("invoice")
        invoices = self.taxdome.invoices
        invoices = invoices[_isin(invoices["invoice_id"], invoice_ids.index)]
        signed.append(pd.DataFrame({"account_id": invoices["account_id"], "cents": invoices["total_cents"]}))
        payments = self.taxdome.payments
        for kind, methods in (("payment", REAL_MONEY_METHODS), ("credit_memo", {"promotional_credit"})):
            held = payments[
                payments["method"].isin(methods) & _isin(payments["payment_id"], self.qbo_ids(kind).index)
            ]
            signed.append(pd.DataFrame({"account_id": held["account_id"], "cents": -held["amount_cents"]}))
        by_account = pd.concat(signed).astype({"cents": "int64"}).groupby("account_id")["cents"].sum()
        frame = pd.DataFrame({"taxdome_id": accounts.index.astype(str), "qbo_id": accounts.to_numpy()})
        frame["taxdome_cents"] = frame["taxdome_id"].map(by_account).fillna(0).astype("int64")
        balances = self.qbo.customers.set_index("qbo_id")["balance_cents"]
        frame["qbo_cents"] = frame["qbo_id"].map(balances)
        frame = frame[frame["qbo_cents"].notna()].astype({"qbo_cents": "int64"})
        frame["object_kind"], frame["qbo_entity"] = "account", "Customer"
        frame["difference_cents"] = frame["taxdome_cents"] - frame["qbo_cents"]
        off = frame["difference_cents"].abs() > self.settings.tolerance_cents
        self.exceptions.add(
            _rows(
                frame[off],
                measure="customer_balance",
                detail="TaxDome's balance (invoices − payments − credits synced) differs from the QuickBooks customer's open balance",
            ),
            AMOUNT_MISMATCH,
        )
        self.totals.append(
            pd.DataFrame(
                {
                    "measure": ["customer_balance"],
                    "period": [TOTAL],
                    "dimension": [""],
                    "taxdome_cents": [int(frame["taxdome_cents"].sum())],
                    "qbo_cents": [int(frame["qbo_cents"].sum())],
                }
            )
        )

    def payouts(self) -> None:
        """Each payout of the period: its gross and fees are those of the payments it lists (TaxDome's own
        arithmetic; the export lists no refunds in a payout, so its net is gross − fees), and its gross,
        fees and net against what QBO holds for those payments. A difference made only of payments the
        sync rules keep out of QBO is explained."""
        payouts = self.taxdome.payouts
        payouts = payouts[_in_period(payouts["payout_date"], self.settings)]
        if payouts.empty:
            return
        members = (
            payouts[["payout_id", "payment_ids"]]
            .assign(payment_id=payouts["payment_ids"].fillna("").str.split(";"))
            .explode("payment_id")
        )
        members = members[members["payment_id"].fillna("") != ""]
        payments = self.taxdome.payments.set_index(self.taxdome.payments["payment_id"].astype(str))
        members["gross"] = members["payment_id"].map(payments["amount_cents"]).fillna(0).astype("int64")
        members["fee"] = members["payment_id"].map(payments["processing_fee_cents"]).fillna(0).astype("int64")
        # What QBO should hold: every payment but those a sync rule keeps out (a failed one is owed too).
        owed = ~members["payment_id"].map(self.ruled_out("payment")).fillna(False).astype(bool)
        members["gross_in_scope"] = members["gross"].where(owed, 0)
        members["fee_in_scope"] = members["fee"].where(owed, 0)
        qbo_payment = self.qbo_ids("payment").map(self.qbo.payments.set_index("qbo_id")["total_cents"])
        qbo_fee = self.qbo_ids("fee").map(self.qbo.purchases.set_index("qbo_id")["total_cents"])
        members["qbo_gross"] = members["payment_id"].map(qbo_payment).fillna(0).astype("int64")
        members["qbo_fee"] = members["payment_id"].map(qbo_fee).fillna(0).astype("int64")
        sums = members.groupby("payout_id")[
            ["gross", "fee", "gross_in_scope", "fee_in_scope", "qbo_gross", "qbo_fee"]
        ].sum()
        frame = payouts.set_index("payout_id").join(sums).fillna(0).reset_index()
        frame = _rows(frame, object_kind="payout", taxdome_id=frame["payout_id"].astype(str))
        frame["net_in_scope"] = frame["gross_in_scope"] - frame["fee_in_scope"]
        frame["qbo_net"] = frame["qbo_gross"] - frame["qbo_fee"]
        for measure, listed, summed in (
            ("payout_gross", "gross_cents", "gross"),
            ("payout_fees", "fee_cents", "fee"),
        ):
            off = frame[listed] != frame[summed]
            self.exceptions.add(
                _rows(
                    frame[off],
                    measure=measure,
                    taxdome_cents=frame[listed],
                    difference_cents=frame[listed] - frame[summed],
                    detail="TaxDome's payout is not the sum of the payments it lists ("
                    + frame[summed].astype(str)
                    + " cents)",
                ),
                AMOUNT_MISMATCH,
            )
        failed_note = self.failed_payments_note(
            pd.Series(members["payment_id"].to_numpy(), index=members["payout_id"].astype(str).to_numpy())
        )
        for measure, taxdome, in_scope, qbo in (
            ("payout_gross", "gross_cents", "gross_in_scope", "qbo_gross"),
            ("payout_fees", "fee_cents", "fee_in_scope", "qbo_fee"),
            ("payout_net", "net_cents", "net_in_scope", "qbo_net"),
        ):
            off = frame[taxdome] != frame[qbo]
            kept_out = off & (frame[in_scope] == frame[qbo])
            what = measure.removeprefix("payout_")
            for mask, difference_class, explained, detail in (
                (
                    kept_out,
                    OUT_OF_SCOPE,
                    True,
                    f"the payout's {what} includes payments the sync rules keep out of QuickBooks",
                ),
                (
                    off & ~kept_out,
                    AMOUNT_MISMATCH,
                    False,
                    f"the payout's {what} differs from what QuickBooks holds for its payments"
                    + failed_note.reindex(frame["payout_id"].astype(str)).fillna("").set_axis(frame.index),
                ),
            ):
                self.exceptions.add(
                    _rows(
                        frame[mask],
                        measure=measure,
                        taxdome_cents=frame[taxdome],
                        qbo_cents=frame[qbo],
                        difference_cents=frame[taxdome] - frame[qbo],
                        detail=detail,
                    ),
                    difference_class,
                    explained=explained,
                )
            # Totals compare what QBO should hold (the in-scope payments) with what it holds, as elsewhere.
            self._total(
                measure, _amounts(frame, "payout_date", in_scope), _amounts(frame, "payout_date", qbo)
            )

    def summary(self) -> pd.DataFrame:
        if not self.totals:
            return pd.DataFrame({column: pd.Series(dtype=object) for column in SUMMARY_COLUMNS})
        frame = pd.concat(self.totals, ignore_index=True)
        for side in ("taxdome_cents", "qbo_cents"):
            if side not in frame:
                frame[side] = 0
        frame = frame.fillna({"taxdome_cents": 0, "qbo_cents": 0})
        summed = frame.groupby(["measure", "period", "dimension"], as_index=False)[
            ["taxdome_cents", "qbo_cents"]
        ].sum()
        summed = summed.astype({"taxdome_cents": "int64", "qbo_cents": "int64"})
        summed["difference_cents"] = summed["taxdome_cents"] - summed["qbo_cents"]
        return summed[list(SUMMARY_COLUMNS)]


def reconcile(
    taxdome: TaxDomeSide,
    qbo: QboSide,
    verdicts: pd.DataFrame,
    state: pd.DataFrame,
    settings: ReconciliationSettings,
) -> Reconciliation:
    """Compare the sync's scope of TaxDome with QBO.

    :param verdicts: the latest verdict of every TaxDome object (`taxdome_kind, taxdome_id, status, reason`,
        optionally `caused_by`: the failed object that keeps a not_synced one out, see planner.STATUS_COLUMNS).
    :param state: the company's sync state (`taxdome_kind, taxdome_id, qbo_entity, qbo_id, status`).
    """
    reconciler = _Reconciler(taxdome, qbo, verdicts, state, settings)
    reconciler.invoices()
    reconciler.payments()
    reconciler.credits()
    reconciler.refunds()
    reconciler.customers()
    reconciler.customer_balances()
    reconciler.payouts()
    exceptions = reconciler.exceptions.frame()
    for column in ("taxdome_cents", "qbo_cents", "difference_cents"):
        exceptions[column] = pd.array(pd.to_numeric(exceptions[column], errors="coerce"), dtype="Int64")
    return Reconciliation(reconciler.summary(), exceptions, reconciler.in_scope)
