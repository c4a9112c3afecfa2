"""A backfill of the sync, month by month, against the QBO emulator: a generated firm's three months land in
one company month by month and in another in one full run, and both companies end up holding the same; and
the DAG's `period_from`/`period_to` params make a run such a month. `airflow backfill create` with a real
scheduler: tests/test_dag_sync_backfill.py."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from export_builder import write_export
from load_harness import (
    BASE_FIRM_SETTINGS,
    Firm,
    deployment_on_emulator,
    load,
    plan,
    qbo_objects,
    reconcile_now,
    request_count,
    seeded_company,
    session_for,
    stage,
    writes_since,
)
from test_dag_load_e2e import xcom_values

from taxdome_qbo.core.sync_period import SyncPeriod
from taxdome_qbo.demo.generator import generate_export

MONTHS = (
    SyncPeriod(dt.date(2026, 1, 1), dt.date(2026, 1, 31)),
    SyncPeriod(dt.date(2026, 2, 1), dt.date(2026, 2, 28)),
    SyncPeriod(dt.date(2026, 3, 1), dt.date(2026, 3, 31)),
)
# QuickBooks' own bookkeeping, different in two companies holding the same.
_OWN = {"Id", "SyncToken", "MetaData", "domain", "sparse"}


def _name(entity: str, obj: dict) -> str:
    return obj.get("Notes") or obj.get("PrivateNote") or obj.get("DisplayName") or obj.get("Name") or ""


def comparable(objects: dict[str, list[dict]]) -> dict[str, dict[str, object]]:
    """Every object by entity and marker (or name), QuickBooks ids replaced by what they name."""
    names = {(entity, str(obj["Id"])): _name(entity, obj) for entity, rows in objects.items() for obj in rows}
    by_id = {str(obj["Id"]): _name(entity, obj) for entity, rows in objects.items() for obj in rows}

    def plain(value, key=""):
        if isinstance(value, dict):
            return {k: plain(v, k) for k, v in sorted(value.items()) if k not in _OWN}
        if isinstance(value, list):
            return [plain(v, key) for v in value]
        if key in ("value", "TxnId") and isinstance(value, str):
            return by_id.get(value, value)
        return value

    return {
        entity: {names[(entity, str(obj["Id"]))]: plain(obj) for obj in rows}
        for entity, rows in objects.items()
        if entity != "CompanyInfo"  # each emulated company has a name of its own
    }


def differences(exceptions) -> list[tuple]:
    return sorted(
        (
            e.difference_class,
            e.explained,
            e.object_kind,
            e.taxdome_id,
            e.measure,
            e.difference_cents,
            e.detail,
        )
        for e in exceptions
    )


@pytest.fixture
def firm(tmp_path):
    """Six months of a generated firm whose sync date is January 1, 2026: its last three months sync."""
    manifest = generate_export(
        tmp_path / "export", 12, 7, start=dt.date(2025, 10, 1), end=dt.date(2026, 3, 31)
    )
    assert manifest["firm_settings"]["sync_start_date"] == "2026-01-01"
    return Firm(tmp_path / "export", manifest["firm_settings"])


def test_a_backfill_month_by_month_lands_what_one_full_run_lands_and_a_month_again_writes_nothing(
    warehouse_engine, emulator, firm
):
    engine = warehouse_engine
    stage(engine, firm.export)
    full, backfilled = seeded_company(emulator, firm), seeded_company(emulator, firm)
    full_session = session_for(engine, emulator, full)
    plan(engine, full_session, firm, "full")
    assert load(engine, full_session, "full").failed == 0

    _, full_differences, full_totals = reconcile_now(
        engine, emulator, full_session, "recon-full", firm.settings
    )

    session = session_for(engine, emulator, backfilled)
    planned = {}
    for month in MONTHS:
        run_id = f"backfill-{month.first:%Y-%m}"
        planned[month] = plan(engine, session, firm, run_id, period=month).operations
        assert load(engine, session, run_id).failed == 0

    assert all(planned.values()), planned  # every month had something of its own to write
    assert comparable(qbo_objects(emulator, backfilled["realm_id"])) == comparable(
        qbo_objects(emulator, full["realm_id"])
    )
    # The generated firm holds objects QuickBooks refuses on purpose (a customer named as a vendor, ...): both
    # companies' reconciliations find those, and the backfilled one nothing more.
    _, backfilled_differences, backfilled_totals = reconcile_now(
        engine, emulator, session, "recon-backfilled", firm.settings
    )
    assert differences(backfilled_differences) == differences(full_differences)
    assert {key: row.difference_cents for key, row in backfilled_totals.items()} == {
        key: row.difference_cents for key, row in full_totals.items()
    }

    before = request_count(emulator, backfilled["realm_id"])
    again = plan(engine, session, firm, "backfill-2026-02-again", period=MONTHS[1])
    assert again.operations == 0
    load(engine, session, "backfill-2026-02-again")
    # Nor does the next run of the whole firm: the backfill left it nothing to do.
    assert plan(engine, session, firm, "hourly-after").operations == 0
    assert writes_since(emulator, backfilled["realm_id"], before) == []


@pytest.mark.airflow
def test_the_period_params_make_a_run_sync_only_its_days(
    airflow_db, emulator, warehouse_engine_from_connection, tmp_path, monkeypatch
):
    company = deployment_on_emulator(emulator, monkeypatch, tmp_path / "reports")
    sync_dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["taxdome_qbo_sync"]
    export = {"export_dir": str(write_export(tmp_path / "exports" / "2026-01-10")), **BASE_FIRM_SETTINGS}

    half = sync_dag.test(run_conf={**export, "period_from": "2026-01-01"})
    assert {ti.task_id: ti.state for ti in half.get_task_instances()}["plan"] == "failed"

    # The base export: invoices posted on January 5 and 6, paid on the 7th and 8th, a refund on the 9th.
    invoices = sync_dag.test(run_conf={**export, "period_from": "2026-01-01", "period_to": "2026-01-06"})
    rest = sync_dag.test(run_conf={**export, "period_from": "2026-01-07", "period_to": "2026-01-31"})

    assert invoices.state == rest.state == "success"
    assert set(loaded_kinds(invoices.run_id)) == {"account", "service", "invoice"}
    assert set(loaded_kinds(rest.run_id)) == {"payment", "fee", "refund"}
    planned = xcom_values(rest.run_id)["plan"]
    assert planned["period"] == "2026-01-07 to 2026-01-31"
    assert "only what is dated 2026-01-07 to 2026-01-31" in Path(planned["preview"]).read_text()
    before = request_count(emulator, company["realm_id"])
    again = sync_dag.test(run_conf={**export, "period_from": "2026-01-07", "period_to": "2026-01-31"})
    assert {ti.task_id: ti.state for ti in again.get_task_instances()}["load"] == "skipped"
    assert writes_since(emulator, company["realm_id"], before) == []


def loaded_kinds(run_id: str) -> dict[str, dict[str, int]]:
    return xcom_values(run_id)["load"]["outcomes"]
