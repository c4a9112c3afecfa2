"""Run a reconciliation: read the staged firm, the sync's verdicts and state, and the QBO copies from the
warehouse, compare them (core/reconciliation.py), and record the run, its summary and its exceptions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core.reconciliation import (
    EXCEPTION_COLUMNS,
    SOURCE_TYPES,
    QboSide,
    Reconciliation,
    ReconciliationSettings,
    TaxDomeSide,
    reconcile,
)
from taxdome_qbo.services import sql, warehouse

log = logging.getLogger(__name__)

# The staged table each TaxDome input is read from (the others bear its name).
_STAGED_TABLE = {"applications": "payment_applications"}


class NothingToReconcile(RuntimeError):
    """The company has never been loaded: there is no sync verdict to reconcile against."""


@dataclass(frozen=True)
class ReconciliationReceipt:
    recon_run_id: str
    realm_id: str
    sync_run_id: str
    verdict: str
    unexplained: int
    exceptions_by_class: dict[str, int]
    objects_in_scope: dict[str, int]

    def as_xcom(self) -> dict:
        return {
            "recon_run_id": self.recon_run_id,
            "realm_id": self.realm_id,
            "sync_run_id": self.sync_run_id,
            "verdict": self.verdict,
            "unexplained": self.unexplained,
            "exceptions_by_class": self.exceptions_by_class,
            "objects_in_scope": self.objects_in_scope,
        }


def _frame(conn: Connection, select: sa.Select, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(row) for row in conn.execute(select)], columns=columns)


def _columns(source: str) -> list[str]:
    """The columns the reconciliation reads of a source (core/reconciliation.py types them): only those are
    read, a firm's million rows of the others would only take memory."""
    return list(SOURCE_TYPES[source])


def _staged(conn: Connection, name: str) -> pd.DataFrame:
    """A staged input's rows the latest full export still lists (those it lacks were deleted in TaxDome)."""
    table = warehouse.STAGING_TABLES[_STAGED_TABLE.get(name, name)]
    columns = _columns(f"taxdome.{name}")
    select = sa.select(*(table.c[c] for c in columns))
    if "_absent_since_batch" in table.c:
        select = select.where(table.c._absent_since_batch.is_(None))
    return _frame(conn, select, columns)


def _company_rows(conn: Connection, name: str, realm_id: str) -> pd.DataFrame:
    table = warehouse.metadata.tables[f"stg_qbo__{name}"]
    columns = _columns(f"qbo.{name}")
    return _frame(
        conn, sa.select(*(table.c[c] for c in columns)).where(table.c.realm_id == realm_id), columns
    )


def latest_settled_run(conn: sa.Connection, realm_id: str) -> str | None:
    """The sync run whose object verdicts are the sync's latest word on the company: the latest loaded, or
    planned with nothing to write."""
    found = sql.fetch_all(conn, "reconciliation/select_latest_settled_run_of_company", realm_id=realm_id)
    return found[0].run_id if found else None


def read_inputs(
    engine: Engine, realm_id: str
) -> tuple[TaxDomeSide, QboSide, pd.DataFrame, pd.DataFrame, str]:
    """Both sides, the latest verdicts and the sync state of the company, and the sync run they come from."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        sync_run_id = latest_settled_run(conn, realm_id)
        if sync_run_id is None:
            raise NothingToReconcile(
                f"QuickBooks company {realm_id} has never been loaded: run taxdome_qbo_sync first"
            )
        taxdome = TaxDomeSide(**{name: _staged(conn, name) for name in TaxDomeSide.__dataclass_fields__})
        qbo = QboSide(**{name: _company_rows(conn, name, realm_id) for name in QboSide.__dataclass_fields__})
        status, state = warehouse.sync_object_status, warehouse.qbo_sync_state
        verdicts = _frame(
            conn,
            sa.select(*(status.c[c] for c in _columns("verdicts"))).where(status.c.run_id == sync_run_id),
            _columns("verdicts"),
        )
        sync_state = _frame(
            conn,
            sa.select(*(state.c[c] for c in _columns("state"))).where(state.c.realm_id == realm_id),
            _columns("state"),
        )
    return taxdome, qbo, verdicts, sync_state, sync_run_id


def record(
    engine: Engine,
    recon_run_id: str,
    realm_id: str,
    sync_run_id: str,
    result: Reconciliation,
    settings: ReconciliationSettings,
) -> None:
    """The run, its summary and its exceptions, replacing an earlier attempt of the same run."""
    runs = warehouse.reconciliation_runs
    with engine.begin() as conn:
        for table in (warehouse.rpt_reconciliation_summary, warehouse.rpt_reconciliation_exceptions, runs):
            conn.execute(table.delete().where(table.c.recon_run_id == recon_run_id))
        conn.execute(
            runs.insert().values(
                recon_run_id=recon_run_id,
                realm_id=realm_id,
                sync_run_id=sync_run_id,
                period_from=settings.period_from,
                period_to=settings.period_to,
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
                verdict="clean" if result.unexplained == 0 else "differences",
                unexplained=result.unexplained,
            )
        )
        warehouse.insert_frame(
            conn, warehouse.rpt_reconciliation_summary, result.summary.assign(recon_run_id=recon_run_id)
        )
        exceptions = result.exceptions[list(EXCEPTION_COLUMNS)].assign(
            recon_run_id=recon_run_id, seq=range(1, len(result.exceptions) + 1)
        )
        warehouse.insert_frame(conn, warehouse.rpt_reconciliation_exceptions, exceptions)


def reconcile_company(
    engine: Engine, realm_id: str, recon_run_id: str, settings: ReconciliationSettings
) -> ReconciliationReceipt:
    """Reconcile the company's QBO copies (read back beforehand) against the staged firm and record it."""
    taxdome, qbo, verdicts, state, sync_run_id = read_inputs(engine, realm_id)
    result = reconcile(taxdome, qbo, verdicts, state, settings)
    record(engine, recon_run_id, realm_id, sync_run_id, result, settings)
    by_class = result.exceptions["difference_class"].value_counts().sort_index()
    receipt = ReconciliationReceipt(
        recon_run_id=recon_run_id,
        realm_id=realm_id,
        sync_run_id=sync_run_id,
        verdict="clean" if result.unexplained == 0 else "differences",
        unexplained=result.unexplained,
        exceptions_by_class={str(k): int(v) for k, v in by_class.items()},
        objects_in_scope=result.objects_in_scope,
    )
    log.info("reconciliation %s: %s", recon_run_id, receipt.as_xcom())
    return receipt


SUPERSEDED = "superseded"


def sync_fingerprint(engine: Engine, realm_id: str) -> dict[str, str | None]:
    """What a sync changes under a reconciliation of the company: the latest export staged, plan to load and
    load (as text, for an XCom). Equal before and after a comparison: no sync staged, planned or loaded
    meanwhile."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        [row] = sql.fetch_all(conn, "reconciliation/select_sync_fingerprint", realm_id=realm_id)
    return {name: None if value is None else str(value) for name, value in row._mapping.items()}


def record_report_location(engine: Engine, recon_run_id: str, location: str) -> None:
    runs = warehouse.reconciliation_runs
    with engine.begin() as conn:
        conn.execute(
            runs.update().where(runs.c.recon_run_id == recon_run_id).values(report_location=location)
        )


def record_superseded(engine: Engine, recon_run_id: str) -> None:
    """A sync changed the data during the comparison: its differences are not a verdict on the company."""
    runs = warehouse.reconciliation_runs
    with engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.recon_run_id == recon_run_id).values(verdict=SUPERSEDED))


@dataclass(frozen=True)
class LatestReconciliation:
    run: sa.Row
    differences_by_class: list[sa.Row]  # difference_class, explained, differences
    quality: sa.Row | None  # checks, failed, critical_failed of the sync run it followed
    first_unexplained: list[sa.Row]  # difference_class, object_kind, taxdome_id, measure, difference, detail


# How many unexplained differences the summary names one by one (the report has them all).
UNEXPLAINED_LISTED = 10


def latest_run(engine: Engine) -> LatestReconciliation | None:
    """The latest reconciliation run, its differences counted by class, and its sync run's data quality."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        found = sql.fetch_all(conn, "reconciliation/select_latest_run")
        if not found:
            return None
        run = found[0]
        quality = sql.fetch_all(conn, "quality/select_check_counts", run_id=run.sync_run_id)
        return LatestReconciliation(
            run,
            sql.fetch_all(conn, "reconciliation/select_class_counts", recon_run_id=run.recon_run_id),
            quality[0] if quality and quality[0].checks else None,
            sql.fetch_all(
                conn,
                "reconciliation/select_first_unexplained",
                recon_run_id=run.recon_run_id,
                limit=UNEXPLAINED_LISTED,
            ),
        )
