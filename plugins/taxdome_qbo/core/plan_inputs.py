"""What a plan is made from, and how two sets of those inputs differ, in words.

A plan (core/planner.py) is a pure function of: the staged firm with the overrides set by hand, the firm
settings and the run's plan options, the QuickBooks company's name lists and tax mode, the sync state, and
the rules' code. Nothing in the rules reads the clock (the sync date is a setting, a period a plan option).
So a run whose inputs are those of the last plan, after a load that did all that plan said, would plan
nothing: it need not plan at all. The inputs are described here as small JSON-able sections (versions and
digests, never the millions of rows themselves), fingerprinted, and compared section by section so the task
log can say what changed.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from taxdome_qbo.core.vocabulary import FAILED, NOT_SYNCED, canonical_json

# What the plan reads of the QuickBooks company (core/qbo_reference.py), and how a later run learns whether
# it changed: the long name lists through QBO's change data capture (CDC) since the plan read them, the
# short ones (customer types, the tax mode) by reading them again.
CHANGE_CAPTURED = {
    "customers": ("Customer",),
    "items": ("Item",),
    "accounts": ("Account",),
    "payment_methods": ("PaymentMethod",),
    "vendors_and_employees": ("Vendor", "Employee"),
}
READ_AGAIN = ("customer_types", "automated_sales_tax")
CDC_ENTITIES = tuple(entity for entities in CHANGE_CAPTURED.values() for entity in entities)

# A load's outcomes (services/loading.py) that leave nothing to do; any other (failed, not_synced for want
# of a failed object, deferred by a retry's selection, unanswered) means the next plan has work left.
DONE_OUTCOMES = frozenset(
    {"created", "updated", "reactivated", "deleted", "linked", "adopted", "already_done"}
)

SHOWN_TEXT = 24  # longer texts (digests) are cut in the words that say what changed
SECTION_TITLES = {
    "realm_id": "QuickBooks company",
    "staged": "staged exports",
    "settings": "firm settings",
    "options": "plan options",
    "overrides": "sync overrides",
    "code": "the sync's code",
    "quickbooks": "QuickBooks settings the plan reads",
}


def fingerprint(inputs: Mapping[str, Any]) -> str:
    """The same inputs always give the same text (sorted keys), so the same digest."""
    return hashlib.sha256(canonical_json(dict(inputs)).encode()).hexdigest()


def rows_digest(rows: Iterable[Iterable[Any]]) -> str:
    """A digest of rows whatever their order (a short list: overrides, customer types)."""
    return fingerprint({"rows": sorted([["" if v is None else str(v) for v in row] for row in rows])})


def frame_digest(frame: pd.DataFrame, columns: Iterable[str]) -> str:
    return rows_digest(frame[list(columns)].itertuples(index=False, name=None))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= SHOWN_TEXT else value[: SHOWN_TEXT - 1] + "…")
    return "empty" if value is None else str(value).lower()


def differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Each section (or key of a section) that differs, as `title: key before → now`; [] when the same.
    A section the earlier inputs lack (recorded by an older release) differs as a whole."""
    found = []
    for section in dict.fromkeys([*now, *before]):
        old, new = before.get(section), now.get(section)
        if old == new:
            continue
        title = SECTION_TITLES.get(section, section)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changed = [
                f"{key} {_shown(old.get(key))} → {_shown(new.get(key))}"
                for key in dict.fromkeys([*new, *old])
                if old.get(key) != new.get(key)
            ]
            found.append(f"{title}: {', '.join(changed)}")
        else:
            found.append(f"{title}: {_shown(old)} → {_shown(new)}")
    return found


def left_to_do(receipt: Mapping[str, Any]) -> dict[str, int]:
    """A load receipt's outcomes that leave work for the next plan, summed over kinds."""
    left: dict[str, int] = {}
    for outcomes in receipt.get("outcomes", {}).values():
        for outcome, n in outcomes.items():
            if outcome not in DONE_OUTCOMES and n:
                left[outcome] = left.get(outcome, 0) + n
    return left


def describe_left(left: Mapping[str, int]) -> str:
    words = {FAILED: "failed", NOT_SYNCED: "not synced (waiting on a failed object)"}
    return ", ".join(f"{n} {words.get(outcome, outcome)}" for outcome, n in sorted(left.items()))


def foreign_changes(
    changed: Mapping[str, list[dict]], written: set[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """The changed objects of a CDC answer (entity -> objects) that are not the sync's own writes, as
    (entity, Id, what): an object whose SyncToken is the one the sync state recorded for it is as the sync
    left it; a deletion, or any other version, was made by someone else."""
    foreign = []
    for entity, objects in changed.items():
        for obj in objects:
            qbo_id, token = str(obj.get("Id")), str(obj.get("SyncToken"))
            if obj.get("status") == "Deleted":
                foreign.append((entity, qbo_id, "deleted"))
            elif (entity, qbo_id, token) not in written:
                name = obj.get("DisplayName") or obj.get("Name") or ""
                foreign.append((entity, qbo_id, f"{name!r} edited" if name else "edited"))
    return foreign
