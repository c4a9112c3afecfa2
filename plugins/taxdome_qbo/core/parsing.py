"""Vectorized parsers for export values: text in, typed values plus a per-row error out.

Each parser takes a pyarrow string array (nulls for empty cells) and returns `Parsed`: the typed values
(null where the input was empty or invalid) and `invalid`, a boolean mask of non-empty cells that could
not be parsed. Money never passes through a float: it is split into whole and fractional digits and
becomes integer cents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

QUANTITY_SCALE = 10_000  # quantities keep 4 decimal places
MAX_QUANTITY = 100_000
MAX_RATE_CENTS = 1_000_000_000  # rate × quantity then stays inside int64 (1e9 × 1e9 = 1e18)

# Up to 12 whole digits ($999,999,999,999.99): far above any invoice, far below int64 overflow in cents.
_MONEY = r"^(?P<sign>-?)\$?(?P<whole>\d{1,12})(?:\.(?P<frac>\d{1,2}))?$"
_MONEY_WITH_THOUSANDS = r"^(-\$?|\$-?)?\d{1,3}(,\d{3})+(\.\d+)?$"
_QUANTITY = r"^(?P<sign>-?)(?P<whole>\d{1,6})(?:\.(?P<frac>\d{1,4}))?$"
_POSITIVE_INT = r"^\d{1,9}$"
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_CURRENCY = r"^[A-Za-z]{3}$"
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


@dataclass(frozen=True)
class Parsed:
    values: pa.ChunkedArray
    invalid: np.ndarray


def clean_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Strip whitespace; an empty cell becomes null."""
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _invalid(values: pa.ChunkedArray, parsed: pa.ChunkedArray) -> np.ndarray:
    present = pc.is_valid(values)
    return pc.and_(present, pc.is_null(parsed)).to_numpy(zero_copy_only=False)


def _signed_scaled(match: pa.ChunkedArray, scale_digits: int) -> pa.ChunkedArray:
    whole = pc.cast(pc.struct_field(match, "whole"), pa.int64())
    frac_text = pc.utf8_rpad(pc.struct_field(match, "frac"), scale_digits, "0")
    frac = pc.cast(pc.if_else(pc.equal(frac_text, ""), "0" * scale_digits, frac_text), pa.int64())
    magnitude = pc.add(pc.multiply(whole, 10**scale_digits), frac)
    negative = pc.equal(pc.struct_field(match, "sign"), "-")
    return pc.if_else(pc.and_(pc.is_valid(match), negative), pc.negate(magnitude), magnitude)


def parse_money(values: pa.ChunkedArray) -> Parsed:
    """'1,234.50', '$12', '-3.5' -> cents. More than 2 decimals is an error, not a rounding."""
    grouped = pc.match_substring_regex(values, _MONEY_WITH_THOUSANDS)
    ungrouped = pc.if_else(grouped, pc.replace_substring(values, ",", ""), values)
    sign_first = pc.replace_substring_regex(ungrouped, r"^\$-", "-")  # "$-4.10" is "-$4.10"
    match = pc.extract_regex(sign_first, _MONEY)
    cents = _signed_scaled(match, 2)
    return Parsed(cents, _invalid(values, cents))


def parse_quantity(values: pa.ChunkedArray) -> Parsed:
    """'1.25' -> 12500 ten-thousandths; at most 4 decimals and at most MAX_QUANTITY."""
    match = pc.extract_regex(values, _QUANTITY)
    scaled = _signed_scaled(match, 4)
    in_range = pc.less_equal(pc.abs(scaled), MAX_QUANTITY * QUANTITY_SCALE)
    scaled = pc.if_else(in_range, scaled, pa.scalar(None, pa.int64()))
    return Parsed(scaled, _invalid(values, scaled))


def format_quantity(scaled: pa.ChunkedArray) -> pa.ChunkedArray:
    """Ten-thousandths -> canonical decimal text '1.2500' (exact, for NUMERIC storage)."""
    magnitude = pc.abs(scaled)
    whole = pc.divide(magnitude, QUANTITY_SCALE)  # integer division on int64
    frac = pc.subtract(magnitude, pc.multiply(whole, QUANTITY_SCALE))
    whole_text = pc.cast(whole, pa.string())
    frac_text = pc.utf8_lpad(pc.cast(frac, pa.string()), 4, "0")
    sign = pc.if_else(pc.less(scaled, 0), "-", "")
    return pc.binary_join_element_wise(sign, whole_text, ".", frac_text, "")


def parse_positive_int(values: pa.ChunkedArray) -> Parsed:
    ok = pc.match_substring_regex(values, _POSITIVE_INT)
    parsed = pc.if_else(ok, pc.cast(pc.if_else(ok, values, "0"), pa.int64()), pa.scalar(None, pa.int64()))
    parsed = pc.if_else(pc.greater(parsed, 0), parsed, pa.scalar(None, pa.int64()))
    return Parsed(parsed, _invalid(values, parsed))


def parse_date(values: pa.ChunkedArray) -> Parsed:
    """Strict ISO date: the text must round-trip, so 2026-02-30 (which strptime rolls over) is invalid."""
    shaped = pc.match_substring_regex(values, _DATE)
    candidate = pc.if_else(shaped, values, pa.scalar(None, pa.string()))
    as_time = pc.strptime(candidate, format="%Y-%m-%d", unit="s", error_is_null=True)
    round_trip = as_time.cast(pa.date32()).cast(pa.string())  # strftime's %Y-%m-%d, a third of its time
    parsed = pc.if_else(pc.equal(round_trip, candidate), candidate, pa.scalar(None, pa.string()))
    return Parsed(parsed, _invalid(values, parsed))


def parse_timestamp(values: pa.ChunkedArray) -> Parsed:
    """ISO 8601 with or without offset (naive means UTC) -> UTC timestamps."""
    import pandas as pd

    series = pd.Series(values.to_pandas(), dtype="str")
    parsed = pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce")
    arrow = pa.chunked_array([pa.array(parsed, type=pa.timestamp("us", tz="UTC"), from_pandas=True)])
    return Parsed(arrow, _invalid(values, arrow))


def parse_bool(values: pa.ChunkedArray) -> Parsed:
    folded = pc.utf8_lower(values)
    is_true = pc.is_in(folded, pa.array(_TRUE))
    is_false = pc.is_in(folded, pa.array(_FALSE))
    parsed = pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))
    return Parsed(parsed, _invalid(values, parsed))


def parse_enum(values: pa.ChunkedArray, lookup: dict[str, str]) -> Parsed:
    """Map any accepted spelling (folded like header names) to its canonical value."""
    folded = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(values), r"[\s_]+", " "))
    keys = pa.array(list(lookup))
    canonical = pa.array(list(lookup.values()))
    positions = pc.index_in(folded, value_set=keys)
    parsed = pc.take(canonical, positions)
    return Parsed(parsed, _invalid(values, parsed))


def parse_currency(values: pa.ChunkedArray) -> Parsed:
    ok = pc.match_substring_regex(values, _CURRENCY)
    parsed = pc.if_else(ok, pc.utf8_upper(values), pa.scalar(None, pa.string()))
    return Parsed(parsed, _invalid(values, parsed))


def parse_id_list(values: pa.ChunkedArray) -> Parsed:
    """'P1; P2;P3' -> 'P1;P2;P3' (canonical spacing, empty items dropped)."""
    canonical = pc.replace_substring_regex(
        pc.replace_substring_regex(values, r"\s*;\s*", ";"), r"^;+|;+$", ""
    )
    canonical = pc.if_else(pc.equal(canonical, ""), pa.scalar(None, pa.string()), canonical)
    return Parsed(canonical, np.zeros(len(values), dtype=bool))


def round_half_up_product(rate_cents: np.ndarray, quantity_scaled: np.ndarray) -> np.ndarray:
    """rate × quantity rounded to the cent, halves away from zero (as invoices print it)."""
    product = rate_cents * quantity_scaled
    magnitude = (np.abs(product) + QUANTITY_SCALE // 2) // QUANTITY_SCALE
    return np.sign(product) * magnitude
