"""What TaxDome deleted (a full export no longer lists it) or unsynced since goes from QuickBooks too, unless
the plan would delete more than a small share of what is synced."""

from __future__ import annotations

from taxdome_qbo.core.kinds import DELETE_ORDER
from taxdome_qbo.core.rules.base import RuleBook
from taxdome_qbo.core.vocabulary import (
    MASS_DELETE_SHARE,
    SYNCED,
    PlanRefused,
)


class DeletionRules(RuleBook):
    """Deletions of the kinds `core/kinds.py` declares deletable, children first."""

    def _plan_deletions(self) -> None:
        """Delete from QBO what TaxDome deleted (full exports) or what was unsynced since (any export).

        A backfill run (a period) deletes nothing: it loads part of the history, and the next run of the whole
        firm judges deletions on all of it."""
        if self.options.period is not None:
            return
        staged_payments = set(self.staged.payments["payment_id"])
        staged_refunds = set(self.staged.refunds["refund_id"])
        deletions = []
        for kind in DELETE_ORDER:
            recorded = self.state.get(kind)
            if not recorded:
                continue
            planned = self.operations.planned_ids(kind)
            for taxdome_id, known in recorded.items():
                if known.status != SYNCED or known.qbo_id is None:
                    continue
                if taxdome_id in planned or self._still_synced(kind, taxdome_id):
                    continue
                owner = self._owning_payment(kind, taxdome_id)
                present = taxdome_id in staged_refunds if kind == "refund" else owner in staged_payments
                if present:
                    why = f"its TaxDome {'refund' if kind == 'refund' else 'payment'} is no longer synced"
                elif self.options.export_mode == "full":
                    why = f"deleted in TaxDome: no longer in the export ({kind} {taxdome_id})"
                else:
                    continue
                deletions.append((kind, taxdome_id, known, why))
        synced_total = sum(
            1 for by_id in self.state.values() for known in by_id.values() if known.status == SYNCED
        )
        if (
            deletions
            and not self.options.allow_mass_delete
            and len(deletions) > MASS_DELETE_SHARE * synced_total
        ):
            raise PlanRefused(
                f"the plan would delete {len(deletions)} of {synced_total} synced objects in QuickBooks "
                f"(more than {MASS_DELETE_SHARE:.0%}); if TaxDome really deleted them, run with allow_mass_delete=true"
            )
        for kind, taxdome_id, known, why in deletions:
            payload = {"Id": str(known.qbo_id), "SyncToken": str(known.sync_token)}
            self._append_body(kind, taxdome_id, known.qbo_entity, "delete", payload, why, "")

    def _still_synced(self, kind: str, taxdome_id: str) -> bool:
        """Unchanged objects plan no operation; they are still synced when their owner still is."""
        if kind == "refund":
            return self.statuses["refund"].get(taxdome_id, (None,))[0] == SYNCED
        owner = self._owning_payment(kind, taxdome_id)
        owner_status = self.statuses["payment"].get(owner, (None,))[0]
        if kind == "fee":
            return owner_status == SYNCED and owner in self.synced_payments
        return owner_status == SYNCED

    @staticmethod
    def _owning_payment(kind: str, taxdome_id: str) -> str:
        """fee and payment ids are the payment id; a credit application is `credit payment:invoice:memo`."""
        return taxdome_id.split(":")[-1] if kind == "credit_application" else taxdome_id
