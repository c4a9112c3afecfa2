"""How the planner keeps a firm of a million invoices within memory and time: the staged frames as shared
Python objects, the sync state as compact tuples, invoices a chunk at a time, and the cyclic collector kept
from re-walking it all.

Pure: no I/O.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
from collections import defaultdict
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from taxdome_qbo.core.vocabulary import date_text

INVOICE_CHUNK = 50_000  # invoices (with their lines) turned into Python objects at a time


class Known(NamedTuple):
    """What the last sync left of one TaxDome object."""

    qbo_entity: str | None
    qbo_id: str | None
    sync_token: str | None
    payload_hash: bytes | str | None  # the digest its hex text encodes (see digest_of)
    status: str | None


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Python objects with None for missing values, dates as YYYY-MM-DD: what the row-by-row rules read fastest."""

    return pd.DataFrame(
        {column: python_values(frame[column], dates=_is_date(column)) for column in frame.columns},
        index=frame.index,
        dtype=object,  # pandas 3 would otherwise infer Arrow strings again
    )


def rows(frame: pd.DataFrame) -> Iterator[tuple]:
    """The same namedtuples as `frame.itertuples(index=False)`, each made by a C call: itertuples makes each
    with a Python call (`_make`), a noticeable share of the planner's time over millions of rows."""
    row = collections.namedtuple("Row", frame.columns, rename=True)
    columns = (frame.iloc[:, position] for position in range(frame.shape[1]))
    # An object column's values as a list, not fetched one by one as iterating the Series does: the same objects.
    values = (column.to_numpy().tolist() if column.dtype == object else column for column in columns)
    return map(functools.partial(tuple.__new__, row), zip(*values, strict=True))


def python_values(values: pd.Series, *, dates: bool = False) -> np.ndarray | list:
    """A column as Python objects, None where missing, dates as YYYY-MM-DD. A text column gets one object per
    distinct text, shared by its rows: kinds, methods, days and statuses repeat a lot."""
    if isinstance(values.dtype, pd.StringDtype):
        arrow = pa.array(values)
        encoded = pc.dictionary_encode(
            arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow
        )
        texts = encoded.dictionary.to_pylist()
        if dates:
            texts = [date_text(text) for text in texts]
        lookup = np.array([*texts, None], dtype=object)
        return lookup[pc.fill_null(encoded.indices, len(texts)).to_numpy()]
    objects = values.to_numpy(dtype=object, na_value=None)
    return [date_text(value) for value in objects] if dates else objects


def index_state(state: pd.DataFrame) -> defaultdict[str, dict[str, Known]]:
    """kind -> TaxDome id -> what the last sync left. Built from columns with the repeated texts shared: a
    namedtuple per row from itertuples, with its own copy of every text, costs several times the memory."""

    def column(name: str, *, repeated: bool = False) -> list:
        values = state[name].to_numpy(dtype=object, na_value=None).tolist()
        if repeated:
            shared: dict = {}
            values = [shared.setdefault(value, value) for value in values]
        return values

    index: defaultdict[str, dict[str, Known]] = defaultdict(dict)
    known = map(
        Known._make,
        zip(
            column("qbo_entity", repeated=True),
            column("qbo_id"),
            column("sync_token"),
            map(digest_of, column("payload_hash")),
            column("status", repeated=True),
            strict=True,
        ),
    )
    kinds = column("taxdome_kind", repeated=True)
    for kind, taxdome_id, row in zip(kinds, column("taxdome_id"), known, strict=True):
        index[kind][taxdome_id] = row
    return index


def digest_of(payload_hash: str | None) -> bytes | str | None:
    """A recorded hash as the digest its hex text encodes (half the memory of the text, for millions of
    objects); anything else as it is, which then matches no payload's digest, as it matched no hex text."""
    try:
        digest = bytes.fromhex(payload_hash)
    except (TypeError, ValueError):
        return payload_hash
    return digest if digest.hex() == payload_hash else payload_hash


def distinct(values: pd.Series) -> set:
    """The distinct values, found in Arrow rather than by iterating a million Arrow strings one by one."""
    return set(pc.unique(pa.array(values)).to_pylist())


def isin(values: pd.Series, wanted) -> np.ndarray:
    """Membership without pandas' element-by-element path for Arrow strings."""
    found = pc.is_in(pa.array(values, pa.string()), value_set=pa.array(list(wanted), pa.string()))
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


def invoice_chunks(
    invoices: pd.DataFrame, lines: pd.DataFrame, line_columns: tuple[str, ...]
) -> Iterator[tuple[pd.DataFrame, list[tuple], list[int]]]:
    """The invoices by posting day, then id (the execution order of their operations), INVOICE_CHUNK at a
    time as Python objects: a million invoices never all at once. With each chunk, its lines as tuples of
    `line_columns`, by invoice then line number, and where each invoice's lines start: the chunk's i-th
    invoice has the lines bounds[i]:bounds[i + 1] (tuples and slices, not a namedtuple per line)."""
    days = [date_text(day) for day in invoices["posted_date"].to_numpy(dtype=object, na_value=None)]
    invoice_ids = pa.array(invoices["invoice_id"], pa.string())
    keys = pa.table({"day": pa.array(days, pa.string()), "id": invoice_ids})
    del days
    order = pc.sort_indices(keys, [("day", "ascending"), ("id", "ascending")])
    del keys
    # Each line ranked by its invoice's place in that order, once: a chunk's lines are then one slice.
    rank = pc.index_in(pa.array(lines["invoice_id"], pa.string()), value_set=invoice_ids.take(order))
    rank = pc.fill_null(rank, len(invoices))  # lines of no staged invoice come last, in no chunk
    line_order = pc.sort_indices(
        pa.table({"rank": rank, "line_no": pa.array(lines["line_no"])}),
        [("rank", "ascending"), ("line_no", "ascending")],
    )
    line_ranks = rank.take(line_order).to_numpy()
    line_order, order = line_order.to_numpy(), order.to_numpy()
    for start in range(0, len(invoices), INVOICE_CHUNK):
        chunk = plain(invoices.iloc[order[start : start + INVOICE_CHUNK]])
        bounds = np.searchsorted(line_ranks, np.arange(start, start + len(chunk) + 1))
        chunk_lines = lines.iloc[line_order[bounds[0] : bounds[-1]]]
        columns = [python_values(chunk_lines[name], dates=_is_date(name)) for name in line_columns]
        del chunk_lines
        yield chunk, list(zip(*columns, strict=True)), (bounds - bounds[0]).tolist()


def _is_date(column: str) -> bool:
    return column.endswith(("_date", "_at"))


@contextlib.contextmanager
def quiet_collector() -> Iterator[None]:
    """The cyclic collector paused while planning: the millions of sync-state rows, status tuples and payload
    dicts would set it off again and again, each pass walking what was made since (an eighth of a steady
    plan's time). Planning makes almost no reference cycles (some 400 objects for 100,000 invoices) and
    everything else is freed by reference counting, so the pause costs no memory."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
