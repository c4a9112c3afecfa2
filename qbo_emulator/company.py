"""One QBO company (realm): its objects, deletion tombstones, name indexes and stored requestid responses."""

from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from qbo_emulator import clock
from qbo_emulator.errors import object_not_found
from qbo_emulator.storage import Storage

META_KIND = "_meta"
REQUEST_ID_KIND = "_requestid"
TOMBSTONE_PREFIX = "_deleted:"
# A reader pages through one query at a time; a few more cover callers that interleave queries.
CACHED_SELECTIONS = 16

# Name-list entities: a name is unique within its entity, active or not; rows are deactivated, not deleted.
NAME_FIELDS = {
    "Customer": "DisplayName",
    "Vendor": "DisplayName",
    "Employee": "DisplayName",
    "CustomerType": "Name",
    "Item": "Name",
    "Account": "Name",
    "PaymentMethod": "Name",
}


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str


def name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


class Company:
    def __init__(self, realm_id: str, storage: Storage, meta: dict):
        self.realm_id = realm_id
        self.meta = meta
        self.objects: dict[str, dict[str, dict]] = defaultdict(dict)
        self.tombstones: dict[str, dict[str, dict]] = defaultdict(dict)
        self.request_ids: dict[str, StoredResponse] = {}
        # Bumped on every transaction change; keys the cached account and customer balances.
        self.ledger_version = 0
        # Writes per entity, and the rows each recent query selected (before paging) stamped with them: a query
        # paged through an entity sorts and filters it once, not once per page.
        self._changes: Counter[str] = Counter()
        self._selections: OrderedDict[tuple, tuple[tuple, list[dict]]] = OrderedDict()
        self._storage = storage
        self._names: dict[str, dict[str, str]] = defaultdict(dict)
        self._upserts: list = []
        self._deletions: list = []
        self._balances_cache: tuple[int, object] | None = None
        # (TxnType, TxnId) of an invoice or credit memo -> [(payment Id, amount applied)]: kept up to date on
        # every payment write, so a payment never scans all the others.
        self.applications: dict[tuple[str, str], list[tuple[str, object]]] = defaultdict(list)

    # --- loading and persistence -------------------------------------------------------------------------

    def load_record(self, kind: str, key: str, data: dict) -> None:
        if kind == META_KIND:
            self.meta = data
        elif kind == REQUEST_ID_KIND:
            self.request_ids[key] = StoredResponse(data["status"], data["body"])
        elif kind.startswith(TOMBSTONE_PREFIX):
            self.tombstones[kind.removeprefix(TOMBSTONE_PREFIX)][key] = data
        else:
            self.objects[kind][key] = data
            self._index_name(kind, data)
            self._index_applications(kind, data)

    def flush(self) -> None:
        if self._upserts or self._deletions:
            self._upserts.append((self.realm_id, META_KIND, self.realm_id, self.meta))
            self._storage.write(self._upserts, self._deletions)
            self._upserts, self._deletions = [], []

    # --- reads ---------------------------------------------------------------------------------------------

    def get(self, entity: str, object_id: str) -> dict | None:
        return self.objects[entity].get(str(object_id))

    def require(self, entity: str, object_id: str) -> dict:
        found = self.get(entity, object_id)
        if found is None:
            raise object_not_found(entity, str(object_id))
        return found

    def all(self, entity: str) -> Iterator[dict]:
        return iter(self.objects.get(entity, {}).values())

    def find_by_name(self, entity: str, name: str) -> dict | None:
        object_id = self._names[entity].get(name_key(name))
        return None if object_id is None else self.objects[entity][object_id]

    def special_account(self, role: str) -> dict:
        return self.objects["Account"][self.meta["special_accounts"][role]]

    def cached_selection(
        self, entity: str, key: tuple, *, rendered_from_ledger: bool, select: Callable[[], list[dict]]
    ) -> list[dict]:
        """What ``select()`` returns for the query ``key`` on ``entity``, computed again only after a write to
        the entity (or, for rows whose rendering adds balances from the ledger, to any transaction)."""
        stamp = (self._changes[entity], self.ledger_version if rendered_from_ledger else None)
        cached = self._selections.get(key)
        if cached is None or cached[0] != stamp:
            cached = stamp, select()
            self._selections[key] = cached
            if len(self._selections) > CACHED_SELECTIONS:
                self._selections.popitem(last=False)
        self._selections.move_to_end(key)
        return cached[1]

    # --- writes --------------------------------------------------------------------------------------------

    def next_id(self) -> str:
        self.meta["next_id"] += 1
        return str(self.meta["next_id"] - 1)

    def store(self, entity: str, obj: dict, previous: dict | None) -> dict:
        """Saves ``obj`` as a new version of ``previous`` (or as a new object): Id, SyncToken and MetaData."""
        timestamp = clock.metadata_timestamp()
        if previous is None:
            obj["Id"] = self.next_id()
            obj["SyncToken"] = "0"
            obj["MetaData"] = {"CreateTime": timestamp, "LastUpdatedTime": timestamp}
        else:
            sync_token = str(int(previous["SyncToken"]) + 1)
            create_time = previous["MetaData"]["CreateTime"]
            self._unindex_name(entity, previous)
            self._unindex_applications(entity, previous)
            obj["Id"] = previous["Id"]
            obj["SyncToken"] = sync_token
            obj["MetaData"] = {"CreateTime": create_time, "LastUpdatedTime": timestamp}
        obj["domain"] = "QBO"
        obj["sparse"] = False
        self.objects[entity][obj["Id"]] = obj
        self._index_name(entity, obj)
        self._index_applications(entity, obj)
        self._upserts.append((self.realm_id, entity, obj["Id"], obj))
        self._changes[entity] += 1
        if entity not in NAME_FIELDS:
            self.ledger_version += 1
        return obj

    def remove(self, entity: str, obj: dict) -> dict:
        del self.objects[entity][obj["Id"]]
        self._unindex_name(entity, obj)
        self._unindex_applications(entity, obj)
        tombstone = {
            "Id": obj["Id"],
            "status": "Deleted",
            "domain": "QBO",
            "MetaData": {"LastUpdatedTime": clock.metadata_timestamp()},
        }
        self.tombstones[entity][obj["Id"]] = tombstone
        self._deletions.append((self.realm_id, entity, obj["Id"]))
        self._changes[entity] += 1
        self._upserts.append((self.realm_id, TOMBSTONE_PREFIX + entity, obj["Id"], tombstone))
        self.ledger_version += 1
        return tombstone

    def remember_response(self, request_id: str, response: StoredResponse) -> None:
        self.request_ids[request_id] = response
        self._upserts.append(
            (self.realm_id, REQUEST_ID_KIND, request_id, {"status": response.status, "body": response.body})
        )

    # --- derived balances ------------------------------------------------------------------------------

    def cached_balances(self, compute) -> object:
        """Balances derived from every transaction, recomputed only after a transaction changed."""
        if self._balances_cache is None or self._balances_cache[0] != self.ledger_version:
            self._balances_cache = (self.ledger_version, compute(self))
        return self._balances_cache[1]

    # --- name index ----------------------------------------------------------------------------------------

    def _index_name(self, entity: str, obj: dict) -> None:
        field = NAME_FIELDS.get(entity)
        if field and obj.get(field):
            self._names[entity][name_key(obj[field])] = obj["Id"]

    def _unindex_name(self, entity: str, obj: dict) -> None:
        field = NAME_FIELDS.get(entity)
        if field and obj.get(field):
            self._names[entity].pop(name_key(obj[field]), None)

    # --- payment applications index ------------------------------------------------------------------------

    def _index_applications(self, entity: str, obj: dict) -> None:
        if entity != "Payment":
            return
        for line in obj.get("Line", []):
            for link in line.get("LinkedTxn", []):
                entries = self.applications[(link["TxnType"], link["TxnId"])]
                entries.append((obj["Id"], line["Amount"]))
                entries.sort(key=lambda entry: int(entry[0]))  # oldest payment first, as QBO lists them

    def _unindex_applications(self, entity: str, obj: dict) -> None:
        if entity != "Payment":
            return
        for line in obj.get("Line", []):
            for link in line.get("LinkedTxn", []):
                key = (link["TxnType"], link["TxnId"])
                kept = [entry for entry in self.applications.get(key, []) if entry[0] != obj["Id"]]
                if kept:
                    self.applications[key] = kept
                else:
                    self.applications.pop(key, None)
