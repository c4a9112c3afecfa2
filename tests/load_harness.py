"""Sync a generated firm into an emulator company through the real services, and compare QBO with the plan."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from airflow.sdk import ObjectStoragePath
from quickbooks.objects import Invoice
from servers import engine_from_spec
from sqlalchemy.engine import Engine

from qbo_emulator.testing import REDIRECT_URI, EmulatorHandle
from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.reconciliation import ReconciliationSettings
from taxdome_qbo.core.rules.base import resolve_setting_ids
from taxdome_qbo.core.settings import resolve_settings
from taxdome_qbo.demo.generator import generate_export
from taxdome_qbo.demo.qbo_seed import seed_company
from taxdome_qbo.hooks.quickbooks import deployment_token_cipher
from taxdome_qbo.services import loading, planning, qbo_readback, reconciliation, warehouse
from taxdome_qbo.services.qbo_client import (
    QboCredentials,
    QboSession,
    fetch_reference,
    open_session,
)
from taxdome_qbo.services.qbo_rate import RateGovernor, RateLimits
from taxdome_qbo.services.qbo_tokens import TokenStore
from taxdome_qbo.services.staging import stage_export

CENT = Decimal("0.01")


@dataclass
class Firm:
    export: Path
    settings: dict


def generated_firm(directory: Path, accounts: int = 12, seed: int = 7) -> Firm:
    manifest = generate_export(directory, accounts, seed)
    return Firm(directory, manifest["firm_settings"])


def credentials(emulator: EmulatorHandle, company: dict) -> QboCredentials:
    return QboCredentials(
        client_id=company["client_id"],
        client_secret=company["client_secret"],
        realm_id=company["realm_id"],
        environment=emulator.base_url,
        redirect_uri=REDIRECT_URI,
        initial_refresh_token=company["refresh_token"],
    )


def token_store(engine: Engine, realm_id: str, **options) -> TokenStore:
    """The company's tokens, encrypted with the key the DAG's hook uses, so that both read what the other wrote."""
    return TokenStore(engine, realm_id, deployment_token_cipher(), **options)


def session_for(engine: Engine, emulator: EmulatorHandle, company: dict, **limits) -> QboSession:
    session = open_session(credentials(emulator, company), token_store(engine, company["realm_id"]))
    session.govern(RateGovernor(engine, company["realm_id"], RateLimits(**limits)))
    session.retry = type(session.retry)(backoff_seconds=0.05, backoff_cap_seconds=0.5)
    return session


def seeded_company(emulator: EmulatorHandle, firm: Firm) -> dict:
    company = emulator.admin("POST", "companies").json()
    seed_company(emulator.quickbooks(company), firm.export)
    return company


def stage(engine: Engine, export: Path) -> None:
    stage_export(engine, ObjectStoragePath(str(export)))


def plan(engine: Engine, session: QboSession, firm: Firm, run_id: str, **options) -> planning.PlanReceipt:
    settings = resolve_settings(firm.settings, None)
    return planning.plan_sync(
        engine, fetch_reference(session), settings, PlanOptions(**options), run_id, dry_run=False
    )


def load(engine: Engine, session: QboSession, run_id: str, **options):
    return loading.load_plan(engine, session, run_id, options=loading.LoadOptions(**options))


def writes_since(emulator: EmulatorHandle, realm_id: str, before: int) -> list[dict]:
    served = [r for r in emulator.admin("GET", "requests").json()["requests"] if r["realm_id"] == realm_id]
    return [r for r in served[before:] if r["operation"] in ("create", "update", "delete", "void", "batch")]


def request_count(emulator: EmulatorHandle, realm_id: str) -> int:
    return sum(1 for r in emulator.admin("GET", "requests").json()["requests"] if r["realm_id"] == realm_id)


def qbo_objects(emulator: EmulatorHandle, realm_id: str) -> dict[str, list[dict]]:
    return emulator.admin("GET", f"state/{realm_id}").json()["entities"]


def marker_of(entity: str, obj: dict) -> str | None:
    return obj.get("Notes") if entity == "Customer" else obj.get("PrivateNote")


def assert_qbo_matches_sync_state(engine: Engine, emulator: EmulatorHandle, realm_id: str) -> None:
    """Every synced object once in QBO, with its marker; amounts, links and balances as the plans said."""
    objects = qbo_objects(emulator, realm_id)
    by_id = {(entity, str(obj["Id"])): obj for entity, rows in objects.items() for obj in rows}
    markers = Counter(
        marker
        for entity, rows in objects.items()
        for obj in rows
        if (marker := marker_of(entity, obj)) and marker.startswith("taxdome:")
    )
    duplicated = {marker: n for marker, n in markers.items() if n > 1}
    assert not duplicated, f"objects created more than once: {duplicated}"
    customer_names = Counter(c["DisplayName"] for c in objects.get("Customer", []))
    assert max(customer_names.values()) == 1

    state = warehouse.qbo_sync_state
    plan, runs = warehouse.sync_plan, warehouse.sync_plan_runs
    with engine.connect() as conn:
        rows = conn.execute(sa.select(state).where(state.c.realm_id == realm_id)).all()
        last_payloads = {
            (r.taxdome_kind, r.taxdome_id): json.loads(r.payload)
            for r in conn.execute(
                sa.select(plan.c.taxdome_kind, plan.c.taxdome_id, plan.c.payload)
                .join(runs, runs.c.run_id == plan.c.run_id)
                .where(plan.c.realm_id == realm_id, plan.c.action.in_(["create", "update"]))
                .order_by(runs.c.planned_at, plan.c.seq)
            )
        }
    assert not [r for r in rows if r.pending_action is not None], "writes left with an unknown outcome"
    qbo_id = {(r.taxdome_kind, r.taxdome_id): r.qbo_id for r in rows if r.status == "synced"}
    applied: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        key = (row.taxdome_kind, row.taxdome_id)
        if row.status == "deleted":
            assert (row.qbo_entity, row.qbo_id) not in by_id, f"{key} should be deleted from QBO"
            continue
        if row.status != "synced":
            continue
        obj = by_id.get((row.qbo_entity, row.qbo_id))
        assert obj is not None, f"{key} is synced but QBO has no {row.qbo_entity} {row.qbo_id}"
        wanted = last_payloads.get(key)
        if wanted is None:
            continue  # linked to an object that existed before
        marker = marker_of(row.qbo_entity, obj)
        assert marker == marker_of(row.qbo_entity, wanted), key
        if "TotalAmt" in wanted:
            assert Decimal(str(obj["TotalAmt"])).quantize(CENT) == Decimal(wanted["TotalAmt"]), key
        if row.qbo_entity == "Invoice":
            lines = sum(Decimal(line["Amount"]) for line in wanted["Line"])
            tax = Decimal(wanted.get("TxnTaxDetail", {}).get("TotalTax", "0"))
            assert Decimal(str(obj["TotalAmt"])).quantize(CENT) == lines + tax, key
        if row.qbo_entity == "Payment":
            if "DepositToAccountRef" in wanted:
                assert obj["DepositToAccountRef"]["value"] == wanted["DepositToAccountRef"]["value"], key
            sent = [(line["LinkedTxn"][0]["TxnId"], Decimal(line["Amount"])) for line in wanted["Line"]]
            held = [
                (line["LinkedTxn"][0]["TxnId"], Decimal(str(line["Amount"])).quantize(CENT))
                for line in obj["Line"]
            ]
            resolved = [(qbo_id[tuple(target[1:].split(":", 1))], amount) for target, amount in sent]
            assert sorted(held) == sorted(resolved), key
            for line in obj["Line"]:
                if line["LinkedTxn"][0]["TxnType"] == "Invoice":
                    applied[line["LinkedTxn"][0]["TxnId"]] += Decimal(str(line["Amount"]))
    for invoice in objects.get("Invoice", []):
        expected = Decimal(str(invoice["TotalAmt"])) - applied[str(invoice["Id"])]
        assert Decimal(str(invoice["Balance"])).quantize(CENT) == expected.quantize(CENT), invoice["Id"]


def load_in_this_process(
    spec: dict, base_url: str, company: dict, run_id: str, limits: dict, batch_size: int
) -> None:
    """A loader run in a child process (the test kills it midway)."""
    emulator = EmulatorHandle(base_url, process=None, db_path=None)
    engine = engine_from_spec(spec)
    session = session_for(engine, emulator, company, **limits)
    load(engine, session, run_id, batch_size=batch_size)


def assert_everything_planned_is_done(engine: Engine, realm_id: str, run_id: str) -> None:
    """Each operation of the run's plan is done: created/updated/linked objects synced, deletions deleted."""
    plan, state = warehouse.sync_plan, warehouse.qbo_sync_state
    with engine.connect() as conn:
        outcomes = conn.execute(
            sa.select(
                plan.c.taxdome_kind,
                plan.c.taxdome_id,
                plan.c.action,
                state.c.status,
                state.c.payload_hash,
                plan.c.payload_hash.label("planned_hash"),
            )
            .select_from(
                plan.outerjoin(
                    state,
                    sa.and_(
                        state.c.realm_id == plan.c.realm_id,
                        state.c.taxdome_kind == plan.c.taxdome_kind,
                        state.c.taxdome_id == plan.c.taxdome_id,
                    ),
                )
            )
            .where(plan.c.run_id == run_id)
        ).all()
    missing = [
        (row.taxdome_kind, row.taxdome_id, row.action, row.status)
        for row in outcomes
        if row.status != ("deleted" if row.action == "delete" else "synced")
    ]
    assert not missing, f"planned but not done: {missing[:5]} ({len(missing)} in all)"


BASE_FIRM_SETTINGS = {"sync_start_date": "2026-01-01", "integration_date": "2025-07-01"}


def company_for_base_export(emulator: EmulatorHandle) -> dict:
    """A company with the items the base export (tests/export_builder.py) copies or needs."""
    from quickbooks.objects import Account, Item, Ref

    company = emulator.admin("POST", "companies").json()
    qb = emulator.quickbooks(company)
    income = Account.filter(Name="Services", qb=qb)[0]
    for name in ("Bookkeeping", "Sales Tax"):
        item = Item()
        item.Name, item.Type = name, "Service"
        item.IncomeAccountRef = Ref()
        item.IncomeAccountRef.value = income.Id
        item.save(qb=qb)
    return company


def objects_marked(emulator: EmulatorHandle, realm_id: str, marker: str) -> list[tuple[str, dict]]:
    return [
        (entity, obj)
        for entity, rows in qbo_objects(emulator, realm_id).items()
        for obj in rows
        if marker_of(entity, obj) == marker
    ]


def set_invoice_amount(emulator: EmulatorHandle, company: dict, marker: str, amount: str) -> None:
    """Edit in QuickBooks, as someone would by hand, the amount of the invoice the sync marked `marker`."""
    qb = emulator.quickbooks(company)
    [(_, found)] = objects_marked(emulator, company["realm_id"], marker)
    invoice = Invoice.get(found["Id"], qb=qb)
    invoice.Line[0].Amount = invoice.Line[0].SalesItemLineDetail.UnitPrice = Decimal(amount)
    invoice.save(qb=qb)


def reconcile_now(engine, emulator, session, recon_run_id: str, firm_settings: dict = BASE_FIRM_SETTINGS):
    """Read the company back and reconcile it; the receipt, the exceptions and the summary by key."""
    qbo_readback.read_back(engine, session, incremental=False)
    reference = fetch_reference(session)
    settings = resolve_settings(firm_settings, None)
    ids = resolve_setting_ids(settings, reference).ids
    options = ReconciliationSettings(
        period_from=settings.sync_start_date,
        tax_item_id=ids["tax_item"],
        fee_expense_account_id=ids["fee_expense_account"],
        deposit_account_id=ids["deposit_to_account"],
        app_url=session.app_url,
    )
    receipt = reconciliation.reconcile_company(engine, session.realm_id, recon_run_id, options)
    with engine.connect() as conn:
        table = warehouse.rpt_reconciliation_exceptions
        exceptions = conn.execute(sa.select(table).where(table.c.recon_run_id == recon_run_id)).all()
        summary_table = warehouse.rpt_reconciliation_summary
        summary = conn.execute(
            sa.select(summary_table).where(summary_table.c.recon_run_id == recon_run_id)
        ).all()
    return receipt, exceptions, {(r.measure, r.period, r.dimension): r for r in summary}


def deployment_on_emulator(emulator: EmulatorHandle, monkeypatch, reports_dir) -> dict:
    """A company for the base export, made the deployment's: `quickbooks_default` points at it, the firm
    settings are the base export's, reports go to `reports_dir`. Returns the company."""
    from qbo_emulator.admin import airflow_connection

    company = company_for_base_export(emulator)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(airflow_connection(emulator.base_url, company))
    )
    monkeypatch.setenv("AIRFLOW_VAR_TAXDOME_QBO_SETTINGS", json.dumps(BASE_FIRM_SETTINGS))
    monkeypatch.setenv("TAXDOME_QBO_REPORTS_DIR", str(reports_dir))
    return company
