"""The loader's rules that need no I/O: operation phases, request ids, symbolic references, how an object is
found again in QBO, and where it is in QBO's web app.

Pure: plain values in and out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from taxdome_qbo.core.kinds import ENTITIES, KINDS
from taxdome_qbo.core.operation_log import PHASE_SEQ_SPAN

MAX_REQUEST_ID = 50
MAX_BATCH_REQUEST_ID = 36  # and then each bId at most 10 characters
_SYMBOLIC = re.compile(r"^@([a-z_]+):(.+)$")

# Where each entity is in QuickBooks' web app, before its id (R16).
APP_PATHS = {name: entity.app_path for name, entity in ENTITIES.items()}


class UnresolvedReference(LookupError):
    """A payload refers to a TaxDome object that has no QBO object (it failed or was not synced)."""

    def __init__(self, reference: str) -> None:
        super().__init__(reference)
        self.reference = reference


def phase_of(seq: int) -> int:
    """Operations of one phase are independent of each other; a phase only needs the phases before it."""
    return seq // PHASE_SEQ_SPAN


def status_key(kind: str, taxdome_id: str) -> tuple[str, str]:
    return KINDS[kind].reported_as, taxdome_id


def operation_request_id(
    realm_id: str, run_id: str, kind: str, taxdome_id: str, action: str, payload_hash: str
) -> str:
    """The same on every retry of the run's operation, different for any other operation (≤ 50 characters)."""
    digest = hashlib.sha256("|".join((realm_id, run_id, kind, taxdome_id, action, payload_hash)).encode())
    return "td-" + digest.hexdigest()[: MAX_REQUEST_ID - 3]


def batch_request_id(operation_request_ids: list[str]) -> str:
    """A batch's id follows from its items in order, so resending the same items resends the same batch."""
    digest = hashlib.sha256("|".join(operation_request_ids).encode())
    return "tdb-" + digest.hexdigest()[: MAX_BATCH_REQUEST_ID - 4]


def references_in(payload: Any) -> set[str]:
    """The symbolic references (`@account:A1`) a payload holds."""
    if isinstance(payload, dict):
        return set().union(*map(references_in, payload.values()))
    if isinstance(payload, list):
        return set().union(*map(references_in, payload))
    return {payload} if isinstance(payload, str) and _SYMBOLIC.match(payload) else set()


def resolve(payload: Any, qbo_id_of: Callable[[str], str | None]) -> Any:
    """The payload with every symbolic reference replaced by its QBO id; UnresolvedReference if one has none."""
    if isinstance(payload, dict):
        return {key: resolve(value, qbo_id_of) for key, value in payload.items()}
    if isinstance(payload, list):
        return [resolve(value, qbo_id_of) for value in payload]
    if isinstance(payload, str) and _SYMBOLIC.match(payload):
        qbo_id = qbo_id_of(payload)
        if qbo_id is None:
            raise UnresolvedReference(payload)
        return qbo_id
    return payload


def referenced(reference: str) -> tuple[str, str]:
    """The kind and TaxDome id a symbolic reference names: `@account:A1` -> (`account`, `A1`)."""
    kind, taxdome_id = _SYMBOLIC.match(reference).groups()
    return kind, taxdome_id


def describe_reference(reference: str) -> str:
    """`@account:A1` as words: `account A1`."""
    kind, taxdome_id = referenced(reference)
    return f"{kind.replace('_', ' ')} {taxdome_id}"


def marker_field(entity: str) -> str | None:
    """Where the loader's marker (`taxdome:<kind>:<id>`) sits on an object it creates; items carry none."""
    return ENTITIES[entity].marker_field


def lookup_conditions(entity: str, payload: dict) -> list[tuple[str, str]]:
    """Filterable fields that narrow a search for an object this payload may have created already.

    Names and document numbers are unique keys; other transactions are narrowed by date and customer and
    then told apart by their marker.
    """
    key = ENTITIES[entity].natural_key
    if ENTITIES[entity].name_list or (key and all(payload.get(name) for name in key)):
        return [(name, payload[name]) for name in key]
    conditions = [("TxnDate", payload["TxnDate"])]
    if "CustomerRef" in payload:
        conditions.append(("CustomerRef", payload["CustomerRef"]["value"]))
    return conditions


def is_same_object(entity: str, payload: dict, found: dict) -> bool:
    """Whether `found` (a QBO object) is the one `payload` created: its marker, or an item's unique name."""
    field = marker_field(entity)
    if field is None:
        return found.get("Name") == payload["Name"]
    return found.get(field) == payload[field]


def app_link(app_url: str, entity: str, qbo_id: str) -> str | None:
    """The object in QuickBooks' web app (R16)."""
    path = APP_PATHS.get(entity)
    return None if path is None else f"{app_url}/{path}{qbo_id}"
