"""The reconciliation's checks: each a declared unit over named frames, run in the order declared here.

A check names the frames it reads (`taxdome.<table>`, `qbo.<table>`, `verdicts.<kind>`, `qbo_ids.<kind>`,
`failure_reasons`; core/reconciliation.py builds them once for every check), how the reports name the
measures it records, and a pure function from those frames to its `Findings`: exception rows and the
amounts of its totals. The runner (core/reconciliation.py `reconcile`) concatenates the findings in the order
of `CHECKS`, which is the order of the exceptions in every report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from taxdome_qbo.core.reconciliation_findings import (
    AMOUNT_MISMATCH,
    CUSTOMER_MISMATCH,
    FIELD_MISMATCH,
    MISSING_IN_QBO,
    OUT_OF_SCOPE,
    SHARED_MEASURE_LABELS,
    TOTAL,
    Findings,
    Frames,
    ReconciliationSettings,
    aligned,
    amounts,
    compare,
    compare_customer,
    compare_date,
    extras,
    failed_payments_note,
    in_period,
    isin,
    pair,
    qbo_amounts,
    qbo_id_of,
    ruled_out,
    scope,
    split_scope,
)
from taxdome_qbo.core.vocabulary import MAX_DISPLAY_NAME, REAL_MONEY_METHODS, qbo_name

CheckFunction = Callable[[Frames, ReconciliationSettings], Findings]


@dataclass(frozen=True)
class ReconciliationCheck:
    """One check of the reconciliation.

    :param reads: the named frames `run` is given (and the only ones).
    :param labels: measure -> how the reports name it, for the measures this check alone records.
    :param listed_before: the check whose measures the reports list after this one's (None: in run order).
    """

    name: str
    reads: tuple[str, ...]
    labels: Mapping[str, str]
    run: CheckFunction
    listed_before: str | None = None


def reconciliation_check(
    *, reads: tuple[str, ...], labels: Mapping[str, str], listed_before: str | None = None
) -> Callable[[CheckFunction], ReconciliationCheck]:
    """Declares the decorated function a check named after it, run after the checks declared above it."""

    def declare(run: CheckFunction) -> ReconciliationCheck:
        check = ReconciliationCheck(run.__name__, reads, labels, run, listed_before)
        _DECLARED.append(check)
        return check

    return declare


_DECLARED: list[ReconciliationCheck] = []


# -- invoices ------------------------------------------------------------------------------------------------


@reconciliation_check(
    reads=(
        "taxdome.invoices",
        "taxdome.applications",
        "qbo.invoices",
        "qbo.invoice_lines",
        "qbo.customers",
        "qbo.payment_links",
        "verdicts.invoice",
        "verdicts.payment",
        "qbo_ids.invoice",
        "qbo_ids.payment",
        "qbo_ids.account",
        "failure_reasons",
    ),
    labels={
        "invoiced": "Invoiced",
        "tax": "Sales tax",
        "applied": "Applied to the invoice",
        "balance": "Invoice balance",
    },
)
def invoices(frames: Frames, settings: ReconciliationSettings) -> Findings:
    """Invoices against QBO invoices: total, tax, customer, open balance and what pays them (the last two as
    of the read-back: left out of a period that ended before it)."""
    found = Findings(settings)
    in_scope, owed = scope(found, frames, "invoice", frames["taxdome.invoices"], "invoice_id", "posted_date")
    copy = _qbo_invoices(frames, settings)
    paired = pair(found, in_scope, copy, "invoice")
    compare(found, paired, "invoiced", "total_cents", "total_cents_qbo", "the invoice total")
    compare(found, paired, "tax", "tax_amount_cents", "tax_cents_qbo", "the sales tax")
    compare_customer(found, frames, paired, "account_id")
    if settings.compares_balances:
        _balances(found, frames, paired)
    extra = extras(found, copy, "invoice", paired["qbo_id"], frames["qbo.customers"])
    found.total("invoiced", amounts(owed, "posted_date", "total_cents"), qbo_amounts(paired, extra))
    found.total(
        "tax",
        amounts(owed, "posted_date", "tax_amount_cents"),
        qbo_amounts(paired, extra, "tax_cents"),
    )
    if settings.compares_balances:
        _applied(found, frames, in_scope)
    return found


def _qbo_invoices(frames: Frames, settings: ReconciliationSettings) -> pd.DataFrame:
    """QBO invoices with their tax: TotalTax, plus the lines of the tax item without automated sales tax."""
    copy = frames["qbo.invoices"].copy()
    if settings.tax_item_id is not None:
        lines = frames["qbo.invoice_lines"]
        tax_lines = lines[lines["item_id"].astype(str) == settings.tax_item_id]
        by_invoice = tax_lines.groupby("invoice_id")["amount_cents"].sum()
        copy["tax_cents"] += copy["qbo_id"].map(by_invoice).fillna(0).astype("int64")
    return copy


def _balances(found: Findings, frames: Frames, paired: pd.DataFrame) -> None:
    """Paid in TaxDome ⇔ nothing open in QBO. What the sync keeps out (a payment before the sync date, one
    set not to sync) leaves its part open in QBO: explained when QBO's balance is exactly that."""
    applications = frames["taxdome.applications"]
    invoice_ids = applications["invoice_id"].astype(str)
    applied = applications.groupby(invoice_ids)["amount_cents"].sum()
    # A failed payment is owed to QBO: only the payments a rule keeps out leave their part open.
    kept_out = applications["payment_id"].astype(str).map(ruled_out(frames["verdicts.payment"]))
    owed = ~kept_out.fillna(False).astype(bool)
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
            detail = detail + ": the payments that pay the rest are kept out of QuickBooks by the sync rules"
        else:
            paying = pd.Series(applications["payment_id"].to_numpy(), index=invoice_ids.to_numpy())
            detail = detail + failed_payments_note(frames, paying).reindex(ids[mask]).fillna("").to_numpy()
        found.add(
            aligned(
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


def _applied(found: Findings, frames: Frames, invoices: pd.DataFrame) -> None:
    """What pays each in-scope invoice: TaxDome's applications from payments the sync took to QBO (real
    money, promotional and balance credits) against QBO's payment links to it."""
    payment_verdicts = frames["verdicts.payment"]
    synced_payments = set(payment_verdicts.index[payment_verdicts["verdict"] == "synced"])
    applications = frames["taxdome.applications"]
    applications = applications[isin(applications["payment_id"], synced_payments)]
    taxdome = applications.groupby(applications["invoice_id"].astype(str))["amount_cents"].sum()
    links = frames["qbo.payment_links"]
    qbo = links[links["txn_type"] == "Invoice"].groupby("txn_id")["amount_cents"].sum()
    paired = invoices[invoices["qbo_id"].notna()].copy()
    paired["applied_taxdome"] = paired["taxdome_id"].map(taxdome).fillna(0).astype("int64")
    paired["applied_qbo"] = paired["qbo_id"].map(qbo).fillna(0).astype("int64")
    compare(found, paired, "applied", "applied_taxdome", "applied_qbo", "what pays the invoice")


# -- payments and their processing fees ----------------------------------------------------------------------


@reconciliation_check(
    reads=(
        "taxdome.payments",
        "qbo.payments",
        "qbo.purchases",
        "qbo.customers",
        "verdicts.payment",
        "qbo_ids.payment",
        "qbo_ids.fee",
        "qbo_ids.credit_application",
        "qbo_ids.account",
        "failure_reasons",
    ),
    labels={
        "collected_gross": "Collected (gross)",
        "fees": "Processing fees",
        "net": "Net (gross − fees)",
        "deposit_account": "Deposit account",
    },
)
def payments(frames: Frames, settings: ReconciliationSettings) -> Findings:
    """Real-money payments against QBO payments, their processing fees against expense purchases, and the
    net (gross − fees) per processor."""
    found = Findings(settings)
    taxdome_payments = frames["taxdome.payments"]
    money = taxdome_payments[taxdome_payments["method"].isin(REAL_MONEY_METHODS)]
    in_scope, owed = scope(found, frames, "payment", money, "payment_id", "payment_date")
    copy = frames["qbo.payments"]
    paired = pair(found, in_scope, copy, "payment")
    compare(found, paired, "collected_gross", "amount_cents", "total_cents_qbo", "the gross amount")
    compare_customer(found, frames, paired, "account_id")
    compare_date(found, paired, "payment_date")
    if settings.deposit_account_id is not None:
        off = paired["deposit_account_id_qbo"].astype(str) != settings.deposit_account_id
        found.add(
            aligned(
                paired[off],
                measure="deposit_account",
                detail="deposited to account "
                + paired.loc[off, "deposit_account_id_qbo"].astype(str)
                + ", not "
                + settings.deposit_account_id,
            ),
            FIELD_MISMATCH,
        )
    # Zero-amount payments that apply promotional credits belong to the credit memos (see credits()).
    claimed = set(paired["qbo_id"]) | set(frames["qbo_ids.credit_application"])
    extra = extras(found, copy, "payment", claimed, frames["qbo.customers"], copy["total_cents"].ne(0))
    taxdome_fees, qbo_fees = _fees(found, frames, in_scope, owed)
    qbo_side = qbo_amounts(paired, extra, by_processor=True)
    taxdome_side = amounts(owed, "payment_date", "amount_cents", "processor")
    found.total("collected_gross", taxdome_side, qbo_side)
    found.total("collected_gross", taxdome_side, qbo_side, dimension="processor")
    found.total("fees", taxdome_fees, qbo_fees)
    found.total("fees", taxdome_fees, qbo_fees, dimension="processor")
    net_taxdome = pd.concat([taxdome_side, aligned(taxdome_fees, cents=-taxdome_fees["cents"])])
    net_qbo = pd.concat([qbo_side, aligned(qbo_fees, cents=-qbo_fees["cents"])])
    found.total("net", net_taxdome, net_qbo)
    found.total("net", net_taxdome, net_qbo, dimension="processor")
    return found


def _fees(
    found: Findings, frames: Frames, payments: pd.DataFrame, owed: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Processing fees of the in-scope payments against QBO's expense purchases; (TaxDome, QBO) sides
    as (date, cents, processor), TaxDome's with the fees of the `owed` payments too."""
    with_fee = payments[payments["processing_fee_cents"] > 0].copy()
    with_fee["qbo_id"] = qbo_id_of(frames["qbo_ids.fee"], with_fee["taxdome_id"])
    with_fee["qbo_entity"], with_fee["object_kind"] = "Purchase", "fee"
    copy = frames["qbo.purchases"]
    paired = pair(found, with_fee, copy, "fee")
    compare(found, paired, "fees", "processing_fee_cents", "total_cents_qbo", "the processing fee")
    candidates = None
    if found.settings.fee_expense_account_id is not None:
        candidates = copy["expense_account_id"].astype(str).eq(found.settings.fee_expense_account_id) | copy[
            "marker"
        ].fillna("").str.startswith("taxdome:fee:")
    extra = extras(found, copy, "fee", paired["qbo_id"], frames["qbo.customers"], candidates)
    owed_fees = owed[owed["processing_fee_cents"] > 0]
    taxdome = amounts(owed_fees, "payment_date", "processing_fee_cents", "processor")
    qbo = qbo_amounts(paired, extra, by_processor=True)
    return taxdome, qbo


# -- promotional credits and refunds -------------------------------------------------------------------------


@reconciliation_check(
    reads=(
        "taxdome.payments",
        "qbo.credit_memos",
        "qbo.customers",
        "verdicts.payment",
        "qbo_ids.credit_memo",
        "qbo_ids.account",
        "failure_reasons",
    ),
    labels={"credits": "Credits"},
)
def credits(frames: Frames, settings: ReconciliationSettings) -> Findings:
    """Promotional credits against credit memos. A promotional credit is a TaxDome payment: its verdict is
    the payment's."""
    found = Findings(settings)
    payments = frames["taxdome.payments"]
    promotional = payments[payments["method"] == "promotional_credit"]
    promotional = promotional[in_period(promotional["payment_date"], settings)].copy()
    promotional["taxdome_id"] = promotional["payment_id"].astype(str)
    promotional = promotional.join(frames["verdicts.payment"], on="taxdome_id")
    promotional["qbo_id"] = qbo_id_of(frames["qbo_ids.credit_memo"], promotional["taxdome_id"])
    promotional["qbo_entity"], promotional["object_kind"] = "CreditMemo", "credit_memo"
    in_scope, owed = split_scope(found, frames, promotional, "credit_memo")
    copy = frames["qbo.credit_memos"]
    paired = pair(found, in_scope, copy, "credit_memo")
    compare(found, paired, "credits", "amount_cents", "total_cents_qbo", "the credit")
    compare_customer(found, frames, paired, "account_id")
    extra = extras(found, copy, "credit_memo", paired["qbo_id"], frames["qbo.customers"])
    found.total("credits", amounts(owed, "payment_date", "amount_cents"), qbo_amounts(paired, extra))
    return found


@reconciliation_check(
    reads=(
        "taxdome.refunds",
        "qbo.refund_receipts",
        "qbo.customers",
        "verdicts.refund",
        "qbo_ids.refund",
        "qbo_ids.account",
        "failure_reasons",
    ),
    labels={"refunds": "Refunds"},
    # Money paid back reads beside the money collected, before the credits given.
    listed_before="credits",
)
def refunds(frames: Frames, settings: ReconciliationSettings) -> Findings:
    """Refunds against refund receipts, dated by the refund (not by the payment it returns)."""
    found = Findings(settings)
    in_scope, owed = scope(found, frames, "refund", frames["taxdome.refunds"], "refund_id", "refund_date")
    copy = frames["qbo.refund_receipts"]
    paired = pair(found, in_scope, copy, "refund")
    compare(found, paired, "refunds", "amount_cents", "total_cents_qbo", "the refund")
    compare_customer(found, frames, paired, "account_id")
    compare_date(found, paired, "refund_date")
    extra = extras(found, copy, "refund", paired["qbo_id"], frames["qbo.customers"])
    found.total("refunds", amounts(owed, "refund_date", "amount_cents"), qbo_amounts(paired, extra))
    return found


# -- customers -----------------------------------------------------------------------------------------------


@reconciliation_check(
    reads=("taxdome.accounts", "qbo.customers", "qbo_ids.account"), labels={"name": "Customer name"}
)
def customers(frames: Frames, settings: ReconciliationSettings) -> Findings:
    """A customer the sync created must still bear its account's name (a rename breaks TaxDome's match)."""
    found = Findings(settings)
    accounts = aligned(frames["taxdome.accounts"], taxdome_id=lambda f: f["account_id"].astype(str))
    accounts["qbo_id"] = accounts["taxdome_id"].map(frames["qbo_ids.account"])
    paired = accounts[accounts["qbo_id"].notna()].merge(
        frames["qbo.customers"].add_suffix("_qbo"), left_on="qbo_id", right_on="qbo_id_qbo", how="left"
    )
    missing = paired["qbo_id_qbo"].isna()
    found.add(
        aligned(
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
    found.add(
        aligned(
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
    found.in_scope["account"] = len(paired)
    return found


@reconciliation_check(
    reads=(
        "taxdome.invoices",
        "taxdome.payments",
        "qbo.customers",
        "qbo_ids.account",
        "qbo_ids.invoice",
        "qbo_ids.payment",
        "qbo_ids.credit_memo",
    ),
    labels={"customer_balance": "Customer balances"},
)
def customer_balances(frames: Frames, settings: ReconciliationSettings) -> Findings:
    """Per synced account, over everything synced: TaxDome's invoices − payments − promotional credits
    against the customer's open balance in QBO (as of the read-back: left out of a period that ended
    before it)."""
    found = Findings(settings)
    accounts = frames["qbo_ids.account"]
    if accounts.empty or not settings.compares_balances:
        return found
    signed = []
    invoices = frames["taxdome.invoices"]
    invoices = invoices[isin(invoices["invoice_id"], frames["qbo_ids.invoice"].index)]
    signed.append(pd.DataFrame({"account_id": invoices["account_id"], "cents": invoices["total_cents"]}))
    payments = frames["taxdome.payments"]
    for kind, methods in (("payment", REAL_MONEY_METHODS), ("credit_memo", {"promotional_credit"})):
        held = payments[
            payments["method"].isin(methods) & isin(payments["payment_id"], frames[f"qbo_ids.{kind}"].index)
        ]
        signed.append(pd.DataFrame({"account_id": held["account_id"], "cents": -held["amount_cents"]}))
    by_account = pd.concat(signed).astype({"cents": "int64"}).groupby("account_id")["cents"].sum()
    frame = pd.DataFrame({"taxdome_id": accounts.index.astype(str), "qbo_id": accounts.to_numpy()})
    frame["taxdome_cents"] = frame["taxdome_id"].map(by_account).fillna(0).astype("int64")
    balances = frames["qbo.customers"].set_index("qbo_id")["balance_cents"]
    frame["qbo_cents"] = frame["qbo_id"].map(balances)
    frame = frame[frame["qbo_cents"].notna()].astype({"qbo_cents": "int64"})
    frame["object_kind"], frame["qbo_entity"] = "account", "Customer"
    frame["difference_cents"] = frame["taxdome_cents"] - frame["qbo_cents"]
    off = frame["difference_cents"].abs() > settings.tolerance_cents
    found.add(
        aligned(
            frame[off],
            measure="customer_balance",
            detail="TaxDome's balance (invoices − payments − credits synced) differs from the QuickBooks customer's open balance",
        ),
        AMOUNT_MISMATCH,
    )
    found.totals.append(
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
    return found


# -- payouts -------------------------------------------------------------------------------------------------


@reconciliation_check(
    reads=(
        "taxdome.payouts",
        "taxdome.payments",
        "qbo.payments",
        "qbo.purchases",
        "verdicts.payment",
        "qbo_ids.payment",
        "qbo_ids.fee",
    ),
    labels={"payout_gross": "Payout gross", "payout_fees": "Payout fees", "payout_net": "Payout net"},
)
def payouts(frames: Frames, settings: ReconciliationSettings) -> Findings:
    """Each payout of the period: its gross and fees are those of the payments it lists (TaxDome's own
    arithmetic; the export lists no refunds in a payout, so its net is gross − fees), and its gross,
    fees and net against what QBO holds for those payments. A difference made only of payments the
    sync rules keep out of QBO is explained."""
    found = Findings(settings)
    listed = frames["taxdome.payouts"]
    listed = listed[in_period(listed["payout_date"], settings)]
    if listed.empty:
        return found
    members = _payout_members(frames, listed)
    frame = _payout_sums(listed, members)
    for measure, stated, summed in (
        ("payout_gross", "gross_cents", "gross"),
        ("payout_fees", "fee_cents", "fee"),
    ):
        off = frame[stated] != frame[summed]
        found.add(
            aligned(
                frame[off],
                measure=measure,
                taxdome_cents=frame[stated],
                difference_cents=frame[stated] - frame[summed],
                detail="TaxDome's payout is not the sum of the payments it lists ("
                + frame[summed].astype(str)
                + " cents)",
            ),
            AMOUNT_MISMATCH,
        )
    failed_note = failed_payments_note(
        frames,
        pd.Series(members["payment_id"].to_numpy(), index=members["payout_id"].astype(str).to_numpy()),
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
            found.add(
                aligned(
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
        found.total(measure, amounts(frame, "payout_date", in_scope), amounts(frame, "payout_date", qbo))
    return found


def _payout_members(frames: Frames, listed: pd.DataFrame) -> pd.DataFrame:
    """One row per payment a payout lists: its gross and fee in TaxDome, those QBO should hold, and those it
    holds."""
    # Without the lists themselves: each member row would carry its payout's whole list.
    members = pd.DataFrame(
        {"payout_id": listed["payout_id"], "payment_id": listed["payment_ids"].fillna("").str.split(";")}
    ).explode("payment_id")
    members = members[members["payment_id"].fillna("") != ""]
    taxdome_payments = frames["taxdome.payments"]
    taxdome_payments = taxdome_payments.set_index(taxdome_payments["payment_id"].astype(str))
    members["gross"] = members["payment_id"].map(taxdome_payments["amount_cents"]).fillna(0).astype("int64")
    members["fee"] = (
        members["payment_id"].map(taxdome_payments["processing_fee_cents"]).fillna(0).astype("int64")
    )
    # What QBO should hold: every payment but those a sync rule keeps out (a failed one is owed too).
    owed = ~members["payment_id"].map(ruled_out(frames["verdicts.payment"])).fillna(False).astype(bool)
    members["gross_in_scope"] = members["gross"].where(owed, 0)
    members["fee_in_scope"] = members["fee"].where(owed, 0)
    qbo_payment = frames["qbo_ids.payment"].map(frames["qbo.payments"].set_index("qbo_id")["total_cents"])
    qbo_fee = frames["qbo_ids.fee"].map(frames["qbo.purchases"].set_index("qbo_id")["total_cents"])
    members["qbo_gross"] = members["payment_id"].map(qbo_payment).fillna(0).astype("int64")
    members["qbo_fee"] = members["payment_id"].map(qbo_fee).fillna(0).astype("int64")
    return members


def _payout_sums(listed: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """The payouts with the sums of their payments' amounts (`_payout_members`) and the nets of those sums."""
    sums = members.groupby("payout_id")[
        ["gross", "fee", "gross_in_scope", "fee_in_scope", "qbo_gross", "qbo_fee"]
    ].sum()
    frame = listed.set_index("payout_id").join(sums).fillna(0).reset_index()
    frame = aligned(frame, object_kind="payout", taxdome_id=frame["payout_id"].astype(str))
    frame["net_in_scope"] = frame["gross_in_scope"] - frame["fee_in_scope"]
    frame["qbo_net"] = frame["qbo_gross"] - frame["qbo_fee"]
    return frame


# In the order they are declared above, which is the order of the exceptions in every report.
CHECKS = tuple(_DECLARED)


def measure_labels(checks: tuple[ReconciliationCheck, ...]) -> dict[str, str]:
    """Measure -> how the reports name it, in the order they list the measures: check by check in run order
    (a check with `listed_before` just before the check it names), then the shared comparisons'."""
    listed = [check for check in checks if check.listed_before is None]
    for check in checks:
        if check.listed_before is not None:
            before = next(i for i, other in enumerate(listed) if other.name == check.listed_before)
            listed.insert(before, check)
    return {
        measure: label for check in listed for measure, label in check.labels.items()
    } | SHARED_MEASURE_LABELS


MEASURE_LABELS = measure_labels(CHECKS)
