"""The landing location: one sub-folder per TaxDome export, loaded when complete, oldest first.

Export folders are ordered by name, so name them by export time (e.g. `2026-11-29T0900`), as the demo
generator and TaxDome's own dated export names do.

A folder is ready when its writer marks it complete, with a file written after every export file:
`_SUCCESS` (empty) or `manifest.json` (per file its data records, header excluded, and SHA-256:
`{"files": {"payments.csv": {"rows": 67, "sha256": "…"}, …}}`; `write_manifest` writes one). Until then the
scan waits for it. Hidden folders (`.name`) and folders named `*.partial` are never loaded: copy an export
as `<name>.partial` (or hidden) and rename it when complete, or write the marker last.

"Loaded" is keyed on content as well as location: a folder loaded successfully is loaded again when the
signature of its files (names, sizes, times, the manifest's bytes: `export_reader.folder_signature`)
changed since, e.g. when a finished copy replaced a partial one. Staging is idempotent, so a reload writes
only what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Engine

from taxdome_qbo.core.export_contract import MANIFEST_MARKER, SUCCESS_MARKER, ExportContractError
from taxdome_qbo.services import sql, warehouse
from taxdome_qbo.services.export_reader import ExportLocation, completion_marker, folder_signature

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"


class LandingLocation(Protocol):
    name: str

    def exists(self) -> bool: ...
    def is_dir(self) -> bool: ...
    def iterdir(self) -> Iterable[LandingLocation]: ...


def loaded_export_signatures(engine: Engine) -> dict[str, str | None]:
    """Location -> folder signature at its latest successful load."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        rows = sql.fetch_all(conn, "staging/select_loaded_export_locations", succeeded="succeeded")
    return {row.export_location: row.folder_signature for row in rows}


def _changed_since_loaded(folder: ExportLocation, loaded_signature: str | None) -> bool:
    if loaded_signature is None:
        return False
    try:
        return folder_signature(folder) != loaded_signature
    except ExportContractError:
        return True  # staging names what is wrong with it


def unloaded_exports(engine: Engine, landing: LandingLocation) -> list[LandingLocation]:
    """Complete sub-folders of `landing` never staged successfully, or changed since, oldest (by name) first."""
    if not landing.exists():
        return []
    loaded = loaded_export_signatures(engine)
    ready = []
    for folder in sorted((p for p in landing.iterdir() if p.is_dir()), key=lambda p: p.name):
        if folder.name.startswith(".") or folder.name.endswith(PARTIAL_SUFFIX):
            continue
        if completion_marker(folder) is None:
            log.info(
                "landing: %s is not complete yet: waiting for its %s or %s",
                folder,
                SUCCESS_MARKER,
                MANIFEST_MARKER,
            )
            continue
        location = str(folder)
        if location not in loaded or _changed_since_loaded(folder, loaded[location]):
            ready.append(folder)
    return ready


def write_manifest(folder: Path, rows: dict[str, int]) -> dict[str, dict]:
    """Write the `manifest.json` that marks the export at `folder` complete, once its files are written.

    `rows` are the data records the writer wrote per file (header excluded), as it counted them: counting
    them by reading the files back would agree with whatever a stray quote made of them.
    """
    files = {
        name: {"rows": count, "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}
        for name, count in rows.items()
    }
    (folder / MANIFEST_MARKER).write_text(json.dumps({"files": files}, indent=2) + "\n", encoding="utf-8")
    return files
