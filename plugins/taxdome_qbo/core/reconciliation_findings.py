"""What the reconciliation's checks find, and the comparisons they share.

A check (core/reconciliation_checks.py) records its findings in a `Findings`: exception rows (one per
difference, with its class) and the amounts of its totals (summed per measure, period and dimension). The
comparisons every kind of object goes through live here: which objects of the period QBO must hold (the
sync's verdicts decide), pairing them with their QBO counterparts, comparing amounts, customers and dates,
and the QBO objects nothing claims. Pure: frames in, frames out.

The frames a comparison reads are among its check's named frames (built in core/reconciliation.py):
`verdicts.<kind>` (TaxDome id -> `verdict`, `verdict_reason`, `caused_by`), `qbo_ids.<kind>` (TaxDome id ->
QBO id of what the sync state says QBO holds) and `failure_reasons` (`kind:id` of a failed object -> why).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from taxdome_qbo.core.kinds import ENTITIES, KINDS
from taxdome_qbo.core.load_rules import APP_PATHS
from taxdome_qbo.core.money import format_money
from taxdome_qbo.core.reconciliation_period import balances_left_out

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
# The measures of the comparisons below, whichever check makes them, as the reports name them.
SHARED_MEASURE_LABELS = {"customer": "Customer", "date": "Date", "amount": "Amount"}
_KEPT_OUT = frozenset({"skipped", "do_not_sync", "not_synced"})
Frames = Mapping[str, pd.DataFrame | pd.Series]


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
    as_of: dt.date | None = None  # the day QuickBooks was read back: its balances are as of that day

    @property
    def compares_balances(self) -> bool:
        """Balances are compared only when they are figures of the period (see core/reconciliation_period.py)."""
        return balances_left_out(self.period_to, self.as_of) is None


def exceptions_frame(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Exception rows as `Findings.add` wrote them, one frame (typed columns even when there are none)."""
    if not frames:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in EXCEPTION_COLUMNS})
    return pd.concat(frames, ignore_index=True)


def summary_frame(totals: list[pd.DataFrame]) -> pd.DataFrame:
    """The amounts `Findings.total` recorded, summed per measure, period and dimension, with the difference."""
    if not totals:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in SUMMARY_COLUMNS})
    frame = pd.concat(totals, ignore_index=True)
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


class Findings:
    """What one check found, in the order found: exception rows, amounts of totals, objects in scope."""

    def __init__(self, settings: ReconciliationSettings) -> None:
        self.settings = settings
        self.exception_frames: list[pd.DataFrame] = []
        self.totals: list[pd.DataFrame] = []  # measure, period, dimension, taxdome_cents | qbo_cents
        self.in_scope: dict[str, int] = {}

    def add(self, frame: pd.DataFrame, difference_class: str, *, explained: bool = False) -> None:
        """The rows of `frame` as exceptions of `difference_class` (the columns of EXCEPTION_COLUMNS it has)."""
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
        self.exception_frames.append(rows)

    def total(self, measure: str, taxdome: pd.DataFrame, qbo: pd.DataFrame, *, dimension: str = "") -> None:
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

    def exceptions(self) -> pd.DataFrame:
        return exceptions_frame(self.exception_frames)

    def summary(self) -> pd.DataFrame:
        return summary_frame(self.totals)


# -- frame helpers -------------------------------------------------------------------------------------------


def isin(values: pd.Series, wanted: Iterable[str]) -> pd.Series:
    """Membership through Arrow: pandas tests Arrow strings against a large set one value at a time."""
    found = pc.is_in(pa.array(values.astype(str), pa.string()), value_set=pa.array(list(wanted), pa.string()))
    return pd.Series(pc.fill_null(found, False).to_numpy(zero_copy_only=False), index=values.index)


def amounts(frame: pd.DataFrame, date: str, cents: str, processor: str | None = None) -> pd.DataFrame:
    """A side of a total: (date, cents[, processor]) of each object; `processor` names its column."""
    sides = pd.DataFrame({"date": frame[date], "cents": frame[cents]})
    if processor is not None:
        sides["processor"] = frame[processor]
    return sides


def qbo_amounts(
    paired: pd.DataFrame, extras: pd.DataFrame, cents: str = "total_cents", *, by_processor: bool = False
) -> pd.DataFrame:
    """QBO's side of a total: the counterparts of the in-scope objects and the extras of the period (whose
    processor nothing tells)."""
    matched = amounts(paired, "txn_date_qbo", f"{cents}_qbo", "processor" if by_processor else None)
    extra = amounts(extras, "txn_date", cents)
    if by_processor:
        extra["processor"] = "unmatched"
    return pd.concat([matched, extra])


def aligned(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    """`frame.assign(**columns)` with Series aligned to `frame` first: pandas would otherwise give an empty
    frame the Series' whole index."""
    return frame.assign(
        **{
            name: value.reindex(frame.index) if isinstance(value, pd.Series) else value
            for name, value in columns.items()
        }
    )


def in_period(dates: pd.Series, settings: ReconciliationSettings) -> pd.Series:
    keep = pd.Series(True, index=dates.index)
    if settings.period_from is not None:
        keep &= dates >= pd.Timestamp(settings.period_from)
    if settings.period_to is not None:
        keep &= dates <= pd.Timestamp(settings.period_to)
    return keep


# -- what the sync decided -----------------------------------------------------------------------------------


def qbo_id_of(qbo_ids: pd.Series, taxdome_ids: pd.Series) -> pd.Series:
    """The QBO id of each TaxDome id (through `qbo_ids.<kind>`), as text (missing ones too: a kind with nothing
    synced would otherwise map to floats, which cannot be joined to QBO's ids)."""
    return taxdome_ids.map(qbo_ids).astype("str")


def ruled_out(verdicts: pd.DataFrame) -> pd.Series:
    """TaxDome id -> whether a sync rule (not a failure) keeps the object (of `verdicts.<kind>`) out of QBO."""
    return verdicts["verdict"].isin(_KEPT_OUT) & verdicts["caused_by"].isna()


def failed_payments_note(frames: Frames, payment_ids: pd.Series) -> pd.Series:
    """Per group of `payment_ids` (indexed by what they make up: an invoice, a payout), a note naming those
    QBO lacks because they or what they need failed: what a balance or payout difference comes from.
    Reads `verdicts.payment` and `qbo_ids.payment`."""
    verdicts = frames["verdicts.payment"]
    ids = payment_ids.astype(str)
    failed = ids.map(verdicts["verdict"].eq("failed") | verdicts["caused_by"].notna()).fillna(False).astype(
        bool
    ) & ~isin(ids, frames["qbo_ids.payment"].index)
    if not failed.any():
        return pd.Series(dtype=str)
    named = ids[failed].groupby(level=0).agg(lambda group: ", ".join(sorted(set(group))))
    return "; QuickBooks lacks payment(s) that failed or wait for a failure: " + named


# -- one kind of object --------------------------------------------------------------------------------------


class Scope(NamedTuple):
    in_scope: pd.DataFrame  # the objects of the period QBO holds or must hold (verdict synced)
    owed: pd.DataFrame  # those and the ones a failure kept out: everything QBO should hold


def scope(
    found: Findings, frames: Frames, kind: str, objects: pd.DataFrame, id_column: str, date_column: str
) -> Scope:
    """The kind's objects of the period with their verdict and QBO id (`verdicts.<kind>`, `qbo_ids.<kind>`);
    the kept-out and failed ones become exceptions here."""
    objects = objects[in_period(objects[date_column], found.settings)].copy()
    objects["taxdome_id"] = objects[id_column].astype(str)
    objects = objects.join(frames[f"verdicts.{kind}"], on="taxdome_id")
    objects["qbo_id"] = qbo_id_of(frames[f"qbo_ids.{kind}"], objects["taxdome_id"])
    objects["qbo_entity"] = KINDS[kind].entity
    objects["object_kind"] = kind
    return split_scope(found, frames, objects, kind)


def split_scope(found: Findings, frames: Frames, objects: pd.DataFrame, kind: str) -> Scope:
    """`objects` (with their verdict and QBO id) split into what QBO must hold and exceptions: kept out by a
    rule (explained), failed or kept out by a failure (`failure_reasons` names it)."""
    absent = objects["qbo_id"].isna()
    by_failure = objects["caused_by"].notna()
    kept_out = objects["verdict"].isin(_KEPT_OUT) & ~by_failure & absent
    found.add(
        aligned(
            objects[kept_out],
            detail="kept out by the sync rules: " + objects.loc[kept_out, "verdict_reason"].astype(str),
        ),
        OUT_OF_SCOPE,
        explained=True,
    )
    failed = objects["verdict"].eq("failed") & absent
    found.add(
        aligned(
            objects[failed],
            detail="not in QuickBooks, it failed: " + objects.loc[failed, "verdict_reason"].astype(str),
        ),
        MISSING_IN_QBO,
    )
    failure_caused = objects["verdict"].isin(_KEPT_OUT) & by_failure & absent
    owed_absent = objects[failed | failure_caused]
    behind = objects.loc[failure_caused, "caused_by"].astype(str)
    kinds_and_ids = behind.str.split(":", n=1)
    found.add(
        aligned(
            objects.loc[behind.index],
            detail="not in QuickBooks: its "
            + kinds_and_ids.str[0].str.replace("_", " ")
            + " "
            + kinds_and_ids.str[1]
            + " failed: "
            + behind.map(frames["failure_reasons"]).fillna("no reason recorded").astype(str),
        ),
        MISSING_IN_QBO,
    )
    in_scope = objects[objects["verdict"].eq("synced") | objects["qbo_id"].notna()]
    found.in_scope[kind] = len(in_scope)
    return Scope(in_scope, pd.concat([in_scope, owed_absent]))


def pair(found: Findings, in_scope: pd.DataFrame, copy: pd.DataFrame, kind: str) -> pd.DataFrame:
    """In-scope objects joined to their QBO counterpart (columns suffixed `_qbo`); the unmatched become
    missing_in_qbo. Returns the matched."""
    entity = KINDS[kind].entity
    paired = in_scope.merge(
        copy.add_suffix("_qbo"),
        how="left",
        left_on="qbo_id",
        right_on="qbo_id_qbo",
        validate="many_to_one",
    )
    missing = paired["qbo_id_qbo"].isna()
    found.add(
        aligned(
            paired[missing],
            detail=np.where(
                paired.loc[missing, "qbo_id"].isna(),
                f"the sync says it is in QuickBooks, but no {entity} is recorded for it",
                f"its {entity} is no longer in QuickBooks (deleted there?)",
            ),
        ),
        MISSING_IN_QBO,
    )
    return paired[~missing]


def compare(found: Findings, paired: pd.DataFrame, measure: str, taxdome: str, qbo: str, what: str) -> None:
    difference = paired[taxdome] - paired[qbo]
    off = difference.abs() > found.settings.tolerance_cents
    rows = aligned(
        paired[off],
        measure=measure,
        taxdome_cents=paired.loc[off, taxdome],
        qbo_cents=paired.loc[off, qbo],
        difference_cents=difference[off],
        detail=f"{what} differs",
    )
    found.add(rows, AMOUNT_MISMATCH)


def compare_customer(found: Findings, frames: Frames, paired: pd.DataFrame, account_column: str) -> None:
    """The QBO customer of each paired object against its account's (`qbo_ids.account`)."""
    expected = paired[account_column].astype(str).map(frames["qbo_ids.account"])
    off = expected.notna() & (expected != paired["customer_id_qbo"].astype(str))
    customers = frames["qbo.customers"]
    rows = aligned(
        paired[off],
        measure="customer",
        detail="QuickBooks has it under "
        + _customer_named(paired.loc[off, "customer_id_qbo"].astype(str), customers)
        + ", TaxDome's account "
        + paired.loc[off, account_column].astype(str)
        + " is "
        + _customer_named(expected[off].astype(str), customers),
    )
    found.add(rows, CUSTOMER_MISMATCH)


def compare_date(found: Findings, paired: pd.DataFrame, date_column: str) -> None:
    taxdome, qbo = paired[date_column], paired["txn_date_qbo"]
    off = taxdome.ne(qbo) & qbo.notna()
    rows = aligned(
        paired[off],
        measure="date",
        detail="dated "
        + qbo[off].dt.strftime("%Y-%m-%d")
        + " in QuickBooks, "
        + taxdome[off].dt.strftime("%Y-%m-%d")
        + " in TaxDome",
    )
    found.add(rows, FIELD_MISMATCH)


def _present(texts: pd.Series) -> pd.Series:
    return texts.notna() & texts.astype(str).str.strip().ne("")


def _display_names(customer_ids: pd.Series, customers: pd.DataFrame) -> pd.Series:
    """The names QuickBooks shows for `customer_ids` (from the customer copy); missing where it has none."""
    return customer_ids.map(customers.set_index("qbo_id")["display_name"]).astype(
        "str"
    )  # an empty map gives floats


def _customer_named(customer_ids: pd.Series, customers: pd.DataFrame) -> pd.Series:
    """ "Acme & Co (customer 58)", or "customer 58" when the copy does not name it."""
    ids = "customer " + customer_ids
    return (_display_names(customer_ids, customers) + " (" + ids + ")").fillna(ids)


def qbo_names(objects: pd.DataFrame, entity: str, customers: pd.DataFrame) -> pd.Series:
    """How finance finds each of `objects` (rows of `entity`'s copy) in QuickBooks: its type and number, its
    customer (the name the customer copy holds; an expense's payee), its date and its amount, as in
    "Invoice no. 1042 for Acme & Co, dated 2026-03-01, $120.00". What QuickBooks does not hold is left out."""
    declared = ENTITIES[entity]
    names = pd.Series(declared.shown_as, index=objects.index, dtype="str")
    if declared.number_column is not None:
        number = objects[declared.number_column]
        names = names.mask(_present(number), names + " no. " + number.astype(str))
    if "customer_id" in objects:
        known = _display_names(objects["customer_id"], customers)
        party = known.fillna("customer " + objects["customer_id"]).where(objects["customer_id"].notna())
    else:
        party = objects["payee_name"]
    names = names.mask(_present(party), names + " for " + party.astype(str))
    dated = objects["txn_date"].notna()
    names = names.mask(dated, names + ", dated " + objects["txn_date"].dt.strftime("%Y-%m-%d"))
    amount = objects["total_cents"]
    dollars = pd.Series(
        [None if pd.isna(cents) else "$" + format_money(int(cents)) for cents in amount],
        index=objects.index,
        dtype="str",
    )
    return names.mask(amount.notna(), names + ", " + dollars)


def extras(
    found: Findings,
    copy: pd.DataFrame,
    kind: str,
    claimed_ids: Iterable[str],
    customers: pd.DataFrame,
    candidates: pd.Series | None = None,
) -> pd.DataFrame:
    """QBO objects of the period whose id no TaxDome object claims (`claimed_ids`): a second copy of a claimed
    object (same marker) is a duplicate, anything else is extra. Each is named as finance finds it in
    QuickBooks (`qbo_names`, with the names of `customers`, the customer copy). Returns them (they count in
    QBO's totals)."""
    entity = KINDS[kind].entity
    claimed = set(claimed_ids)
    in_the_period = copy[in_period(copy["txn_date"], found.settings)]
    if candidates is not None:
        in_the_period = in_the_period[candidates.reindex(in_the_period.index, fill_value=False)]
    unclaimed = in_the_period[~isin(in_the_period["qbo_id"], claimed)]
    names = qbo_names(unclaimed, entity, customers)
    claimed_markers = set(copy.loc[isin(copy["qbo_id"], claimed), "marker"].dropna())
    duplicate = isin(unclaimed["marker"].fillna(""), claimed_markers)
    found.add(
        aligned(
            unclaimed[duplicate],
            object_kind=kind,
            qbo_entity=entity,
            taxdome_id=unclaimed.loc[duplicate, "marker"].str.rsplit(":", n=1).str[-1],
            measure="amount",
            qbo_cents=unclaimed.loc[duplicate, "total_cents"],
            difference_cents=-unclaimed.loc[duplicate, "total_cents"],
            detail=names[duplicate]
            + ": a second QuickBooks copy of a synced object (same marker "
            + unclaimed.loc[duplicate, "marker"].astype(str)
            + ")",
        ),
        DUPLICATE_IN_QBO,
    )
    extra = unclaimed[~duplicate]
    marker = extra["marker"].fillna("")
    found.add(
        aligned(
            extra,
            object_kind=kind,
            qbo_entity=entity,
            measure="amount",
            qbo_cents=extra["total_cents"],
            difference_cents=-extra["total_cents"],
            detail=names[~duplicate]
            + pd.Series(
                np.where(
                    marker.str.startswith("taxdome:"),
                    ": marked " + marker + ", which matches no TaxDome object in scope",
                    ": carries no TaxDome marker",
                ),
                index=extra.index,
            ),
        ),
        EXTRA_IN_QBO,
    )
    return unclaimed
