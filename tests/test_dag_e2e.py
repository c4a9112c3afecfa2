"""End to end: `taxdome_qbo_sync` run by `dag.test()` on generated exports with bad rows of every kind."""

from __future__ import annotations

import os
from collections import Counter

import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag

from taxdome_qbo.cli import main as cli_main
from taxdome_qbo.demo import generate_export
from taxdome_qbo.services import warehouse

pytestmark = pytest.mark.airflow


@pytest.fixture
def sync_dag(airflow_db):
    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["taxdome_qbo_sync"]


def test_sync_stages_the_landing_exports_oldest_first_and_quarantines_every_bad_row(
    sync_dag, warehouse_file, tmp_path, capsys
):
    landing = tmp_path / "landing"
    older = generate_export(landing / "2026-10-30T0900", accounts=60, seed=3, bad_rows=0.02)
    # The next export of the same firm (here with the same content): staging two unrelated firms whose ids
    # collide would rightly fail the data-quality check.
    newer = generate_export(landing / "2026-10-31T0900", accounts=60, seed=3, bad_rows=0.02)

    run = sync_dag.test(run_conf={"landing_dir": str(landing), "sync_start_date": "2026-01-01"})
    assert run.state == "success"

    engine = warehouse.sqlite_engine(str(warehouse_file))
    with engine.connect() as conn:
        batches = conn.execute(
            sa.select(warehouse.export_batches).order_by(warehouse.export_batches.c.started_at)
        ).all()
        files = conn.execute(sa.select(warehouse.export_batch_files)).all()
        rejected = conn.execute(sa.select(warehouse.rejected_rows)).all()
    assert [b.export_name for b in batches] == ["2026-10-30T0900", "2026-10-31T0900"]
    assert {b.status for b in batches} == {"succeeded"}
    assert {b.dag_run_id for b in batches} == {run.run_id}

    for batch, manifest in zip(batches, (older, newer), strict=True):
        per_file = {f.source_file: f for f in files if f.batch_id == batch.batch_id}
        for filename, rows_written in manifest["counts"].items():
            counts = per_file[filename]
            assert counts.rows_read == rows_written == counts.rows_staged + counts.rows_rejected, filename

    quarantined = {
        (r.source_file, r.source_line): r.reason for r in rejected if r._batch_id == batches[0].batch_id
    }
    injected = older["bad_rows"]
    assert {b["kind"] for b in injected} >= {"malformed_row", "refund_above_payment", "line_sum_mismatch"}
    assert all((b["file"], b["line"]) in quarantined for b in injected)
    assert all(reason for reason in quarantined.values())
    assert not [r for r in rejected if r._batch_id == batches[1].batch_id]  # quarantined once per content

    # The next scheduled run finds nothing new; the summary a user reads names every file.
    again = sync_dag.test(run_conf={"landing_dir": str(landing)})
    assert again.state == "success"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(warehouse.export_batches)).scalar() == 2
    assert cli_main(["staging-summary"]) == 0
    summary = capsys.readouterr().out
    assert "2026-10-31T0900" in summary and "payment_applications.csv" in summary


def test_a_manual_run_reloads_an_export_without_changing_a_row(sync_dag, warehouse_file, tmp_path):
    export = tmp_path / "exports" / "2026-10-30T0900"
    generate_export(export, accounts=40, seed=5, bad_rows=0.02)
    assert sync_dag.test(run_conf={"export_dir": str(export)}).state == "success"
    assert sync_dag.test(run_conf={"export_dir": str(export)}).state == "success"

    engine = warehouse.sqlite_engine(str(warehouse_file))
    with engine.connect() as conn:
        second = conn.execute(
            sa.select(warehouse.export_batches)
            .order_by(warehouse.export_batches.c.started_at.desc())
            .limit(1)
        ).one()
        staged_batches = Counter(
            conn.execute(sa.select(warehouse.STAGING_TABLES["invoices"].c._batch_id)).scalars()
        )
    assert (second.rows_inserted, second.rows_updated, second.rows_unchanged) == (0, 0, second.rows_staged)
    assert second.batch_id not in staged_batches


def test_an_incomplete_export_fails_the_run_with_a_clear_message(sync_dag, warehouse_file, tmp_path, capfd):
    export = tmp_path / "exports" / "broken"
    generate_export(export, accounts=10, seed=6)
    (export / "payments.csv").unlink()
    run = sync_dag.test(run_conf={"export_dir": str(export)})
    assert run.state == "failed"
    extract = next(ti for ti in run.get_task_instances() if ti.task_id == "extract")
    assert extract.state == "failed" and extract.try_number == 1  # no retries for a data problem
    assert f"export {export}: lacks required files: payments.csv" in "".join(capfd.readouterr())
