"""Issue 10, cases 4, 5, 8, 11 and the reports of case 10: verdicts that do not lie (a failure never explains a
difference), nothing finance or a renderer reads can run (CSV and XLSX formulas, Markdown/HTML), and report
folders that are unique per run id, stay under the reports root and are readable by their owner only."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from export_builder import write_export
from load_harness import (
    BASE_FIRM_SETTINGS,
    Firm,
    company_for_base_export,
    load,
    plan,
    reconcile_now,
    session_for,
    stage,
)
from markdown_it import MarkdownIt
from planning_builder import no_state, staged_firm
from quickbooks.objects import Vendor

from taxdome_qbo import dag_tasks
from taxdome_qbo.core import escaping, report_html
from taxdome_qbo.core.operation_log import phase_seqs
from taxdome_qbo.core.planner import build_plan
from taxdome_qbo.core.reconciliation import QboSide, ReconciliationSettings, TaxDomeSide, reconcile
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.demo.planning import demo_company
from taxdome_qbo.paths import run_folder_name
from taxdome_qbo.services import local_files, pipeline, planning, reports, run_counts, warehouse
from taxdome_qbo.text_table import text_table

VENDOR_REASON = "the name 'Zoë Müller' belongs to a QuickBooks vendor"
FORMULAS = ['=HYPERLINK("http://x","Open")', "-2+3", "@SUM(A1)", "\tcmd", "+1", "\rx"]


# -- case 4: a failure never explains a difference ----------------------------------------------------------


def test_the_plan_names_the_failed_account_behind_what_it_keeps_out(tmp_path):
    people = pd.DataFrame(
        [("70", "Zoë Müller", True, "Vendor")], columns=["id", "display_name", "active", "entity"]
    )
    company = dataclasses.replace(
        demo_company(items=[("40", "Bookkeeping", True)]), vendors_and_employees=people
    )
    opted_out = staged_firm(
        tmp_path / "export",
        accounts_csv=(
            "account_id,account_name,account_type,email,created_at,updated_at,archived,qbo_sync,qbo_customer_name\n"
            "A1,O'Brien & Sons,Company,ob@example.com,2025-03-01T10:00:00Z,2026-01-02T10:00:00Z,false,do_not_sync,\n"
            "A2,Zoë Müller,Individual,zoe@example.com,2025-04-01T10:00:00Z,2026-01-02T10:00:00Z,false,auto,\n"
        ),
    )

    statuses = build_plan(opted_out, FirmSettings(), company, no_state()).statuses
    verdicts = {
        (row.taxdome_kind, row.taxdome_id): (row.status, row.caused_by)
        for row in statuses.itertuples(index=False)
    }

    assert verdicts[("account", "A2")] == ("failed", None)
    assert verdicts[("invoice", "I2")] == ("not_synced", "account:A2")
    assert verdicts[("payment", "P2")] == ("not_synced", "account:A2")
    # A1 is kept out by a rule: nothing failed behind its invoice, payment or refund.
    assert verdicts[("invoice", "I1")] == ("do_not_sync", None)
    assert verdicts[("refund", "R1")] == ("do_not_sync", None)


def _frame(columns: str, *rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=columns.split())


def _sides() -> tuple[TaxDomeSide, QboSide]:
    """A2 failed (a vendor holds its name), A3 is set to Do not sync, A4 synced as customer 1."""
    taxdome = TaxDomeSide(
        accounts=_frame(
            "account_id account_name", ("A2", "Zoë Müller"), ("A3", "Kept Out"), ("A4", "Synced")
        ),
        invoices=_frame(
            "invoice_id invoice_number account_id posted_date status tax_amount_cents total_cents",
            ("I2", "INV-2", "A2", date(2026, 1, 6), "Paid", 0, 40_856),
            ("I3", "INV-3", "A3", date(2026, 1, 6), "Unpaid", 0, 10_000),
            ("I4", "INV-4", "A4", date(2026, 1, 7), "Unpaid", 0, 5_000),
        ),
        payments=_frame(
            "payment_id account_id payment_date amount_cents method processor processing_fee_cents",
            ("P2", "A2", date(2026, 1, 8), 40_856, "card", "stripe", 0),
        ),
        applications=_frame("payment_id invoice_id amount_cents", ("P2", "I2", 40_856)),
        refunds=_frame("refund_id payment_id account_id refund_date amount_cents"),
        payouts=_frame(
            "payout_id payout_date processor gross_cents fee_cents net_cents payment_ids",
            ("PO1", date(2026, 1, 9), "stripe", 40_856, 0, 40_856, "P2"),
        ),
    )
    qbo = QboSide(
        customers=_frame(
            "qbo_id display_name balance_cents marker", ("1", "Synced", 5_000, "taxdome:account:A4")
        ),
        invoices=_frame(
            "qbo_id txn_date customer_id total_cents tax_cents balance_cents marker",
            ("10", date(2026, 1, 7), "1", 5_000, 0, 5_000, "taxdome:invoice:I4"),
        ),
        invoice_lines=_frame("invoice_id item_id amount_cents", ("10", "40", 5_000)),
        payments=_frame("qbo_id txn_date customer_id total_cents deposit_account_id marker"),
        payment_links=_frame("payment_id txn_type txn_id amount_cents"),
        credit_memos=_frame("qbo_id txn_date customer_id total_cents marker"),
        purchases=_frame("qbo_id txn_date expense_account_id total_cents marker"),
        refund_receipts=_frame("qbo_id txn_date customer_id total_cents marker"),
    )
    return taxdome, qbo


VERDICTS = _frame(
    "taxdome_kind taxdome_id status reason caused_by",
    ("account", "A2", "failed", VENDOR_REASON, None),
    ("account", "A3", "do_not_sync", "set to Do not sync in TaxDome", None),
    ("account", "A4", "synced", "created", None),
    ("invoice", "I2", "not_synced", f"its account A2 is not synced: {VENDOR_REASON}", "account:A2"),
    ("invoice", "I3", "do_not_sync", "its account A3 is set to Do not sync", None),
    ("invoice", "I4", "synced", "created", None),
    ("payment", "P2", "not_synced", f"its account A2 is not synced: {VENDOR_REASON}", "account:A2"),
)
STATE = _frame(
    "taxdome_kind taxdome_id qbo_entity qbo_id status",
    ("account", "A4", "Customer", "1", "synced"),
    ("invoice", "I4", "Invoice", "10", "synced"),
)


def test_what_a_failure_keeps_out_of_quickbooks_is_unexplained_and_names_the_failure():
    taxdome, qbo = _sides()

    result = reconcile(taxdome, qbo, VERDICTS, STATE, ReconciliationSettings())

    found = {
        (e.difference_class, e.object_kind, e.taxdome_id, e.measure): e
        for e in result.exceptions.itertuples()
    }
    invoice = found[("missing_in_qbo", "invoice", "I2", None)]
    assert not invoice.explained
    assert invoice.detail == f"not in QuickBooks: its account A2 failed: {VENDOR_REASON}"
    assert not found[("missing_in_qbo", "payment", "P2", None)].explained
    # The payout lists the failed payment: QuickBooks lacks it, and no sync rule says why.
    payout = found[("amount_mismatch", "payout", "PO1", "payout_gross")]
    assert not payout.explained
    assert payout.detail.endswith("QuickBooks lacks payment(s) that failed or wait for a failure: P2")
    # Only the rule explains: A3's invoice is out of scope, explained.
    assert found[("out_of_scope", "invoice", "I3", None)].explained
    assert result.unexplained == int((~result.exceptions["explained"].astype(bool)).sum()) >= 3
    # The totals owe QuickBooks what failed: TaxDome's side counts I2 and P2.
    summary = result.summary.set_index(["measure", "period", "dimension"])
    assert summary.loc[("invoiced", "total", ""), "taxdome_cents"] == 40_856 + 5_000
    assert summary.loc[("invoiced", "total", ""), "difference_cents"] == 40_856
    assert summary.loc[("collected_gross", "total", ""), "difference_cents"] == 40_856


def test_verdicts_without_a_recorded_cause_still_reconcile():
    """Verdicts from before `caused_by` existed (or a caller that has none) reconcile as before."""
    taxdome, qbo = _sides()
    rules_only = VERDICTS.drop(columns="caused_by")

    result = reconcile(taxdome, qbo, rules_only, STATE, ReconciliationSettings())

    classes = set(zip(result.exceptions["difference_class"], result.exceptions["taxdome_id"], strict=True))
    assert ("out_of_scope", "I2") in classes


def test_a_vendor_holding_an_accounts_name_makes_the_reconciliation_unclean(
    warehouse_engine, emulator, tmp_path
):
    """The demo's case: the account fails at the plan, its invoice and payment are missing from QuickBooks."""
    engine = warehouse_engine
    company = company_for_base_export(emulator)
    vendor = Vendor()
    vendor.DisplayName = "Zoë Müller"
    vendor.save(qb=emulator.quickbooks(company))
    export = write_export(tmp_path / "export")
    stage(engine, export)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), "sync-1")
    load(engine, session, "sync-1")

    receipt, exceptions, _ = reconcile_now(engine, emulator, session, "recon-1")

    found = {(e.difference_class, e.object_kind, e.taxdome_id): e for e in exceptions}
    assert receipt.verdict == "differences"
    invoice = found[("missing_in_qbo", "invoice", "I2")]
    assert not invoice.explained
    assert invoice.detail.startswith(
        "not in QuickBooks: its account A2 failed: the name 'Zoë Müller' belongs"
    )
    assert not found[("missing_in_qbo", "payment", "P2")].explained
    assert receipt.unexplained >= 2


def test_a_failure_at_the_load_is_named_by_what_waited_for_it(warehouse_engine, emulator, tmp_path):
    engine = warehouse_engine
    company = company_for_base_export(emulator)
    export = write_export(tmp_path / "export")
    stage(engine, export)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), "sync-1")
    vendor = Vendor()  # added between the plan and the load: QuickBooks refuses the customer (6240)
    vendor.DisplayName = "Zoë Müller"
    vendor.save(qb=emulator.quickbooks(company))
    load(engine, session, "sync-1")
    status = warehouse.sync_object_status
    with engine.connect() as conn:
        caused = dict(
            conn.execute(
                sa.select(status.c.taxdome_id, status.c.caused_by).where(
                    status.c.run_id == "sync-1", status.c.status == "not_synced"
                )
            ).all()
        )
    assert caused == {"I2": "account:A2", "P2": "account:A2"}

    receipt, exceptions, _ = reconcile_now(engine, emulator, session, "recon-1")

    missing = {e.taxdome_id: e for e in exceptions if e.difference_class == "missing_in_qbo"}
    assert receipt.verdict == "differences"
    assert not missing["I2"].explained and "its account A2 failed: " in missing["I2"].detail


# -- case 5: spreadsheets ---------------------------------------------------------------------------------


def _report(company_name: str = "Acme") -> report_html.ReconciliationReport:
    exceptions = [
        report_html.ExceptionRow(
            seq=index,
            difference_class="missing_in_qbo",
            explained=False,
            object_kind="invoice",
            taxdome_id=text,
            qbo_entity="Invoice",
            qbo_id=None,
            measure="invoiced",
            taxdome_cents=-1_234,
            qbo_cents=None,
            difference_cents=-1_234,
            detail=text,
            qbo_link=None,
        )
        for index, text in enumerate(FORMULAS, start=1)
    ]
    return report_html.ReconciliationReport(
        recon_run_id="recon-1",
        realm_id="9130",
        company_name=company_name,
        period_from=date(2026, 1, 1),
        period_to=date(2026, 1, 31),
        started_at=datetime(2026, 2, 1, 8, tzinfo=UTC),
        finished_at=datetime(2026, 2, 1, 8, 1, tzinfo=UTC),
        unexplained=len(exceptions),
        summary=[report_html.SummaryRow("=1+1", "total", "-2+3", -1_234, 0, -1_234)],
        exceptions=exceptions,
    )


def _csv_rows(write) -> list[dict]:
    buffer = io.StringIO(newline="")
    write(_report(), buffer)
    return list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))


def test_exceptions_and_summary_csv_cells_never_start_a_formula_but_amounts_stay_numbers():
    exceptions = _csv_rows(reports.write_exceptions_csv)
    summary = _csv_rows(reports.write_summary_csv)

    assert [row["taxdome_id"] for row in exceptions] == ["'" + text for text in FORMULAS]
    assert [row["detail"] for row in exceptions] == ["'" + text for text in FORMULAS]
    assert {(row["taxdome"], row["difference"]) for row in exceptions} == {("-12.34", "-12.34")}
    assert (summary[0]["measure"], summary[0]["dimension"]) == ("'=1+1", "'-2+3")
    assert (summary[0]["taxdome"], summary[0]["difference"]) == ("-12.34", "-12.34")


def test_the_owasp_rule_prefixes_formula_starts_and_spares_the_numeric_columns():
    for text in FORMULAS:
        assert escaping.inert_cell(text).startswith("'")
    assert escaping.inert_cell("INV-1") == "INV-1"
    assert escaping.inert_row(["-1.00", "-1.00", 5, None], numeric={1}) == ["'-1.00", "-1.00", 5, None]


def test_the_workbook_writes_data_as_text_even_a_company_named_like_a_formula():
    book = openpyxl.load_workbook(io.BytesIO(reports.workbook_bytes(_report(company_name="=1+1"))))

    run = {row[0].value: row[1] for row in book["Run"].iter_rows(min_row=2)}
    assert run["Company"].data_type == "s" and run["Company"].value == "=1+1 (realm 9130)"
    assert run["Unexplained differences"].data_type == "n"
    assert run["Period from"].is_date
    sheet = book["Missing in QuickBooks"]
    ids = [row[3] for row in sheet.iter_rows(min_row=2)]
    # xlsx stores a carriage return as `_x000D_`, which openpyxl leaves as it is
    assert [cell.value.replace("_x000D_", "\r") for cell in ids] == FORMULAS
    assert {cell.data_type for cell in ids} == {"s"}
    assert {row[7].data_type for row in sheet.iter_rows(min_row=2)} == {"n"}


# -- case 8: Markdown and HTML ----------------------------------------------------------------------------

HOSTILE_ID = "<script>alert(1)</script>"
HOSTILE_REASON = "[open](javascript:alert(1)) ![x](http://evil.example/x.png) <img src=x onerror=alert(1)> ``"


def _plan_rows(engine, run_id: str) -> None:
    """Hostile operations and a hostile verdict, recorded with their counts as the plan records them."""
    warehouse.create_schema(engine)
    operations = [
        {
            "run_id": run_id,
            "seq": seq,
            "realm_id": "9130",
            "taxdome_kind": "invoice",
            "taxdome_id": taxdome_id,
            "qbo_entity": "Invoice",
            "action": "create",
            "amount_cents": -1_234 if taxdome_id == HOSTILE_ID else 5_000,
            "payload": '{"DocNumber": "</code><script>alert(2)</script>"}',
            "payload_hash": "0" * 64,
            "reason": HOSTILE_REASON,
        }
        # Numbered as the planner numbers them: within the phase of invoice creations.
        for seq, taxdome_id in enumerate(
            [HOSTILE_ID, *FORMULAS], start=phase_seqs("invoice", "create").start + 1
        )
    ]
    verdict = {
        "run_id": run_id,
        "taxdome_kind": "invoice",
        "taxdome_id": "I\n\n<script>alert(3)</script>",
        "realm_id": "9130",
        "status": "failed",
        "reason": HOSTILE_REASON,
    }
    counted = run_counts.PlanCounter()
    counted.add(pd.DataFrame(operations))
    with engine.begin() as conn:
        conn.execute(warehouse.sync_plan.insert(), operations)
        conn.execute(warehouse.sync_object_status.insert(), verdict)
        run_counts.record_plan(conn, run_id, counted, pd.DataFrame([verdict]))


def test_the_plan_preview_renders_taxdome_text_inert(warehouse_engine):
    _plan_rows(warehouse_engine, "run-1")

    preview = planning.preview_markdown(warehouse_engine, "run-1", title="Sync plan", examples=10)
    html = MarkdownIt("commonmark", {"html": True}).render(preview)

    for live in ("<script", "<img", "<a ", 'javascript:alert(1)"'):
        assert live not in html, (live, html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, as text


def test_plan_operations_csv_cells_never_start_a_formula(warehouse_engine):
    _plan_rows(warehouse_engine, "run-1")
    buffer = io.StringIO(newline="")

    planning.write_operations_csv(warehouse_engine, "run-1", buffer)

    rows = list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))
    assert [row["taxdome_id"] for row in rows[1:]] == ["'" + text for text in FORMULAS]
    assert rows[0]["amount_cents"] == "-1234"  # our number, written as one


def test_the_html_report_shows_a_script_id_and_a_javascript_link_as_text():
    report = dataclasses.replace(
        _report(),
        exceptions=[
            dataclasses.replace(
                _report().exceptions[0], taxdome_id=HOSTILE_ID, qbo_id="1", qbo_link="javascript:alert(1)"
            )
        ],
    )

    page = report_html.render_html(report)

    assert "<script>alert(1)" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_command_line_prints_control_characters_escaped():
    table = text_table([["A1\x1b[2J\rX", 1]], ["id", "n"])

    assert "\x1b" not in table and "\r" not in table
    assert "A1\\x1b[2J\\x0dX" in table


def test_markdown_code_spans_cannot_be_closed_from_inside():
    for text in ("`", "a``b", "``` x", "line\n\n<b>"):
        span = escaping.markdown_code(text)
        html = MarkdownIt("commonmark", {"html": True}).render(f"- {span}")
        assert html.count("<code>") == 1 and "<b>" not in html, (text, html)


# -- case 11 and case 10's reports: folders ---------------------------------------------------------------


@pytest.mark.parametrize(
    "run_id", [".", "..", "../../etc", "/abs/path", "a/../..", "", "manual__2026-01-01T00:00:00+00:00"]
)
def test_a_run_folder_stays_under_the_reports_root(run_id, tmp_path):
    name = run_folder_name(run_id)

    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_run_ids_that_read_alike_get_their_own_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("TAXDOME_QBO_REPORTS_DIR", str(tmp_path))
    names = {run_id: run_folder_name(run_id) for run_id in ("a:b", "a+b", "a_b", "a b", "A:b")}

    assert len(set(names.values())) == len(names)
    assert run_folder_name("a:b") == run_folder_name("a:b")  # the same run keeps its folder
    assert str(pipeline.run_folder(dag_tasks.reports_root(), "a:b")).endswith(names["a:b"])


@pytest.fixture
def usual_umask():
    previous = os.umask(0o022)  # what most shells give: without care, files 0644 and folders 0755
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_reports_are_readable_by_their_owner_only(warehouse_engine, tmp_path, usual_umask):
    engine = warehouse_engine
    warehouse.create_schema(engine)
    with engine.begin() as conn:
        conn.execute(
            warehouse.reconciliation_runs.insert().values(
                recon_run_id="recon-1",
                realm_id="9130",
                sync_run_id="sync-1",
                started_at=datetime(2026, 2, 1, tzinfo=UTC),
                verdict="clean",
                unexplained=0,
            )
        )
    folder = tmp_path / "reports" / run_folder_name("recon-1")

    written = reports.write_reports(engine, "recon-1", folder)

    assert {_mode(Path(location)) for location in written.values()} == {0o600}
    assert _mode(folder) == _mode(folder.parent) == 0o700


def test_preview_files_are_created_private_through_an_object_storage_path(monkeypatch, tmp_path, usual_umask):
    monkeypatch.setenv("TAXDOME_QBO_REPORTS_DIR", str(tmp_path / "reports"))
    folder = pipeline.run_folder(dag_tasks.reports_root(), "scheduled__2026-01-01")
    stale = tmp_path / "reports" / run_folder_name("scheduled__2026-01-01")
    stale.mkdir(parents=True)  # an earlier attempt left a world-readable folder and file
    (stale / "plan_preview.md").write_text("old")

    local_files.private_folder(folder)
    with local_files.open_private(folder / "plan_preview.md", "w", encoding="utf-8") as handle:
        handle.write("# plan")

    assert _mode(stale) == 0o700
    assert _mode(stale / "plan_preview.md") == 0o600
    assert (stale / "plan_preview.md").read_text() == "# plan"
