"""Value parsers: exact money in cents, strict dates, folded enums, half-up line rounding."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

from taxdome_qbo.core import parsing
from taxdome_qbo.core.export_contract import (
    INVOICES,
    PAYMENTS,
    ExportContractError,
    enum_lookup,
    header_mapping,
)


def text(*values):
    return parsing.clean_text(pa.chunked_array([pa.array(list(values), pa.string())]))


def parsed(result: parsing.Parsed):
    return result.values.to_pylist(), result.invalid.tolist()


def test_money_becomes_exact_cents_without_passing_through_a_float():
    values, invalid = parsed(
        parsing.parse_money(text("0.10", "0.2", "1,234.56", "$99", "-$4.10", " 7 ", "999999999999.99", None))
    )
    assert values == [10, 20, 123456, 9900, -410, 700, 99999999999999, None]
    assert invalid == [False] * 8


@pytest.mark.parametrize("bad", ["12.3.4", "abc", "10.005", "1,23", "1 000", "--5", "0x10", "1e3"])
def test_money_refuses_what_is_not_an_amount_with_at_most_two_decimals(bad):
    values, invalid = parsed(parsing.parse_money(text(bad)))
    assert values == [None] and invalid == [True]


def test_quantities_keep_four_decimals_exactly():
    result = parsing.parse_quantity(text("1.5", "0.25", "-2", "3.12345", "100001"))
    assert result.values.to_pylist()[:3] == [15000, 2500, -20000]
    assert result.invalid.tolist() == [False, False, False, True, True]
    assert parsing.format_quantity(result.values).to_pylist()[:3] == ["1.5000", "0.2500", "-2.0000"]


def test_dates_must_exist_and_be_iso():
    values, invalid = parsed(
        parsing.parse_date(text("2024-02-29", "2026-02-29", "2026-13-01", "03/15/2026", ""))
    )
    assert values == ["2024-02-29", None, None, None, None]
    assert invalid == [False, True, True, True, False]


def test_line_amounts_round_half_up_away_from_zero():
    rate = np.array([1000, 333, -333, 125])  # cents
    quantity = np.array([12500, 5000, 5000, 2000])  # ten-thousandths: 1.25, 0.5, 0.5, 0.2
    assert parsing.round_half_up_product(rate, quantity).tolist() == [1250, 167, -167, 25]


def test_enums_fold_case_spacing_and_underscores():
    lookup = enum_lookup(PAYMENTS.column("method"))
    values, invalid = parsed(
        parsing.parse_enum(text("Credit Card", "BANK_TRANSFER", " ach ", "bitcoin"), lookup)
    )
    assert values == ["card", "bank_transfer", "ach", None] and invalid == [False, False, False, True]


def test_headers_map_to_canonical_columns_and_unknown_ones_are_left_out():
    mapping = header_mapping(INVOICES, ["Amount", "Invoice  #", "Unknown Column"])
    assert mapping == {"Amount": "total", "Invoice  #": "invoice_number"}


@pytest.mark.parametrize(
    "headers",
    [["Amount", "total"], ["Invoice #", "invoice_number"], ["total", "Total"]],
    ids=["alias_and_canonical", "taxdome_name_and_canonical", "same_name_twice"],
)
def test_two_headers_meaning_one_column_are_refused_naming_both(headers):
    with pytest.raises(
        ExportContractError, match=rf"columns 1 '{re.escape(headers[0])}' and 2 '{headers[1]}'"
    ):
        header_mapping(INVOICES, [*headers, "Unknown Column"])
