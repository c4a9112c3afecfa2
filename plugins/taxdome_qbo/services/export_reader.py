"""Read an export folder (a local path or any fsspec/ObjectStoragePath location) into raw string tables.

The fast path hands the bytes to pyarrow's multi-threaded CSV reader. It is only trusted when every record
sits on one physical line and every record has the header's number of fields, because only then is
"record n" the same as "line n + 1". Any other file (blank lines, quoted newlines, ragged rows) is re-read
with Python's csv module, which knows the line each record starts on and lets ragged rows be quarantined
instead of failing the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from taxdome_qbo.core.export_contract import EXPORT_FILES, ExportFile, header_mapping
from taxdome_qbo.core.validation import MalformedRow, RawFile

_BOM = b"\xef\xbb\xbf"


class ExportContractError(ValueError):
    """The export cannot be loaded at all: a required file or column is missing, or a file is unreadable."""


class ExportLocation(Protocol):
    """What the reader needs of a folder: pathlib.Path, UPath and Airflow's ObjectStoragePath all fit."""

    def __truediv__(self, name: str) -> ExportLocation: ...
    def exists(self) -> bool: ...
    def read_bytes(self) -> bytes: ...


def _header(data: bytes, export_file: ExportFile) -> list[str]:
    first_line = data.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportContractError(
            f"{export_file.filename}: the header is not UTF-8 text ({exc.reason})"
        ) from exc
    header = next(csv.reader([text]), [])
    if not any(h.strip() for h in header):
        raise ExportContractError(f"{export_file.filename} is empty: it needs a header row")
    seen: dict[str, int] = {}
    unique = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def check_header(export_file: ExportFile, header: list[str]) -> None:
    """Fail when a required column has no header under its name or any accepted alias."""
    found = set(header_mapping(export_file, header).values())
    missing = [c for c in export_file.columns if c.required and c.name not in found]
    if missing:
        wanted = "; ".join(f"{c.name} (or {', '.join(c.aliases)})" if c.aliases else c.name for c in missing)
        raise ExportContractError(
            f"{export_file.filename} lacks required columns: {wanted}. Its header is: {', '.join(header)}"
        )


def _read_fast(data: bytes, header: list[str]) -> pa.Table | None:
    ragged: list[int] = []

    def on_invalid_row(row) -> str:
        ragged.append(1)
        return "skip"

    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=header, skip_rows=1, use_threads=True),
            parse_options=pa_csv.ParseOptions(newlines_in_values=False, invalid_row_handler=on_invalid_row),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    physical_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if ragged or table.num_rows + 1 != physical_lines:
        return None
    return table


def _read_line_by_line(text: str, header: list[str]) -> tuple[pa.Table, np.ndarray, list[MalformedRow]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    columns: list[list[str]] = [[] for _ in header]
    lines: list[int] = []
    malformed: list[MalformedRow] = []
    previous_end = reader.line_num
    for record in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != len(header):
            malformed.append(MalformedRow(start, ",".join(record), len(record)))
            continue
        for column, value in zip(columns, record, strict=True):
            column.append(value)
        lines.append(start)
    table = pa.table(
        {name: pa.array(values, pa.string()) for name, values in zip(header, columns, strict=True)}
    )
    return table, np.asarray(lines, dtype=np.int64), malformed


def read_export_file(export_file: ExportFile, data: bytes) -> RawFile:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    header = _header(data, export_file)
    check_header(export_file, header)
    table = _read_fast(data, header)
    if table is not None:
        return RawFile(export_file, table, np.arange(2, table.num_rows + 2, dtype=np.int64))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ExportContractError(
            f"{export_file.filename} is not UTF-8 text (line {line}: {exc.reason})"
        ) from exc
    table, lines, malformed = _read_line_by_line(text, header)
    return RawFile(export_file, table, lines, malformed)


def missing_required_files(location: ExportLocation) -> list[str]:
    return [f.filename for f in EXPORT_FILES if f.required and not (location / f.filename).exists()]


def check_export(location: ExportLocation) -> None:
    """Cheap pre-flight: every required file is there and every present file's header has its columns."""
    missing = missing_required_files(location)
    if missing:
        raise ExportContractError(
            f"lacks required files: {', '.join(missing)} "
            f"(an export needs {', '.join(f.filename for f in EXPORT_FILES if f.required)})"
        )
    for export_file in EXPORT_FILES:
        path = location / export_file.filename
        if path.exists():
            with path.open("rb") as handle:
                first_chunk = handle.read(64 * 1024)
            check_header(export_file, _header(first_chunk.removeprefix(_BOM), export_file))


class ExportReader:
    """Reads the files of one export on demand, so that only the files being validated are in memory.

    Construction checks the whole export (required files, headers) before anything is read in full.
    `fingerprint` identifies the export by content (file names and bytes), once every file was read.
    """

    def __init__(self, location: ExportLocation):
        check_export(location)
        self.location = location
        self.bytes_read = 0
        self._digest = hashlib.blake2b(digest_size=16)

    def read(self, export_file: ExportFile) -> RawFile | None:
        path = self.location / export_file.filename
        if not path.exists():
            return None
        data = path.read_bytes()
        self.bytes_read += len(data)
        self._digest.update(export_file.filename.encode() + b"\0" + len(data).to_bytes(8, "big"))
        self._digest.update(data)
        return read_export_file(export_file, data)

    @property
    def fingerprint(self) -> str:
        return self._digest.hexdigest()
