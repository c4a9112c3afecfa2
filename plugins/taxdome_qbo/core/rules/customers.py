"""Accounts become QuickBooks customers (R1-R5): which accounts are in scope, and how each is matched,
reactivated or created."""

from __future__ import annotations

import re
from typing import Any

from taxdome_qbo.core.plan_memory import distinct, rows
from taxdome_qbo.core.rules.base import RuleBook, ref
from taxdome_qbo.core.vocabulary import (
    DO_NOT_SYNC,
    FAILED,
    MAX_DISPLAY_NAME,
    SKIPPED,
    SYNCED,
    WAITING_INVOICE_STATUSES,
    date_text,
    marker,
    qbo_name,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class CustomerRules(RuleBook):
    """R1-R5: the `account` kind."""

    def _scope_accounts(self) -> dict[str, Any]:
        """The accounts that become QBO customers (R3, R4, R5); every other account gets its status here."""
        staged = self.staged
        opted_out = set(staged.accounts.loc[staged.accounts["qbo_sync"] == "do_not_sync", "account_id"])
        self.opted_out = opted_out
        since = self.sync_date.isoformat() if self.sync_date else None
        issued = staged.invoices[~staged.invoices["status"].isin(WAITING_INVOICE_STATUSES)]
        dated_invoices = issued if since is None else issued[issued["posted_date"].map(date_text) >= since]
        payments = staged.payments
        dated_payments = (
            payments if since is None else payments[payments["payment_date"].map(date_text) >= since]
        )
        active = distinct(dated_invoices["account_id"]) | distinct(dated_payments["account_id"])

        in_scope = {}
        for account in rows(staged.accounts):
            account_id = account.account_id
            if account_id in opted_out:
                self.status("account", account_id, DO_NOT_SYNC, "set to Do not sync in TaxDome")
                continue
            created = date_text(account.created_at)
            forced = account.qbo_sync == "sync"
            everything = self.settings.account_scope == "all" and not bool(account.archived)
            new_enough = since is None or (created is not None and created >= since)
            if (
                forced
                or account_id in active
                or (everything and new_enough)
                or self.known_qbo_id("account", account_id)
            ):
                in_scope[account_id] = account
            elif self.settings.account_scope == "all" and bool(account.archived):
                self.status("account", account_id, SKIPPED, "archived, with no invoice or payment to sync")
            elif since is not None:
                self.status(
                    "account", account_id, SKIPPED, f"no invoice or payment on or after the sync date {since}"
                )
            else:
                self.status("account", account_id, SKIPPED, "no invoice or payment yet")
        return in_scope

    def _plan_customers(self, accounts: dict[str, Any]) -> None:
        """R1, R2: link by manual match or exact DisplayName, reactivate an inactive match, else create."""
        customers = self.reference.customers
        by_name = {row.display_name: row for row in customers.itertuples(index=False)}
        people = self.reference.vendors_and_employees
        other_people = dict(zip(people["display_name"].str.casefold(), people["entity"], strict=True))
        taken: dict[str, str] = {}
        ordered = sorted(accounts.values(), key=lambda a: (date_text(a.created_at) or "", a.account_id))
        for account in ordered:
            account_id = account.account_id
            if self.known_qbo_id("account", account_id):
                self.synced_accounts.add(account_id)
                self.status("account", account_id, SYNCED, "linked to its QuickBooks customer", "Customer")
                continue
            display_name = qbo_name(account.account_name, MAX_DISPLAY_NAME)
            manual = account.qbo_customer_name if isinstance(account.qbo_customer_name, str) else None
            folded = (manual or display_name).casefold()
            if folded in taken:
                self.status(
                    "account",
                    account_id,
                    FAILED,
                    f"account {taken[folded]} already syncs to the QuickBooks customer '{manual or display_name}'",
                )
                continue
            taken[folded] = account_id
            if manual:
                match = by_name.get(manual)
                if match is None:
                    self.status(
                        "account",
                        account_id,
                        FAILED,
                        f"the matched QuickBooks customer '{manual}' does not exist",
                    )
                    continue
                self._link_customer(
                    account_id, match, f"matched by hand to the QuickBooks customer '{manual}'"
                )
                continue
            match = by_name.get(display_name)
            if match is not None:
                self._link_customer(
                    account_id, match, f"same name as the QuickBooks customer '{display_name}'"
                )
                continue
            if (entity := other_people.get(display_name.casefold())) is not None:
                self.status(
                    "account",
                    account_id,
                    FAILED,
                    f"the name '{display_name}' belongs to a QuickBooks {entity.lower()}, and customers cannot "
                    "share it: rename the account in TaxDome or match it by hand to a customer",
                )
                continue
            payload: dict[str, Any] = {"DisplayName": display_name, "Notes": marker("account", account_id)}
            if self.refs.ids["customer_type"]:
                payload["CustomerTypeRef"] = ref(self.refs.ids["customer_type"])
            if isinstance(account.email, str) and _EMAIL.match(account.email) and len(account.email) <= 100:
                payload["PrimaryEmailAddr"] = {"Address": account.email}
            if account.account_type == "Company":
                payload["CompanyName"] = display_name[:100]
            reason = self.write(
                "account",
                account_id,
                "Customer",
                payload,
                None,
                f"new customer '{display_name}'",
                sort_key=account_id,
            )
            self.synced_accounts.add(account_id)
            self.status("account", account_id, SYNCED, reason, "Customer")

    def _link_customer(self, account_id: str, customer, why: str) -> None:
        active = bool(customer.active)
        payload = {"Id": str(customer.id)}
        action = "link"
        if not active:
            action = "reactivate"
            payload = {
                "Id": str(customer.id),
                "SyncToken": str(customer.sync_token),
                "sparse": True,
                "Active": True,
            }
            why = f"{why}, which is inactive: reactivate it"
        self._append_body("account", account_id, "Customer", action, payload, why, account_id)
        self.synced_accounts.add(account_id)
        self.status("account", account_id, SYNCED, why, "Customer")
