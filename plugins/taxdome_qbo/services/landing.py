"""The landing location: one sub-folder per TaxDome export, loaded once each, oldest first.

Export folders are ordered by name, so name them by export time (e.g. `2026-11-29T0900`), as the demo
generator and TaxDome's own dated export names do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sqlalchemy.engine import Engine

from taxdome_qbo.services import sql, warehouse


class LandingLocation(Protocol):
    name: str

    def exists(self) -> bool: ...
    def is_dir(self) -> bool: ...
    def iterdir(self) -> Iterable[LandingLocation]: ...


def loaded_export_locations(engine: Engine) -> set[str]:
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        rows = sql.fetch_all(conn, "staging/select_loaded_export_locations", succeeded="succeeded")
    return {row.export_location for row in rows}


def unloaded_exports(engine: Engine, landing: LandingLocation) -> list[LandingLocation]:
    """Sub-folders of `landing` never staged successfully, oldest (by name) first."""
    if not landing.exists():
        return []
    loaded = loaded_export_locations(engine)
    folders = sorted((p for p in landing.iterdir() if p.is_dir()), key=lambda p: p.name)
    return [p for p in folders if str(p) not in loaded]
