"""Disconnect stops writes; a switch to another company syncs everything there, and coming back re-links
what the first company already holds instead of duplicating it (TaxDome duplicates here; we do not)."""

from __future__ import annotations

import json

import pytest
from export_builder import write_export
from load_harness import (
    BASE_FIRM_SETTINGS,
    assert_qbo_matches_sync_state,
    company_for_base_export,
    qbo_objects,
    request_count,
    stage,
    writes_since,
)
from test_qbo_connection import Owner, set_quickbooks_connection

from taxdome_qbo.cli import main as cli_main

pytestmark = pytest.mark.airflow


def _synced_markers(emulator, realm_id: str) -> list[str]:
    return sorted(
        obj.get("Notes") or obj.get("PrivateNote") or ""
        for rows in qbo_objects(emulator, realm_id).values()
        for obj in rows
        if (obj.get("Notes") or obj.get("PrivateNote") or "").startswith("taxdome:")
    )


def test_switching_companies_and_back_never_duplicates(
    emulator, warehouse_engine_from_connection, tmp_path, monkeypatch, capsys
):
    engine = warehouse_engine_from_connection
    first, second = company_for_base_export(emulator), company_for_base_export(emulator)
    set_quickbooks_connection(monkeypatch, first, emulator.base_url)
    monkeypatch.setenv("AIRFLOW_VAR_TAXDOME_QBO_SETTINGS", json.dumps(BASE_FIRM_SETTINGS))
    monkeypatch.setenv("TAXDOME_QBO_REPORTS_DIR", str(tmp_path / "reports"))
    stage(engine, write_export(tmp_path / "export"))
    owner = Owner(capsys, monkeypatch)

    assert owner.run("connect", "--realm", first["realm_id"])[0] == 0
    assert cli_main(["retry", "--all"]) == 0
    in_first = _synced_markers(emulator, first["realm_id"])
    assert len(in_first) == 8  # 2 customers, 2 invoices, 2 payments, a fee, a refund (items carry no marker)
    assert_qbo_matches_sync_state(engine, emulator, first["realm_id"])

    assert owner.run("disconnect")[0] == 0
    before = {realm: request_count(emulator, realm) for realm in (first["realm_id"], second["realm_id"])}
    assert cli_main(["retry", "--all"]) == 1
    assert "disconnected" in capsys.readouterr().err
    for realm, count in before.items():
        assert writes_since(emulator, realm, count) == []

    assert owner.run("reconnect", "--realm", second["realm_id"], "--confirm", "ACCEPT")[0] == 0
    assert cli_main(["retry", "--all"]) == 0
    assert len(_synced_markers(emulator, second["realm_id"])) == len(in_first)
    assert_qbo_matches_sync_state(engine, emulator, second["realm_id"])

    back = request_count(emulator, first["realm_id"])
    assert owner.run("reconnect", "--realm", first["realm_id"], "--confirm", "ACCEPT")[0] == 0
    assert cli_main(["retry", "--all"]) == 0
    assert "planned 0 operation(s)" in capsys.readouterr().out
    assert writes_since(emulator, first["realm_id"], back) == []
    assert _synced_markers(emulator, first["realm_id"]) == in_first
