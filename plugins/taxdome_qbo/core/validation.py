"""Validate a TaxDome export against the landing contract and split every file into staged and rejected rows.

Pure: raw string frames in, typed frames and quarantine rows out. Checks are vectorized; only the rows that
fail get a Python-formatted reason, so a clean million-row file costs a few array operations.

Rules, in the order they are decided (a file's references point only to files validated before it):
- no value holds a control character other than tab and line breaks (a NUL cannot be stored in PostgreSQL
  text; rejecting the row, rather than stripping the byte, keeps SQLite and PostgreSQL alike and the value
  as TaxDome wrote it, visible in the quarantine);
- each value parses as its kind (money with at most 2 decimals, ISO dates, enumerations, booleans);
  required values are present; amounts respect their sign (docs/export-contract.md);
- a key seen earlier in the same file is a duplicate: the first occurrence is kept;
- references resolve inside the export (invoice → account, line → invoice, application → payment and
  invoice, refund → payment); a row whose parent was rejected is rejected too, naming the parent;
- an invoice line with rate and quantity has amount = rate × quantity rounded half up to the cent;
- an invoice's total = sum of its line amounts + tax_amount, and every one of its lines is valid;
- a processing fee is not above its payment; refunds of a payment do not add up to more than it;
- a payout's gross − fee = net, and every payment it lists is in the export.
Invariant for every file: rows read = rows staged + rows rejected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from taxdome_qbo.core import parsing
from taxdome_qbo.core.export_contract import (
    ACCOUNTS,
    INVOICE_LINES,
    INVOICES,
    PAYMENT_APPLICATIONS,
    PAYMENTS,
    PAYOUTS,
    REFUNDS,
    SERVICES,
    Column,
    ExportFile,
    Kind,
    enum_lookup,
    header_mapping,
)
from taxdome_qbo.core.money import format_cents

REJECTED_COLUMNS = ("source_file", "source_line", "reason", "raw")
# C0 controls but tab, line feed and carriage return, which text fields may hold.
_CONTROL_CHARACTER = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_CONTROL_CHARACTERS = re.compile(_CONTROL_CHARACTER)
# The same characters as bytes: in UTF-8 they are single bytes that no other character's bytes contain.
_CONTROL_BYTES = np.array(
    [_CONTROL_CHARACTERS.fullmatch(chr(byte)) is not None for byte in range(0x80)] + [False] * 0x80
)


def _first_control(text: str) -> str:
    return printable(_CONTROL_CHARACTERS.search(text).group())


def _may_hold_control_characters(text: pa.ChunkedArray) -> bool:
    """False when no byte of the column's text is a control character: one pass over its buffers, which
    clears a clean column without matching the regex row by row (a buffer may reach beyond the column's
    rows: a byte there only sends the column to the regex)."""
    return any(
        data is not None and _CONTROL_BYTES[np.frombuffer(data, dtype=np.uint8)].any()
        for data in (chunk.buffers()[2] for chunk in text.chunks)
    )


def printable(text: str) -> str:
    """Text with its control characters written as `\\x00`, fit for a reason, a log or a database."""
    return _CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


@dataclass(frozen=True)
class MalformedRow:
    """A record the CSV reader could not split into the header's fields."""

    line: int
    text: str
    field_count: int


@dataclass
class RawFile:
    """One export file as read: every cell as text, with the line each record starts on (header = 1)."""

    export_file: ExportFile
    table: pa.Table
    source_lines: np.ndarray
    malformed: list[MalformedRow] = field(default_factory=list)
    # Records whose quoted fields hold line breaks: the line each starts on. A stray quote that swallows
    # the records after it looks the same, so only a writer's row count can tell them apart.
    multiline_starts: list[int] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.malformed)


@dataclass
class ValidatedFile:
    export_file: ExportFile
    staged: pd.DataFrame
    rejected: pd.DataFrame
    rows_read: int
    keys_in_file: pd.DataFrame  # the key of every row read, staged or rejected (null where unparsable)


class _FileCheck:
    """The working state of one file: its typed columns and the reasons accumulated per row."""

    def __init__(self, raw: RawFile):
        self.raw = raw
        self.spec = raw.export_file
        self.size = raw.table.num_rows
        self.reasons: dict[int, str] = {}
        self._rejected = np.zeros(self.size, dtype=bool)
        mapping = header_mapping(self.spec, raw.table.column_names)
        self.header_of = {canonical: header for header, canonical in mapping.items()}
        self.text: dict[str, pa.ChunkedArray] = {}
        self.values: dict[str, pa.ChunkedArray] = {}
        for column in self.spec.columns:
            self._parse(column)

    # -- reasons ---------------------------------------------------------------------------------------
    def reject(self, mask: np.ndarray | pa.ChunkedArray, message: Callable[[int], str]) -> None:
        if isinstance(mask, pa.ChunkedArray):
            mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        for row in np.flatnonzero(mask):
            row = int(row)
            text = message(row)
            current = self.reasons.get(row)
            if current is None:
                self.reasons[row] = text
                self._rejected[row] = True
            elif text not in current.split("; "):
                self.reasons[row] = f"{current}; {text}"

    def valid_mask(self) -> np.ndarray:
        return ~self._rejected

    def line(self, row: int) -> int:
        return int(self.raw.source_lines[row])

    def cell(self, name: str, row: int) -> str | None:
        return self.text[name][row].as_py()

    def value(self, name: str, row: int):
        return self.values[name][row].as_py()

    # -- parsing ---------------------------------------------------------------------------------------
    def _parse(self, column: Column) -> None:
        header = self.header_of.get(column.name)
        if header is None:
            text = pa.chunked_array([pa.nulls(self.size, pa.string())])
        else:
            raw_text = self.raw.table.column(header)
            if _may_hold_control_characters(raw_text):
                self.reject(
                    pc.match_substring_regex(raw_text, _CONTROL_CHARACTER),
                    lambda row, c=column, h=header: (
                        f"{c.name} holds a control character ({_first_control(self.raw.table.column(h)[row].as_py())})"
                    ),
                )
            text = parsing.clean_text(raw_text)
        if column.default is not None:
            text = pc.fill_null(text, column.default)
        self.text[column.name] = text

        if column.required:
            self.reject(pc.is_null(text), lambda row, c=column: f"{c.name} is missing")

        parsed = self._parse_kind(column, text)
        self.values[column.name] = parsed.values
        self.reject(parsed.invalid, lambda row, c=column: self._invalid_message(c, row))
        if column.kind is Kind.MONEY and column.min_cents is not None:
            below = pc.less(parsed.values, column.min_cents)
            self.reject(below, lambda row, c=column: self._below_minimum_message(c, row))

    def _parse_kind(self, column: Column, text: pa.ChunkedArray) -> parsing.Parsed:
        match column.kind:
            case Kind.MONEY:
                return parsing.parse_money(text)
            case Kind.QUANTITY:
                return parsing.parse_quantity(text)
            case Kind.DATE:
                return parsing.parse_date(text)
            case Kind.TIMESTAMP:
                return parsing.parse_timestamp(text)
            case Kind.BOOL:
                return parsing.parse_bool(text)
            case Kind.POSITIVE_INT:
                return parsing.parse_positive_int(text)
            case Kind.ENUM:
                return parsing.parse_enum(text, enum_lookup(column))
            case Kind.CURRENCY:
                return parsing.parse_currency(text)
            case Kind.ID_LIST:
                return parsing.parse_id_list(text)
            case _:
                return parsing.Parsed(text, np.zeros(self.size, dtype=bool))

    def _invalid_message(self, column: Column, row: int) -> str:
        value = self.cell(column.name, row)
        expected = {
            Kind.MONEY: "an amount with at most 2 decimals, like 1250.00",
            Kind.QUANTITY: f"a quantity with at most 4 decimals, up to {parsing.MAX_QUANTITY}",
            Kind.DATE: "a date written YYYY-MM-DD",
            Kind.TIMESTAMP: "an ISO 8601 date and time",
            Kind.BOOL: "true or false",
            Kind.POSITIVE_INT: "a whole number from 1",
            Kind.CURRENCY: "a three-letter currency code",
            Kind.ENUM: "one of " + ", ".join(column.values),
        }[column.kind]
        return f"{column.name} '{value}' is not {expected}"

    def _below_minimum_message(self, column: Column, row: int) -> str:
        amount = format_cents(self.value(column.name, row))
        if column.min_cents == 0:
            return f"{column.name} {amount} is negative"
        return f"{column.name} {amount} must be greater than zero"

    # -- structural checks -----------------------------------------------------------------------------
    def reject_duplicate_keys(self) -> None:
        keys = pd.DataFrame({name: self.text[name].to_pandas() for name in self.spec.key})
        complete = keys.notna().all(axis=1).to_numpy()
        duplicated = keys.duplicated(keep="first").to_numpy() & complete
        if not duplicated.any():
            return
        first_line = {}
        for row in np.flatnonzero(complete & ~duplicated):
            first_line.setdefault(tuple(keys.iloc[row]), self.line(int(row)))
        key_label = " + ".join(self.spec.key)

        def message(row: int) -> str:
            key = tuple(keys.iloc[row])
            return f"duplicate {key_label} {' / '.join(key)} (kept the first, at line {first_line[key]})"

        self.reject(duplicated, message)

    def reject_unresolved(
        self, column: str, parent: _ValidatedKeys, parent_label: str, *, still_valid_only: bool = False
    ) -> None:
        """Reject rows whose reference is unknown or points to a rejected row, naming which.

        :param still_valid_only: leave rows already rejected alone (a second pass after the parent file lost
            rows because of these very rows would otherwise blame the parent for the child's own fault).
        """
        values = self.text[column]
        unresolved = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=parent.valid_keys)))
        if still_valid_only:
            unresolved = pc.and_(unresolved, pa.array(self.valid_mask()))

        def message(row: int) -> str:
            key = self.cell(column, row)
            where = parent.rejected_at.get(key)
            if where is not None:
                return f"{parent_label} {key} was rejected ({where})"
            return f"{parent_label} {key} is not in {parent.filename}"

        self.reject(unresolved, message)

    def resolve_account_names(self, accounts: _ValidatedKeys, names_to_ids: dict[str, str]) -> None:
        """TaxDome's list exports carry the client's name in `Client`; map a name that is not an id to its id."""
        values = self.text["account_id"]
        unknown = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=accounts.valid_keys)))
        rows = np.flatnonzero(pc.fill_null(unknown, False).to_numpy(zero_copy_only=False))
        replaced = [
            (int(r), names_to_ids[name])
            for r in rows
            if (name := self.cell("account_id", int(r))) in names_to_ids
        ]
        if replaced:
            as_list = values.to_pylist()
            for row, account_id in replaced:
                as_list[row] = account_id
            self.text["account_id"] = self.values["account_id"] = pa.chunked_array(
                [pa.array(as_list, pa.string())]
            )

    # -- results ---------------------------------------------------------------------------------------
    def result(self) -> ValidatedFile:
        valid = self.valid_mask()
        staged = self._staged_frame(valid)
        rejected = self._rejected_frame(~valid)
        keys = pd.DataFrame({k: _to_pandas(self.values[k]) for k in self.spec.key})
        return ValidatedFile(self.spec, staged, rejected, self.raw.rows_read, keys)

    def _staged_frame(self, valid: np.ndarray) -> pd.DataFrame:
        keep = pa.array(valid)
        columns = {}
        for column in self.spec.columns:
            values = self.values[column.name].filter(keep)
            if column.kind is Kind.QUANTITY:
                values = parsing.format_quantity(values)
            columns[column.stored_name] = _to_pandas(values)
        staged = pd.DataFrame(columns)
        staged["_row_hash"] = pd.util.hash_pandas_object(staged, index=False).to_numpy().view(np.int64)
        return staged

    def _rejected_frame(self, rejected: np.ndarray) -> pd.DataFrame:
        rows = np.flatnonzero(rejected)
        records = self.raw.table.take(pa.array(rows, pa.int64())).to_pylist()
        out = [
            (
                self.spec.filename,
                self.line(int(row)),
                printable(self.reasons[int(row)]),
                json.dumps(record, ensure_ascii=False),
            )
            for row, record in zip(rows, records, strict=True)
        ]
        width = self.raw.table.num_columns
        out.extend(
            (
                self.spec.filename,
                bad.line,
                f"the row has {bad.field_count} fields but the header has {width}",
                json.dumps({"_unparsed_line": bad.text}, ensure_ascii=False),
            )
            for bad in self.raw.malformed
        )
        frame = pd.DataFrame(out, columns=list(REJECTED_COLUMNS))
        return frame.astype({"source_line": "int64"}).sort_values(
            "source_line", kind="stable", ignore_index=True
        )


def _to_pandas(values: pa.ChunkedArray) -> pd.Series:
    if pa.types.is_integer(values.type):
        return pd.Series(pd.array(values.to_pandas(types_mapper=pd.ArrowDtype), dtype="Int64"))
    if pa.types.is_boolean(values.type):
        return pd.Series(pd.array(values.to_pandas(types_mapper=pd.ArrowDtype), dtype="boolean"))
    if pa.types.is_timestamp(values.type):
        return pd.Series(values.to_pandas(), dtype="datetime64[us, UTC]")
    return pd.Series(values.to_pandas(), dtype="str")


@dataclass(frozen=True)
class _ValidatedKeys:
    """What children need from a parent file: its valid keys and where its rejected keys were."""

    filename: str
    valid_keys: pa.Array
    rejected_at: dict[str, str]


def _keys_of(check: _FileCheck, key: str) -> _ValidatedKeys:
    valid = check.valid_mask()
    keys = check.text[key]
    valid_keys = pc.unique(pc.drop_null(keys.filter(pa.array(valid))))
    rejected_at = {}
    for row in np.flatnonzero(~valid):
        value = check.cell(key, int(row))
        if value is not None and value not in rejected_at:
            rejected_at[value] = f"{check.spec.filename} line {check.line(int(row))}"
    return _ValidatedKeys(check.spec.filename, valid_keys, rejected_at)


def _ints(values: pa.ChunkedArray) -> np.ndarray:
    """Nullable int64 -> numpy int64 with nulls as 0 (callers mask nulls themselves)."""
    return pc.fill_null(values, 0).to_numpy(zero_copy_only=False).astype(np.int64)


def _is_in(values: pa.ChunkedArray, keys: pd.Index) -> np.ndarray:
    found = pc.is_in(values, value_set=pa.array(keys.to_numpy(dtype=object), pa.string()))
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


def _check_line_amounts(lines: _FileCheck) -> None:
    rate, quantity = lines.values["rate"], lines.values["quantity"]
    both = pc.and_(pc.is_valid(rate), pc.is_valid(quantity)).to_numpy(zero_copy_only=False)
    too_large = both & (np.abs(_ints(rate)) > parsing.MAX_RATE_CENTS)
    lines.reject(
        too_large, lambda row: f"rate {lines.cell('rate', row)} is too large to multiply by a quantity"
    )
    expected = parsing.round_half_up_product(np.where(too_large, 0, _ints(rate)), _ints(quantity))
    amount = lines.values["amount"]
    mismatch = (
        both & ~too_large & pc.is_valid(amount).to_numpy(zero_copy_only=False) & (_ints(amount) != expected)
    )
    lines.reject(
        mismatch,
        lambda row: (
            f"amount {lines.cell('amount', row)} is not rate {lines.cell('rate', row)} × quantity "
            f"{lines.cell('quantity', row)} = {format_cents(int(expected[row]))}"
        ),
    )


def _check_invoice_totals(invoices: _FileCheck, lines: _FileCheck) -> None:
    """Total = lines + tax over the invoice's lines; an invoice with a rejected or missing line is rejected."""
    if invoices.size == 0:
        return
    line_frame = pd.DataFrame(
        {
            "invoice_id": lines.text["invoice_id"].to_pandas(),
            "amount": _ints(lines.values["amount"]),
            "valid": lines.valid_mask(),
            "line": lines.raw.source_lines,
        }
    )
    line_frame = line_frame[line_frame["invoice_id"].notna()]
    sums = line_frame[line_frame["valid"]].groupby("invoice_id", sort=False)["amount"].sum()
    first_bad = line_frame[~line_frame["valid"]].groupby("invoice_id", sort=False)["line"].min()

    invoice_ids = invoices.text["invoice_id"].to_pandas()
    candidates = invoices.valid_mask()
    has_lines = _is_in(invoices.text["invoice_id"], sums.index)
    has_bad_line = _is_in(invoices.text["invoice_id"], first_bad.index)
    tax = _ints(invoices.values["tax_amount"])
    total = _ints(invoices.values["total"])
    sums_exact = invoice_ids.map(sums).fillna(0).to_numpy(dtype=np.int64)

    invoices.reject(
        candidates & has_bad_line,
        lambda row: f"its invoice_lines.csv line {int(first_bad[invoice_ids.iloc[row]])} was rejected",
    )
    invoices.reject(
        candidates & ~has_bad_line & ~has_lines, lambda row: "it has no lines in invoice_lines.csv"
    )
    mismatch = candidates & ~has_bad_line & has_lines & (sums_exact + tax != total)
    invoices.reject(
        mismatch,
        lambda row: (
            f"total {format_cents(int(total[row]))} is not lines {format_cents(int(sums_exact[row]))} "
            f"+ tax {format_cents(int(tax[row]))} = {format_cents(int(sums_exact[row] + tax[row]))}"
        ),
    )


def _check_refund_totals(refunds: _FileCheck, payments: _ParentLookup) -> None:
    """A refund matches its payment's account; refunds of a payment, in date order, never exceed it."""
    if refunds.size == 0:
        return
    frame = pd.DataFrame(
        {
            "payment_id": refunds.text["payment_id"].to_pandas(),
            "account_id": refunds.text["account_id"].to_pandas(),
            "date": refunds.text["refund_date"].to_pandas(),
            "amount": _ints(refunds.values["amount"]),
            "valid": refunds.valid_mask(),
        }
    )
    frame["payment_amount"] = frame["payment_id"].map(payments.amount)
    frame["payment_account"] = frame["payment_id"].map(payments.account)
    wrong_account = (
        frame["valid"] & frame["payment_account"].notna() & (frame["account_id"] != frame["payment_account"])
    ).to_numpy()
    refunds.reject(
        wrong_account,
        lambda row: (
            f"account {frame.at[row, 'account_id']} differs from the account "
            f"{frame.at[row, 'payment_account']} of payment {frame.at[row, 'payment_id']}"
        ),
    )
    eligible = frame[frame["valid"] & ~wrong_account & frame["payment_amount"].notna()]
    ordered = eligible.sort_values(["payment_id", "date"], kind="stable")
    running = ordered.groupby("payment_id", sort=False)["amount"].cumsum()
    over = running > ordered["payment_amount"]
    over_rows = np.zeros(len(frame), dtype=bool)
    over_rows[over[over].index.to_numpy()] = True
    refunds.reject(
        over_rows,
        lambda row: (
            f"refunds of payment {frame.at[row, 'payment_id']} would reach {format_cents(int(running[row]))}, "
            f"above the payment's {format_cents(int(frame.at[row, 'payment_amount']))}"
        ),
    )


def _check_payouts(payouts: _FileCheck, payments: _ValidatedKeys) -> None:
    gross, fee, net = (_ints(payouts.values[c]) for c in ("gross", "fee", "net"))
    present = np.logical_and.reduce(
        [pc.is_valid(payouts.values[c]).to_numpy(zero_copy_only=False) for c in ("gross", "fee", "net")]
    )
    payouts.reject(
        present & (gross - fee != net),
        lambda row: (
            f"gross {format_cents(int(gross[row]))} − fee {format_cents(int(fee[row]))} = "
            f"{format_cents(int(gross[row] - fee[row]))}, not net {format_cents(int(net[row]))}"
        ),
    )
    known = set(payments.valid_keys.to_pylist())
    listed = payouts.values["payment_ids"].to_pylist()
    missing = {row: [p for p in ids.split(";") if p not in known] for row, ids in enumerate(listed) if ids}
    payouts.reject(
        np.array([bool(missing.get(row)) for row in range(payouts.size)], dtype=bool),
        lambda row: (
            "it lists payments not staged from this export: "
            + ", ".join(missing[row][:5])
            + (f" and {len(missing[row]) - 5} more" if len(missing[row]) > 5 else "")
        ),
    )


def _account_names_to_ids(accounts: _FileCheck) -> dict[str, str]:
    """Names that belong to exactly one valid account."""
    valid = accounts.valid_mask()
    frame = pd.DataFrame(
        {"name": accounts.text["account_name"].to_pandas(), "id": accounts.text["account_id"].to_pandas()}
    )[valid]
    unique = frame.drop_duplicates("name", keep=False)
    return dict(zip(unique["name"], unique["id"], strict=True))


@dataclass(frozen=True)
class _ParentLookup:
    """What later files need of a validated parent file, kept once its working state is dropped."""

    keys: _ValidatedKeys
    account: pd.Series  # key -> account_id, valid rows only
    amount: pd.Series | None = None  # key -> cents, valid rows only


def _lookup_of(check: _FileCheck, key: str, amount_column: str | None = None) -> _ParentLookup:
    valid = pa.array(check.valid_mask())
    keys = pd.Index(check.text[key].filter(valid).to_pandas())
    account = pd.Series(check.text["account_id"].filter(valid).to_pandas().to_numpy(), index=keys)
    amount = (
        pd.Series(_ints(check.values[amount_column].filter(valid)), index=keys) if amount_column else None
    )
    return _ParentLookup(_keys_of(check, key), account, amount)


def _check_application_accounts(
    applications: _FileCheck, payments: _ParentLookup, invoices: _ParentLookup
) -> None:
    """A payment pays only its own account's invoices."""
    if applications.size == 0:
        return
    payment_account = applications.text["payment_id"].to_pandas().map(payments.account)
    invoice_account = applications.text["invoice_id"].to_pandas().map(invoices.account)
    differs = (
        payment_account.notna() & invoice_account.notna() & (payment_account != invoice_account)
    ).to_numpy()
    applications.reject(
        differs & applications.valid_mask(),
        lambda row: (
            f"payment {applications.cell('payment_id', row)} of account {payment_account.iloc[row]} "
            f"cannot pay invoice {applications.cell('invoice_id', row)} of account {invoice_account.iloc[row]}"
        ),
    )


def _check_fees(payments: _FileCheck) -> None:
    fee, amount = _ints(payments.values["processing_fee"]), _ints(payments.values["amount"])
    payments.reject(
        payments.valid_mask() & (fee > amount),
        lambda row: (
            f"processing_fee {format_cents(int(fee[row]))} is above the amount {format_cents(int(amount[row]))}"
        ),
    )


def validate_export(read: Callable[[ExportFile], RawFile | None]) -> Iterator[ValidatedFile]:
    """Validate an export file by file, yielding each file (in contract order) as soon as it is final.

    `read` returns a file as read, or None for an optional file that is absent. Each file is read when the
    pipeline reaches it and its working state is dropped once later files no longer need it, so at most
    an invoice file and its lines are held in full at a time, whatever the size of the export.
    """

    def check(export_file: ExportFile) -> _FileCheck:
        file_check = _FileCheck(read(export_file))
        file_check.reject_duplicate_keys()
        return file_check

    accounts = check(ACCOUNTS)
    account_keys = _keys_of(accounts, "account_id")
    names_to_ids = _account_names_to_ids(accounts)
    yield accounts.result()
    del accounts
    yield check(SERVICES).result()

    invoices = check(INVOICES)
    invoices.resolve_account_names(account_keys, names_to_ids)
    invoices.reject_unresolved("account_id", account_keys, "account")
    lines = check(INVOICE_LINES)
    lines.reject_unresolved("invoice_id", _keys_of(invoices, "invoice_id"), "invoice")
    _check_line_amounts(lines)
    _check_invoice_totals(invoices, lines)
    invoice_lookup = _lookup_of(invoices, "invoice_id")
    # Lines of invoices rejected just above follow them out.
    lines.reject_unresolved("invoice_id", invoice_lookup.keys, "invoice", still_valid_only=True)
    yield invoices.result()
    yield lines.result()
    del invoices, lines

    payments = check(PAYMENTS)
    payments.resolve_account_names(account_keys, names_to_ids)
    payments.reject_unresolved("account_id", account_keys, "account")
    _check_fees(payments)
    payment_lookup = _lookup_of(payments, "payment_id", amount_column="amount")
    yield payments.result()
    del payments

    applications = check(PAYMENT_APPLICATIONS)
    applications.reject_unresolved("payment_id", payment_lookup.keys, "payment")
    applications.reject_unresolved("invoice_id", invoice_lookup.keys, "invoice")
    _check_application_accounts(applications, payment_lookup, invoice_lookup)
    yield applications.result()
    del applications, invoice_lookup

    refunds = check(REFUNDS)
    refunds.resolve_account_names(account_keys, names_to_ids)
    refunds.reject_unresolved("payment_id", payment_lookup.keys, "payment")
    refunds.reject_unresolved("account_id", account_keys, "account")
    _check_refund_totals(refunds, payment_lookup)
    yield refunds.result()
    del refunds

    if (raw_payouts := read(PAYOUTS)) is not None:
        payouts = _FileCheck(raw_payouts)
        payouts.reject_duplicate_keys()
        _check_payouts(payouts, payment_lookup.keys)
        yield payouts.result()
