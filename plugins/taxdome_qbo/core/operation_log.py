"""The planned operations, kept as Arrow columns and numbered in execution order: a firm's millions of
payload texts would take several times the memory as Python objects.

Pure: no I/O; a sink (the caller's) gets the operations as frames.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from taxdome_qbo.core.kinds import KINDS, PHASES
from taxdome_qbo.core.vocabulary import OPERATION_COLUMNS

PHASE_SEQ_SPAN = 100_000_000  # 13 phases stay below 2**31: seq fits a 32-bit column


def phase_seqs(kind: str, action: str) -> range:
    """The seqs the operations of `kind` with `action` can have: their phase's."""
    first = PHASES.index((kind, action == "delete")) * PHASE_SEQ_SPAN
    return range(first, first + PHASE_SEQ_SPAN)


_LOGGED = pa.schema(
    [
        ("taxdome_id", pa.string()),
        ("qbo_entity", pa.string()),
        ("action", pa.string()),
        ("amount_cents", pa.int64()),
        ("payload", pa.string()),
        ("payload_hash", pa.string()),
        ("reason", pa.string()),
        ("sort_key", pa.string()),
    ]
)

_LOGGED_ROW = pa.struct(list(_LOGGED))

_OPERATIONS_SCHEMA = pa.schema(
    [("seq", pa.int64()), ("taxdome_kind", pa.string()), *(f for f in _LOGGED if f.name != "sort_key")]
)

# Write phases planned in execution order, so they can be sent while planning goes on.
_STREAMED = frozenset((name, False) for name, kind in KINDS.items() if kind.planned_in_order)
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' own `str`: Arrow buffers, no object per value


class OperationLog:
    """The planned operations of each execution phase, moved to Arrow columns every FLUSH_ROWS operations:
    as Python objects, the payload texts of millions of operations would take several times the memory.

    An operation's seq is its phase's number times PHASE_SEQ_SPAN plus its place in the phase, so a phase can
    be numbered (and handed to a sink) before the phases planned after it are known. With a sink, the phases
    planned in execution order (`_STREAMED`) go out as they are planned; the others once planning is done.
    """

    FLUSH_ROWS = 20_000

    def __init__(self, sink: Callable[[pd.DataFrame], None] | None, asked_kinds: frozenset[str]) -> None:
        """:param asked_kinds: the kinds `planned_ids` will be asked about."""
        self._sink = sink
        self._asked_kinds = asked_kinds
        self._pending: dict[tuple[str, bool], list[tuple]] = defaultdict(list)
        self._batches: dict[tuple[str, bool], list[pa.RecordBatch]] = defaultdict(list)
        self._sent: dict[tuple[str, bool], tuple[int, tuple[str, str]]] = {}  # rows sent, last (key, id)
        self._sent_ids: dict[str, set[str]] = defaultdict(set)  # of the asked kinds

    def add(self, kind: str, row: tuple) -> None:
        """`row` holds the `_LOGGED` columns of one operation."""
        phase = (kind, row[2] == "delete")
        pending = self._pending[phase]
        pending.append(row)
        if len(pending) >= self.FLUSH_ROWS:
            self._flush(phase)

    def _flush(self, phase: tuple[str, bool]) -> None:
        rows = self._pending.pop(phase, None)
        if not rows:
            return
        if self._sink is not None and phase in _STREAMED:
            self._send_in_order(phase, rows)
        else:
            self._batches[phase].append(_logged_batch(rows))

    def _send_in_order(self, phase: tuple[str, bool], rows: list[tuple]) -> None:
        sent, last = self._sent.get(phase, (0, ("", "")))
        keys = [(row[7], row[0]) for row in rows]
        if keys[0] < last or keys != sorted(keys):
            raise RuntimeError(f"{phase[0]} operations were planned out of execution order")
        self._sent[phase] = (sent + len(rows), keys[-1])
        if phase[0] in self._asked_kinds:
            self._sent_ids[phase[0]].update(key[1] for key in keys)
        self._sink(self._numbered(phase, pa.Table.from_batches([_logged_batch(rows)]), sent))

    def planned_ids(self, kind: str) -> set[str]:
        """The TaxDome ids of `kind` with an operation (any action)."""
        ids = set(self._sent_ids[kind])
        for deleting in (True, False):
            self._flush((kind, deleting))
            for batch in self._batches.get((kind, deleting), []):
                ids.update(batch.column("taxdome_id").to_pylist())
        return ids

    def _numbered(self, phase: tuple[str, bool], table: pa.Table, before: int) -> pd.DataFrame:
        """The operations of `table` (the phase's, after `before` others) as plan rows."""
        first = PHASES.index(phase) * PHASE_SEQ_SPAN + before + 1
        table = table.drop_columns(["sort_key"])
        table = table.add_column(0, "taxdome_kind", pa.array([phase[0]] * table.num_rows, pa.string()))
        table = table.add_column(0, "seq", pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)))
        return _operations_frame(table)

    def finish(self) -> pd.DataFrame:
        """What is not sent yet, phase by phase, within a phase by sort key and TaxDome id: to the sink, or
        (without one) returned as one frame in execution order."""
        frames = []
        for phase in PHASES:
            self._flush(phase)
            batches = self._batches.pop(phase, [])
            if not batches:
                continue
            table = pa.Table.from_batches(batches)
            del batches
            order = pc.sort_indices(table, [("sort_key", "ascending"), ("taxdome_id", "ascending")])
            if not pc.all(pc.equal(order, pa.array(np.arange(len(order))))).as_py():
                table = table.take(order)
            operations = self._numbered(phase, table, 0)
            del table
            if self._sink is None:
                frames.append(operations)
            else:
                self._sink(operations)
        if not frames:
            return _operations_frame(_OPERATIONS_SCHEMA.empty_table())
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _logged_batch(rows: list[tuple]) -> pa.RecordBatch:
    # Arrow reads the tuples as structs, column by column in C: faster than a Python list per column.
    return pa.RecordBatch.from_struct_array(pa.array(rows, _LOGGED_ROW))


def _operations_frame(table: pa.Table) -> pd.DataFrame:
    """Plan rows with the texts left in Arrow buffers (pandas' `str`) and amounts as nullable integers."""
    mapped = {pa.string(): _TEXT, pa.int64(): pd.Int64Dtype()}
    operations = table.to_pandas(types_mapper=mapped.get, self_destruct=True)
    return operations.astype({"seq": "int64"})[list(OPERATION_COLUMNS)]
