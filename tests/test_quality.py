"""Data-quality gates before the load: the base export passes every check, and each check fails on a defect
planted for it, naming the right TaxDome ids with the right severity. Defects the staging validator quarantines
cannot come through an export; those are planted in the staged tables directly."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag
from export_builder import BASE_EXPORT, drop_row, replace_row, with_rows, write_export

from taxdome_qbo.core.export_contract import EXPORT_FILES
from taxdome_qbo.core.quality_checks import REFERENCE_CHECKS, gx_checks
from taxdome_qbo.services import staging, warehouse
from taxdome_qbo.services.quality import QualityReport, run_quality_checks

TODAY = dt.date(2026, 1, 10)  # the base export's dates are all before it
RUN_ID = "manual__quality"


def check(engine, **options) -> QualityReport:
    return run_quality_checks(engine, RUN_ID, today=TODAY, **options)


def failures(report: QualityReport) -> dict[str, tuple[str, list[str]]]:
    return {r.check_name: (str(r.severity), list(r.unexpected_ids)) for r in report.results if not r.success}


def execute(engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def loosen(engine, name: str) -> None:
    """Re-create a staged table without its key and NOT NULL constraints (as a table made by hand or by an
    older version could be), keeping its rows, so that defects the schema refuses can be planted."""
    table = warehouse.STAGING_TABLES[name]
    with engine.begin() as conn:
        rows = [dict(row._mapping) for row in conn.execute(sa.select(table))]
        table.drop(conn)
        loose = sa.Table(table.name, sa.MetaData(), *(sa.Column(c.name, c.type) for c in table.columns))
        loose.create(conn)
        conn.execute(loose.insert(), rows)


def test_the_base_export_passes_every_check_and_the_results_are_stored(warehouse_engine, tmp_path):
    staging.stage_export(warehouse_engine, write_export(tmp_path / "export"))

    report = check(warehouse_engine)

    assert failures(report) == {}
    expected_checks = (
        len(gx_checks(today=TODAY, home_currency="USD")) + len(REFERENCE_CHECKS) + len(EXPORT_FILES)
    )
    assert len(report.results) == expected_checks
    assert {r.engine for r in report.results} == {"gx", "sql"}
    assert report.as_xcom() | {"seconds": 0} == {
        "run_id": RUN_ID,
        "checks": expected_checks,
        "passed": expected_checks,
        "critical_failures": [],
        "warnings": [],
        "seconds": 0,
    }
    with warehouse_engine.connect() as conn:
        stored = conn.execute(
            sa.select(warehouse.dq_results).where(warehouse.dq_results.c.run_id == RUN_ID)
        ).all()
    assert len(stored) == expected_checks and all(row.success for row in stored)
    lines = next(row for row in stored if row.check_name == "invoices.total_is_lines_plus_tax")
    assert (lines.table_name, lines.engine, lines.severity, lines.evaluated_rows) == (
        "stg_taxdome__invoices",
        "gx",
        "critical",
        2,
    )


def test_an_empty_warehouse_passes_every_check(warehouse_engine):
    """The first scheduled run may find no export to load: nothing staged is nothing wrong."""
    report = check(warehouse_engine)

    assert failures(report) == {}
    assert {r.evaluated_rows for r in report.results if r.check_name.endswith(".unique_ids")} == {0}


def test_checking_a_run_again_replaces_its_results(warehouse_engine, tmp_path):
    staging.stage_export(warehouse_engine, write_export(tmp_path / "export"))
    check(warehouse_engine)
    run_quality_checks(warehouse_engine, "another_run", today=TODAY)
    execute(
        warehouse_engine,
        "UPDATE stg_taxdome__payments SET processing_fee_cents = 50000 WHERE payment_id = 'P1'",
    )

    report = check(warehouse_engine)

    with warehouse_engine.connect() as conn:
        stored = conn.execute(
            sa.select(warehouse.dq_results).where(warehouse.dq_results.c.run_id == RUN_ID)
        ).all()
        others = conn.execute(
            sa.select(sa.func.count()).where(warehouse.dq_results.c.run_id == "another_run")
        ).scalar()
    assert len(stored) == len(report.results) == others
    (failed,) = [row for row in stored if not row.success]
    assert failed.check_name == "payments.fee_within_amount"
    assert (failed.severity, failed.evaluated_rows, failed.unexpected_count) == ("critical", 2, 1)
    assert json.loads(failed.unexpected_ids) == ["P1"]
    assert json.loads(failed.observed) == {"amount_cents vs processing_fee_cents": [[46469, 50000]]}
    assert report.critical_failures[0].check_name == "payments.fee_within_amount"
    assert "payments.fee_within_amount (stg_taxdome__payments): 1 of 2 rows" in report.summary()
    assert "TaxDome ids: P1" in report.summary()


PLANTED_IN_STAGING = [
    pytest.param(
        None,
        ["UPDATE stg_taxdome__payments SET method = 'bitcoin' WHERE payment_id = 'P2'"],
        {"payments.known_values": ("critical", ["P2"])},
        id="unknown payment method",
    ),
    pytest.param(
        None,
        ["UPDATE stg_taxdome__invoices SET status = 'Void' WHERE invoice_id = 'I2'"],
        {"invoices.known_values": ("critical", ["I2"])},
        id="unknown invoice status",
    ),
    pytest.param(
        None,
        ["UPDATE stg_taxdome__services SET rate_cents = -1 WHERE service_id = 'S2'"],
        {"services.amounts_in_range": ("critical", ["S2"])},
        id="negative service rate",
    ),
    pytest.param(
        None,
        ["UPDATE stg_taxdome__payment_applications SET amount_cents = 0 WHERE payment_id = 'P2'"],
        {"payment_applications.amounts_in_range": ("critical", ["P2/I2"])},
        id="application of nothing",
    ),
    pytest.param(
        None,
        ["UPDATE stg_taxdome__payments SET processing_fee_cents = 50000 WHERE payment_id = 'P1'"],
        {"payments.fee_within_amount": ("critical", ["P1"])},
        id="fee above its payment",
    ),
    pytest.param(
        None,
        ["UPDATE stg_taxdome__payouts SET net_cents = net_cents - 1 WHERE payout_id = 'PO1'"],
        {"payouts.net_is_gross_minus_fee": ("warning", ["PO1"])},
        id="payout net is not gross minus fee",
    ),
    pytest.param(
        None,
        [
            "UPDATE stg_taxdome__payouts SET fee_cents = 50000, net_cents = 46469 - 50000 WHERE payout_id = 'PO1'"
        ],
        {"payouts.fee_within_gross": ("warning", ["PO1"])},
        id="payout fee above its gross",
    ),
    pytest.param(
        None,
        ["DELETE FROM stg_taxdome__invoices WHERE invoice_id = 'I2'"],
        {
            "invoice_lines.unknown_invoice": ("critical", ["I2/1"]),
            "payment_applications.unknown_invoice": ("critical", ["P2/I2"]),
        },
        id="lines and applications of an invoice not staged",
    ),
    pytest.param(
        None,
        ["DELETE FROM stg_taxdome__payments WHERE payment_id = 'P1'"],
        {
            "payment_applications.unknown_payment": ("critical", ["P1/I1"]),
            "refunds.unknown_payment": ("critical", ["R1"]),
        },
        id="applications and refunds of a payment not staged",
    ),
    pytest.param(
        None,
        ["DELETE FROM stg_taxdome__accounts WHERE account_id = 'A2'"],
        {
            "invoices.unknown_account": ("critical", ["I2"]),
            "payments.unknown_account": ("critical", ["P2"]),
        },
        id="invoices and payments of an account not staged",
    ),
    pytest.param(
        "invoices",
        ["UPDATE stg_taxdome__invoices SET invoice_number = NULL WHERE invoice_id = 'I2'"],
        {"invoices.required_values": ("critical", ["I2"])},
        id="invoice without a number",
    ),
    pytest.param(
        "payments",
        ["INSERT INTO stg_taxdome__payments SELECT * FROM stg_taxdome__payments WHERE payment_id = 'P2'"],
        {"payments.unique_ids": ("critical", ["P2"])},
        id="payment staged twice",
    ),
    pytest.param(
        "invoice_lines",
        [
            "INSERT INTO stg_taxdome__invoice_lines SELECT * FROM stg_taxdome__invoice_lines "
            "WHERE invoice_id = 'I2' AND line_no = 1"
        ],
        {
            "invoice_lines.unique_ids": ("critical", ["I2/1"]),
            "invoices.total_is_lines_plus_tax": ("critical", ["I2"]),
        },
        id="invoice line staged twice",
    ),
]


@pytest.mark.parametrize(("loosened_table", "statements", "expected"), PLANTED_IN_STAGING)
def test_a_defect_planted_in_the_staged_tables_fails_its_check(
    warehouse_engine, tmp_path, loosened_table, statements, expected
):
    staging.stage_export(warehouse_engine, write_export(tmp_path / "export"))
    if loosened_table:
        loosen(warehouse_engine, loosened_table)
    execute(warehouse_engine, *statements)

    assert failures(check(warehouse_engine)) == expected


PLANTED_IN_AN_EXPORT = [
    pytest.param(
        {
            "payments_csv": with_rows(
                "payments.csv", "P3,A2,2026-01-09,200.00,cash,none,,0,USD,true,,2026-01-09T09:00:00Z"
            ),
            "payment_applications_csv": with_rows("payment_applications.csv", "P3,I2,200.00"),
        },
        {"invoices.applied_within_total": ("critical", ["I2"])},
        id="invoice paid beyond its total",
    ),
    pytest.param(
        {"payment_applications_csv": replace_row("payment_applications.csv", "P2,", "P2,I2,150.00")},
        {"payments.applied_within_amount": ("critical", ["P2"])},
        id="payment applied beyond its amount",
    ),
    pytest.param(
        {
            "invoices_csv": replace_row(
                "invoices.csv", "I2,", "I2,INV-0002,A2,2026-01-14,,Unpaid,USD,,250.00,,2026-01-06T09:00:00Z"
            ),
            # Three days ahead is within the tolerance.
            "payments_csv": replace_row(
                "payments.csv", "P2,", "P2,A2,2026-01-13,100.00,cash,none,,0,USD,true,,2026-01-08T09:00:00Z"
            ),
        },
        {"invoices.posted_date_not_in_future": ("warning", ["I2"])},
        id="invoice posted in the future",
    ),
    pytest.param(
        {
            "invoices_csv": replace_row(
                "invoices.csv", "I2,", "I2,INV-0001,A2,2026-01-06,,Unpaid,USD,,250.00,,2026-01-06T09:00:00Z"
            )
        },
        {"invoices.unique_numbers": ("warning", ["I1", "I2"])},
        id="two invoices with one number",
    ),
    pytest.param(
        {
            "payments_csv": replace_row(
                "payments.csv", "P2,", "P2,A2,2026-01-08,100.00,cash,none,,0,EUR,true,,2026-01-08T09:00:00Z"
            )
        },
        {"payments.home_currency": ("critical", ["P2"])},
        id="payment in another currency",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), PLANTED_IN_AN_EXPORT)
def test_a_defect_that_passes_staging_fails_its_check(warehouse_engine, tmp_path, changes, expected):
    result = staging.stage_export(warehouse_engine, write_export(tmp_path / "export", **changes))
    assert result.total("rows_rejected") == 0

    assert failures(check(warehouse_engine)) == expected


def test_an_older_export_staged_over_a_newer_one_keeps_the_newer_lines(warehouse_engine, tmp_path):
    """The older export's invoice is superseded, and so are its lines: staged, total and lines agree."""
    staging.stage_export(warehouse_engine, write_export(tmp_path / "newer"))
    older = write_export(
        tmp_path / "older",
        invoices_csv=replace_row(
            "invoices.csv",
            "I1,",
            "I1,INV-0001,A1,2026-01-05,2026-02-04,Paid,USD,22.19,514.69,January work,2026-01-04T09:00:00Z",
        ),
        invoice_lines_csv=replace_row(
            "invoice_lines.csv", "I1,1,", "I1,1,S1,Tax return,,300.00,1,300.00,true"
        ),
    )
    result = staging.stage_export(warehouse_engine, older)

    lines = next(f for f in result.files if f.source_file == "invoice_lines.csv")
    assert lines.rows_superseded == 3  # every line of I1 in the older export
    assert failures(check(warehouse_engine)) == {}


def test_refunds_of_two_exports_above_their_payment_fail_unless_the_first_was_deleted(
    warehouse_engine, tmp_path
):
    staging.stage_export(warehouse_engine, write_export(tmp_path / "first"))  # R1 refunds 50.00 of P1
    second = write_export(
        tmp_path / "second",
        refunds_csv="refund_id,payment_id,account_id,refund_date,amount,reason\nR2,P1,A1,2026-01-09,450.00,Chargeback\n",
    )
    staging.stage_export(warehouse_engine, second)

    # Exports of changes only: R1 still stands, and 50.00 + 450.00 is above P1's 464.69.
    assert failures(check(warehouse_engine, export_mode="incremental")) == {
        "payments.refunded_within_amount": ("critical", ["P1"])
    }
    # Full exports: the second one lacks R1, so R1 was deleted in TaxDome and the planner leaves it out.
    assert failures(check(warehouse_engine, export_mode="full")) == {}


def test_a_file_that_shrinks_against_the_previous_export_is_a_warning(warehouse_engine, tmp_path):
    staging.stage_export(warehouse_engine, write_export(tmp_path / "first"))
    staging.stage_export(warehouse_engine, write_export(tmp_path / "same"))
    assert failures(check(warehouse_engine)) == {}

    shrunk = write_export(
        tmp_path / "shrunk",
        invoices_csv=drop_row("invoices.csv", "I2,"),  # 2 -> 1 row: -50 %
        invoice_lines_csv=drop_row("invoice_lines.csv", "I2,"),  # 4 -> 3 rows: -25 %
        payment_applications_csv=drop_row("payment_applications.csv", "P2,"),  # 2 -> 1 row
        payouts_csv=None,  # optional: a file the latest export lacks read 0 rows
    )
    staging.stage_export(warehouse_engine, shrunk)
    report = check(warehouse_engine)

    assert failures(report) == {
        "invoices.row_count_drift": ("warning", []),
        "invoice_lines.row_count_drift": ("warning", []),
        "payment_applications.row_count_drift": ("warning", []),
        "payouts.row_count_drift": ("warning", []),
    }
    assert not report.critical_failures
    drift = {r.check_name: r for r in report.results}
    assert drift["invoice_lines.row_count_drift"].observed == {"previous_rows": 4, "latest_rows": 3}
    assert drift["invoice_lines.row_count_drift"].unexpected_count == 1
    assert drift["accounts.row_count_drift"].success


def test_a_staged_table_without_a_contract_column_stops_the_checks_at_the_schema(warehouse_engine, tmp_path):
    staging.stage_export(warehouse_engine, write_export(tmp_path / "export"))
    execute(warehouse_engine, "ALTER TABLE stg_taxdome__refunds DROP COLUMN reason")

    report = check(warehouse_engine)

    assert failures(report) == {"refunds.schema": ("critical", [])}
    assert report.critical_failures[0].observed == {"table": {"missing": ["reason"]}}
    assert {r.check_name.split(".")[1] for r in report.results} == {"schema"}  # nothing else could run


@pytest.mark.airflow
def test_a_critical_failure_fails_the_check_task_and_nothing_is_planned(
    airflow_db, warehouse_file, tmp_path, capfd
):
    export = write_export(
        tmp_path / "exports" / "2026-01-10",
        payment_applications_csv=BASE_EXPORT["payment_applications.csv"].replace(
            "P2,I2,100.00", "P2,I2,150.00"
        ),
    )
    sync_dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["taxdome_qbo_sync"]

    run = sync_dag.test(run_conf={"export_dir": str(export)})

    assert run.state == "failed"
    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert states["stage"][0] == "success"
    assert states["check"] == ("failed", 1)  # a data problem: no retries
    assert states["plan"][0] == states["load"][0] == "upstream_failed"
    log = "".join(capfd.readouterr())
    assert "critical data-quality checks failed" in log
    assert "payments.applied_within_amount (stg_taxdome__payments): 1 of 2 rows" in log
    assert "TaxDome ids: P2" in log
    engine = warehouse.sqlite_engine(str(warehouse_file))
    with engine.connect() as conn:
        failed = conn.execute(
            sa.select(warehouse.dq_results.c.check_name).where(
                warehouse.dq_results.c.run_id == run.run_id, warehouse.dq_results.c.success.is_(False)
            )
        ).scalars()
        assert list(failed) == ["payments.applied_within_amount"]
        assert conn.execute(sa.select(sa.func.count()).select_from(warehouse.sync_plan_runs)).scalar() == 0
