"""The sync planner: TaxDome's QuickBooks rules (docs/sync-rules.md, R1-R16) applied to the staged export.

Pure: staged frames + firm settings + QBO reference data + sync state in, a plan out. The plan is every QBO
write needed, in execution order, each with its reason, and a status with a reason for every staged TaxDome
object (account, service, invoice, payment, refund). Nothing here talks to QBO or a database.

The rules of each kind are in `core/rules/`, the kinds themselves in `core/kinds.py`, the words they share in
`core/vocabulary.py` and the operation log in `core/operation_log.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from taxdome_qbo.core.kinds import KINDS, READ_COLUMNS, STAGED_TABLES
from taxdome_qbo.core.plan_memory import distinct, isin, plain, quiet_collector
from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.core.rules.base import resolve_setting_ids
from taxdome_qbo.core.rules.credits import CreditRules
from taxdome_qbo.core.rules.customers import CustomerRules
from taxdome_qbo.core.rules.deletions import DeletionRules
from taxdome_qbo.core.rules.fees import FeeRules
from taxdome_qbo.core.rules.invoices import InvoiceRules
from taxdome_qbo.core.rules.items import ItemRules
from taxdome_qbo.core.rules.payments import PaymentRules
from taxdome_qbo.core.rules.refunds import RefundRules
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.core.vocabulary import (
    FAILED,
    NOT_SYNCED,
    STATUS_COLUMNS,
    SYNCED,
    Plan,
    PlanOptions,
    PlanRefused,
    StagedFirm,
)

# What the DAG tasks, the command line and the reconciliation tasks import from here.
__all__ = [
    "FAILED",
    "SYNCED",
    "Plan",
    "PlanOptions",
    "PlanRefused",
    "StagedFirm",
    "build_plan",
    "resolve_setting_ids",
]


class _Planner(
    CustomerRules, ItemRules, InvoiceRules, PaymentRules, CreditRules, FeeRules, RefundRules, DeletionRules
):
    """The rules of every kind, run in the order their objects depend on each other."""

    def plan(self) -> Plan:
        accounts_in_scope = self._scope_accounts()
        self._plan_customers(accounts_in_scope)
        self._plan_services()
        self._plan_invoices()
        credit_use = self._allocate_credit_balance()
        self._plan_payments(credit_use)
        self._plan_refunds()
        self._plan_deletions()
        return self._result()

    def _result(self) -> Plan:
        kinds: list[str] = []
        ids: list[str] = []
        verdicts: list[tuple] = []
        qbo_ids: list[str | None] = []
        for kind, by_id in self.statuses.items():
            kinds += [kind] * len(by_id)
            ids += by_id.keys()
            verdicts += by_id.values()
            known = self.state[kind]
            qbo_ids += [
                state.qbo_id
                if verdict[0] == SYNCED and (state := known.get(taxdome_id)) is not None
                else None
                for taxdome_id, verdict in by_id.items()
            ]
        self.statuses.clear()
        self.state.clear()
        # A list per column rather than zip(*verdicts): zip over millions of tuples is many times slower.
        verdict_columns = [[verdict[column] for verdict in verdicts] for column in range(4)]
        statuses = pd.DataFrame(
            dict(zip(STATUS_COLUMNS, (kinds, ids, *verdict_columns, qbo_ids), strict=True)), dtype=object
        )
        del kinds, ids, verdicts, qbo_ids
        return Plan(self.operations.finish(), statuses)


def _split_absent(staged: StagedFirm) -> tuple[StagedFirm, list[tuple[str, str]]]:
    """Rows the latest full export no longer lists were deleted in TaxDome: plan without them."""

    def present(frame: pd.DataFrame) -> pd.Series:
        if "_absent_since_batch" not in frame:
            return pd.Series(True, index=frame.index)
        return frame["_absent_since_batch"].isna()

    absent = []
    kept = {}
    for kind in KINDS.values():
        if kind.id_column is None:
            continue
        name = kind.staged[0].name
        frame = getattr(staged, name)
        keep = present(frame)
        absent += [(kind.name, taxdome_id) for taxdome_id in frame.loc[~keep, kind.id_column]]
        kept[name] = frame[keep]
    invoices, payments = distinct(kept["invoices"]["invoice_id"]), set(kept["payments"]["payment_id"])
    lines = staged.invoice_lines
    kept["invoice_lines"] = lines[isin(lines["invoice_id"], invoices)]
    applications = staged.payment_applications
    kept["payment_applications"] = applications[
        applications["invoice_id"].isin(invoices) & applications["payment_id"].isin(payments)
    ]
    return StagedFirm(**kept), absent


def build_plan(
    staged: StagedFirm,
    settings: FirmSettings,
    reference: QboReference,
    state: pd.DataFrame,
    options: PlanOptions | None = None,
    *,
    sink: Callable[[pd.DataFrame], None] | None = None,
) -> Plan:
    """Decide every QBO write for the staged export. Raises PlanRefused for a mass deletion not allowed.

    Operations are numbered by `seq` in execution order (increasing, not contiguous). Without a sink, the
    plan holds them all; with one, the sink gets them in frames as they are decided (not in seq order) and the
    plan returned holds none: a firm's operations need not all be in memory at once. A plan refused still
    sent some operations: record them in a transaction that the refusal rolls back.
    """
    with quiet_collector():
        options = options or PlanOptions()
        read = {}
        for name in StagedFirm.__dataclass_fields__:
            frame = getattr(staged, name)
            frame = frame[[c for c in (*READ_COLUMNS[name], "_absent_since_batch") if c in frame.columns]]
            read[name] = frame if STAGED_TABLES[name].chunked else plain(frame)
        staged = StagedFirm(**read)
        absent: list[tuple[str, str]] = []
        if options.export_mode == "full":
            staged, absent = _split_absent(staged)
        planner = _Planner(staged, settings, reference, state, options, sink)
        for kind, taxdome_id in absent:
            planner.status(kind, taxdome_id, NOT_SYNCED, "no longer in TaxDome's export: deleted in TaxDome")
        return planner.plan()
