"""`python -m taxdome_qbo repair-duplicates`: copies of TaxDome objects made by an earlier version or by hand are
listed, then removed as QBO allows, once (issue 10, "Repair"), against the emulator on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from export_builder import write_export
from load_harness import (
    BASE_FIRM_SETTINGS,
    Firm,
    company_for_base_export,
    load,
    objects_marked,
    plan,
    qbo_objects,
    reconcile_now,
    request_count,
    session_for,
    stage,
    writes_since,
)

from qbo_emulator.admin import airflow_connection
from taxdome_qbo.cli import main as cli_main
from taxdome_qbo.services import qbo_repair, warehouse

pytestmark = pytest.mark.airflow

_SYSTEM = ("Id", "SyncToken", "MetaData", "domain", "sparse")


@pytest.fixture
def synced(warehouse_engine_from_connection, emulator, tmp_path, monkeypatch):
    """The base export synced into a company of its own, the CLI pointed at both."""
    engine = warehouse_engine_from_connection
    company = company_for_base_export(emulator)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(airflow_connection(emulator.base_url, company))
    )
    export = write_export(tmp_path / "export")
    stage(engine, export)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), "run-1")
    load(engine, session, "run-1")
    return engine, company, session, export


def _copy_by_hand(emulator, company: dict, entity: str, marker: str, **changes) -> str:
    """What a person (or an earlier version racing itself) leaves: another object with the same marker."""
    original = next(
        obj for found, obj in objects_marked(emulator, company["realm_id"], marker) if found == entity
    )
    body = {name: value for name, value in original.items() if name not in _SYSTEM} | changes
    created = emulator.quickbooks(company).create_object(entity, json.dumps(body))
    return str(created[entity]["Id"])


def _active_copies(emulator, realm_id: str, marker: str) -> list[str]:
    return [
        str(obj["Id"])
        for _, obj in objects_marked(emulator, realm_id, marker)
        if obj.get("Active", True) is not False
    ]


def _repair_requests(engine) -> list[sa.Row]:
    requests = warehouse.qbo_requests
    with engine.connect() as conn:
        return conn.execute(sa.select(requests).where(requests.c.run_id.like("repair__%"))).all()


def test_duplicates_are_listed_then_their_later_copies_removed_once(synced, emulator, capsys):
    engine, company, session, _ = synced
    realm = company["realm_id"]
    kept = {marker: _active_copies(emulator, realm, marker)[0] for marker in _MARKERS}
    copies = {
        "taxdome:account:A1": _copy_by_hand(
            emulator, company, "Customer", "taxdome:account:A1", DisplayName="O'Brien & Sons (copy)"
        ),
        "taxdome:invoice:I2": _copy_by_hand(
            emulator, company, "Invoice", "taxdome:invoice:I2", DocNumber="INV-0002-B"
        ),
        # Unapplied: the invoice it paid is paid already.
        "taxdome:payment:P1": _copy_by_hand(emulator, company, "Payment", "taxdome:payment:P1", Line=[]),
        "taxdome:fee:P1": _copy_by_hand(emulator, company, "Purchase", "taxdome:fee:P1"),
        "taxdome:refund:R1": _copy_by_hand(
            emulator, company, "RefundReceipt", "taxdome:refund:R1", DocNumber="R1-B"
        ),
    }
    _, exceptions, _ = reconcile_now(engine, emulator, session, "recon-with-copies")
    assert {e.taxdome_id for e in exceptions if e.difference_class == "duplicate_in_qbo"} >= {
        "I2",
        "P1",
        "R1",
    }
    before = qbo_objects(emulator, realm)

    assert cli_main(["repair-duplicates"]) == 1
    listing = capsys.readouterr().out
    assert "5 TaxDome object(s) held more than once" in listing and "dry run: nothing changed" in listing
    for marker, copy in copies.items():
        line = next(row for row in listing.splitlines() if marker.removeprefix("taxdome:") + " " in row + " ")
        assert f"{kept[marker]} (the sync state's)" in line and copy in line, line
    assert qbo_objects(emulator, realm) == before

    assert cli_main(["repair-duplicates", "--apply"]) == 0
    applied = capsys.readouterr().out
    assert applied.count("deleted") == 4 and "made inactive" in applied
    for marker in copies:
        assert _active_copies(emulator, realm, marker) == [kept[marker]], marker
    audited = _repair_requests(engine)
    assert sorted((r.entity, r.operation, r.qbo_id, r.http_status) for r in audited) == sorted(
        [
            ("Customer", "update", copies["taxdome:account:A1"], 200),
            ("Invoice", "delete", copies["taxdome:invoice:I2"], 200),
            ("Payment", "delete", copies["taxdome:payment:P1"], 200),
            ("Purchase", "delete", copies["taxdome:fee:P1"], 200),
            ("RefundReceipt", "delete", copies["taxdome:refund:R1"], 200),
        ]
    )

    assert cli_main(["repair-duplicates", "--apply"]) == 0
    assert "nothing to repair" in capsys.readouterr().out
    assert len(_repair_requests(engine)) == len(audited)
    _, exceptions, _ = reconcile_now(engine, emulator, session, "recon-after-repair")
    assert not [e for e in exceptions if e.difference_class == "duplicate_in_qbo"]


_MARKERS = (
    "taxdome:account:A1",
    "taxdome:invoice:I2",
    "taxdome:payment:P1",
    "taxdome:fee:P1",
    "taxdome:refund:R1",
)


def test_copies_the_sync_state_does_not_name_keep_the_oldest_which_the_next_sync_updates(synced, emulator):
    """What racing loads left: a payment marked failed in the sync state while QBO holds two copies of it."""
    engine, company, session, export = synced
    realm = company["realm_id"]
    (original,) = _active_copies(emulator, realm, "taxdome:payment:P2")
    later = _copy_by_hand(emulator, company, "Payment", "taxdome:payment:P2", Line=[])
    state = warehouse.qbo_sync_state
    with engine.begin() as conn:
        conn.execute(
            state.update()
            .where(state.c.realm_id == realm, state.c.taxdome_kind == "payment", state.c.taxdome_id == "P2")
            .values(status="failed", qbo_id=None, sync_token=None, payload_hash=None)
        )

    report = qbo_repair.repair_duplicates(engine, session, apply=True)

    (duplicate,) = report.duplicates
    assert (duplicate.kept.qbo_id, duplicate.kept_because) == (original, "the oldest")
    assert [(r.qbo_id, r.outcome) for r in report.removals] == [(later, "deleted")]
    assert _active_copies(emulator, realm, "taxdome:payment:P2") == [original]
    with engine.connect() as conn:
        adopted = conn.execute(
            sa.select(state).where(
                state.c.realm_id == realm, state.c.taxdome_kind == "payment", state.c.taxdome_id == "P2"
            )
        ).one()
    assert (adopted.status, adopted.qbo_id) == ("synced", original)

    before = request_count(emulator, realm)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), "run-2")
    load(engine, session, "run-2")
    writes = writes_since(emulator, realm, before)
    assert writes and not [w for w in writes if w["operation"] == "create"], writes
    assert _active_copies(emulator, realm, "taxdome:payment:P2") == [original]
