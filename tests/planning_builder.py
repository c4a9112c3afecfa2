"""Planner inputs for tests: a staged firm from a small export; the company and state come from the demo package."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from export_builder import validate_folder, write_export

from taxdome_qbo.core.vocabulary import STATE_COLUMNS, StagedFirm


def staged_firm(folder: Path, **changes: str | None) -> StagedFirm:
    validated = validate_folder(write_export(folder, **changes))
    for file in validated.values():
        assert file.rejected.empty, file.rejected.to_dict("records")
    return StagedFirm(**{name: validated[name].staged for name in StagedFirm.__dataclass_fields__})


def no_state() -> pd.DataFrame:
    return pd.DataFrame(columns=list(STATE_COLUMNS))
