"""Which of a full plan's operations and statuses belong to one period of a firm's history (a backfill run).

A backfill syncs a firm's history month by month. Each of its runs plans the whole firm as a full run would
(so every payload is the one a full run writes, and a later month never rewrites an earlier one) and then
keeps only what belongs to its period: the operations of the objects whose *day* falls in it, and the
customers and items those objects need.

An object's day is the last day among itself and what it depends on, so that it never lands before
something it links to:
- an invoice: its posted date;
- a payment: its payment date, or the posted date of a later invoice it pays; one that leaves client credit,
  the latest invoice its client's later credit-balance payments pay (R7 may spend its credit there);
- its processing fee and its credit memo (a promotional credit): the payment's day;
- a refund: its refund date, or its payment's day if later;
- a credit application (`credit payment:invoice:memo`): the last of the three days;
- an operation: its object's day, or the day of a later transaction its payload links to.

Periods are ranges of days, both ends included (core/reconciliation_period.py makes one of a data
interval): an invoice posted on January 31 belongs to January, a payment of it on February 1 to February.
Nothing is ever deleted by a period run (core/rules/deletions.py): what its period leaves out is not gone.

Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from taxdome_qbo.core.vocabulary import NOT_SYNCED, StagedFirm, date_text

KINDS_OF_ID = {"invoice_id": "invoice", "payment_id": "payment", "refund_id": "refund"}
NAME_KINDS = ("account", "service")  # customers and items: kept when something in the period needs them
_REFERENCE = re.compile(r'"@(invoice|payment|credit_memo|refund|account|service):((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class SyncPeriod:
    """The days a backfill run syncs, both ends included."""

    first: dt.date
    last: dt.date

    def __post_init__(self):
        if self.first > self.last:
            raise ValueError(f"a period cannot end ({self.last}) before it begins ({self.first})")

    def holds(self, day: str | None) -> bool:
        return day is not None and self.first.isoformat() <= day <= self.last.isoformat()

    def __str__(self) -> str:
        return f"{self.first:%Y-%m-%d} to {self.last:%Y-%m-%d}"


def period_of(first: str | dt.date | None, last: str | dt.date | None) -> SyncPeriod | None:
    """The period a run's `period_from` and `period_to` name (days, YYYY-MM-DD); None (the whole firm) when
    neither is given. Raises ValueError when only one is, or they are not days in order."""
    if first is None and last is None:
        return None
    if first is None or last is None:
        raise ValueError("a period needs both period_from and period_to (or neither: the whole firm)")
    return SyncPeriod(
        *(day if isinstance(day, dt.date) else dt.date.fromisoformat(day) for day in (first, last))
    )


def _days(ids: pd.Series, days: pd.Series) -> dict[str, str]:
    return {
        str(taxdome_id): text
        for taxdome_id, day in zip(ids.tolist(), days.tolist(), strict=True)
        if (text := date_text(day)) is not None
    }


def _later(*days: str | None) -> str | None:
    known = [day for day in days if day is not None]
    return max(known) if known else None


def _verdict_key(kind: str, taxdome_id: str) -> tuple[str, str]:
    """The verdict an operation reports to: a fee's, a credit memo's and a credit application's is a payment's
    (a credit application `credit payment:invoice:memo` reports to its memo's payment)."""
    if kind in ("fee", "credit_memo"):
        return "payment", taxdome_id
    if kind == "credit_application":
        return "payment", taxdome_id.split(":")[-1]
    return kind, taxdome_id


def _rows(frame: pd.DataFrame, flags: list[bool]) -> pd.DataFrame:
    """The rows of `frame` flagged (a plain list would pick columns when empty)."""
    return frame[pd.Series(flags, index=frame.index, dtype=bool)]


def _referenced_id(raw: str) -> str:
    return json.loads(f'"{raw}"') if "\\" in raw else raw


class PeriodSelection:
    """Filters a full plan down to one period, frame by frame as the planner sends operations.

    Operations of dated kinds are kept or dropped as they come (`operations`); those of customers and items
    are held until the plan is complete (`needed_names`), as only then is it known which are needed.
    """

    def __init__(self, staged: StagedFirm, period: SyncPeriod):
        self.period = period
        self._invoice_day = _days(staged.invoices["invoice_id"], staged.invoices["posted_date"])
        payments = staged.payments
        self._payment_day = _days(payments["payment_id"], payments["payment_date"])
        applications = staged.payment_applications
        for payment_id, invoice_id in zip(
            applications["payment_id"].tolist(), applications["invoice_id"].tolist(), strict=True
        ):
            if payment_id in self._payment_day:
                self._payment_day[payment_id] = _later(
                    self._payment_day[payment_id], self._invoice_day.get(invoice_id)
                )
        self._follow_credit_spent_later(payments, applications)
        refunds = staged.refunds
        self._refund_day = {
            refund_id: _later(date_text(day), self._payment_day.get(payment_id))
            for refund_id, payment_id, day in zip(
                refunds["refund_id"].tolist(),
                refunds["payment_id"].tolist(),
                refunds["refund_date"].tolist(),
                strict=True,
            )
        }
        # The customers and items of what is dated in the period (a line of a service created before the
        # integration date names the default item, yet a full run creates its item too), and, as kept
        # operations name them, those their payloads refer to.
        self.needed: dict[str, set[str]] = {kind: set() for kind in NAME_KINDS}
        for frame, id_column in (
            (staged.invoices, "invoice_id"),
            (staged.payments, "payment_id"),
            (refunds, "refund_id"),
        ):
            self.needed["account"].update(
                str(account_id)
                for taxdome_id, account_id in zip(
                    frame[id_column].tolist(), frame["account_id"].tolist(), strict=True
                )
                if period.holds(self.object_day(KINDS_OF_ID[id_column], taxdome_id))
            )
        lines = staged.invoice_lines
        self.needed["service"].update(
            service_id
            for invoice_id, service_id in zip(
                lines["invoice_id"].tolist(), lines["service_id"].tolist(), strict=True
            )
            if isinstance(service_id, str) and period.holds(self._invoice_day.get(invoice_id))
        )
        self._held_names: list[pd.DataFrame] = []
        # The kind and id of a verdict -> why this run does not sync the object.
        self._left_out: dict[tuple[str, str], str] = {}

    def _follow_credit_spent_later(self, payments: pd.DataFrame, applications: pd.DataFrame) -> None:
        """A payment or promotional credit that leaves client credit lands with the latest invoice its client's
        later credit-balance payments pay: R7 may spend its credit there, and its payload then links that
        invoice; its fee and its credit memo follow it."""
        applied: dict[str, int] = defaultdict(int)
        for payment_id, cents in zip(
            applications["payment_id"].tolist(), applications["amount_cents"].tolist(), strict=True
        ):
            applied[payment_id] += int(cents)
        spent: dict[str, list[tuple[str, str]]] = defaultdict(
            list
        )  # account -> (paid on, latest invoice day)
        rows = list(
            zip(
                payments["payment_id"].tolist(),
                payments["account_id"].tolist(),
                payments["payment_date"].tolist(),
                payments["method"].tolist(),
                payments["amount_cents"].tolist(),
                strict=True,
            )
        )
        for payment_id, account_id, paid_on, method, _ in rows:
            if method == "credit_balance" and (day := self._payment_day.get(payment_id)) is not None:
                spent[account_id].append((date_text(paid_on), day))
        for payment_id, account_id, paid_on, method, cents in rows:
            if method == "credit_balance" or int(cents) <= applied[payment_id] or account_id not in spent:
                continue
            own = date_text(paid_on)
            later = [day for spent_on, day in spent[account_id] if own is not None and spent_on >= own]
            self._payment_day[payment_id] = _later(self._payment_day.get(payment_id), *later)

    def object_day(self, kind: str, taxdome_id: str) -> str | None:
        """The day of a TaxDome object of `kind` (an operation's or a status's kind); None if undated."""
        if kind == "invoice":
            return self._invoice_day.get(taxdome_id)
        if kind == "refund":
            return self._refund_day.get(taxdome_id)
        if kind == "credit_application":
            credit_payment, invoice_id, memo = taxdome_id.split(":")
            return _later(
                self._payment_day.get(credit_payment),
                self._invoice_day.get(invoice_id),
                self._payment_day.get(memo),
            )
        if kind in ("payment", "credit_memo", "fee"):
            return self._payment_day.get(taxdome_id)
        return None

    def _operation_day(self, kind: str, taxdome_id: str, payload: str) -> str | None:
        day = self.object_day(kind, taxdome_id)
        for referenced_kind, raw in _REFERENCE.findall(payload):
            if referenced_kind not in NAME_KINDS:
                day = _later(day, self.object_day(referenced_kind, _referenced_id(raw)))
        return day

    def operations(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The operations of `frame` that belong to the period; customers' and items' are held back."""
        names = frame["taxdome_kind"].isin(NAME_KINDS)
        if names.any():
            self._held_names.append(frame[names])
        dated = frame[~names]
        keep = []
        for kind, taxdome_id, payload in zip(
            dated["taxdome_kind"].tolist(),
            dated["taxdome_id"].tolist(),
            dated["payload"].tolist(),
            strict=True,
        ):
            day = self._operation_day(kind, taxdome_id, payload)
            keep.append(self.period.holds(day))
            if keep[-1]:
                self._need_names_in(payload)
            else:
                self._left_out[_verdict_key(kind, taxdome_id)] = (
                    f"dated {day or 'without a day'}, outside this backfill run's period ({self.period}): the "
                    "run of its own period, or the next run of the whole firm, syncs it"
                )
        return _rows(dated, keep)

    def _need_names_in(self, payload: str) -> None:
        for kind, raw in _REFERENCE.findall(payload):
            if kind in NAME_KINDS:
                self.needed[kind].add(_referenced_id(raw))

    def needed_names(self) -> pd.DataFrame | None:
        """The held customer and item operations that something in the period needs (None when none is);
        call once every operation has gone through `operations`."""
        if not self._held_names:
            return None
        held = pd.concat(self._held_names, ignore_index=True)
        self._held_names.clear()
        needed = []
        for kind, taxdome_id in zip(held["taxdome_kind"].tolist(), held["taxdome_id"].tolist(), strict=True):
            needed.append(taxdome_id in self.needed[kind])
            if needed[-1]:
                continue
            self._left_out[(kind, taxdome_id)] = (
                f"nothing in this backfill run's period ({self.period}) needs it: the run of a period that does, "
                "or the next run of the whole firm, syncs it"
            )
        return _rows(held, needed)

    def statuses(self, statuses: pd.DataFrame) -> pd.DataFrame:
        """Every object's verdict as the full plan decided it, but for those whose operations the period left
        out: not synced by this run, and why. Call after `needed_names`."""
        left_out = [
            self._left_out.get((kind, taxdome_id))
            for kind, taxdome_id in zip(statuses["taxdome_kind"], statuses["taxdome_id"], strict=True)
        ]
        if not any(left_out):
            return statuses
        waiting = pd.Series([reason is not None for reason in left_out], index=statuses.index)
        reasons = pd.Series(left_out, index=statuses.index, dtype=object)
        return statuses.assign(
            status=statuses["status"].mask(waiting, NOT_SYNCED),
            reason=statuses["reason"].mask(waiting, reasons),
            qbo_entity=statuses["qbo_entity"].mask(waiting, None),
            caused_by=statuses["caused_by"].mask(waiting, None),
            qbo_id=statuses["qbo_id"].mask(waiting, None),
        )
