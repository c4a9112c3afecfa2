"""Sync issues (R19): accounts and payments synced or unsynced by hand, honoured by the next plan, and the
`issues` / `status` listings of what the latest run left (R16 links), driven through the command line."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from export_builder import replace_row, with_rows, write_export
from planning_builder import no_state, staged_firm

from taxdome_qbo.cli import main as cli_main
from taxdome_qbo.core.planner import PlanOptions, build_plan
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.demo.planning import demo_company
from taxdome_qbo.services import planning, run_counts, staging, sync_issues, warehouse

COMPANY = demo_company(items=[("40", "Bookkeeping", True)])
ACCOUNT_A3 = "A3,New Client,Individual,new@example.com,2026-02-01T00:00:00Z,,false,auto,"
MISSING_MATCH = "A1,O'Brien & Sons,Company,,,,false,auto,OBrien Holdings"  # manual match to no customer
INVOICE_LINK = "https://app.qbo.intuit.com/app/invoice?txnId=1002"


@pytest.fixture
def engine(warehouse_engine_from_connection):
    """The warehouse as the command line sees it (the connection in the environment), and an engine on it."""
    return warehouse_engine_from_connection


def stage(engine, tmp_path, **changes) -> None:
    staging.stage_export(engine, write_export(tmp_path / f"export{len(list(tmp_path.iterdir()))}", **changes))


def plan(engine, run_id: str, options: PlanOptions | None = None) -> None:
    planning.plan_sync(engine, COMPANY, FirmSettings(), options or PlanOptions(), run_id, dry_run=True)


def verdicts(engine, run_id: str) -> dict[tuple[str, str], tuple[str, str]]:
    table = warehouse.sync_object_status
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.run_id == run_id)).all()
    return {(r.taxdome_kind, r.taxdome_id): (r.status, r.reason) for r in rows}


def operations(engine, run_id: str) -> dict[tuple[str, str], tuple[str, dict]]:
    table = warehouse.sync_plan
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.run_id == run_id)).all()
    return {(r.taxdome_kind, r.taxdome_id): (r.action, json.loads(r.payload)) for r in rows}


def overrides(engine) -> list[tuple]:
    table = warehouse.sync_overrides
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.taxdome_kind, table.c.taxdome_id)).all()
    return [(r.taxdome_kind, r.taxdome_id, bool(r.sync), r.set_at) for r in rows]


def load_succeeded(engine, run_id: str) -> None:
    """What a successful load of the run leaves in the sync state: every write done, QBO ids handed out."""
    table = warehouse.sync_plan
    with engine.begin() as conn:
        planned = conn.execute(sa.select(table).where(table.c.run_id == run_id)).all()
        conn.execute(
            warehouse.qbo_sync_state.insert(),
            [
                {
                    "realm_id": COMPANY.realm_id,
                    "taxdome_kind": op.taxdome_kind,
                    "taxdome_id": op.taxdome_id,
                    "qbo_entity": op.qbo_entity,
                    "qbo_id": str(1000 + number),
                    "sync_token": "0",
                    "payload_hash": op.payload_hash,
                    "status": "synced",
                    "updated_at": datetime.now(UTC),
                }
                for number, op in enumerate(planned)
            ],
        )


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli_main(list(argv))
    return code, capsys.readouterr().out


# -- deciding by hand ------------------------------------------------------------------------------------
def test_decisions_by_hand_are_upserted_idempotently_and_cleared(engine, tmp_path, capsys):
    stage(engine, tmp_path)

    code, out = run_cli(capsys, "account", "unsync", "A1")
    assert code == 0
    assert out.startswith("account A1: set to unsync by hand\n")
    assert "account A1 (O'Brien & Sons) is set to Do not sync" in out and "warning" not in out
    first = overrides(engine)
    assert [row[:3] for row in first] == [("account", "A1", False)]

    code, out = run_cli(capsys, "account", "unsync", "A1")
    assert code == 0 and "already set to unsync by hand" in out and "nothing changed" in out
    assert overrides(engine) == first  # not even the time it was set moves

    code, out = run_cli(capsys, "account", "sync", "A1")
    assert "account A1: set to sync by hand (was unsync)" in out
    assert "will sync at the next sync" in out and "qbo_sync: auto" in out
    assert [row[:3] for row in overrides(engine)] == [("account", "A1", True)]

    code, out = run_cli(capsys, "account", "clear", "A1")
    assert code == 0 and "cleared the decision to sync it" in out
    assert "follows the export again (qbo_sync: auto)" in out
    assert overrides(engine) == []
    assert "no decision by hand to clear" in run_cli(capsys, "account", "clear", "A1")[1]

    code, out = run_cli(capsys, "payment", "unsync", "P404")
    assert code == 0
    assert "warning: no payment P404 in the staged export" in out
    assert [row[:3] for row in overrides(engine)] == [("payment", "P404", False)]


def test_an_unsynced_account_is_do_not_sync_and_a_synced_one_is_forced_into_scope(engine, tmp_path, capsys):
    stage(engine, tmp_path, accounts_csv=with_rows("accounts.csv", ACCOUNT_A3))
    plan(engine, "before")
    assert verdicts(engine, "before")[("account", "A3")] == ("skipped", "no invoice or payment yet")

    run_cli(capsys, "account", "unsync", "A1")
    run_cli(capsys, "account", "sync", "A3")
    plan(engine, "overridden")

    found = verdicts(engine, "overridden")
    assert found[("account", "A1")] == ("do_not_sync", sync_issues.UNSYNCED_BY_HAND)
    for kind, taxdome_id in (("invoice", "I1"), ("payment", "P1"), ("refund", "R1")):
        assert found[(kind, taxdome_id)] == ("do_not_sync", "its account A1 is set to Do not sync")
    assert found[("account", "A3")][0] == "synced"
    planned = operations(engine, "overridden")
    assert planned[("account", "A3")][0] == "create"
    assert not {key for key in planned if key[1] in {"A1", "I1", "P1", "R1"}}

    run_cli(capsys, "account", "clear", "A1")
    run_cli(capsys, "account", "clear", "A3")
    plan(engine, "cleared")
    assert verdicts(engine, "cleared")[("account", "A1")][0] == "synced"
    assert verdicts(engine, "cleared")[("account", "A3")][0] == "skipped"


def test_a_payment_synced_by_hand_syncs_although_the_export_says_not_to(engine, tmp_path, capsys):
    opted_out = "P2,A2,2026-01-08,100.00,cash,none,,0,USD,false,,2026-01-08T09:00:00Z"
    stage(engine, tmp_path, payments_csv=replace_row("payments.csv", "P2,", opted_out))
    plan(engine, "exported")
    assert verdicts(engine, "exported")[("payment", "P2")] == (
        "skipped",
        "this payment is set not to sync to QuickBooks",
    )

    out = run_cli(capsys, "payment", "sync", "P2")[1]
    assert "payment P2 (cash payment of 100.00 by account A2) will sync at the next sync" in out
    assert "(sync_to_qbo: false)" in out
    plan(engine, "overridden")
    assert verdicts(engine, "overridden")[("payment", "P2")][0] == "synced"
    assert operations(engine, "overridden")[("payment", "P2")][0] == "create"


def test_unsyncing_a_synced_payment_deletes_it_its_fee_and_its_refunds(engine, tmp_path, capsys):
    stage(engine, tmp_path)
    plan(engine, "first")
    load_succeeded(engine, "first")

    code, out = run_cli(capsys, "payment", "unsync", "P1")
    assert code == 0
    assert "payment P1 (card payment of 464.69 by account A1) is in QuickBooks (Payment " in out
    assert (
        ", company 9130): it, its processing fee and its refund will be deleted from QuickBooks at the next sync."
        in out
    )
    assert "refuses it as a mass deletion unless run with allow_mass_delete=true" in out  # 3 of 10 synced

    plan(engine, "unsynced", PlanOptions(allow_mass_delete=True))
    planned = operations(engine, "unsynced")
    assert {key: action for key, (action, _) in planned.items()} == {
        ("refund", "R1"): "delete",
        ("fee", "P1"): "delete",
        ("payment", "P1"): "delete",
    }
    with engine.connect() as conn:
        state = warehouse.qbo_sync_state
        known = dict(
            conn.execute(
                sa.select(state.c.taxdome_kind, state.c.qbo_id).where(state.c.taxdome_id.in_(["P1", "R1"]))
            ).all()
        )
    assert {kind: body["Id"] for (kind, _), (_, body) in planned.items()} == known
    assert verdicts(engine, "unsynced")[("payment", "P1")] == (
        "skipped",
        "this payment is set not to sync to QuickBooks",
    )

    code, out = run_cli(capsys, "account", "unsync", "A2")
    assert "Its customer (Customer " in out and "its invoices stay in QuickBooks" in out
    assert "Its 1 payment in QuickBooks (company 9130) will be deleted at the next sync." in out

    out = run_cli(capsys, "payment", "unsync", "P2")[1]
    assert "company 9130): it will be deleted from QuickBooks at the next sync." in out

    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            warehouse.qbo_oauth_tokens.insert().values(
                realm_id="4620",
                refresh_token="not-used",
                refreshed_at=now,
                status="connected",
                is_current=True,
                connected_at=now,
            )
        )
    out = run_cli(capsys, "payment", "unsync", "P1")[1]
    assert "nothing of it is in QuickBooks" in out  # the sync now writes to another company


# -- listing issues --------------------------------------------------------------------------------------
def planned_with_issues(engine, tmp_path) -> None:
    """A1's manual match fails (so its invoice, payment and refund cannot sync); the load then fails P2's fee
    and records I2 in QuickBooks."""
    stage(engine, tmp_path, accounts_csv=replace_row("accounts.csv", "A1,", MISSING_MATCH))
    plan(engine, "run-1")
    table = warehouse.sync_object_status
    failed_fee = {
        "run_id": "run-1",
        "taxdome_kind": "fee",
        "taxdome_id": "P2",
        "realm_id": COMPANY.realm_id,
        "status": "failed",
        "reason": "QuickBooks refused the processing fee: the account 'Stripe Clearing' is inactive",
    }
    with engine.begin() as conn:
        run_counts.move_statuses(conn, [failed_fee])  # as the load ledger counts a status it writes
        conn.execute(table.insert().values(**failed_fee))
        conn.execute(
            table.update()
            .where(table.c.run_id == "run-1", table.c.taxdome_kind == "invoice", table.c.taxdome_id == "I2")
            .values(qbo_entity="Invoice", qbo_id="1002", qbo_link=INVOICE_LINK)
        )


def test_issues_are_listed_by_category_failed_first_with_reasons_and_what_to_do(engine, tmp_path, capsys):
    planned_with_issues(engine, tmp_path)

    code, out = run_cli(capsys, "issues")

    assert code == 1  # there are failed objects
    header, _, rest = out.partition("\n")
    assert header.startswith("Sync issues of run run-1 for company 9130, planned ")
    assert header.endswith("(dry run: the plan's verdicts, nothing was written to QuickBooks)")
    counts = {line.split()[0]: line.split()[1:] for line in rest.splitlines()[2:10]}
    assert counts["category"] == ["failed", "not", "synced", "skipped", "do", "not", "sync", "synced"]
    assert counts["accounts"] == ["1", "0", "0", "0", "1"]
    assert counts["expenses"] == ["1", "0", "0", "0", "0"]
    assert counts["invoices"] == ["0", "1", "0", "0", "1"]
    assert out.index("Failed: 2") < out.index("Not synced: 3") < out.index("Skipped: 0 (none)")
    failed = out[out.index("Failed: 2") : out.index("Not synced")]
    assert "  accounts: 1\n" in failed and "  expenses: 1\n" in failed
    assert "account A1: the matched QuickBooks customer 'OBrien Holdings' does not exist" in failed
    assert "or stop syncing it: python -m taxdome_qbo account unsync A1" in failed
    assert "fee P2: QuickBooks refused the processing fee" in failed
    assert "or stop syncing its payment: python -m taxdome_qbo payment unsync P2" in failed
    not_synced = out[out.index("Not synced: 3") : out.index("Skipped")]
    assert re.findall(r"^  (\w+): 1$", not_synced, re.MULTILINE) == ["invoices", "payments", "refunds"]
    assert "invoice  I1  its account A1 is not synced: the matched QuickBooks customer" in not_synced
    assert INVOICE_LINK not in out  # synced objects are listed only when asked


def test_issues_can_be_narrowed_limited_or_widened(engine, tmp_path, capsys):
    planned_with_issues(engine, tmp_path)

    code, out = run_cli(capsys, "issues", "--category", "expenses")
    assert code == 1
    assert "fee P2" in out and "account A1" not in out and "Not synced: 0 (none)" in out

    code, out = run_cli(capsys, "issues", "--category", "services")
    assert code == 0 and "Failed: 0 (none)" in out

    code, out = run_cli(capsys, "issues", "--all-statuses", "--limit", "1")
    assert "Synced: " in out and "Do not sync: 0 (none)" in out
    synced = out[out.index("Synced: ") :]
    assert "  invoices: 1\n" in synced and "  services: 2, first 1 (--limit)\n" in synced
    assert f"invoice  I2  Invoice 1002  {INVOICE_LINK}" in synced


def test_issues_before_any_plan_say_so(engine, capsys):
    assert run_cli(capsys, "issues") == (0, "no sync has been planned yet (is QuickBooks connected?)\n")


def test_status_shows_one_objects_latest_verdict_link_and_decision(engine, tmp_path, capsys):
    planned_with_issues(engine, tmp_path)

    code, out = run_cli(capsys, "status", "invoice", "I2")
    assert code == 0
    assert "invoice I2 (category invoices)" in out and "status:     Synced" in out
    assert "QuickBooks: Invoice 1002" in out and f"link:       {INVOICE_LINK}" in out

    code, out = run_cli(capsys, "status", "refund", "R1")
    assert "status:     Not synced" in out and "its account A1 is not synced" in out

    run_cli(capsys, "account", "unsync", "A1")
    code, out = run_cli(capsys, "status", "account", "A1")
    assert "status:     Failed" in out
    assert "what to do: fix the cause, then `python -m taxdome_qbo retry --object account:A1`" in out
    assert "by hand:    unsync (since " in out and "account clear A1` follows the export again" in out

    assert run_cli(capsys, "status", "payment", "P404")[0] == 1


# -- the planning service's side, without a database -----------------------------------------------------
def test_overrides_apply_to_exported_frames_and_leave_them_alone_without_any(tmp_path):
    staged = staged_firm(tmp_path / "export")
    none = pd.DataFrame(columns=["taxdome_kind", "taxdome_id", "sync"])
    assert sync_issues.apply_overrides(staged, none) is staged

    decided = pd.DataFrame(
        [("account", "A2", False), ("payment", "P1", False)], columns=["taxdome_kind", "taxdome_id", "sync"]
    )
    overridden = sync_issues.apply_overrides(staged, decided)
    assert overridden.invoices is staged.invoices
    assert list(overridden.accounts["qbo_sync"]) == ["auto", "do_not_sync"]
    assert list(overridden.payments["sync_to_qbo"]) == [False, True]
    assert list(staged.accounts["qbo_sync"]) == ["auto", "auto"]  # the staged frames are not changed

    plan = build_plan(overridden, FirmSettings(), COMPANY, no_state())
    statuses = sync_issues.explain_overrides(plan.statuses, decided)
    found = {(r.taxdome_kind, r.taxdome_id): (r.status, r.reason) for r in statuses.itertuples()}
    assert found[("account", "A2")] == ("do_not_sync", sync_issues.UNSYNCED_BY_HAND)
    assert found[("payment", "P1")] == ("skipped", "this payment is set not to sync to QuickBooks")
