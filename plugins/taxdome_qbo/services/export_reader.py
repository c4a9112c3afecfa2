"""Read an export folder (a local path or any fsspec/ObjectStoragePath location) into raw string tables.

The fast path hands the bytes to pyarrow's multi-threaded CSV reader. It is only trusted when every record
sits on one physical line and every record has the header's number of fields, because only then is
"record n" the same as "line n + 1". Any other file (blank lines, quoted newlines, ragged rows) is re-read
with Python's csv module, which knows the line each record starts on and lets ragged rows be quarantined
instead of failing the file.

Whatever is wrong with a file's bytes is an `ExportContractError` naming the file (and the line when there
is one), never a parser's or the file system's own exception: a directory, FIFO or device named like a CSV,
a symbolic link leading out of the export folder (never followed, so nothing of its target is read or
echoed), a header of absurd size, two columns meaning the same thing, a field no quote closes.

The reader also collects why the export could not prove a deletion (`deletion_doubts`): only a complete
(completion marker, manifest verified when there is one), well-formed export may say that a row it lacks
was deleted in TaxDome.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import stat
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from taxdome_qbo.core.export_contract import (
    EXPORT_FILES,
    MANIFEST_MARKER,
    MAX_HEADER_BYTES,
    MAX_HEADER_COLUMNS,
    SUCCESS_MARKER,
    ExportContractError,
    ExportFile,
    header_mapping,
)
from taxdome_qbo.core.validation import MalformedRow, RawFile, printable
from taxdome_qbo.services.local_files import local_path

_BOM = b"\xef\xbb\xbf"
_ECHOED_HEADER_CHARACTERS = 500
_MANIFEST_MAX_BYTES = 1 << 20


class ExportLocation(Protocol):
    """What the reader needs of a folder: pathlib.Path, UPath and Airflow's ObjectStoragePath all fit."""

    def __truediv__(self, name: str) -> ExportLocation: ...
    def exists(self) -> bool: ...
    def is_file(self) -> bool: ...
    def read_bytes(self) -> bytes: ...


def _header(data: bytes, export_file: ExportFile) -> list[str]:
    end = data.find(b"\n", 0, MAX_HEADER_BYTES + 1)
    if end < 0 and len(data) > MAX_HEADER_BYTES:
        raise ExportContractError(
            f"{export_file.filename}: the header line is longer than {MAX_HEADER_BYTES:,} bytes"
        )
    first_line = data[: end if end >= 0 else len(data)].rstrip(b"\r")
    if first_line.count(b",") >= MAX_HEADER_COLUMNS:
        raise ExportContractError(
            f"{export_file.filename}: the header has more than {MAX_HEADER_COLUMNS:,} columns"
        )
    try:
        text = first_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportContractError(
            f"{export_file.filename}: the header is not UTF-8 text ({exc.reason})"
        ) from exc
    header = next(csv.reader([text]), [])
    if not any(h.strip() for h in header):
        raise ExportContractError(f"{export_file.filename} is empty: it needs a header row")
    header_mapping(export_file, header)  # refuses two headers meaning one column before they are renamed
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
        echoed = printable(", ".join(header))
        if len(echoed) > _ECHOED_HEADER_CHARACTERS:
            echoed = echoed[:_ECHOED_HEADER_CHARACTERS] + "…"
        raise ExportContractError(
            f"{export_file.filename} lacks required columns: {wanted}. Its header is: {echoed}"
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


def _read_line_by_line(text: str, export_file: ExportFile, header: list[str]) -> RawFile:
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    columns: list[list[str]] = [[] for _ in header]
    lines: list[int] = []
    malformed: list[MalformedRow] = []
    multiline_starts: list[int] = []
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            record = next(reader, None)
        except csv.Error as exc:
            raise ExportContractError(
                f"{export_file.filename} line {start}: the record starting here cannot be read ({exc}); "
                "a quote left open makes the rest of the file one field"
            ) from exc
        if record is None:
            break
        previous_end = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if previous_end > start:
            multiline_starts.append(start)
        if len(record) != len(header):
            malformed.append(MalformedRow(start, ",".join(record), len(record)))
            continue
        for column, value in zip(columns, record, strict=True):
            column.append(value)
        lines.append(start)
    table = pa.table(
        {name: pa.array(values, pa.string()) for name, values in zip(header, columns, strict=True)}
    )
    return RawFile(export_file, table, np.asarray(lines, dtype=np.int64), malformed, multiline_starts)


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
    return _read_line_by_line(text, export_file, header)


def _check_regular_file(folder: ExportLocation, name: str) -> None:
    """Refuse what is not a plain file of the export, before anything of it is opened.

    A FIFO would block the reader forever and a device never ends; a symbolic link may lead to any file
    on the machine (whose first line an error message would otherwise echo): one leading out of the export
    folder is refused without being followed further than its target's name.
    """
    local_folder = local_path(folder)
    if local_folder is None:
        if not (folder / name).is_file():
            raise ExportContractError(f"{name} is not a file")
        return
    path = local_folder / name
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(local_folder.resolve()):
            raise ExportContractError(f"{name} is a symbolic link leading out of the export folder")
        path = target
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        raise ExportContractError(f"{name} is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise ExportContractError(f"{name} is not a regular file (a FIFO, socket or device)")


def _read_manifest(location: ExportLocation) -> dict[str, dict]:
    """The writer's manifest: per file, the data records (header excluded) and/or the SHA-256 of its bytes."""
    _check_regular_file(location, MANIFEST_MARKER)
    data = (location / MANIFEST_MARKER).read_bytes()
    if len(data) > _MANIFEST_MAX_BYTES:
        raise ExportContractError(f"{MANIFEST_MARKER} is larger than {_MANIFEST_MAX_BYTES:,} bytes")
    try:
        files = json.loads(data)["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportContractError(
            f'{MANIFEST_MARKER} is not {{"files": {{"<name>.csv": {{"rows": …, "sha256": …}}}}}} ({exc})'
        ) from exc
    if not isinstance(files, dict) or not all(
        isinstance(entry, dict)
        and set(entry) <= {"rows", "sha256"}
        and (type(entry.get("rows", 0)) is int and entry.get("rows", 0) >= 0)
        and isinstance(entry.get("sha256", ""), str)
        for entry in files.values()
    ):
        raise ExportContractError(
            f"{MANIFEST_MARKER}: every file needs an entry with a whole number of rows and/or a sha256"
        )
    return files


def completion_marker(location: ExportLocation) -> str | None:
    """The marker that says the export folder is complete (manifest.json first), or None."""
    for marker in (MANIFEST_MARKER, SUCCESS_MARKER):
        if (location / marker).exists():
            return marker
    return None


def folder_signature(location: ExportLocation) -> str:
    """What the landing scan compares to tell a folder changed since it was loaded, without reading it.

    The names, sizes and modification times of the export's files and markers, and the manifest's bytes
    (which carry the files' SHA-256 when the writer gives them). A full content fingerprint would mean
    reading every byte of every folder on every scan; this costs one listing, and a change it misses in
    size and time alike is caught by the manifest's checksums. A false change only reloads the folder,
    which staging's idempotence makes harmless.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name in (*(f.filename for f in EXPORT_FILES), SUCCESS_MARKER, MANIFEST_MARKER):
        path = location / name
        if path.exists():
            facts = path.stat()
            digest.update(f"{name}\0{facts.st_size}\0{facts.st_mtime}\0".encode())
    if completion_marker(location) == MANIFEST_MARKER:
        _check_regular_file(location, MANIFEST_MARKER)
        digest.update((location / MANIFEST_MARKER).read_bytes()[:_MANIFEST_MAX_BYTES])
    return digest.hexdigest()


def missing_required_files(location: ExportLocation) -> list[str]:
    return [f.filename for f in EXPORT_FILES if f.required and not (location / f.filename).exists()]


def check_export(location: ExportLocation) -> dict[str, dict] | None:
    """Cheap pre-flight: every required file is there, a plain file, listed by the manifest if there is one,
    and every present file's header has its columns. Returns the manifest's entries (None without one)."""
    missing = missing_required_files(location)
    if missing:
        raise ExportContractError(
            f"lacks required files: {', '.join(missing)} "
            f"(an export needs {', '.join(f.filename for f in EXPORT_FILES if f.required)})"
        )
    manifest = _read_manifest(location) if completion_marker(location) == MANIFEST_MARKER else None
    for export_file in EXPORT_FILES:
        path = location / export_file.filename
        if not path.exists():
            if manifest is not None and export_file.filename in manifest:
                raise ExportContractError(
                    f"{export_file.filename} is in {MANIFEST_MARKER} but not in the folder"
                )
            continue
        _check_regular_file(location, export_file.filename)
        if manifest is not None and export_file.filename not in manifest:
            raise ExportContractError(f"{export_file.filename} is not listed in {MANIFEST_MARKER}")
        with path.open("rb") as handle:
            first_chunk = handle.read(MAX_HEADER_BYTES + 1)
        check_header(export_file, _header(first_chunk.removeprefix(_BOM), export_file))
    return manifest


class ExportReader:
    """Reads the files of one export on demand, so that only the files being validated are in memory.

    Construction checks the whole export (required files, headers, the manifest's list) before anything is
    read in full. Each file read is checked against the manifest (rows and SHA-256), if there is one.
    `fingerprint` identifies the export by content (file names and bytes), once every file was read.
    `deletion_doubts` says, once every file was read, why the export cannot prove a deletion (none: it can).
    """

    def __init__(self, location: ExportLocation):
        self.manifest = check_export(location)
        self.location = location
        self.marker = completion_marker(location)
        self.bytes_read = 0
        self.deletion_doubts: list[str] = []
        if self.marker is None:
            self.deletion_doubts.append(
                f"no completion marker ({SUCCESS_MARKER} or {MANIFEST_MARKER}): the export may be incomplete"
            )
        self._digest = hashlib.blake2b(digest_size=16)

    def read(self, export_file: ExportFile) -> RawFile | None:
        path = self.location / export_file.filename
        if not path.exists():
            return None
        data = path.read_bytes()
        self.bytes_read += len(data)
        self._digest.update(export_file.filename.encode() + b"\0" + len(data).to_bytes(8, "big"))
        self._digest.update(data)
        raw = read_export_file(export_file, data)
        self._verify(export_file, data, raw)
        return raw

    def _verify(self, export_file: ExportFile, data: bytes, raw: RawFile) -> None:
        name = export_file.filename
        if self.manifest is not None:
            entry = self.manifest[name]
            if "sha256" in entry and hashlib.sha256(data).hexdigest() != entry["sha256"].lower():
                raise ExportContractError(f"{name}: its SHA-256 differs from the one in {MANIFEST_MARKER}")
            if "rows" in entry and raw.rows_read != entry["rows"]:
                raise ExportContractError(
                    f"{name}: {raw.rows_read:,} records read, {MANIFEST_MARKER} says {entry['rows']:,} "
                    "(a quote left open swallows the records after it; a partial copy lacks some)"
                )
        if raw.malformed:
            self.deletion_doubts.append(
                f"{name}: {len(raw.malformed):,} malformed record(s), the first at line {raw.malformed[0].line}"
            )
        if raw.multiline_starts and (self.manifest is None or "rows" not in self.manifest[name]):
            self.deletion_doubts.append(
                f"{name}: {len(raw.multiline_starts):,} record(s) span several lines, the first at line "
                f"{raw.multiline_starts[0]}; without a row count in {MANIFEST_MARKER} a quoted line break "
                "cannot be told from a quote left open that swallowed the records after it"
            )

    @property
    def fingerprint(self) -> str:
        return self._digest.hexdigest()
