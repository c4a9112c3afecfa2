"""Staging on SQLite and on the real PostgreSQL: one row per TaxDome id, idempotent reloads, newer versions
update only what changed, older ones never win, and a failed load stages nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from export_builder import BASE_EXPORT, replace_row, with_rows, write_export

from taxdome_qbo.services import staging, warehouse
from taxdome_qbo.services.export_reader import ExportContractError


def table_rows(engine, name: str, *, lineage: bool = True) -> list[tuple]:
    table = (
        warehouse.STAGING_TABLES[name]
        if name in warehouse.STAGING_TABLES
        else warehouse.metadata.tables[name]
    )
    columns = [c for c in table.columns if lineage or c.name not in warehouse.LINEAGE_COLUMNS]
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(*columns)).all(), key=repr)


def counts_by_file(result) -> dict[str, tuple[int, int, int, int]]:
    return {
        f.source_file: (f.rows_inserted, f.rows_updated, f.rows_unchanged, f.rows_removed)
        for f in result.files
    }


def test_staging_writes_typed_rows_and_records_the_batch(warehouse_engine, tmp_path):
    result = staging.stage_export(
        warehouse_engine, write_export(tmp_path / "2026-01-10"), dag_run_id="manual__1"
    )
    assert result.total("rows_read") == result.total("rows_staged") == 16
    invoice_lines = table_rows(warehouse_engine, "invoice_lines", lineage=False)
    assert (
        "I1",
        2,
        "S2",
        "Bookkeeping",
        "Two hours and a quarter",
        9500,
        pytest.approx(2.25),
        21375,
        False,
    ) == (invoice_lines[1])
    with warehouse_engine.connect() as conn:
        batch = conn.execute(warehouse.export_batches.select()).one()
        quantity = (
            conn.execute(sa.select(warehouse.STAGING_TABLES["invoice_lines"].c.quantity)).scalars().all()
        )
    assert (batch.status, batch.export_name, batch.dag_run_id, batch.rows_staged) == (
        "succeeded",
        "2026-01-10",
        "manual__1",
        16,
    )
    assert {str(q) for q in quantity} == {"1.0000", "2.2500"}  # exact decimals, not floats


def test_reloading_the_same_export_changes_nothing(warehouse_engine, tmp_path):
    export = write_export(
        tmp_path / "export",
        payments_csv=with_rows("payments.csv", "P3,A1,2026-01-09,abc,cash,none,,0,USD,true,,"),
    )
    staging.stage_export(warehouse_engine, export)
    snapshot = {
        name: table_rows(warehouse_engine, name)
        for name in [*warehouse.STAGING_TABLES, "stg_taxdome__rejected"]
    }

    again = staging.stage_export(warehouse_engine, export)

    assert all(
        inserted == updated == removed == 0
        for inserted, updated, _, removed in counts_by_file(again).values()
    )
    assert again.total("rows_unchanged") == again.total("rows_staged") == 16
    assert snapshot == {name: table_rows(warehouse_engine, name) for name in snapshot}
    with warehouse_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(warehouse.export_batches)).scalar() == 2


def test_a_newer_export_updates_changed_rows_and_drops_removed_lines(warehouse_engine, tmp_path):
    staging.stage_export(warehouse_engine, write_export(tmp_path / "1"))
    newer_invoices = replace_row(
        "invoices.csv",
        "I1,",
        "I1,INV-0001,A1,2026-01-05,2026-02-04,Paid,USD,22.19,485.94,Revised,2026-01-20T09:00:00Z",
    )
    newer_lines = replace_row("invoice_lines.csv", "I1,3", "").replace("\n\n", "\n")

    result = staging.stage_export(
        warehouse_engine,
        write_export(tmp_path / "2", invoices_csv=newer_invoices, invoice_lines_csv=newer_lines),
    )

    counts = counts_by_file(result)
    assert counts["invoices.csv"] == (0, 1, 1, 0)
    assert counts["invoice_lines.csv"] == (0, 0, 3, 1)
    assert counts["accounts.csv"] == (0, 0, 2, 0)
    lines = table_rows(warehouse_engine, "invoice_lines", lineage=False)
    assert [(r.invoice_id, r.line_no) for r in lines] == [("I1", 1), ("I1", 2), ("I2", 1)]
    invoice = {r.invoice_id: r for r in table_rows(warehouse_engine, "invoices")}["I1"]
    assert (invoice.total_cents, invoice.description, invoice._batch_id) == (
        48594,
        "Revised",
        result.batch_id,
    )


def test_an_older_version_never_overwrites_a_newer_one(warehouse_engine, tmp_path):
    newer = replace_row(
        "accounts.csv", "A1,", "A1,O'Brien & Sons Ltd,Company,,,2026-03-01T00:00:00Z,false,auto,"
    )
    older = replace_row("accounts.csv", "A1,", "A1,O'Brien & Sons,Company,,,2026-02-01T00:00:00Z,false,auto,")
    staging.stage_export(warehouse_engine, write_export(tmp_path / "newer", accounts_csv=newer))

    result = staging.stage_export(warehouse_engine, write_export(tmp_path / "older", accounts_csv=older))

    assert next(f for f in result.files if f.source_file == "accounts.csv").rows_superseded == 1
    names = {r.account_id: r.account_name for r in table_rows(warehouse_engine, "accounts")}
    assert names["A1"] == "O'Brien & Sons Ltd"


def test_a_version_after_one_without_an_update_time_replaces_it(warehouse_engine, tmp_path):
    undated = replace_row("accounts.csv", "A1,", "A1,O'Brien & Sons,Company,,,,false,auto,")
    dated = replace_row(
        "accounts.csv", "A1,", "A1,O'Brien & Sons Ltd,Company,,,2026-03-01T00:00:00Z,false,auto,"
    )
    staging.stage_export(warehouse_engine, write_export(tmp_path / "undated", accounts_csv=undated))

    result = staging.stage_export(warehouse_engine, write_export(tmp_path / "dated", accounts_csv=dated))

    assert next(f for f in result.files if f.source_file == "accounts.csv").rows_updated == 1
    names = {r.account_id: r.account_name for r in table_rows(warehouse_engine, "accounts")}
    assert names["A1"] == "O'Brien & Sons Ltd"


def test_rejected_rows_are_quarantined_once_per_export(warehouse_engine, tmp_path):
    export = write_export(
        tmp_path / "export",
        invoices_csv=with_rows("invoices.csv", "I3,INV-0003,A9,2026-01-06,,Unpaid,USD,,0.00,,"),
    )
    first = staging.stage_export(warehouse_engine, export)
    staging.stage_export(warehouse_engine, export)
    rejected = table_rows(warehouse_engine, "stg_taxdome__rejected")
    assert [(r.source_file, r.source_line, r.reason, r._batch_id) for r in rejected] == [
        ("invoices.csv", 4, "account A9 is not in accounts.csv", first.batch_id)
    ]


def test_a_failure_in_the_middle_of_a_load_stages_nothing(warehouse_engine, tmp_path, monkeypatch):
    export = write_export(tmp_path / "export")
    real_merge = staging._merge_file

    def fail_on_payments(conn, validated, *args):
        if validated.export_file.name == "payments":  # after accounts, services, invoices and lines
            raise RuntimeError("disk full")
        return real_merge(conn, validated, *args)

    monkeypatch.setattr(staging, "_merge_file", fail_on_payments)
    with pytest.raises(RuntimeError, match="disk full"):
        staging.stage_export(warehouse_engine, export)

    assert all(table_rows(warehouse_engine, name) == [] for name in warehouse.STAGING_TABLES)
    with warehouse_engine.connect() as conn:
        batch = conn.execute(warehouse.export_batches.select()).one()
    assert (batch.status, batch.error) == ("failed", "RuntimeError: disk full")


def test_an_incomplete_export_fails_clearly_and_is_recorded(warehouse_engine, tmp_path):
    with pytest.raises(ExportContractError, match=r"lacks required files: invoice_lines\.csv"):
        staging.stage_export(warehouse_engine, write_export(tmp_path / "export", invoice_lines_csv=None))
    with warehouse_engine.connect() as conn:
        assert conn.execute(sa.select(warehouse.export_batches.c.status)).scalar_one() == "failed"


def test_exports_load_from_object_storage_urls(warehouse_engine, tmp_path):
    import fsspec
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach

    attach("memory", fs=fsspec.filesystem("memory"))  # as a provider registers s3:// or gs://
    location = ObjectStoragePath(f"memory://landing-{warehouse_engine.dialect.name}/2026-01-10")
    for name, text in BASE_EXPORT.items():
        (location / name).write_text(text)
    result = staging.stage_export(warehouse_engine, location)
    assert result.total("rows_staged") == 16 and result.export_name == "2026-01-10"


def test_rows_a_later_export_no_longer_lists_are_marked_absent_until_listed_again(warehouse_engine, tmp_path):
    first = staging.stage_export(warehouse_engine, write_export(tmp_path / "1"))
    without_r1 = write_export(
        tmp_path / "2", refunds_csv="refund_id,payment_id,account_id,refund_date,amount,reason\n"
    )
    second = staging.stage_export(warehouse_engine, without_r1)
    assert next(f for f in second.files if f.source_file == "refunds.csv").rows_absent == 1
    marks = {r.refund_id: r._absent_since_batch for r in table_rows(warehouse_engine, "refunds")}
    assert marks == {"R1": second.batch_id}
    again = staging.stage_export(warehouse_engine, without_r1)  # a reload keeps the first mark
    assert {r.refund_id: r._absent_since_batch for r in table_rows(warehouse_engine, "refunds")} == marks
    assert again.total("rows_updated") == 0
    staging.stage_export(warehouse_engine, write_export(tmp_path / "3"))
    refund = table_rows(warehouse_engine, "refunds")[0]
    assert (refund._absent_since_batch, refund._batch_id) == (None, first.batch_id)  # listed again, unchanged


def test_the_schema_gains_columns_a_newer_version_added(warehouse_engine):
    with warehouse_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE stg_taxdome__services (service_id TEXT PRIMARY KEY, name TEXT)"))
    warehouse.create_schema(warehouse_engine)
    columns = {c["name"] for c in sa.inspect(warehouse_engine).get_columns("stg_taxdome__services")}
    assert columns == {c.name for c in warehouse.STAGING_TABLES["services"].columns}
