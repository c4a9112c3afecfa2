"""Whether a sync run must check and plan, or nothing changed since the last run that did.

A recorded plan keeps what it was made from (`sync_run_inputs`, core/plan_inputs.py): the staged exports'
version, the settings and plan options, the overrides' digest, the code's version, the QuickBooks company
and the small parts of it read whole, and when it began reading the company. A later run plans again only
when one of those differs, when QBO's change data capture (CDC) reports a change since that read other than
the sync's own writes, when the sync state changed after that plan's load, or when that load left something
to do (failed, waiting, deferred, unanswered). A passed data-quality check likewise keeps what it judged, and
a run whose staged firm and check options are those of a passed check does not check again.

Every question here is answered from a few small rows, one aggregate over the company's sync state and three
QuickBooks requests, whatever the firm's size.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import taxdome_qbo
from taxdome_qbo.core import plan_inputs as rules
from taxdome_qbo.core.planner import PlanOptions
from taxdome_qbo.core.qbo_reference import QboReference
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.services import qbo_client, quality, sql, warehouse
from taxdome_qbo.services.qbo_client import QboSession
from taxdome_qbo.services.qbo_readback import CDC_LOOKBACK, DEFAULT_OVERLAP

log = logging.getLogger(__name__)

CHECK, PLAN = "check", "plan"
FOREIGN_CHANGES_SHOWN = 3


@dataclass(frozen=True)
class Decision:
    """Whether the run plans, and why (for the task log)."""

    plan: bool
    reason: str


def company_clock(session: QboSession) -> datetime:
    """Now by the company's clock, which its change data capture compares with: QBO's, read from an answer;
    this host's less DEFAULT_OVERLAP (the clocks' possible skew) when QBO does not say."""
    answered_at = qbo_client.read_preferences(session)[1]
    return answered_at.astimezone(UTC) if answered_at else datetime.now(UTC) - DEFAULT_OVERLAP


@functools.cache
def code_version() -> dict[str, str]:
    """The package's version and a digest of its Python sources (a change to the rules without a new
    version is a change too), and the versions of the libraries the rules compute with."""
    package = Path(taxdome_qbo.__file__).parent
    sources = sorted(package.rglob("*.py"))
    digest = rules.fingerprint(
        {str(path.relative_to(package)): path.read_text(encoding="utf-8") for path in sources}
    )
    return {
        "taxdome_qbo": metadata.version("taxdome-qbo"),
        "sources": digest,
        **{library: metadata.version(library) for library in ("pandas", "pyarrow")},
    }


def _staged_version(conn: Connection) -> dict[str, Any]:
    """How many exports staged successfully, and the latest: staging writes the staged tables only through a
    batch, in the batch's transaction."""
    row = sql.fetch_all(conn, "planning/select_staged_version")[0]
    return {
        "exports": int(row.exports),
        "latest_batch": row.latest_batch_id,
        "latest_export": row.latest_name,
    }


def _overrides_version(conn: Connection) -> dict[str, Any]:
    table = warehouse.sync_overrides
    rows = conn.execute(sa.select(table.c.taxdome_kind, table.c.taxdome_id, table.c.sync)).all()
    return {"count": len(rows), "digest": rules.rows_digest((k, i, bool(s)) for k, i, s in rows)}


def check_inputs(engine: Engine, *, export_mode: str, home_currency: str) -> dict[str, Any]:
    """What the data-quality checks judge: the staged firm, as the export mode and currency read it, by
    this code. (Dates in the future are judged against the day, but only as warnings: a critical result does
    not change with the day.)"""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        staged = _staged_version(conn)
    return {
        "staged": staged,
        "options": {"export_mode": export_mode, "home_currency": home_currency},
        "code": code_version(),
    }


def plan_inputs(
    engine: Engine, realm_id: str, settings: FirmSettings, options: PlanOptions
) -> dict[str, Any]:
    """What a plan of `realm_id` reads from the warehouse, the settings and the code, as versions and
    digests (the QuickBooks part is added from what the plan reads: `with_quickbooks`)."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        staged, overrides = _staged_version(conn), _overrides_version(conn)
    return {
        "realm_id": realm_id,
        "staged": staged,
        "settings": settings.as_json(),
        "options": {
            "export_mode": options.export_mode,
            "allow_mass_delete": options.allow_mass_delete,
            "period": None if options.period is None else str(options.period),
        },
        "overrides": overrides,
        "code": code_version(),
    }


def with_quickbooks(
    inputs: dict[str, Any], customer_types: pd.DataFrame, automated_tax: bool
) -> dict[str, Any]:
    """`inputs` with what the plan reads whole from QuickBooks (its other reads are change-captured)."""
    return inputs | {
        "quickbooks": {
            "customer_types": rules.frame_digest(customer_types, customer_types.columns),
            "automated_sales_tax": automated_tax,
        }
    }


def _record(conn: Connection, run_id: str, step: str, inputs: dict[str, Any], **columns: Any) -> None:
    table = warehouse.sync_run_inputs
    conn.execute(table.delete().where(table.c.run_id == run_id, table.c.step == step))
    conn.execute(
        table.insert().values(
            run_id=run_id,
            step=step,
            fingerprint=rules.fingerprint(inputs),
            inputs=json.dumps(inputs, sort_keys=True),
            recorded_at=datetime.now(UTC),
            **columns,
        )
    )


def record_check(engine: Engine, run_id: str, inputs: dict[str, Any]) -> None:
    """The run's checks passed on `inputs` (called only then)."""
    with engine.begin() as conn:
        _record(conn, run_id, CHECK, inputs)


def checked_before(engine: Engine, inputs: dict[str, Any]) -> str | None:
    """The latest run whose checks passed on the same inputs, or None."""
    table = warehouse.sync_run_inputs
    with engine.connect() as conn:
        return conn.execute(
            sa.select(table.c.run_id)
            .where(table.c.step == CHECK, table.c.fingerprint == rules.fingerprint(inputs))
            .order_by(table.c.recorded_at.desc())
            .limit(1)
        ).scalar()


def adopt_checks(engine: Engine, run_id: str, *, export_mode: str, home_currency: str) -> str | None:
    """A run that plans although its check found the staged firm already checked gets that check's results
    (services/quality.py), so its report and the Data quality page show what vouches for the data it loads.
    Returns the run they come from, or None (the run checked itself, or no passed check matches)."""
    checked = checked_before(
        engine, check_inputs(engine, export_mode=export_mode, home_currency=home_currency)
    )
    if checked is None or checked == run_id:
        return None
    if not quality.adopt_results(engine, checked, run_id):
        return None
    log.info(
        "data quality: run %s passed the checks on the same staged firm; its results stand for this run",
        checked,
    )
    return checked


def record_plan(
    engine: Engine, run_id: str, inputs: dict[str, Any], reference: QboReference, read_at: datetime
) -> None:
    """What the run's plan was made from: `inputs` (read before the plan) with the company's parts read whole,
    and when the plan began reading the company."""
    recorded = with_quickbooks(inputs, reference.customer_types, reference.automated_sales_tax)
    with engine.begin() as conn:
        _record(conn, run_id, PLAN, recorded, realm_id=reference.realm_id, qbo_read_at=read_at)


def _last_plan(conn: Connection, realm_id: str) -> sa.Row | None:
    return conn.execute(
        sql.statement("planning/select_last_plan_inputs").columns(
            planned_at=warehouse.UTC_TIMESTAMP,
            loaded_at=warehouse.UTC_TIMESTAMP,
            qbo_read_at=warehouse.UTC_TIMESTAMP,
        ),
        {"realm_id": realm_id, "step": PLAN},
    ).first()


def _unsettled(last: sa.Row) -> str | None:
    """Why the last plan's load did not leave the company as that plan said, or None."""
    if not last.operations:
        return None
    if last.dry_run:
        return f"run {last.run_id} was a dry run: its {last.operations} operation(s) were not written"
    if last.loaded_at is None:
        return f"the load of run {last.run_id} did not finish ({last.operations} operation(s) planned)"
    left = rules.left_to_do(json.loads(last.load_receipt or "{}"))
    if left:
        return f"the load of run {last.run_id} left work to retry: {rules.describe_left(left)}"
    return None


def _state_moved(conn: Connection, realm_id: str, settled_at: datetime) -> str | None:
    """Why the sync state is not the one the last plan's load left, or None."""
    state = warehouse.qbo_sync_state
    last_written, pending = conn.execute(
        sa.select(sa.func.max(state.c.updated_at), sa.func.count(state.c.pending_action)).where(
            state.c.realm_id == realm_id
        )
    ).one()
    if pending:
        return f"{pending} write(s) to QuickBooks have an unknown outcome (pending): a retry is due"
    if last_written is not None and warehouse.as_utc(last_written) > settled_at:
        return (
            f"the sync state was written at {warehouse.as_utc(last_written):%Y-%m-%d %H:%M:%S} UTC, after the last "
            "plan's load (another load, or repair-duplicates)"
        )
    return None


def _written_by_sync(
    conn: Connection, realm_id: str, changed: dict[str, list[dict]]
) -> set[tuple[str, str, str]]:
    """(entity, Id, SyncToken) of the changed objects the sync state records as the sync left them."""
    state = warehouse.qbo_sync_state
    ids = {str(obj.get("Id")) for objects in changed.values() for obj in objects}
    written = set()
    for chunk in warehouse.id_chunks(ids):
        rows = conn.execute(
            sa.select(state.c.qbo_entity, state.c.qbo_id, state.c.sync_token).where(
                state.c.realm_id == realm_id,
                state.c.qbo_entity.in_(list(changed)),
                state.c.qbo_id.in_(chunk),
            )
        )
        written.update((entity, qbo_id, str(token)) for entity, qbo_id, token in rows)
    return written


def _quickbooks_moved(
    engine: Engine, session: QboSession, last: sa.Row, recorded: dict[str, Any], now: datetime
) -> tuple[str | None, datetime]:
    """Why the company may not be what the last plan read, or None; and the moment CDC was asked from."""
    # QBO stamps a change in whole seconds, and CDC is asked from the second the plan's read began: a change
    # made after it is never missed (one made in that second before it is reported too).
    since = warehouse.as_utc(last.qbo_read_at).replace(microsecond=0)
    if now - since > CDC_LOOKBACK:
        return (
            f"the last plan read QuickBooks at {since:%Y-%m-%d %H:%M} UTC, longer ago than QBO's change data "
            "capture answers for",
            since,
        )
    read_again = with_quickbooks(
        {},
        qbo_client.fetch_customer_types(session),
        qbo_client.automated_sales_tax(qbo_client.fetch_preferences(session)),
    )
    moved = rules.differences({"quickbooks": recorded.get("quickbooks")}, read_again)
    if moved:
        return "; ".join(moved), since
    changed = qbo_client.changed_since(session, rules.CDC_ENTITIES, since)
    if sum(map(len, changed.values())) >= qbo_client.CDC_MAX_OBJECTS:
        return f"QuickBooks reports at least {qbo_client.CDC_MAX_OBJECTS} changes since the last plan", since
    with engine.connect() as conn:
        foreign = rules.foreign_changes(changed, _written_by_sync(conn, session.realm_id, changed))
    if foreign:
        shown = ", ".join(
            f"{entity} {qbo_id} {what}" for entity, qbo_id, what in foreign[:FOREIGN_CHANGES_SHOWN]
        )
        more = (
            f" and {len(foreign) - FOREIGN_CHANGES_SHOWN} more"
            if len(foreign) > FOREIGN_CHANGES_SHOWN
            else ""
        )
        return f"QuickBooks changed since {since:%Y-%m-%d %H:%M:%S} UTC: {shown}{more}", since
    return None, since


def decide(
    engine: Engine, session: QboSession, inputs: dict[str, Any], *, now: datetime | None = None
) -> Decision:
    """Whether a run whose warehouse-side plan inputs are `inputs` must plan for the session's company.

    It need not when the company's last plan had the same inputs, its load did all it said (or it said
    nothing), the sync state is as that load left it, and QuickBooks reports no change since that plan read
    it but the sync's own writes: the plan would be the same and find nothing left to write.
    """
    now = now or datetime.now(UTC)
    realm_id = session.realm_id
    with engine.connect() as conn:
        last = _last_plan(conn, realm_id)
        if last is None:
            return Decision(True, f"QuickBooks company {realm_id} was never planned for")
        if last.inputs is None:
            return Decision(True, f"the last plan (run {last.run_id}) recorded no inputs")
        recorded = json.loads(last.inputs)
        changed = rules.differences({k: v for k, v in recorded.items() if k != "quickbooks"}, inputs)
        if changed:
            return Decision(True, f"changed since run {last.run_id}: " + "; ".join(changed))
        if (unsettled := _unsettled(last)) is not None:
            return Decision(True, unsettled)
        settled_at = warehouse.as_utc(last.loaded_at if last.operations else last.planned_at)
        if (moved := _state_moved(conn, realm_id, settled_at)) is not None:
            return Decision(True, moved)
    moved, since = _quickbooks_moved(engine, session, last, recorded, now)
    if moved is not None:
        return Decision(True, moved)
    staged = inputs["staged"]
    settled = f"all {last.operations} operation(s) loaded" if last.operations else "nothing to write"
    return Decision(
        False,
        f"nothing changed since run {last.run_id} (planned {warehouse.as_utc(last.planned_at):%Y-%m-%d %H:%M} UTC, "
        f"{settled}): no new export (latest {staged['latest_export'] or 'none'}, {staged['exports']} staged), "
        f"no change in QuickBooks since {since:%Y-%m-%d %H:%M:%S} UTC other than the sync's own writes, same "
        "settings, plan options, overrides and code: the plan would be the same",
    )
