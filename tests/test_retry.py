"""`python -m taxdome_qbo retry`: re-plan and load failed objects now, with what waited for them."""

from __future__ import annotations

import pytest
from export_builder import write_export
from load_harness import (
    assert_qbo_matches_sync_state,
    deployment_on_emulator,
    objects_marked,
    stage,
)
from quickbooks.objects import Vendor

from taxdome_qbo.cli import main as cli_main

pytestmark = pytest.mark.airflow


def test_retry_loads_a_failed_account_and_what_waited_for_it(
    emulator, warehouse_engine_from_connection, tmp_path, monkeypatch, capsys
):
    engine = warehouse_engine_from_connection
    company = deployment_on_emulator(emulator, monkeypatch, tmp_path / "reports")
    stage(engine, write_export(tmp_path / "export"))
    vendor = Vendor()
    vendor.DisplayName = "Zoë Müller"  # the name of account A2: QBO refuses a customer of that name
    vendor.save(qb=emulator.quickbooks(company))

    assert cli_main(["retry", "--all"]) == 1
    assert "account: created 1" in capsys.readouterr().out
    assert cli_main(["issues"]) == 1
    listing = capsys.readouterr().out
    assert "A2" in listing and "belongs to a QuickBooks vendor" in listing

    vendor.DisplayName = "Zoë Müller (supplier)"
    vendor.save(qb=emulator.quickbooks(company))
    assert cli_main(["retry", "--object", "account:A2"]) == 0
    out = capsys.readouterr().out
    assert "account: created 1" in out and "invoice: created 1" in out and "payment: created 1" in out
    realm = company["realm_id"]
    assert len(objects_marked(emulator, realm, "taxdome:account:A2")) == 1
    assert len(objects_marked(emulator, realm, "taxdome:invoice:I2")) == 1
    assert_qbo_matches_sync_state(engine, emulator, realm)
    assert cli_main(["issues"]) == 0
