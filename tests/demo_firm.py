"""The demo firm of `make demo`, synced and reconciled the way the DAGs do it, into an emulator company: what
a browser test (and the README's screenshots) sees in the TaxDome ↔ QuickBooks view.

A generated export with bad rows of every kind is staged (they are quarantined), checked, planned and loaded
into a company seeded with the firm's QuickBooks history, where a vendor bears an account's name, so that
account fails and its invoices and payments stay out. The company is read back, reconciled (the missing
invoices are unexplained differences) and reported. The deployment's settings (the warehouse and QuickBooks
connections, the firm settings, the reports folder, the tokens' key) are returned for an api-server to see
the same things; they are set in this process only while the firm is prepared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa
from airflow.sdk import ObjectStoragePath
from cryptography.fernet import Fernet
from quickbooks.objects import Vendor
from sqlalchemy.engine import Engine

from qbo_emulator.admin import airflow_connection
from qbo_emulator.testing import EmulatorHandle
from taxdome_qbo import dag_tasks
from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.demo.generator import generate_export
from taxdome_qbo.demo.qbo_seed import seed_company
from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.services import pipeline, warehouse

# Enough accounts for every scenario of the generator (a few of each), few enough to load in seconds.
ACCOUNTS = 24
SEED = 42
BAD_ROWS = 0.02
EXPORT_NAME = "2026-10-31T2359-demo"
# Run ids as Airflow makes them: the view puts them in its URLs.
SYNC_RUN_ID = "scheduled__2026-11-01T00:00:00+00:00"
RECON_RUN_ID = "asset_triggered__2026-11-01T00:20:00+00:00"


@dataclass(frozen=True)
class DemoFirm:
    engine: Engine  # the warehouse, as the api-server's `warehouse_default` reaches it
    company: dict  # the emulator company (realm_id, company_name, credentials)
    settings: dict[str, str]  # the deployment's environment: connections, Variable, reports folder
    failing_vendor: Vendor  # the vendor whose name makes an account fail
    sync_run_id: ClassVar[str] = SYNC_RUN_ID
    recon_run_id: ClassVar[str] = RECON_RUN_ID

    def failed_accounts(self) -> list[str]:
        """The TaxDome ids of the accounts that failed in the demo's sync run."""
        status = warehouse.sync_object_status
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(status.c.taxdome_id)
                    .where(
                        status.c.run_id == self.sync_run_id,
                        status.c.taxdome_kind == "account",
                        status.c.status == "failed",
                    )
                    .order_by(status.c.taxdome_id)
                ).scalars()
            )


def deployment_settings(emulator: EmulatorHandle, company: dict, folder: Path, firm_settings: dict) -> dict:
    """The environment of a deployment on `company` with its warehouse, reports and key in `folder`."""
    connection = airflow_connection(emulator.base_url, company)
    # The tokens the sync stores are encrypted with the connection's key, which every process reads.
    connection["extra"]["token_encryption_key"] = Fernet.generate_key().decode()
    return {
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT": json.dumps(connection),
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps(
            {"conn_type": "sqlite", "host": str(folder / "warehouse.db")}
        ),
        "AIRFLOW_VAR_TAXDOME_QBO_SETTINGS": json.dumps(firm_settings),
        "TAXDOME_QBO_REPORTS_DIR": str(folder / "reports"),
    }


def prepare_demo_firm(emulator: EmulatorHandle, folder: Path) -> DemoFirm:
    """The demo firm synced and reconciled in `folder` (export, warehouse, reports) and a new company."""
    export = folder / "landing" / EXPORT_NAME
    manifest = generate_export(export, ACCOUNTS, SEED, bad_rows=BAD_ROWS)
    company = emulator.admin("POST", "companies").json()
    seed_company(emulator.quickbooks(company), export)
    settings = deployment_settings(emulator, company, folder, manifest["firm_settings"])
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        hook = QuickBooksHook()
        engine = hook.warehouse_engine
        firm = dag_tasks.firm_settings()
        pipeline.stage(engine, [ObjectStoragePath(str(export))], SYNC_RUN_ID)
        pipeline.check(engine, SYNC_RUN_ID, export_mode="full", home_currency=firm.home_currency)
        pipeline.plan(
            engine,
            hook.governed_session("planned"),
            firm,
            PlanOptions(export_mode="full", allow_mass_delete=False),
            SYNC_RUN_ID,
            dry_run=False,
            reports_root=dag_tasks.reports_root(),
        )
        pipeline.load(engine, lambda: hook.governed_session("loaded"), SYNC_RUN_ID)
        session = hook.get_session()
        pipeline.read_back(engine, session, full_read=True)
        receipt = pipeline.reconcile(engine, session, firm, RECON_RUN_ID)
        pipeline.report(engine, receipt, dag_tasks.reports_root(), RECON_RUN_ID)
    (vendor,) = Vendor.all(qb=emulator.quickbooks(company))
    return DemoFirm(engine, company, settings, vendor)
