"""Every rejection kind of the export loader, the cascade to dependent rows, and rows read = staged + rejected."""

from __future__ import annotations

import json

import pytest
from export_builder import BASE_EXPORT, replace_row, validate_folder, with_rows, write_export

from taxdome_qbo.services.export_reader import ExportContractError, ExportReader


def validated(tmp_path, **changes):
    result = validate_folder(write_export(tmp_path / "export", **changes))
    for file in result.values():
        assert file.rows_read == len(file.staged) + len(file.rejected), file.export_file.filename
    return result


def rejected(result, name) -> dict[int, str]:
    return dict(zip(result[name].rejected["source_line"], result[name].rejected["reason"], strict=True))


def test_base_export_is_fully_staged_with_typed_values(tmp_path):
    result = validated(tmp_path)
    assert all(f.rejected.empty for f in result.values())
    lines = result["invoice_lines"].staged.set_index("line_no")
    assert lines.loc[2, "quantity"] == "2.2500"
    assert lines.loc[3, "amount_cents"] == -2125
    invoice = result["invoices"].staged.set_index("invoice_id").loc["I2"]
    assert invoice["tax_amount_cents"] == 0  # empty tax means 0
    assert invoice["status"] == "Unpaid"
    payment = result["payments"].staged.set_index("payment_id").loc["P1"]
    assert (payment["amount_cents"], payment["processing_fee_cents"], payment["sync_to_qbo"]) == (
        46469,
        1378,
        True,
    )


REJECTIONS = [
    pytest.param(
        {"invoices_csv": replace_row("invoices.csv", "I2,", "I2,,A2,2026-01-06,,Unpaid,USD,,250.00,,")},
        "invoices.csv",
        3,
        "invoice_number is missing",
        id="missing_required",
    ),
    pytest.param(
        {
            "payments_csv": replace_row(
                "payments.csv", "P2,", "P2,A2,2026-01-08,12.3.4,cash,none,,0,USD,true,,"
            )
        },
        "payments.csv",
        3,
        "amount '12.3.4' is not an amount with at most 2 decimals",
        id="bad_money",
    ),
    pytest.param(
        {
            "payments_csv": replace_row(
                "payments.csv", "P2,", "P2,A2,2026-01-08,10.005,cash,none,,0,USD,true,,"
            )
        },
        "payments.csv",
        3,
        "amount '10.005' is not an amount",
        id="three_decimals",
    ),
    pytest.param(
        {
            "invoices_csv": replace_row(
                "invoices.csv", "I2,", "I2,INV-0002,A2,2026-02-30,,Unpaid,USD,,250.00,,"
            )
        },
        "invoices.csv",
        3,
        "posted_date '2026-02-30' is not a date written YYYY-MM-DD",
        id="impossible_date",
    ),
    pytest.param(
        {
            "invoices_csv": replace_row(
                "invoices.csv", "I2,", "I2,INV-0002,A2,01/06/2026,,Unpaid,USD,,250.00,,"
            )
        },
        "invoices.csv",
        3,
        "posted_date '01/06/2026' is not a date",
        id="non_iso_date",
    ),
    pytest.param(
        {
            "invoices_csv": replace_row(
                "invoices.csv", "I2,", "I2,INV-0002,A2,2026-01-06,,Unpaid,USD,,-250.00,,"
            ),
            "invoice_lines_csv": replace_row(
                "invoice_lines.csv", "I2,1", "I2,1,,Credit,,-250.00,1,-250.00,false"
            ),
            "payment_applications_csv": replace_row("payment_applications.csv", "P2,", ""),
        },
        "invoices.csv",
        3,
        "total -250.00 is negative",
        id="negative_total",
    ),
    pytest.param(
        {
            "payments_csv": replace_row(
                "payments.csv", "P2,", "P2,A2,2026-01-08,100.00,bitcoin,none,,0,USD,true,,"
            )
        },
        "payments.csv",
        3,
        "method 'bitcoin' is not one of card, ach, cash",
        id="bad_enum",
    ),
    pytest.param(
        {"accounts_csv": with_rows("accounts.csv", "A3,Someone,Individual,,,,maybe,auto,")},
        "accounts.csv",
        4,
        "archived 'maybe' is not true or false",
        id="bad_bool",
    ),
    pytest.param(
        {
            "invoices_csv": with_rows("invoices.csv", "I3,INV-0003,A9,2026-01-06,,Unpaid,USD,,0.00,,"),
            "invoice_lines_csv": with_rows("invoice_lines.csv", "I3,1,,Free,,0.00,1,0.00,false"),
        },
        "invoices.csv",
        4,
        "account A9 is not in accounts.csv",
        id="unknown_account",
    ),
    pytest.param(
        {"payments_csv": with_rows("payments.csv", "P2,A1,2026-01-09,5.00,cash,none,,0,USD,true,,")},
        "payments.csv",
        4,
        "duplicate payment_id P2 (kept the first, at line 3)",
        id="duplicate_id",
    ),
    pytest.param(
        {
            "invoices_csv": replace_row(
                "invoices.csv", "I2,", "I2,INV-0002,A2,2026-01-06,,Unpaid,USD,,240.00,,"
            )
        },
        "invoices.csv",
        3,
        "total 240.00 is not lines 250.00 + tax 0.00 = 250.00",
        id="line_sum_mismatch",
    ),
    pytest.param(
        {
            "invoice_lines_csv": replace_row(
                "invoice_lines.csv", "I2,1", "I2,1,S1,Tax return,,250.00,2,250.00,false"
            )
        },
        "invoice_lines.csv",
        5,
        "amount 250.00 is not rate 250.00 × quantity 2 = 500.00",
        id="line_amount_mismatch",
    ),
    pytest.param(
        {"invoice_lines_csv": with_rows("invoice_lines.csv", "I9,1,,Orphan,,1.00,1,1.00,false")},
        "invoice_lines.csv",
        6,
        "invoice I9 is not in invoices.csv",
        id="orphan_line",
    ),
    pytest.param(
        {"payment_applications_csv": with_rows("payment_applications.csv", "P2,I9,1.00")},
        "payment_applications.csv",
        4,
        "invoice I9 is not in invoices.csv",
        id="application_unknown_invoice",
    ),
    pytest.param(
        {"payment_applications_csv": with_rows("payment_applications.csv", "P9,I2,1.00")},
        "payment_applications.csv",
        4,
        "payment P9 is not in payments.csv",
        id="application_unknown_payment",
    ),
    pytest.param(
        {"refunds_csv": with_rows("refunds.csv", "R2,P1,A1,2026-01-10,450.00,Too much")},
        "refunds.csv",
        3,
        "refunds of payment P1 would reach 500.00, above the payment's 464.69",
        id="refund_above_payment",
    ),
    pytest.param(
        {"refunds_csv": with_rows("refunds.csv", "R2,P9,A1,2026-01-10,1.00,")},
        "refunds.csv",
        3,
        "payment P9 is not in payments.csv",
        id="refund_unknown_payment",
    ),
    pytest.param(
        {"refunds_csv": with_rows("refunds.csv", "R2,P2,A1,2026-01-10,1.00,")},
        "refunds.csv",
        3,
        "account A1 differs from the account A2 of payment P2",
        id="refund_wrong_account",
    ),
    pytest.param(
        {"payouts_csv": replace_row("payouts.csv", "PO1,", "PO1,2026-01-08,stripe,464.69,13.78,450.00,P1")},
        "payouts.csv",
        2,
        "gross 464.69 − fee 13.78 = 450.91, not net 450.00",
        id="payout_mismatch",
    ),
    pytest.param(
        {
            "payouts_csv": replace_row(
                "payouts.csv", "PO1,", "PO1,2026-01-08,stripe,464.69,13.78,450.91,P1;P8"
            )
        },
        "payouts.csv",
        2,
        "it lists payments not staged from this export: P8",
        id="payout_unknown_payment",
    ),
    pytest.param(
        {
            "payments_csv": replace_row(
                "payments.csv", "P2,", "P2,A2,2026-01-08,100.00,cash,none,,120.00,USD,true,,"
            )
        },
        "payments.csv",
        3,
        "processing_fee 120.00 is above the amount 100.00",
        id="fee_above_amount",
    ),
    pytest.param(
        {"payment_applications_csv": with_rows("payment_applications.csv", "P2,I1,1.00")},
        "payment_applications.csv",
        4,
        "payment P2 of account A2 cannot pay invoice I1 of account A1",
        id="application_across_accounts",
    ),
    pytest.param(
        {"accounts_csv": with_rows("accounts.csv", "A3,Extra,Individual,,,,false,auto,,surplus")},
        "accounts.csv",
        4,
        "the row has 10 fields but the header has 9",
        id="malformed_row",
    ),
]


@pytest.mark.parametrize(("changes", "filename", "line", "reason"), REJECTIONS)
def test_each_rejection_kind_names_its_reason_and_line(tmp_path, changes, filename, line, reason):
    result = validated(tmp_path, **changes)
    reasons = rejected(result, filename.removesuffix(".csv"))
    assert line in reasons, reasons
    assert reason in reasons[line]


def test_rejected_rows_keep_the_row_as_read(tmp_path):
    result = validated(
        tmp_path,
        payments_csv=replace_row("payments.csv", "P2,", "P2,A2,2026-01-08,12.3.4,cash,none,,0,USD,true,,"),
    )
    raw = json.loads(result["payments"].rejected.iloc[0]["raw"])
    assert raw["amount"] == "12.3.4" and raw["payment_id"] == "P2"


def test_dependents_of_a_rejected_invoice_are_rejected_naming_the_cause(tmp_path):
    result = validated(
        tmp_path,
        invoices_csv=replace_row("invoices.csv", "I1,", "I1,INV-0001,A1,2026-01-05,,Paid,USD,22.19,999.00,,"),
    )
    assert "total 999.00 is not lines 442.50 + tax 22.19 = 464.69" in rejected(result, "invoices")[2]
    line_reasons = rejected(result, "invoice_lines")
    assert set(line_reasons) == {2, 3, 4}
    assert all(r == "invoice I1 was rejected (invoices.csv line 2)" for r in line_reasons.values())
    assert rejected(result, "payment_applications") == {2: "invoice I1 was rejected (invoices.csv line 2)"}
    # The payment itself stays: the money was received, only its application is in doubt.
    assert "P1" in set(result["payments"].staged["payment_id"])


def test_a_rejected_line_takes_its_invoice_and_siblings_with_it(tmp_path):
    result = validated(
        tmp_path,
        invoice_lines_csv=replace_row(
            "invoice_lines.csv", "I1,2", "I1,2,S2,Bookkeeping,,95.00,2.25,abc,false"
        ),
    )
    assert rejected(result, "invoices")[2] == "its invoice_lines.csv line 3 was rejected"
    assert set(rejected(result, "invoice_lines")) == {2, 3, 4}


def test_a_rejected_account_cascades_to_its_invoices_payments_and_their_dependents(tmp_path):
    result = validated(
        tmp_path, accounts_csv=replace_row("accounts.csv", "A2,", "A2,,Individual,,,,false,auto,")
    )
    assert rejected(result, "accounts") == {3: "account_name is missing"}
    assert rejected(result, "invoices") == {3: "account A2 was rejected (accounts.csv line 3)"}
    assert rejected(result, "invoice_lines") == {5: "invoice I2 was rejected (invoices.csv line 3)"}
    assert rejected(result, "payments") == {3: "account A2 was rejected (accounts.csv line 3)"}
    assert 3 in rejected(result, "payment_applications")


def test_taxdome_list_export_headers_are_accepted_as_aliases(tmp_path):
    invoices = BASE_EXPORT["invoices.csv"].replace(
        "invoice_id,invoice_number,account_id,posted_date,due_date,status,currency,tax_amount,total",
        "Invoice ID,Invoice #,Client,Posted,Due Date,STATUS,currency,Tax,Amount",
    )
    payments = BASE_EXPORT["payments.csv"].replace(
        "payment_id,account_id,payment_date,amount,method", "Payment  ID,Client,Date,Amount,Source"
    )
    result = validated(tmp_path, invoices_csv=invoices, payments_csv=payments)
    assert all(f.rejected.empty for f in result.values())
    assert list(result["invoices"].staged["invoice_number"]) == ["INV-0001", "INV-0002"]


def test_client_names_in_the_client_column_resolve_to_account_ids(tmp_path):
    result = validated(
        tmp_path,
        invoices_csv=replace_row(
            "invoices.csv", "I2,", "I2,INV-0002,Zoë Müller,2026-01-06,,Unpaid,USD,,250.00,,"
        ),
    )
    assert result["invoices"].rejected.empty
    assert result["invoices"].staged.set_index("invoice_id").loc["I2", "account_id"] == "A2"


def test_enum_spellings_fold_to_canonical_values(tmp_path):
    result = validated(
        tmp_path,
        payments_csv=replace_row(
            "payments.csv", "P2,", "P2,A2,2026-01-08,100.00,Bank Transfer,Offline,,0,usd,Yes,,"
        ),
    )
    payment = result["payments"].staged.set_index("payment_id").loc["P2"]
    assert (payment["method"], payment["processor"], payment["currency"]) == ("bank_transfer", "none", "USD")


def test_line_numbers_stay_exact_with_blank_lines_and_quoted_newlines(tmp_path):
    accounts = (
        "account_id,account_name,account_type,email,created_at,updated_at,archived,qbo_sync,qbo_customer_name\n"
        'A1,"O\'Brien\n& Sons",Company,,,,false,auto,\n'
        "\n"
        "A2,Zoë Müller,Individual,,,,false,auto,\n"
        "A3,Bad,Individual,,,,perhaps,auto,\n"
    )
    result = validated(tmp_path, accounts_csv=accounts)
    assert rejected(result, "accounts") == {6: "archived 'perhaps' is not true or false"}
    assert result["accounts"].rows_read == 3
    assert result["accounts"].staged.set_index("account_id").loc["A1", "account_name"] == "O'Brien\n& Sons"


def test_a_missing_required_file_fails_the_load(tmp_path):
    with pytest.raises(ExportContractError, match=r"lacks required files: refunds\.csv"):
        ExportReader(write_export(tmp_path / "export", refunds_csv=None))


def test_payouts_are_optional(tmp_path):
    result = validate_folder(write_export(tmp_path / "export", payouts_csv=None))
    assert "payouts" not in result


def test_a_header_without_a_required_column_fails_the_load(tmp_path):
    invoices = BASE_EXPORT["invoices.csv"].replace(",total,", ",grand_sum,")
    with pytest.raises(ExportContractError, match=r"invoices.csv lacks required columns: total \(or amount"):
        ExportReader(write_export(tmp_path / "export", invoices_csv=invoices))


def test_a_file_that_is_not_utf8_fails_the_load(tmp_path):
    folder = write_export(tmp_path / "export")
    (folder / "accounts.csv").write_bytes(
        BASE_EXPORT["accounts.csv"].encode() + "A3,Ren\xe9,Individual,,,,false,auto,\n".encode("latin-1")
    )
    with pytest.raises(ExportContractError, match=r"accounts\.csv is not UTF-8 text"):
        validate_folder(folder)


def test_files_with_a_header_and_no_rows_are_valid(tmp_path):
    empty = {
        name.replace(".csv", "_csv"): text.splitlines()[0] + "\n"
        for name, text in BASE_EXPORT.items()
        if name not in ("accounts.csv", "services.csv")
    }
    result = validated(tmp_path, **empty)
    assert {name: len(file.staged) for name, file in result.items()} == {
        "accounts": 2,
        "services": 2,
        "invoices": 0,
        "invoice_lines": 0,
        "payments": 0,
        "payment_applications": 0,
        "refunds": 0,
        "payouts": 0,
    }
