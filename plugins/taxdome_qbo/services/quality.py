"""Run the data-quality checks of `core/quality_checks.py` on the staged firm and record their results.

Each staged table is read once, only the columns the checks need, through the driver's cursor (millions of
rows without per-row ORM cost); Great Expectations validates those frames and the frames derived from them
with pandas; the reference checks run as one query built per check (`_orphans`), the drift check as SQL from
`include/sql/quality/`. The results of a run go to `dq_results`, replacing the run's earlier ones (a retried
check task).

Great Expectations is imported when checks run, not with this module: the import costs seconds, and the DAG
file imports the task bodies, which import this module, at every parse.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core.export_contract import EXPORT_FILES, Kind
from taxdome_qbo.core.quality_checks import (
    COLUMN_FRAMES,
    FRAMES,
    MAX_SHRINK_PERCENT,
    REFERENCE_CHECKS,
    ROW_COUNT_DRIFT_STATEMENT,
    UNEXPECTED_IDS_KEPT,
    GxCheck,
    ReferenceCheck,
    Severity,
    columns_to_read,
    derive_frames,
    gx_checks,
    observed_label,
    plannable,
    row_count_drift_check,
    taxdome_id,
)
from taxdome_qbo.services import sql, warehouse

OBSERVED_EXAMPLES = 5  # unexpected values kept per expectation in `observed`


class QualityCheckError(RuntimeError):
    """A check could not be evaluated (an error in the check, not a finding about the data)."""


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    table_name: str
    engine: str
    severity: Severity
    success: bool
    description: str
    evaluated_rows: int | None = None
    unexpected_count: int | None = None
    observed: Any = None  # JSON-able: unexpected values per column, missing columns, row counts
    unexpected_ids: tuple[str | None, ...] = ()

    @classmethod
    def of(cls, check, table_name: str, **outcome: Any) -> CheckResult:
        """The result of `check` (a definition of core/quality_checks.py) on `table_name`."""
        return cls(
            check_name=check.name,
            table_name=table_name,
            engine=check.engine,
            severity=check.severity,
            description=check.description,
            **outcome,
        )

    def describe(self) -> str:
        """One line for a person: the check, how many rows failed, what it expects, what was found instead and
        the TaxDome ids (the first ones)."""
        counts = (
            f"{self.unexpected_count} of {self.evaluated_rows} rows"
            if self.unexpected_count is not None and self.evaluated_rows is not None
            else "failed"
        )
        ids = (
            f"; TaxDome ids: {', '.join(str(i) for i in self.unexpected_ids)}" if self.unexpected_ids else ""
        )
        observed = f"; observed {_json(self.observed)}" if self.observed is not None else ""
        return f"{self.check_name} ({self.table_name}): {counts}; expected: {self.description}{observed}{ids}"


@dataclass(frozen=True)
class QualityReport:
    run_id: str
    results: tuple[CheckResult, ...]
    seconds: float

    @property
    def critical_failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity is Severity.CRITICAL]

    @property
    def warnings(self) -> list[CheckResult]:
        """Warning checks that failed."""
        return [r for r in self.results if not r.success and r.severity is Severity.WARNING]

    def as_xcom(self) -> dict:
        return {
            "run_id": self.run_id,
            "checks": len(self.results),
            "passed": sum(r.success for r in self.results),
            "critical_failures": [r.check_name for r in self.critical_failures],
            "warnings": [r.check_name for r in self.warnings],
            "seconds": round(self.seconds, 1),
        }

    def summary(self) -> str:
        lines = [
            f"data quality of run {self.run_id}: {sum(r.success for r in self.results)} of {len(self.results)} "
            f"checks passed, {len(self.critical_failures)} critical failure(s), {len(self.warnings)} warning(s) "
            f"({self.seconds:.1f} s)"
        ]
        lines += [f"- CRITICAL {r.describe()}" for r in self.critical_failures]
        lines += [f"- warning {r.describe()}" for r in self.warnings]
        return "\n".join(lines)


def run_quality_checks(
    engine: Engine,
    run_id: str,
    *,
    today: dt.date | None = None,
    export_mode: str = "full",
    home_currency: str = "USD",
) -> QualityReport:
    """Check what is staged now (not one batch: the whole firm the planner plans from) and record the results.

    :param today: the day future dates are judged against (default: today in UTC).
    :param export_mode: `full` leaves out what the latest export no longer lists, as the planner does.
    :param home_currency: the firm's; amounts in another currency fail.

    A staged table that lacks a contract column stops the checks there: only the schema results are recorded
    (the other checks read those columns), and they are critical.
    """
    started = time.perf_counter()
    checks = gx_checks(today=today or dt.datetime.now(dt.UTC).date(), home_currency=home_currency)
    schema_checks = tuple(c for c in checks if c.frame in COLUMN_FRAMES)
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        column_frames = {
            name: pd.DataFrame(columns=[c["name"] for c in inspector.get_columns(frame.table)])
            for name, frame in COLUMN_FRAMES.items()
        }
        results = _run_gx(schema_checks, column_frames)
        if all(r.success for r in results):
            staged = _read_staged(engine, columns_to_read(checks))
            sql_results = _run_sql_checks(conn)
            present = plannable(staged, export_mode)
            results += _run_gx(
                tuple(c for c in checks if c not in schema_checks), present | derive_frames(present)
            )
            results += sql_results
    report = QualityReport(run_id, tuple(results), time.perf_counter() - started)
    _record(engine, report)
    return report


def _read_staged(engine: Engine, columns: dict[str, tuple[str, ...]]) -> dict[str, pd.DataFrame]:
    """Each staged table's needed columns as a frame, read as Arrow in one snapshot (warehouse.read_arrow);
    dates as datetimes whichever database stored them."""
    tables = warehouse.read_arrow(
        engine,
        {
            export_file.name: sa.select(
                *(warehouse.STAGING_TABLES[export_file.name].c[name] for name in columns[export_file.name])
            )
            for export_file in EXPORT_FILES
        },
    )
    frames = {}
    for export_file in EXPORT_FILES:
        frame = tables.pop(export_file.name).to_pandas(types_mapper={pa.string(): warehouse.PANDAS_TEXT}.get)
        for column in export_file.columns:
            if column.kind is Kind.DATE and column.name in frame:
                # A value that is no date becomes missing. In nanoseconds, as GX compares only those as
                # arrays (other units value by value: 10x slower).
                frame[column.name] = pd.to_datetime(frame[column.name], errors="coerce").astype(
                    "datetime64[ns]"
                )
        frames[export_file.name] = frame
    return frames


def _run_gx(checks: tuple[GxCheck, ...], frames: dict[str, pd.DataFrame]) -> list[CheckResult]:
    """Validate each frame with one suite of its checks' expectations; results come back per check."""
    if not checks:
        return []
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # read when a context is made; nothing leaves the machine
    # GX's INFO lines (its docs registry at import, a temporary docs folder per context) are noise in task logs.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints each batch it makes (twice per frame: `get_batch`, then `validate`) by hashing every
    # row of frames under this size, for a batch marker no result here reads: a fifth of the check's time.
    pandas_execution_engine.HASH_THRESHOLD = 0

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bars in task logs
    # One batch definition takes any frame at run time; suites are validated without being stored, as
    # storing each one would cost more than validating it on a small firm.
    whole_frame = (
        context.data_sources.add_pandas(name="staged")
        .add_dataframe_asset(name="frames")
        .add_batch_definition_whole_dataframe("whole frame")
    )
    checks_by_frame: dict[str, list[GxCheck]] = defaultdict(list)
    for check in checks:
        checks_by_frame[check.frame].append(check)
    outcomes: dict[str, list] = defaultdict(list)
    for frame_name, frame_checks in checks_by_frame.items():
        suite = gx.ExpectationSuite(
            name=frame_name,
            expectations=[
                getattr(gxe, expectation.type)(**expectation.kwargs, meta={"check": check.name})
                for check in frame_checks
                for expectation in check.expectations
            ],
        )
        result_format: dict[str, Any] = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": UNEXPECTED_IDS_KEPT,
        }
        if id_columns := FRAMES[frame_name].id_columns:
            result_format["unexpected_index_column_names"] = list(id_columns)
        batch = whole_frame.get_batch(batch_parameters={"dataframe": frames[frame_name]})
        validation = batch.validate(suite, result_format=result_format)
        for outcome in validation.results:
            check_name = outcome.expectation_config.meta["check"]
            if error := _raised(outcome.exception_info):
                raise QualityCheckError(f"check {check_name} could not run: {error}")
            outcomes[check_name].append(outcome)
    return [_gx_result(check, outcomes[check.name]) for check in checks]


def _raised(exception_info: dict) -> str | None:
    """The error an expectation raised, if any (GX nests it per metric when a metric failed)."""
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    messages = [info.get("exception_message") for info in infos if info.get("raised_exception")]
    return "; ".join(str(m) for m in messages) or None


def _gx_result(check: GxCheck, outcomes: list) -> CheckResult:
    frame = FRAMES[check.frame]
    counted = [o.result for o in outcomes if "element_count" in o.result]
    ids = [
        taxdome_id(row, frame.id_columns)
        for outcome in outcomes
        for row in outcome.result.get("partial_unexpected_index_list", [])
    ]
    observed = {}
    for outcome in outcomes:
        if outcome.success:
            continue
        label = observed_label(outcome.expectation_config.kwargs)
        result = outcome.result
        if "partial_unexpected_list" in result:
            observed[label] = result["partial_unexpected_list"][:OBSERVED_EXAMPLES]
        else:  # the table's columns: those beyond the contract (lineage) are fine, missing ones fail
            observed[label] = {"missing": result["details"]["mismatched"]["missing"]}
    return CheckResult.of(
        check,
        frame.table,
        success=all(o.success for o in outcomes),
        evaluated_rows=max((r["element_count"] for r in counted), default=None),
        unexpected_count=sum(r.get("unexpected_count", 0) for r in counted) if counted else None,
        observed=observed or None,
        unexpected_ids=tuple(dict.fromkeys(ids))[:UNEXPECTED_IDS_KEPT],
    )


def _orphans(check: ReferenceCheck, id_limit: int) -> sa.Select:
    """The child rows whose reference matches no parent row, counted and named: one row per offending row
    (the first `id_limit` by TaxDome id, as text) with its `taxdome_id` and `unknown_reference`, or one row of
    null ids when every reference resolves; every row carries `evaluated_rows` and `unexpected_count`.

    Every staged row counts, also in `full` mode those the latest export no longer lists: a reference to a
    row still staged resolves.
    """
    child = warehouse.STAGING_TABLES[check.child.name]
    parent = warehouse.STAGING_TABLES[check.parent.name]
    reference = child.c[check.column]
    key = [child.c[column] for column in check.child.key]
    as_text = [c if isinstance(c.type, sa.String) else sa.cast(c, sa.Text) for c in key]
    taxdome_id = functools.reduce(lambda joined, part: joined + "/" + part, as_text)
    unresolved = (
        sa.select(taxdome_id.label("taxdome_id"), reference.label("unknown_reference"))
        .where(~sa.exists().where(parent.c[check.column] == reference))
        .cte("unresolved")
    )
    first = (
        sa.select(unresolved).order_by(unresolved.c.taxdome_id).limit(id_limit).subquery("first_unresolved")
    )
    one_row = sa.select(sa.literal(1).label("anchor")).subquery("one_row")
    return sa.select(
        sa.select(sa.func.count()).select_from(child).scalar_subquery().label("evaluated_rows"),
        sa.select(sa.func.count()).select_from(unresolved).scalar_subquery().label("unexpected_count"),
        first.c.taxdome_id,
        first.c.unknown_reference,
    ).select_from(one_row.outerjoin(first, sa.true()))


def _run_sql_checks(conn: Connection) -> list[CheckResult]:
    results = []
    for check in REFERENCE_CHECKS:
        rows = conn.execute(_orphans(check, UNEXPECTED_IDS_KEPT)).all()
        unknown = list(dict.fromkeys(r.unknown_reference for r in rows if r.unknown_reference is not None))
        results.append(
            CheckResult.of(
                check,
                check.table,
                success=rows[0].unexpected_count == 0,
                evaluated_rows=int(rows[0].evaluated_rows),
                unexpected_count=int(rows[0].unexpected_count),
                observed={"not staged": unknown[:OBSERVED_EXAMPLES]} if unknown else None,
                unexpected_ids=tuple(r.taxdome_id for r in rows if r.taxdome_id is not None),
            )
        )
    drift = {
        row.source_file: row
        for row in sql.fetch_all(
            conn, ROW_COUNT_DRIFT_STATEMENT, succeeded="succeeded", max_shrink_percent=MAX_SHRINK_PERCENT
        )
    }
    for export_file in EXPORT_FILES:
        check = row_count_drift_check(export_file)
        row = drift.get(export_file.filename)
        previous = None if row is None or row.previous_rows is None else int(row.previous_rows)
        latest = None if row is None else int(row.latest_rows)
        shrunk = row is not None and bool(row.shrunk)
        results.append(
            CheckResult.of(
                check,
                check.table,
                success=not shrunk,
                evaluated_rows=latest,
                unexpected_count=previous - latest if shrunk else 0,
                observed={"previous_rows": previous, "latest_rows": latest},
            )
        )
    return results


def _json_value(value: Any) -> Any:
    """What json cannot write itself: numpy scalars, dates (GX hands them back as timestamps), missing values."""
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_value)


def _record(engine: Engine, report: QualityReport) -> None:
    table = warehouse.dq_results
    checked_at = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.run_id == report.run_id))
        conn.execute(
            table.insert(),
            [
                {
                    "run_id": report.run_id,
                    "check_name": r.check_name,
                    "table_name": r.table_name,
                    "engine": r.engine,
                    "severity": str(r.severity),
                    "success": r.success,
                    "evaluated_rows": r.evaluated_rows,
                    "unexpected_count": r.unexpected_count,
                    "observed": None if r.observed is None else _json(r.observed),
                    "unexpected_ids": _json(list(r.unexpected_ids)),
                    "description": r.description,
                    "checked_at": checked_at,
                }
                for r in report.results
            ],
        )


def adopt_results(engine: Engine, checked_run_id: str, run_id: str) -> bool:
    """Give `run_id`, which has no results of its own, the results of `checked_run_id` (the run whose checks
    passed on the same staged firm), as they were checked then. False when `run_id` has results."""
    table = warehouse.dq_results
    columns = [c for c in table.columns if c.name != "run_id"]
    with engine.begin() as conn:
        if conn.execute(sa.select(table.c.run_id).where(table.c.run_id == run_id).limit(1)).first():
            return False
        conn.execute(
            table.insert().from_select(
                ["run_id", *(c.name for c in columns)],
                sa.select(sa.literal(run_id, sa.Text), *columns).where(table.c.run_id == checked_run_id),
            )
        )
    return True
