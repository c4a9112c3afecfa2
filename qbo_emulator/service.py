"""The emulator's state and request handling, independent of the web framework's routing."""

import asyncio
import gc
import secrets
from collections import Counter, deque
from dataclasses import dataclass
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from qbo_emulator import clock, entities, jsonutil, query
from qbo_emulator.company import NAME_FIELDS, Company, StoredResponse
from qbo_emulator.config import EmulatorConfig
from qbo_emulator.errors import QboFault, business_validation, invalid_value, required_param_missing
from qbo_emulator.limits import FaultDecision, FaultInjector, Throttle
from qbo_emulator.oauth import OAuthServer
from qbo_emulator.seed import create_company
from qbo_emulator.storage import Storage

REQUEST_LOG_SIZE = 100_000
MAX_REQUEST_ID_LENGTH = 50
MAX_BATCH_REQUEST_ID_LENGTH = 36
CDC_LOOKBACK = timedelta(days=30)
CDC_MAX_OBJECTS = 1000
WRITE_OPERATIONS = ("create", "update", "delete", "void", "batch")
SERVER_SEND_KEY = "qbo_emulator.server_send"
_RATE_LIMITS = frozenset({"requests_per_minute", "batch_requests_per_minute", "time_scale"})
THROTTLE_MESSAGE = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
THROTTLE_DETAIL = "The request limit was reached.  Try again later"


@dataclass
class Route:
    """What an accounting request asks for; ``operation`` is refined once the body is read."""

    operation: str
    entity: str = ""
    object_id: str = ""

    @classmethod
    def parse(cls, method: str, path: str, params) -> "Route":
        segments = [segment for segment in path.split("/") if segment]
        resource = segments[0].lower() if segments else ""
        if resource in ("query", "batch", "cdc"):
            return cls(resource)
        entity = entities.entity_for(resource)
        if entity is None or len(segments) > 2:
            raise QboFault(
                500, "Unsupported Operation", f"Resource {path} is not supported by the emulator", status=400
            )
        if method == "GET":
            return cls("read", entity, segments[1] if len(segments) == 2 else "")
        operation = params.get("operation", "").lower()
        if operation == "void" or (operation == "update" and params.get("include", "").lower() == "void"):
            return cls("void", entity)
        return cls("delete" if operation == "delete" else "save", entity)


class RequestLog:
    def __init__(self):
        self.entries: deque[dict] = deque(maxlen=REQUEST_LOG_SIZE)
        self.counts_by_status: Counter = Counter()
        self.counts_by_operation: Counter = Counter()

    def clear(self) -> None:
        self.entries.clear()
        self.counts_by_status.clear()
        self.counts_by_operation.clear()

    def record(self, entry: dict) -> None:
        self.entries.append(entry)
        self.counts_by_status[str(entry["status"])] += 1
        self.counts_by_operation[entry["operation"]] += 1

    def summary(self, limit: int | None) -> dict:
        entries = list(self.entries)
        return {
            "total": sum(self.counts_by_status.values()),
            "counts_by_status": dict(self.counts_by_status),
            "counts_by_operation": dict(self.counts_by_operation),
            "requests": entries if limit is None else entries[-limit:] if limit else [],
        }


class DroppedConnection(Response):
    """Closes the connection without answering: the write is committed but its response is lost."""

    def __init__(self):
        super().__init__(status_code=200)

    async def __call__(self, scope, receive, send) -> None:
        cycle = getattr(scope.get(SERVER_SEND_KEY), "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise RuntimeError("dropping a connection needs uvicorn's httptools or h11 protocol")
        transport.close()
        # Once uvicorn has seen the disconnect it neither sends its own 500 nor logs an error.
        while not getattr(cycle, "disconnected", True):
            await asyncio.sleep(0)


def json_text_response(text: str, status: int = 200) -> Response:
    """A JSON answer with the ``intuit_tid`` header QBO puts on every response."""
    return Response(
        text, status_code=status, media_type="application/json", headers={"intuit_tid": secrets.token_hex(16)}
    )


def json_response(payload: dict, status: int = 200) -> Response:
    return json_text_response(jsonutil.dumps(payload), status)


def unauthorized(reason: str) -> Response:
    # Intuit answers 401s with lower-case keys, unlike every other fault.
    return json_response(
        {
            "warnings": None,
            "intuitObject": None,
            "fault": {
                "error": [
                    {
                        "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                        "detail": f"Token invalid: {reason}",
                        "code": "3200",
                        "element": None,
                    }
                ],
                "type": "AUTHENTICATION",
            },
            "report": None,
            "queryResponse": None,
            "batchItemResponse": [],
            "attachableResponse": [],
            "syncErrorResponse": None,
            "requestId": None,
            "time": clock.envelope_time(),
            "status": None,
            "cdcresponse": [],
        },
        status=401,
    )


def throttled(config: EmulatorConfig) -> Response:
    if config.throttle_body == "text":
        return Response(
            f"<html><body><h1>429 Too Many Requests</h1>{THROTTLE_MESSAGE}</body></html>",
            status_code=429,
            media_type="text/html",
        )
    fault = QboFault(3001, THROTTLE_MESSAGE, THROTTLE_DETAIL, status=429)
    return json_response(
        {"Fault": {**fault.fault(), "type": "SERVICE"}, "time": clock.envelope_time()}, status=429
    )


def server_error(status: int) -> Response:
    title = "Internal Server Error" if status == 500 else "Service Unavailable"
    return Response(
        f"<html><body><h1>{status} {title}</h1></body></html>", status_code=status, media_type="text/html"
    )


def _parse_json_body(body: bytes) -> dict:
    try:
        data = jsonutil.loads(body or b"{}")
    except ValueError:
        raise QboFault(
            2010, "Request has invalid or unsupported property", "Error parsing the request body as JSON"
        ) from None
    if not isinstance(data, dict):
        raise QboFault(
            2010, "Request has invalid or unsupported property", "The request body must be an object"
        )
    return data


class Emulator:
    def __init__(self, db_path: str | None, config: EmulatorConfig):
        self.initial_config = config
        self.storage = Storage(db_path)
        self._start_empty()
        self._load()
        if not self.companies:
            self._first_start()

    def _start_empty(self) -> None:
        self.config = self.initial_config
        self.oauth = OAuthServer(lambda: self.config, self._persist_global)
        self.companies: dict[str, Company] = {}
        self.throttle = Throttle()
        self.faults = FaultInjector(self.config)
        self.log = RequestLog()

    # --- companies and administration -----------------------------------------------------------------

    def _persist_global(self, kind: str, key: str, data: dict) -> None:
        self.storage.write([("", kind, key, data)])

    def _load(self) -> None:
        # The state is trees of dicts and lists without cycles, which the cyclic collector would walk again
        # and again while a million of them load (more than half the time), and then on every full collection.
        gc.disable()
        try:
            for scope, kind, key, data in self.storage.load():
                if scope == "":
                    self.oauth.load_record(kind, key, data)
                else:
                    self.companies.setdefault(scope, Company(scope, self.storage, {})).load_record(
                        kind, key, data
                    )
        finally:
            gc.enable()
        gc.freeze()
        self.companies = dict(sorted(self.companies.items(), key=lambda item: item[1].meta["sequence"]))

    def _first_start(self) -> None:
        self.oauth.create_app()
        self.add_company()

    @property
    def client_id(self) -> str:
        return next(iter(self.oauth.apps))

    def add_company(self) -> dict:
        realm_id = str(9130_0000_0000_0000 + secrets.randbelow(10**12))
        sequence = len(self.companies) + 1
        self.companies[realm_id] = create_company(
            self.storage, realm_id, f"Emulated Company {sequence}", sequence
        )
        return self.credentials(realm_id)

    def credentials(self, realm_id: str) -> dict:
        return {
            "realm_id": realm_id,
            "company_name": self.companies[realm_id].meta["company_name"],
            "client_id": self.client_id,
            "client_secret": self.oauth.apps[self.client_id],
            "refresh_token": self.oauth.current_refresh_token(realm_id, self.client_id),
        }

    def reset(self) -> None:
        """Back to a first start: one new company, the start-up configuration, an empty request log."""
        self.storage.clear()
        self._start_empty()
        self._first_start()

    def update_config(self, changes: dict) -> None:
        self.config = self.config.updated(changes)
        if any(key.startswith("fault_") for key in changes):
            self.faults.reseed(self.config)
        # Requests admitted under limits now changed (a company seeded unthrottled) would otherwise count
        # against the new ones for a whole window.
        if any(key in _RATE_LIMITS for key in changes):
            self.throttle.restart_windows()

    def state_json(self, realm_id: str) -> str:
        company = self.companies[realm_id]
        snapshot = {
            entity: [entities.render(company, entity, obj) for obj in objects.values()]
            for entity, objects in company.objects.items()
            if objects
        }
        deleted = {
            entity: list(tombstones.values())
            for entity, tombstones in company.tombstones.items()
            if tombstones
        }
        return jsonutil.dumps({"realm_id": realm_id, "entities": snapshot, "deleted": deleted})

    # --- accounting API ----------------------------------------------------------------------------------

    async def serve_accounting(self, request: Request, realm_id: str, path: str) -> Response:
        config = self.config
        fault = self.faults.decide(config)
        request_id = request.query_params.get("requestid") if request.method == "POST" else None
        try:
            route = Route.parse(request.method, path, request.query_params)
        except QboFault as unsupported:
            route = Route("unsupported")
            response = json_response({"Fault": unsupported.fault(), "time": clock.envelope_time()}, 400)
        else:
            response = await self._answer(request, realm_id, route, request_id, config, fault)
        self.log.record(
            {
                "method": request.method,
                "path": request.url.path,
                "realm_id": realm_id,
                "entity": route.entity,
                "operation": route.operation,
                "status": response.status_code,
                "requestid": request_id,
                "dropped": isinstance(response, DroppedConnection),
                "time": clock.envelope_time(),
            }
        )
        return response

    async def _answer(
        self,
        request: Request,
        realm_id: str,
        route: Route,
        request_id: str | None,
        config: EmulatorConfig,
        fault: FaultDecision,
    ) -> Response:
        company = self.companies.get(realm_id)
        authorization = request.headers.get("authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
        problem = "unknown company" if company is None else self.oauth.access_token_problem(token, realm_id)
        if problem is None and fault.revoke_token:
            self.oauth.revoke_access_token(token)
            problem = "access token revoked"
        if problem is not None:
            return unauthorized(problem)
        if fault.throttle or not self.throttle.admit(config, realm_id, route.operation == "batch"):
            return throttled(config)
        if fault.server_error is not None:
            return server_error(fault.server_error)
        self.throttle.in_flight[realm_id] += 1
        try:
            delay = config.latency_seconds + (config.fault_slow_seconds if fault.slow else 0.0)
            if delay:
                await asyncio.sleep(delay)
            body = await request.body()
            status, text = self._execute(company, route, request.query_params, body, request_id)
        finally:
            self.throttle.in_flight[realm_id] -= 1
        if fault.drop_after_commit and route.operation in WRITE_OPERATIONS:
            return DroppedConnection()
        return json_text_response(text, status)

    def _execute(
        self, company: Company, route: Route, params, body: bytes, request_id: str | None
    ) -> tuple[int, str]:
        """Runs one request to completion and commits its changes; returns (status, JSON text)."""
        try:
            if route.operation == "save":
                route.operation = "update" if entities.is_update(_parse_json_body(body)) else "create"
            if request_id is not None:
                self._check_request_id_length(route, request_id)
                stored = company.request_ids.get(request_id)
                if stored is not None:
                    route.operation = f"replay:{route.operation}"
                    return stored.status, stored.body
            payload, status = self._dispatch(company, route, params, body), 200
        except QboFault as fault:
            payload, status = {"Fault": fault.fault()}, fault.status
        try:
            payload["time"] = clock.envelope_time()
            text = jsonutil.dumps(payload)
            if status == 200 and request_id is not None:
                company.remember_response(request_id, StoredResponse(status, text))
        finally:
            company.flush()
        return status, text

    @staticmethod
    def _check_request_id_length(route: Route, request_id: str) -> None:
        limit = MAX_BATCH_REQUEST_ID_LENGTH if route.operation == "batch" else MAX_REQUEST_ID_LENGTH
        if len(request_id) > limit:
            raise business_validation(
                f"You cannot enter more than {limit} characters in the request_id field. "
                f"You tried entering {request_id[:10]}..., which is {len(request_id)} "
                "characters."
            )

    def _dispatch(self, company: Company, route: Route, params, body: bytes) -> dict:
        if route.operation == "query":
            text = params.get("query") if not body else body.decode("utf-8")
            if not text:
                raise required_param_missing("query")
            return {"QueryResponse": self._query(company, text)}
        if route.operation == "cdc":
            return self._cdc(company, params)
        if route.operation == "read":
            return {route.entity: entities.read(company, route.entity, route.object_id)}
        data = _parse_json_body(body)
        if route.operation == "batch":
            return self._batch(company, data, params)
        return {route.entity: self._perform(company, route.entity, route.operation, data, params)}

    @staticmethod
    def _perform(company: Company, entity: str, operation: str, data: dict, params) -> dict:
        if operation == "delete":
            return entities.delete(company, entity, data)
        if operation == "void":
            return entities.void(company, entity, data)
        return entities.save(company, entity, data, params)

    @staticmethod
    def _query(company: Company, text: str) -> dict:
        parsed = query.parse(text)
        entity = entities.entity_for(parsed.entity)
        if entity is None:
            raise QboFault(
                4000,
                "Error parsing query",
                f"QueryParserError: Invalid context declaration : {parsed.entity}",
            )
        parsed.entity = entity
        selected = company.cached_selection(
            entity,
            query.selection_key(parsed),
            rendered_from_ledger=entity in entities.RENDERED_FROM_LEDGER,
            select=lambda: query.select(
                parsed,
                [entities.render(company, entity, obj) for obj in company.all(entity)],
                hides_inactive=entity in NAME_FIELDS,
            ),
        )
        return query.respond(parsed, selected)

    def _batch(self, company: Company, data: dict, params) -> dict:
        items = data.get("BatchItemRequest")
        if not isinstance(items, list) or not items:
            raise required_param_missing("BatchItemRequest")
        if len(items) > self.config.max_batch_items:
            raise business_validation(
                f"The batch has {len(items)} BatchItemRequest entries; the maximum is "
                f"{self.config.max_batch_items}"
            )
        responses = []
        for item in items:
            bid = item.get("bId") if isinstance(item, dict) else None
            try:
                responses.append({"bId": bid, **self._batch_item(company, item, params)})
            except QboFault as fault:
                responses.append({"bId": bid, "Fault": fault.fault()})
        return {"BatchItemResponse": responses}

    def _batch_item(self, company: Company, item: dict, params) -> dict:
        if "Query" in item:
            return {"QueryResponse": self._query(company, str(item["Query"]))}
        entity_keys = [key for key in item if key in entities.ENTITIES]
        if len(entity_keys) != 1 or not isinstance(item[entity_keys[0]], dict):
            raise required_param_missing("BatchItemRequest entity")
        entity, data = entity_keys[0], item[entity_keys[0]]
        operation = str(item.get("operation", "")).lower()
        if operation == "create":
            data = {key: value for key, value in data.items() if key != "Id"}
        elif operation == "update" and not entities.is_update(data):
            raise required_param_missing("Id")
        elif operation not in ("update", "delete", "void"):
            raise invalid_value("operation", operation)
        return {entity: self._perform(company, entity, operation, data, params)}

    @staticmethod
    def _cdc(company: Company, params) -> dict:
        names, since = params.get("entities"), params.get("changedSince")
        if not names:
            raise required_param_missing("entities")
        if not since:
            raise required_param_missing("changedSince")
        try:
            moment = clock.parse_moment(since)
        except ValueError:
            raise invalid_value("changedSince", since) from None
        if moment < clock.now() - CDC_LOOKBACK:
            raise QboFault(
                4001,
                "Invalid query",
                "QueryValidationError: changedSince must be within the last 30 days",
                element="changedSince",
            )
        groups, remaining = [], CDC_MAX_OBJECTS
        for name in names.split(","):
            entity = entities.entity_for(name.strip())
            if entity is None:
                raise invalid_value("entities", name)
            changed = sorted(
                (
                    entities.render(company, entity, obj)
                    for obj in company.all(entity)
                    if clock.parse_moment(obj["MetaData"]["LastUpdatedTime"]) >= moment
                ),
                key=lambda obj: clock.parse_moment(obj["MetaData"]["LastUpdatedTime"]),
            )
            deleted = [
                tombstone
                for tombstone in company.tombstones[entity].values()
                if clock.parse_moment(tombstone["MetaData"]["LastUpdatedTime"]) >= moment
            ]
            rows = (changed + deleted)[:remaining]
            remaining -= len(rows)
            if rows:
                groups.append(
                    {entity: rows, "startPosition": 1, "maxResults": len(rows), "totalCount": len(rows)}
                )
        return {"CDCResponse": [{"QueryResponse": groups}]}
