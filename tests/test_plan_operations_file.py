"""The plan's operations file: gzip-compressed as it is written, at most a tenth of the bytes of the plain CSV
the plan task wrote before, and every operation of the run in it once decompressed."""

from __future__ import annotations

import csv
import gzip
import io

import pandas as pd
import pytest
import sqlalchemy as sa

from taxdome_qbo.core.escaping import inert_cell, write_csv
from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.settings import resolve_settings
from taxdome_qbo.core.vocabulary import OPERATION_COLUMNS
from taxdome_qbo.demo.generator import generate_export
from taxdome_qbo.demo.planning import company_seeded_for
from taxdome_qbo.services import pipeline, planning, warehouse
from taxdome_qbo.services.staging import stage_export

RUN_ID = "run-1"
FILE_COLUMNS = [name for name in OPERATION_COLUMNS if name != "payload_hash"]


@pytest.fixture
def planned_engine(warehouse_engine, tmp_path):
    """A generated firm's first plan, recorded as the plan task records it."""
    manifest = generate_export(tmp_path / "export", 150, seed=7)
    stage_export(warehouse_engine, tmp_path / "export")
    staged = planning.read_staged_firm(warehouse_engine)
    settings = resolve_settings(manifest["firm_settings"], None)
    planning.plan_sync(
        warehouse_engine, company_seeded_for(staged), settings, PlanOptions(), RUN_ID, dry_run=False
    )
    return warehouse_engine


def _planned_rows(engine, columns) -> list[tuple]:
    plan = warehouse.sync_plan
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.select(*(plan.c[name] for name in columns))
                .where(plan.c.run_id == RUN_ID)
                .order_by(plan.c.seq)
            )
        ]


def _as_written(row: tuple) -> list[str]:
    """A plan row as the file's CSV shows it: numbers as they are, text made inert, nothing empty."""
    return [
        "" if value is None else str(value) if name in ("seq", "amount_cents") else inert_cell(value)
        for name, value in zip(FILE_COLUMNS, row, strict=True)
    ]


def test_the_operations_file_is_a_tenth_of_the_plain_csv_and_holds_every_operation(planned_engine, tmp_path):
    location = pipeline.write_plan_operations(planned_engine, RUN_ID, tmp_path)

    assert location == tmp_path / "plan_operations.csv.gz"
    compressed = location.read_bytes()
    assert compressed[:2] == b"\x1f\x8b"  # gzip's magic number: compressed, not a CSV named .gz
    expected = _planned_rows(planned_engine, FILE_COLUMNS)
    assert len(expected) > 1_000
    with gzip.open(location, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == FILE_COLUMNS
    assert rows[1:] == [_as_written(row) for row in expected]
    frame = pd.read_csv(location, dtype={"seq": "int64", "amount_cents": "Int64"})  # .gz: pandas decompresses
    assert frame["seq"].tolist() == [row[0] for row in expected]
    assert frame["amount_cents"].sum() == sum(
        row[FILE_COLUMNS.index("amount_cents")] or 0 for row in expected
    )

    before = io.StringIO(newline="")  # the file a plan wrote until now: every column, plain
    write_csv(before, OPERATION_COLUMNS, _planned_rows(planned_engine, OPERATION_COLUMNS), numeric={"seq"})
    assert len(compressed) <= 0.10 * len(before.getvalue().encode("utf-8"))
