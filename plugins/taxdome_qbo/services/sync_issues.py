"""Sync issues (R19): per-object sync decisions set by hand, and what the latest run left unsynced.

An override is TaxDome's per-object "Sync" / "Unsync" ("Do not sync") action. It wins over what the export
says (an account's `qbo_sync`, a payment's `sync_to_qbo`) until it is cleared. The planning service applies
overrides to the staged firm before planning, so the planner itself stays pure and knows nothing of them.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taxdome_qbo.core.kinds import KINDS
from taxdome_qbo.core.money import format_cents
from taxdome_qbo.core.qbo_faults import CATEGORIES, CATEGORY_BY_KIND, category_of
from taxdome_qbo.core.vocabulary import (
    DO_NOT_SYNC,
    FAILED,
    MASS_DELETE_SHARE,
    NOT_SYNCED,
    SKIPPED,
    SYNCED,
    StagedFirm,
)
from taxdome_qbo.services import qbo_tokens, run_counts, sql, warehouse

OVERRIDABLE_KINDS = ("account", "payment")
# What `issues` lists by default, worst first: TaxDome's states that can be acted on by hand.
ISSUE_STATUSES = (FAILED, NOT_SYNCED, SKIPPED)
ALL_STATUSES = (*ISSUE_STATUSES, DO_NOT_SYNC, SYNCED)
UNSYNCED_BY_HAND = (
    "set to Do not sync by hand (`account unsync`), whatever TaxDome's export says; "
    "`account clear` follows the export again"
)
CLI = "python -m taxdome_qbo"


@dataclass(frozen=True)
class Override:
    taxdome_kind: str
    taxdome_id: str
    sync: bool
    set_at: datetime

    @property
    def action(self) -> str:
        return "sync" if self.sync else "unsync"


# -- overrides -------------------------------------------------------------------------------------------
def read_overrides(engine: Engine) -> pd.DataFrame:
    """Every override: taxdome_kind, taxdome_id, sync (a few rows, at most one per object)."""
    table = warehouse.sync_overrides
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.taxdome_kind, table.c.taxdome_id, table.c.sync)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["taxdome_kind", "taxdome_id", "sync"])


def find_override(conn: Connection, kind: str, taxdome_id: str) -> Override | None:
    table = warehouse.sync_overrides
    row = conn.execute(
        sa.select(table).where(table.c.taxdome_kind == kind, table.c.taxdome_id == taxdome_id)
    ).one_or_none()
    return None if row is None else Override(row.taxdome_kind, row.taxdome_id, bool(row.sync), row.set_at)


def set_override(
    engine: Engine, kind: str, taxdome_id: str, *, sync: bool
) -> tuple[Override | None, Override]:
    """Record the decision (idempotent: the same decision again changes nothing); returns (before, now)."""
    _check_kind(kind)
    table = warehouse.sync_overrides
    warehouse.create_schema(engine)
    with engine.begin() as conn:
        before = find_override(conn, kind, taxdome_id)
        if before is not None and before.sync == sync:
            return before, before
        upsert = warehouse.insert_for(conn)(table).values(
            taxdome_kind=kind, taxdome_id=taxdome_id, sync=sync, set_at=datetime.now(UTC)
        )
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=[table.c.taxdome_kind, table.c.taxdome_id],
                set_={"sync": upsert.excluded.sync, "set_at": upsert.excluded.set_at},
            )
        )
        return before, find_override(conn, kind, taxdome_id)


def clear_override(engine: Engine, kind: str, taxdome_id: str) -> Override | None:
    """Remove the decision, so the object follows the export again; returns the one removed, if any."""
    _check_kind(kind)
    table = warehouse.sync_overrides
    warehouse.create_schema(engine)
    with engine.begin() as conn:
        removed = find_override(conn, kind, taxdome_id)
        conn.execute(table.delete().where(table.c.taxdome_kind == kind, table.c.taxdome_id == taxdome_id))
    return removed


def _check_kind(kind: str) -> None:
    if kind not in OVERRIDABLE_KINDS:
        raise ValueError(
            f"only {' and '.join(OVERRIDABLE_KINDS)} can be synced or unsynced by hand, not {kind}"
        )


def _ids(overrides: pd.DataFrame, kind: str, *, sync: bool) -> set[str]:
    chosen = overrides[(overrides["taxdome_kind"] == kind) & (overrides["sync"].astype(bool) == sync)]
    return set(chosen["taxdome_id"])


def apply_overrides(staged: StagedFirm, overrides: pd.DataFrame) -> StagedFirm:
    """The staged firm as the overrides say it should sync: an account synced by hand gets qbo_sync 'sync',
    one unsynced 'do_not_sync'; a payment gets sync_to_qbo True or False. Column-wide, so a million staged
    rows cost milliseconds; frames without an override are passed on as they are."""
    changes = {}
    forced, opted_out = _ids(overrides, "account", sync=True), _ids(overrides, "account", sync=False)
    if forced or opted_out:
        accounts = staged.accounts
        choice = (
            accounts["qbo_sync"]
            .mask(accounts["account_id"].isin(forced), "sync")
            .mask(accounts["account_id"].isin(opted_out), "do_not_sync")
        )
        changes["accounts"] = accounts.assign(qbo_sync=choice)
    forced, opted_out = _ids(overrides, "payment", sync=True), _ids(overrides, "payment", sync=False)
    if forced or opted_out:
        payments = staged.payments
        # SQLite hands the flag back as 0/1; the column is never null (the export's default is true).
        exported = payments["sync_to_qbo"].astype(bool)
        ids = payments["payment_id"]
        changes["payments"] = payments.assign(
            sync_to_qbo=(exported & ~ids.isin(opted_out)) | ids.isin(forced)
        )
    return dataclasses.replace(staged, **changes) if changes else staged


def explain_overrides(statuses: pd.DataFrame, overrides: pd.DataFrame) -> pd.DataFrame:
    """The planner says an account opted out was "set to Do not sync in TaxDome"; one unsynced by hand was
    not, and finance must know where to undo it."""
    opted_out = _ids(overrides, "account", sync=False)
    if not opted_out:
        return statuses
    by_hand = (
        (statuses["taxdome_kind"] == "account")
        & (statuses["status"] == DO_NOT_SYNC)
        & statuses["taxdome_id"].isin(opted_out)
    )
    return statuses.assign(reason=statuses["reason"].mask(by_hand, UNSYNCED_BY_HAND))


# -- what an override does at the next sync --------------------------------------------------------------
def next_sync_effect(engine: Engine, kind: str, taxdome_id: str) -> list[str]:
    """What the next sync will do with the object, given its override (or the export, without one)."""
    _check_kind(kind)
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        override = find_override(conn, kind, taxdome_id)
        realm_id = _current_realm(conn)
        declared = KINDS[kind]
        staged = _staged_row(conn, declared.staged[0].name, declared.id_column, taxdome_id)
        subject, export_says = _described(kind, taxdome_id, staged)
        said = [f"warning: no {kind} {taxdome_id} in the staged export; {_WAITS}"] if staged is None else []
        if override is None:
            return [*said, f"{subject} follows the export again{export_says}."]
        if kind == "account":
            return said + _account_effect(conn, taxdome_id, subject, export_says, realm_id, override.sync)
        return said + _payment_effect(conn, taxdome_id, staged, subject, export_says, realm_id, override.sync)


def _current_realm(conn: Connection) -> str | None:
    """The company the sync writes to (connected or not), else that of the latest plan."""
    latest = sql.fetch_all(conn, "planning/select_latest_plan_run")
    return qbo_tokens.current_realm_id(conn) or (latest[0].realm_id if latest else None)


def _staged_row(conn: Connection, name: str, key: str, taxdome_id: str) -> sa.Row | None:
    """The object's row in the latest export, None when no export has it (or the latest full one dropped it)."""
    table = warehouse.STAGING_TABLES[name]
    return conn.execute(
        sa.select(table).where(table.c[key] == taxdome_id, table.c._absent_since_batch.is_(None))
    ).one_or_none()


def _in_quickbooks(
    conn: Connection, realm_id: str | None, kinds: tuple[str, ...], taxdome_id: str
) -> sa.Row | None:
    """The object's QuickBooks record in the current company, if the last sync left one."""
    if realm_id is None:
        return None
    state = warehouse.qbo_sync_state
    return conn.execute(
        sa.select(state.c.qbo_entity, state.c.qbo_id).where(
            state.c.realm_id == realm_id,
            state.c.taxdome_kind.in_(kinds),
            state.c.taxdome_id == taxdome_id,
            state.c.status == SYNCED,
            state.c.qbo_id.is_not(None),
        )
    ).first()


def _described(kind: str, taxdome_id: str, staged: sa.Row | None) -> tuple[str, str]:
    """How the effect names the object, and what its staged row says of syncing ('' when no export has it)."""
    if staged is None:
        return f"{kind} {taxdome_id}", ""
    if kind == "account":
        return f"account {taxdome_id} ({staged.account_name})", f" (qbo_sync: {staged.qbo_sync})"
    amount = format_cents(int(staged.amount_cents))
    return (
        f"payment {taxdome_id} ({staged.method} payment of {amount} by account {staged.account_id})",
        f" (sync_to_qbo: {str(bool(staged.sync_to_qbo)).lower()})",
    )


def _deleted_objects(
    conn: Connection, realm_id: str | None, *, account_id: str | None = None, payment_id: str | None = None
) -> dict[str, int]:
    """What of one account's payments, or of one payment, is in the company: objects per TaxDome kind."""
    if realm_id is None:
        return {}
    rows = sql.fetch_all(
        conn,
        "sync_issues/select_payments_in_quickbooks",
        realm_id=realm_id,
        account_id=account_id,
        payment_id=payment_id,
    )
    return {row.taxdome_kind: int(row.objects) for row in rows}


def _deletion_summary(deleted: dict[str, int]) -> str:
    """'1 payment, 1 processing fee and 2 refunds' (a promotional credit's credit memo counts as a payment)."""
    payments = deleted.get("payment", 0) + deleted.get("credit_memo", 0)
    parts = [_count(payments, "payment")] if payments else []
    parts += [
        _count(deleted[k], noun)
        for k, noun in (("fee", "processing fee"), ("refund", "refund"))
        if deleted.get(k)
    ]
    return _listed(parts)


def _mass_delete_warning(conn: Connection, realm_id: str, deleted: dict[str, int]) -> list[str]:
    """The planner refuses a plan deleting more than a share of what is synced: say so before it happens."""
    synced_total = int(sql.fetch_all(conn, "sync_issues/select_synced_count", realm_id=realm_id)[0].objects)
    if sum(deleted.values()) <= MASS_DELETE_SHARE * synced_total:
        return []
    return [
        f"warning: that is more than {MASS_DELETE_SHARE:.0%} of the {synced_total} objects synced to that company, "
        "so the next plan refuses it as a mass deletion unless run with allow_mass_delete=true."
    ]


def _account_effect(
    conn: Connection, account_id: str, subject: str, export_says: str, realm_id: str | None, sync: bool
) -> list[str]:
    """What the account's override (`sync`) does at the next sync, after its subject and export are named."""
    if sync:
        return [
            f"{subject} will sync at the next sync, even without invoices or payments and whatever the export "
            f"says{export_says}; its invoices and payments sync too, from the sync date on."
        ]
    said = [
        f"{subject} is set to Do not sync: from the next sync, its invoices, payments and refunds stop syncing."
    ]
    customer = _in_quickbooks(conn, realm_id, ("account",), account_id)
    if customer is not None:
        said.append(
            f"Its customer ({customer.qbo_entity} {customer.qbo_id}) and its invoices stay in QuickBooks, "
            "no longer updated."
        )
    deleted = _deleted_objects(conn, realm_id, account_id=account_id)
    if deleted:
        said.append(
            f"Its {_deletion_summary(deleted)} in QuickBooks (company {realm_id}) will be deleted at the next sync."
        )
        said += _mass_delete_warning(conn, realm_id, deleted)
    return said


def _payment_effect(
    conn: Connection,
    payment_id: str,
    staged: sa.Row | None,
    subject: str,
    export_says: str,
    realm_id: str | None,
    sync: bool,
) -> list[str]:
    """What the payment's override (`sync`) does at the next sync, after its subject and export are named."""
    if sync:
        said = [
            f"{subject} will sync at the next sync whatever the export says{export_says}, as long as its "
            "account syncs, it is dated on or after the sync date and payment sync is on in the firm settings."
        ]
        if staged is not None:
            account_override = find_override(conn, "account", staged.account_id)
            account = _staged_row(conn, "accounts", "account_id", staged.account_id)
            opted_out = (
                not account_override.sync
                if account_override is not None
                else account is not None and account.qbo_sync == "do_not_sync"
            )
            if opted_out:
                said.append(
                    f"warning: its account {staged.account_id} is set to Do not sync, so it will not sync until "
                    f"the account does (`{CLI} account sync {staged.account_id}`)."
                )
        return said
    in_quickbooks = _in_quickbooks(conn, realm_id, ("payment", "credit_memo"), payment_id)
    if in_quickbooks is None:
        return [f"{subject} will be skipped at the next sync; nothing of it is in QuickBooks."]
    deleted = _deleted_objects(conn, realm_id, payment_id=payment_id)
    going = ["it"]
    if in_quickbooks.qbo_entity == "CreditMemo":
        going.append("what its credit pays")
    if deleted.get("fee"):
        going.append("its processing fee")
    if deleted.get("refund"):
        going.append("its refund" if deleted["refund"] == 1 else f"its {deleted['refund']} refunds")
    return [
        f"{subject} is in QuickBooks ({in_quickbooks.qbo_entity} {in_quickbooks.qbo_id}, company {realm_id}): "
        f"{_listed(going)} will be deleted from QuickBooks at the next sync.",
        *_mass_delete_warning(conn, realm_id, deleted),
    ]


_WAITS = "the decision is kept and applies once an export has it (check the id for a typo)"


def _listed(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# -- the issues of the latest run ------------------------------------------------------------------------
@dataclass(frozen=True)
class IssueReport:
    """What the latest planned run left per category and status, with the first objects of each."""

    run: sa.Row
    counts: dict[str, dict[str, int]]  # category -> status -> objects
    objects: dict[str, dict[str, list[sa.Row]]]  # status -> category -> the first objects
    categories: tuple[str, ...]

    def total(self, status: str) -> int:
        return sum(self.counts[category].get(status, 0) for category in self.categories)


def latest_issues(
    engine: Engine,
    *,
    categories: tuple[str, ...] = CATEGORIES,
    statuses: tuple[str, ...] = ISSUE_STATUSES,
    limit: int = 20,
) -> IssueReport | None:
    """The latest run's objects per category and status: all counted, the first `limit` of each listed."""
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        found = sql.fetch_all(conn, "planning/select_latest_plan_run")
        if not found:
            return None
        run = found[0]
        counts: dict[str, dict[str, int]] = {category: defaultdict(int) for category in CATEGORIES}
        for row in run_counts.status_counts(conn, run.run_id):
            counts[category_of(row.taxdome_kind)][row.status] += int(row.objects)
        listing = sql.statement("sync_issues/select_issue_page").bindparams(
            sa.bindparam("kinds", expanding=True), sa.bindparam("statuses", expanding=True)
        )
        objects: dict[str, dict[str, list[sa.Row]]] = {}
        for status in statuses:
            objects[status] = {}
            for category in categories:
                if not counts[category].get(status):
                    continue
                kinds = [kind for kind, owner in CATEGORY_BY_KIND.items() if owner == category]
                objects[status][category] = list(
                    conn.execute(
                        listing,
                        {
                            "run_id": run.run_id,
                            "statuses": [status],
                            "kinds": kinds,
                            "page_size": limit,
                            "page_offset": 0,
                        },
                    ).all()
                )
    return IssueReport(run, counts, objects, categories)


def what_to_do(kind: str, taxdome_id: str, parent_id: str | None = None) -> str:
    """For a failed object: how finance gets it synced, or out of the way. `parent_id` is a refund's payment
    or an invoice's account (the `parent_id` of the issues listing)."""
    credit = taxdome_id.split(":")[-1]  # a credit application's id ends with its credit memo's payment
    stop = {
        "account": ("it", "account", taxdome_id),
        "payment": ("it", "payment", taxdome_id),
        "credit_memo": ("it", "payment", taxdome_id),
        "fee": ("its payment", "payment", taxdome_id),
        "credit_application": ("its promotional credit", "payment", credit),
        "refund": ("its payment", "payment", parent_id or "PAYMENT_ID"),
        "invoice": ("its account", "account", parent_id or "ACCOUNT_ID"),
    }
    retry = f"fix the cause, then `{CLI} retry --object {kind}:{taxdome_id}` (or wait for the next sync)"
    if kind not in stop:
        return retry
    what, command, target = stop[kind]
    return f"{retry}; or stop syncing {what}: {CLI} {command} unsync {target}"


# -- one object ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectStatus:
    taxdome_kind: str
    taxdome_id: str
    latest: sa.Row | None  # the verdict of the latest run that has one, with that run
    override: Override | None


def object_status(engine: Engine, kind: str, taxdome_id: str) -> ObjectStatus:
    warehouse.create_schema(engine)
    with engine.connect() as conn:
        found = sql.fetch_all(
            conn, "sync_issues/select_object_status", taxdome_kind=kind, taxdome_id=taxdome_id
        )
        override = find_override(conn, kind, taxdome_id) if kind in OVERRIDABLE_KINDS else None
    return ObjectStatus(kind, taxdome_id, found[0] if found else None, override)
