"""The landing scan: each export folder loads once, oldest (by name) first, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from export_builder import write_export

from taxdome_qbo.services import staging
from taxdome_qbo.services.export_reader import ExportContractError
from taxdome_qbo.services.landing import unloaded_exports


def test_unloaded_exports_come_oldest_first_and_loaded_ones_are_skipped(warehouse_engine, tmp_path):
    landing = tmp_path / "landing"
    for name in ("2026-11-02T0900", "2026-11-01T0900", "2026-11-03T0900"):
        write_export(landing / name)
    (landing / "README.txt").write_text("not an export")

    assert [p.name for p in unloaded_exports(warehouse_engine, landing)] == [
        "2026-11-01T0900",
        "2026-11-02T0900",
        "2026-11-03T0900",
    ]

    staging.stage_export(warehouse_engine, landing / "2026-11-01T0900")
    assert [p.name for p in unloaded_exports(warehouse_engine, landing)] == [
        "2026-11-02T0900",
        "2026-11-03T0900",
    ]


def test_a_failed_load_is_retried_by_the_next_scan(warehouse_engine, tmp_path):
    landing = tmp_path / "landing"
    broken = write_export(landing / "2026-11-01T0900", refunds_csv=None)
    with pytest.raises(ExportContractError):
        staging.stage_export(warehouse_engine, broken)
    assert [p.name for p in unloaded_exports(warehouse_engine, landing)] == ["2026-11-01T0900"]


def test_a_missing_landing_folder_means_nothing_to_load(warehouse_engine, tmp_path):
    assert unloaded_exports(warehouse_engine, tmp_path / "nowhere") == []
