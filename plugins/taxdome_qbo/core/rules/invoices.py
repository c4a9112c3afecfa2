"""Invoices become QuickBooks invoices with the same lines (R6), sales tax as QuickBooks computes it or as a
line of the tax item (R14)."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import pandas as pd

from taxdome_qbo.core.kinds import READ_COLUMNS
from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.plan_memory import invoice_chunks, rows
from taxdome_qbo.core.rules.base import RuleBook, ref
from taxdome_qbo.core.vocabulary import (
    FAILED,
    MAX_DOC_NUMBER,
    SKIPPED,
    SYNCED,
    WAITING_INVOICE_STATUSES,
    date_text,
    marker,
    symbolic,
)


@functools.cache
def _quantity(text: str) -> tuple[Decimal, str]:
    """A staged quantity ('2.2500' or Decimal) as an exact number and as QBO text ('2.25'); few distinct values."""
    exact = Decimal(text)
    return exact, str(exact.normalize())


def _exact_unit_price(rate_cents, quantity, amount_cents: int) -> tuple[str, str] | None:
    """Qty and UnitPrice only when their product is the amount to the cent: QBO rejects a mismatch (6070)."""
    if rate_cents is None or quantity is None:
        return None
    exact, text = _quantity(str(quantity))
    if int(rate_cents) * exact != amount_cents:
        return None
    return text, format_cents(int(rate_cents))


_TAXABLE, _NOT_TAXABLE = ref("TAX"), ref("NON")  # shared by every line's payload, never changed
# What a line's payload reads, in the order of the tuples `invoice_chunks` gives: every column the plan reads
# of a line but its key.
_LINE_COLUMNS = tuple(c for c in READ_COLUMNS["invoice_lines"] if c not in ("invoice_id", "line_no"))


class InvoiceRules(RuleBook):
    """R6, R14: the `invoice` kind."""

    def _plan_invoices(self) -> None:
        services = {s.service_id: s for s in self.staged.services.itertuples(index=False)}
        # One ItemRef per synced service, shared by its lines' payloads (read-only, serialized as often).
        self.service_refs = {
            service_id: ref(symbolic("service", service_id)) for service_id in self.synced_services
        }
        chunks = invoice_chunks(self.staged.invoices, self.staged.invoice_lines, _LINE_COLUMNS)
        for chunk, lines, bounds in chunks:
            self._plan_invoice_chunk(chunk, lines, bounds, services)

    def _plan_invoice_chunk(
        self, invoices: pd.DataFrame, lines: list[tuple], bounds: list[int], services: dict
    ) -> None:
        """`lines` are the chunk's, as `invoice_chunks` gives them: the i-th invoice's are lines[bounds[i]:bounds[i + 1]]."""
        for position, invoice in enumerate(rows(invoices)):
            invoice_id = invoice.invoice_id
            if not self._account_gate(
                "invoice", invoice_id, invoice.account_id, invoice.posted_date, "posted"
            ):
                continue
            if invoice.status in WAITING_INVOICE_STATUSES:
                self.status("invoice", invoice_id, SKIPPED, f"{invoice.status}: waits until it is issued")
                continue
            if len(invoice.invoice_number) > MAX_DOC_NUMBER:
                self.status(
                    "invoice",
                    invoice_id,
                    FAILED,
                    f"invoice number {invoice.invoice_number} is longer than the {MAX_DOC_NUMBER} characters QuickBooks allows",
                )
                continue
            payload_lines, problem = self._invoice_lines(
                lines[bounds[position] : bounds[position + 1]], services, int(invoice.tax_amount_cents)
            )
            if problem:
                self.status("invoice", invoice_id, FAILED, problem)
                continue
            day = date_text(invoice.posted_date)
            total = int(invoice.total_cents)
            payload: dict[str, Any] = {
                "DocNumber": invoice.invoice_number,
                "TxnDate": day,
                "CustomerRef": ref(symbolic("account", invoice.account_id)),
                "Line": payload_lines,
                "PrivateNote": marker("invoice", invoice_id),
            }
            if (due := date_text(invoice.due_date)) is not None:
                payload["DueDate"] = due
            if self.automated_tax:
                payload["TxnTaxDetail"] = {"TotalTax": format_cents(int(invoice.tax_amount_cents))}
            reason = self.write(
                "invoice",
                invoice_id,
                "Invoice",
                payload,
                total,
                f"invoice {invoice.invoice_number} of {format_cents(total)}",
                sort_key=f"{day}|{invoice_id}",
            )
            self.synced_invoices.add(invoice_id)
            self.status("invoice", invoice_id, SYNCED, reason, "Invoice")

    def _invoice_lines(
        self, lines: list[tuple], services: dict, tax_cents: int
    ) -> tuple[list[dict], str | None]:
        """One SalesItemLine per TaxDome line with the same amount; the tax as its own line unless QBO computes it."""
        built = []
        for service_id, service_name, description, rate_cents, quantity, amount_cents, taxable in lines:
            service_id = service_id if isinstance(service_id, str) else None
            description_parts = []
            item = self.service_refs.get(service_id)
            if item is None:
                if "default_sales_item" in self.refs.missing:
                    return [], self.refs.missing["default_sales_item"]
                item = ref(self.refs.ids["default_sales_item"])
                name = service_name if isinstance(service_name, str) else None
                if name is None and service_id in services:
                    name = services[service_id].name
                if name:
                    description_parts.append(name)
            if isinstance(description, str):
                description_parts.append(description)
            detail: dict[str, Any] = {"ItemRef": item}
            amount = int(amount_cents)
            exact = _exact_unit_price(rate_cents, quantity, amount)
            if exact is not None:
                detail["Qty"], detail["UnitPrice"] = exact
            if self.automated_tax:
                detail["TaxCodeRef"] = _TAXABLE if bool(taxable) else _NOT_TAXABLE
            entry: dict[str, Any] = {
                "DetailType": "SalesItemLineDetail",
                "Amount": format_cents(amount),
                "SalesItemLineDetail": detail,
            }
            if description_parts:
                entry["Description"] = " - ".join(description_parts)[:4000]
            built.append(entry)
        if tax_cents and not self.automated_tax:
            if "tax_item" in self.refs.missing:
                return [], self.refs.missing["tax_item"]
            built.append(
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": format_cents(tax_cents),
                    "Description": "Sales tax",
                    "SalesItemLineDetail": {"ItemRef": ref(self.refs.ids["tax_item"])},
                }
            )
        return built, None
