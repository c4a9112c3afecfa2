"""The demo export generator: contract shape, determinism, realism scenarios, invariants and bad rows."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest

from taxdome_qbo.core.export_contract import EXPORT_FILES, EXPORT_FILES_BY_NAME, enum_lookup, normalize_label
from taxdome_qbo.core.planner import build_plan
from taxdome_qbo.core.settings import resolve_settings
from taxdome_qbo.core.validation import validate_export
from taxdome_qbo.core.vocabulary import STATE_COLUMNS, StagedFirm
from taxdome_qbo.demo import MANIFEST_NAME, generate_export
from taxdome_qbo.demo.__main__ import main
from taxdome_qbo.demo.bad_rows import KINDS
from taxdome_qbo.demo.planning import company_seeded_for
from taxdome_qbo.services.export_reader import ExportReader

CENT = Decimal("0.01")
MONEY = re.compile(r"-?\d+\.\d{2}")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
START, END = date(2025, 1, 1), date(2026, 10, 31)
SYNC_START, INTEGRATION = date(2026, 1, 1), date(2025, 7, 1)


def read_rows(folder: Path, name: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each data row; the header is line 1 and no value spans lines."""
    with (folder / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(enumerate(csv.reader(handle), start=1))[1:]


def read_dicts(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def money(text: str) -> Decimal:
    if not MONEY.fullmatch(text):
        raise ValueError(text)
    return Decimal(text)


def times(rate: str, quantity: str) -> Decimal:
    return (Decimal(rate) * Decimal(quantity)).quantize(CENT, rounding=ROUND_HALF_UP)


def is_date(text: str) -> bool:
    try:
        return date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def expected_fee(method: str, processor: str, amount: Decimal) -> Decimal:
    """Processor fee, computed independently of the generator with Decimal."""
    percent, fixed, cap = {
        ("card", "stripe"): ("2.9", "0.30", None),
        ("card", "taxdome_payments"): ("2.9", "0.30", None),
        ("card", "cpacharge"): ("2.75", "0", None),
        ("ach", "stripe"): ("0.8", "0", "5.00"),
    }.get((method, processor), ("0", "0", None))
    fee = (amount * Decimal(percent) / 100).quantize(CENT, rounding=ROUND_HALF_UP) + Decimal(fixed)
    return fee if cap is None else min(fee, Decimal(cap))


def quarantine(folder: Path) -> set[tuple[str, int, str]]:
    """A small independent loader: (file, line, kind) of every row breaking the export contract (docs/export-contract.md)."""
    flagged: set[tuple[str, int, str]] = set()
    good: dict[str, list[tuple[int, dict[str, str]]]] = {}
    all_ids: dict[str, set[str]] = defaultdict(set)
    for export_file in EXPORT_FILES:
        good[export_file.name] = []
        seen: set[tuple[str, ...]] = set()
        for line, fields in read_rows(folder, export_file.name):
            kind = None
            if len(fields) != len(export_file.columns):
                kind = "malformed_row"
            else:
                row = dict(zip(export_file.column_names, fields, strict=True))
                kind = row_problem(export_file.name, row, all_ids)
                key = tuple(row[column] for column in export_file.key)
                if kind is None and key in seen:
                    kind = "duplicate_id"
                seen.add(key)
                all_ids[export_file.name].add(row[export_file.key[0]])
            if kind:
                flagged.add((f"{export_file.name}.csv", line, kind))
            else:
                good[export_file.name].append((line, row))
    # An invoice is checked against all its lines as written, even one quarantined for its own amount.
    lines_by_invoice: dict[str, Decimal] = defaultdict(Decimal)
    for _, fields in read_rows(folder, "invoice_lines"):
        line = dict(zip(EXPORT_FILES_BY_NAME["invoice_lines"].column_names, fields, strict=False))
        if MONEY.fullmatch(line["amount"]):
            lines_by_invoice[line["invoice_id"]] += money(line["amount"])
    for line, invoice in good["invoices"]:
        if lines_by_invoice[invoice["invoice_id"]] + money(invoice["tax_amount"]) != money(invoice["total"]):
            flagged.add(("invoices.csv", line, "line_sum_mismatch"))
    payment_amounts = {p["payment_id"]: money(p["amount"]) for _, p in good["payments"]}
    for line, refund in good["refunds"]:
        if money(refund["amount"]) > payment_amounts[refund["payment_id"]]:
            flagged.add(("refunds.csv", line, "refund_above_payment"))
    return flagged


def row_problem(file_name: str, row: dict[str, str], ids: dict[str, set[str]]) -> str | None:
    export_file = EXPORT_FILES_BY_NAME[file_name]
    if any(not row[column] for column in export_file.required_columns):
        return "missing_required"
    for column in export_file.columns:
        value = row[column.name]
        if not value:
            continue
        if column.kind == "money" and not MONEY.fullmatch(value):
            return "bad_money"
        if column.kind == "date" and not is_date(value):
            return "bad_date"
        if column.kind == "enum" and normalize_label(value) not in enum_lookup(column):
            return "bad_enum"
        if column.kind == "bool" and value not in ("true", "false"):
            return "bad_bool"
    references = {
        "invoices": [("account_id", "accounts", "unknown_account")],
        "payments": [("account_id", "accounts", "unknown_account")],
        "invoice_lines": [("invoice_id", "invoices", "orphan_line")],
        "payment_applications": [
            ("payment_id", "payments", "application_unknown_payment"),
            ("invoice_id", "invoices", "application_unknown_invoice"),
        ],
        "refunds": [("payment_id", "payments", "refund_unknown_payment")],
    }
    for column, target, kind in references.get(file_name, []):
        if row[column] not in ids[target]:
            return kind
    if file_name == "invoices" and money(row["total"]) < 0:
        return "negative_total"
    if (
        file_name == "invoice_lines"
        and row["rate"]
        and times(row["rate"], row["quantity"]) != money(row["amount"])
    ):
        return "line_amount_mismatch"
    if file_name == "payments" and money(row["processing_fee"]) > money(row["amount"]):
        return "fee_above_amount"
    if file_name == "payouts" and money(row["gross"]) - money(row["fee"]) != money(row["net"]):
        return "payout_mismatch"
    return None


@pytest.fixture(scope="module")
def clean_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clean")
    generate_export(folder, accounts=150, seed=11)
    return folder


@pytest.fixture(scope="module")
def bad_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    generate_export(folder, accounts=120, seed=5, bad_rows=0.01)
    return folder


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))


# ---- shape


def test_every_contract_file_has_the_contract_header(clean_export: Path) -> None:
    for export_file in EXPORT_FILES:
        raw = (clean_export / export_file.filename).read_bytes()
        assert raw.decode("utf-8").split("\n", 1)[0] == ",".join(export_file.column_names)
        assert b"\r" not in raw


def test_values_use_canonical_formats(clean_export: Path) -> None:
    for export_file in EXPORT_FILES:
        for row in read_dicts(clean_export, export_file.name):
            for column in export_file.columns:
                value = row[column.name]
                if not value:
                    assert not column.required, (export_file.name, column.name)
                elif column.kind == "money":
                    assert MONEY.fullmatch(value), (column.name, value)
                elif column.kind == "date":
                    assert is_date(value) and START.isoformat() <= value <= END.isoformat(), value
                elif column.kind == "timestamp":
                    assert (
                        TIMESTAMP.fullmatch(value) and START.isoformat() <= value[:10] <= END.isoformat()
                    ), value
                elif column.kind == "bool":
                    assert value in ("true", "false")
                elif column.kind == "enum":
                    assert value in column.values, (column.name, value)


def test_manifest_counts_settings_and_arguments(clean_export: Path) -> None:
    manifest = manifest_of(clean_export)
    assert manifest["arguments"] == {
        "accounts": 150,
        "seed": 11,
        "bad_rows": 0.0,
        "start": "2025-01-01",
        "end": "2026-10-31",
    }
    assert manifest["firm_settings"] == {"sync_start_date": "2026-01-01", "integration_date": "2025-07-01"}
    assert manifest["counts"] == {f.filename: len(read_rows(clean_export, f.name)) for f in EXPORT_FILES}
    assert manifest["bad_rows"] == []


def test_clean_export_has_no_row_a_loader_would_quarantine(clean_export: Path) -> None:
    assert quarantine(clean_export) == set()


# ---- determinism


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_same_arguments_give_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    first, second, other = tmp_path / "first", tmp_path / "second", tmp_path / "other"
    generate_export(first, accounts=60, seed=3, bad_rows=0.02)
    generate_export(second, accounts=60, seed=3, bad_rows=0.02)
    generate_export(other, accounts=60, seed=4, bad_rows=0.02)
    assert folder_bytes(first) == folder_bytes(second)
    assert len(folder_bytes(first)) == len(EXPORT_FILES) + 2  # and _generator_manifest.json, manifest.json
    assert folder_bytes(first)["invoices.csv"] != folder_bytes(other)["invoices.csv"]


# ---- realism


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_every_scenario_is_present_with_50_accounts(tmp_path: Path, seed: int) -> None:
    generate_export(tmp_path, accounts=50, seed=seed)
    assert_scenarios(tmp_path, accounts=50)


def test_every_scenario_is_present_in_a_larger_export(clean_export: Path) -> None:
    assert_scenarios(clean_export, accounts=150)


def assert_scenarios(folder: Path, accounts: int) -> None:
    accounts_rows = read_dicts(folder, "accounts")
    services = read_dicts(folder, "services")
    invoices = read_dicts(folder, "invoices")
    lines = read_dicts(folder, "invoice_lines")
    payments = read_dicts(folder, "payments")
    applications = read_dicts(folder, "payment_applications")
    refunds = read_dicts(folder, "refunds")
    payouts = read_dicts(folder, "payouts")

    # Accounts: types, tricky names, e-mails, archive, sync choices, manual matches, activity patterns.
    assert len(accounts_rows) == accounts
    assert {a["account_type"] for a in accounts_rows} == {"Individual", "Company", "Other"}
    names = [a["account_name"] for a in accounts_rows]
    for needle in ("'", "&", "ë", "ú"):
        assert any(needle in name for name in names), needle
    assert len({name.casefold() for name in names}) == len(names)
    assert any(a["email"] for a in accounts_rows)
    assert any(a["archived"] == "true" for a in accounts_rows)
    assert all(a["created_at"] <= a["updated_at"] for a in accounts_rows)
    active = {i["account_id"] for i in invoices} | {p["account_id"] for p in payments}
    assert any(a["account_id"] not in active for a in accounts_rows)
    assert any(a["qbo_sync"] == "do_not_sync" and a["account_id"] in active for a in accounts_rows)
    assert any(a["qbo_sync"] == "sync" and a["account_id"] in active for a in accounts_rows)
    matched = [a for a in accounts_rows if a["qbo_customer_name"]]
    assert matched and all(a["qbo_customer_name"] != a["account_name"] for a in matched)
    last_activity: dict[str, str] = defaultdict(str)
    for account_id, day in [(i["account_id"], i["posted_date"]) for i in invoices] + [
        (p["account_id"], p["payment_date"]) for p in payments
    ]:
        last_activity[account_id] = max(last_activity[account_id], day)
    assert any(day < SYNC_START.isoformat() for day in last_activity.values())
    assert any(day >= SYNC_START.isoformat() for day in last_activity.values())

    # Services: a fixed catalog around the integration date, some copied from QBO.
    assert 20 <= len(services) <= 40
    created = [s["created_at"][:10] for s in services]
    assert min(created) < INTEGRATION.isoformat() < max(created)
    assert any(s["qbo_item_name"] for s in services) and any(not s["qbo_item_name"] for s in services)
    assert {"Per hour", "Per item", "Flat fee"} <= {s["rate_type"] for s in services}

    # Invoices and lines.
    # About 10 invoices per account on average; 50 accounts vary more than 150.
    assert (
        (4 if accounts < 100 else 7.5) * accounts
        <= len(invoices)
        <= (18 if accounts < 100 else 12.5) * accounts
    )
    per_invoice = Counter(line["invoice_id"] for line in lines)
    assert set(per_invoice.values()) == {1, 2, 3, 4, 5}
    assert 1.6 <= len(lines) / len(invoices) <= 2.6
    assert any(line["service_id"] and line["service_name"] for line in lines)
    assert any(not line["service_id"] and line["amount"] for line in lines)
    assert any(money(line["amount"]) < 0 for line in lines)
    assert {"0.5", "1.25", "3.75"} & {line["quantity"] for line in lines}
    assert any(line["taxable"] == "true" for line in lines)
    taxes = [money(i["tax_amount"]) for i in invoices]
    assert any(tax > 0 for tax in taxes) and any(tax == 0 for tax in taxes)
    statuses = Counter(i["status"] for i in invoices)
    assert {"Paid", "Unpaid", "Partially paid", "Overdue", "Draft", "Scheduled"} <= set(statuses)
    assert statuses["Draft"] + statuses["Scheduled"] < statuses["Paid"]
    numbers = [i["invoice_number"] for i in invoices]
    assert len(set(numbers)) == len(numbers) and all(re.fullmatch(r"INV-\d{6,}", n) for n in numbers)
    assert all(i["invoice_id"] != i["invoice_number"] for i in invoices)

    # Payments: kinds, processors, several invoices, partial, overpaid, not synced.
    kinds = {(p["method"], p["processor"]) for p in payments}
    assert {
        ("card", "stripe"),
        ("card", "cpacharge"),
        ("card", "taxdome_payments"),
        ("ach", "stripe"),
        ("cash", "none"),
        ("check", "none"),
        ("bank_transfer", "none"),
        ("credit_balance", "none"),
        ("promotional_credit", "none"),
    } <= kinds
    assert any(p["sync_to_qbo"] == "false" for p in payments)
    applied: dict[str, Decimal] = defaultdict(Decimal)
    for application in applications:
        applied[application["payment_id"]] += money(application["amount"])
    assert Counter(a["payment_id"] for a in applications).most_common(1)[0][1] > 1
    assert any(money(p["amount"]) > applied[p["payment_id"]] for p in payments)
    assert any(i["status"] == "Partially paid" for i in invoices)

    # Refunds (full and partial) and payouts for every processor.
    amounts = {p["payment_id"]: money(p["amount"]) for p in payments}
    assert any(money(r["amount"]) == amounts[r["payment_id"]] for r in refunds)
    assert any(money(r["amount"]) < amounts[r["payment_id"]] for r in refunds)
    assert {p["processor"] for p in payouts} == {"stripe", "cpacharge", "taxdome_payments"}


# ---- invariants


def test_invoice_totals_lines_and_tax(clean_export: Path) -> None:
    lines_by_invoice: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in read_dicts(clean_export, "invoice_lines"):
        lines_by_invoice[line["invoice_id"]].append(line)
        if line["rate"]:
            assert times(line["rate"], line["quantity"]) == money(line["amount"])
    for invoice in read_dicts(clean_export, "invoices"):
        lines = lines_by_invoice[invoice["invoice_id"]]
        assert [line["line_no"] for line in lines] == [str(n) for n in range(1, len(lines) + 1)]
        total = sum((money(line["amount"]) for line in lines), Decimal(0)) + money(invoice["tax_amount"])
        assert total == money(invoice["total"]) and total > 0
        taxable = sum((money(line["amount"]) for line in lines if line["taxable"] == "true"), Decimal(0))
        if taxable == 0:
            assert money(invoice["tax_amount"]) == 0
        else:
            rates = [Decimal(r) for r in ("0.08875", "0.0625", "0.0725", "0.04")]
            expected = {(taxable * r).quantize(CENT, rounding=ROUND_HALF_UP) for r in rates}
            assert money(invoice["tax_amount"]) in expected


def test_payments_applications_refunds_and_fees(clean_export: Path) -> None:
    invoices = {i["invoice_id"]: i for i in read_dicts(clean_export, "invoices")}
    payments = {p["payment_id"]: p for p in read_dicts(clean_export, "payments")}
    by_payment: dict[str, Decimal] = defaultdict(Decimal)
    by_invoice: dict[str, Decimal] = defaultdict(Decimal)
    for application in read_dicts(clean_export, "payment_applications"):
        payment, invoice = payments[application["payment_id"]], invoices[application["invoice_id"]]
        assert payment["account_id"] == invoice["account_id"]
        assert payment["payment_date"] >= invoice["posted_date"]
        by_payment[payment["payment_id"]] += money(application["amount"])
        by_invoice[invoice["invoice_id"]] += money(application["amount"])
    for payment_id, applied in by_payment.items():
        assert applied <= money(payments[payment_id]["amount"])
    for invoice_id, applied in by_invoice.items():
        invoice = invoices[invoice_id]
        assert applied <= money(invoice["total"])
        assert (applied == money(invoice["total"])) == (invoice["status"] == "Paid")
    prefixes = {"stripe": ("ch_", "py_"), "taxdome_payments": ("pi_",), "cpacharge": ("cpa_",), "none": ("",)}
    for payment in payments.values():
        amount = money(payment["amount"])
        assert money(payment["processing_fee"]) == expected_fee(
            payment["method"], payment["processor"], amount
        )
        assert payment["processor_txn_id"].startswith(prefixes[payment["processor"]])
        assert bool(payment["processor_txn_id"]) == (payment["processor"] != "none")
    for refund in read_dicts(clean_export, "refunds"):
        payment = payments[refund["payment_id"]]
        assert money(refund["amount"]) <= money(payment["amount"])
        assert refund["refund_date"] >= payment["payment_date"]
        assert refund["account_id"] == payment["account_id"]
        assert payment["processor"] != "none"


def test_payouts_group_processor_payments_by_next_business_day(clean_export: Path) -> None:
    payments = {p["payment_id"]: p for p in read_dicts(clean_export, "payments")}
    paid_out: set[str] = set()
    for payout in read_dicts(clean_export, "payouts"):
        gross, fee = money(payout["gross"]), money(payout["fee"])
        assert gross - fee == money(payout["net"])
        members = [payments[payment_id] for payment_id in payout["payment_ids"].split(";")]
        assert gross == sum(money(p["amount"]) for p in members)
        assert fee == sum(money(p["processing_fee"]) for p in members)
        for payment in members:
            assert payment["processor"] == payout["processor"]
            next_day = date.fromisoformat(payment["payment_date"]) + timedelta(days=1)
            while next_day.weekday() >= 5:
                next_day += timedelta(days=1)
            assert payout["payout_date"] == next_day.isoformat()
        paid_out.update(payout["payment_ids"].split(";"))
    in_transit = {
        payment_id
        for payment_id, p in payments.items()
        if p["processor"] != "none" and payment_id not in paid_out
    }
    assert all(payments[payment_id]["payment_date"] >= "2026-10-29" for payment_id in in_transit)


# ---- bad rows


def test_every_bad_row_kind_is_listed_at_its_line(bad_export: Path) -> None:
    entries = manifest_of(bad_export)["bad_rows"]
    assert set(Counter(entry["kind"] for entry in entries)) == set(KINDS)
    assert {(e["file"], e["line"], e["kind"]) for e in entries} == quarantine(bad_export)
    for entry in entries:
        fields = dict(read_rows(bad_export, entry["file"][:-4]))[entry["line"]]
        export_file = EXPORT_FILES_BY_NAME[entry["file"][:-4]]
        if entry["key"] is None:
            assert entry["kind"] == "malformed_row"
        else:
            assert entry["key"] == ":".join(fields[: len(export_file.key)])


def test_bad_rows_scale_with_the_rate(tmp_path: Path) -> None:
    manifest = generate_export(tmp_path, accounts=60, seed=9, bad_rows=0.05)
    data_rows = sum(manifest["counts"].values())
    assert 0.04 * data_rows <= len(manifest["bad_rows"]) <= 0.06 * data_rows
    assert manifest["counts"] == {f.filename: len(read_rows(tmp_path, f.name)) for f in EXPORT_FILES}


def test_a_duplicate_repeats_the_money_of_the_earlier_good_row(bad_export: Path) -> None:
    for entry in manifest_of(bad_export)["bad_rows"]:
        if entry["kind"] != "duplicate_id":
            continue
        export_file = EXPORT_FILES_BY_NAME[entry["file"][:-4]]
        rows = read_rows(bad_export, export_file.name)
        same_id = [(line, fields) for line, fields in rows if fields[0] == entry["key"]]
        assert [line for line, _ in same_id][1] == entry["line"] and len(same_id) == 2
        (_, earlier), (_, duplicate) = same_id
        description = export_file.column_names.index("description")
        assert earlier[:description] == duplicate[:description]


def test_tiny_export_still_has_every_bad_row_kind(tmp_path: Path) -> None:
    manifest = generate_export(tmp_path, accounts=5, seed=1, bad_rows=0.001)
    assert {entry["kind"] for entry in manifest["bad_rows"]} == set(KINDS)
    assert {(e["file"], e["line"], e["kind"]) for e in manifest["bad_rows"]} == quarantine(tmp_path)


# ---- entry points


def test_command_line_writes_the_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    argv = ["generate", "--out", str(out), "--accounts", "50", "--seed", "2", "--bad-rows", "0.01"]
    assert main([*argv, "--start", "2025-03-01", "--end", "2026-02-28"]) == 0
    manifest = manifest_of(out)
    assert manifest["arguments"]["start"] == "2025-03-01"
    assert manifest["firm_settings"] == {"sync_start_date": "2025-09-01", "integration_date": "2025-06-01"}
    assert "invoices.csv" in capsys.readouterr().out
    for export_file in EXPORT_FILES:
        for row in read_dicts(out, export_file.name):
            for column in export_file.columns:
                if column.kind == "date" and is_date(row[column.name]):
                    assert "2025-03-01" <= row[column.name] <= "2026-02-28"


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="end must be after start"):
        generate_export(tmp_path, accounts=10, seed=1, start=date(2026, 1, 1), end=date(2025, 1, 1))
    with pytest.raises(SystemExit):
        main(["generate", "--out", str(tmp_path), "--accounts", "0", "--seed", "1"])


def read_whole_export(folder: Path) -> ExportReader:
    reader = ExportReader(folder)
    for export_file in EXPORT_FILES:
        reader.read(export_file)  # each file's rows and SHA-256 checked against the manifest
    return reader


@pytest.mark.parametrize("bad_rows", [0.0, 0.02])
def test_the_export_is_marked_complete_by_a_manifest_the_reader_verifies(
    tmp_path: Path, bad_rows: float
) -> None:
    manifest = generate_export(tmp_path, accounts=30, seed=2, bad_rows=bad_rows)
    landing_manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert {name: entry["rows"] for name, entry in landing_manifest.items()} == manifest["counts"]
    reader = read_whole_export(tmp_path)
    assert reader.marker == "manifest.json"
    # A clean export can prove deletions; the malformed rows injected on purpose keep one from it.
    if bad_rows:
        assert reader.deletion_doubts and all("malformed" in doubt for doubt in reader.deletion_doubts)
    else:
        assert reader.deletion_doubts == []


def test_the_seeded_company_holds_every_customer_and_item_the_export_names(clean_export: Path) -> None:
    """Planned against the company `make demo` seeds, no account or service fails for want of the QuickBooks
    customer it is matched to by hand (R4) or the item it copies (R8): the benchmarks plan against it."""
    staged = {v.export_file.name: v.staged for v in validate_export(ExportReader(clean_export).read)}
    firm = StagedFirm(**{name: staged[name] for name in StagedFirm.__dataclass_fields__})
    settings = resolve_settings(json.loads((clean_export / MANIFEST_NAME).read_text())["firm_settings"], None)

    plan = build_plan(firm, settings, company_seeded_for(firm), pd.DataFrame(columns=list(STATE_COLUMNS)))

    failed = plan.statuses[plan.statuses["status"] == "failed"]
    assert firm.accounts["qbo_customer_name"].fillna("").ne("").any()
    assert not failed["reason"].str.contains("does not exist").any(), failed.to_string()
    assert failed["taxdome_kind"].isin(["account", "service"]).sum() == 0
