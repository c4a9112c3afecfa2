"""Services become QuickBooks service items (R8, R9): linked by a copied or equal name, or created."""

from __future__ import annotations

from typing import Any

from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.rules.base import RuleBook, ref
from taxdome_qbo.core.vocabulary import (
    FAILED,
    MAX_ITEM_NAME,
    SKIPPED,
    SYNCED,
    date_text,
    qbo_name,
)


class ItemRules(RuleBook):
    """R8, R9: the `service` kind."""

    def _plan_services(self) -> None:
        items = self.reference.items
        by_name = {row.name: row for row in items.itertuples(index=False)}
        integration = self.settings.integration_date.isoformat() if self.settings.integration_date else None
        for service in self.staged.services.itertuples(index=False):
            service_id = service.service_id
            if self.known_qbo_id("service", service_id):
                self.synced_services.add(service_id)
                self.status("service", service_id, SYNCED, "linked to its QuickBooks item", "Item")
                continue
            copied = service.qbo_item_name if isinstance(service.qbo_item_name, str) else None
            if copied:
                match = by_name.get(copied)
                if match is None:
                    self.status(
                        "service",
                        service_id,
                        FAILED,
                        f"copied from the QuickBooks item '{copied}', which does not exist",
                    )
                    continue
                self._link_item(service_id, match, f"copied from the QuickBooks item '{copied}'")
                continue
            created = date_text(service.created_at)
            if integration is not None and created is not None and created < integration:
                self.status(
                    "service",
                    service_id,
                    SKIPPED,
                    f"created before the integration date {integration}: its lines use the default sales item",
                )
                continue
            name = qbo_name(service.name, MAX_ITEM_NAME)
            match = by_name.get(name)
            if match is not None:
                self._link_item(service_id, match, f"same name as the QuickBooks item '{name}'")
                continue
            if "service_income_account" in self.refs.missing:
                self.status("service", service_id, FAILED, self.refs.missing["service_income_account"])
                continue
            payload: dict[str, Any] = {
                "Name": name,
                "Type": "Service",
                "UnitPrice": format_cents(int(service.rate_cents)),
                "IncomeAccountRef": ref(self.refs.ids["service_income_account"]),
            }
            if isinstance(service.rate_type, str):
                payload["Sku"] = service.rate_type[:100]
            if isinstance(service.description, str):
                payload["Description"] = service.description[:4000]
            reason = self.write(
                "service",
                service_id,
                "Item",
                payload,
                None,
                f"new service item '{name}'",
                sort_key=service_id,
            )
            self.synced_services.add(service_id)
            self.status("service", service_id, SYNCED, reason, "Item")

    def _link_item(self, service_id: str, item, why: str) -> None:
        payload = {"Id": str(item.id)}
        self._append_body("service", service_id, "Item", "link", payload, why, service_id)
        self.synced_services.add(service_id)
        self.status("service", service_id, SYNCED, why, "Item")
