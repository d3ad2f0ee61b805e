"""A fake HubSpot CRM API served over real HTTP on 127.0.0.1, for a real hubspot-api-client.

It keeps contacts, deals, tasks, notes, owners, pipelines, property definitions and
associations in memory; answers with bodies shaped like HubSpot's documented v3/v4 responses
(see `tests/fixtures/hubspot/`); validates every request body against the JSON Schemas in
`hubspot_schemas.py` (a body the real API would refuse gets HubSpot's 400 and is listed in
`schema_errors`); records every request; and can be told to fail: whole-call faults (429 storms,
5xx, 401/403) and per-input errors on batch updates.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema

from tests.fakes import hubspot_schemas as schemas

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hubspot"
DEFAULT_TOKEN = "pat-na1-test-token"
SEARCH_CAP = 10_000
MAX_TOTAL_FILTERS = 18
OBJECT_TYPES = {"contacts": "CONTACT", "deals": "DEAL", "tasks": "TASK", "notes": "NOTE"}
# Association type ids HubSpot defines (from -> to).
ASSOCIATION_TYPES = {("contacts", "deals"): 4, ("deals", "contacts"): 3}
_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"

Reply = tuple[int, Any, dict[str, str]]


def fixture(name: str) -> Any:
    """A JSON fixture from tests/fixtures/hubspot (a fresh copy each time)."""
    return json.loads((FIXTURES / name).read_text())


def iso(moment: datetime) -> str:
    """A datetime as HubSpot writes it (UTC, milliseconds, Z)."""
    return moment.astimezone(UTC).strftime(_ISO)[:-4] + "Z"


def to_ms(value: Any) -> float | None:
    """A property value as a number: epoch ms for datetimes/dates, else the number, else None."""
    if value is None or value == "":
        return None
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000


@dataclass
class Recorded:
    """One request the fake received (the Authorization header is left out)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    """A scripted whole-call failure for requests whose path starts with `path`."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/"
    method: str | None = None
    times: int = 1


@dataclass
class StoredRecord:
    """One CRM record as the fake keeps it."""

    id: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    indexed: bool = True


def _error(status: int, message: str, category: str, **extra: Any) -> Reply:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return status, body, {}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        fake = self.server.fake
        query: dict[str, str] = {}
        for key, value in parse_qsl(split.query):
            # Repeated parameters (properties=a&properties=b) mean the same as a comma list.
            query[key] = f"{query[key]},{value}" if key in query else value
        request = Recorded(method, split.path, query, headers, body)
        status, payload, extra = fake.handle(request, self.headers.get("Authorization"))
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeHubSpot


class FakeHubSpot:
    """The fake HubSpot account; use as a context manager, point HUBSPOT_API_URL at `url`."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        latency: float = 0.0,
    ) -> None:
        self.token = token
        self.clock = clock
        # Seconds every request waits before it is answered (a slow vendor).
        self.latency = latency
        self.requests: list[Recorded] = []
        self.schema_errors: list[str] = []
        self.faults: list[Fault] = []
        # contact id -> (category, message, property) refused by the next batch updates
        self.input_errors: dict[str, tuple[str, str, str]] = {}
        # "multi_status": per-input errors in a 207; "reject_batch": a 400 naming the ids
        self.batch_errors = "multi_status"
        self.objects: dict[str, dict[str, StoredRecord]] = {t: {} for t in OBJECT_TYPES}
        self.associations: dict[tuple[str, str], set[tuple[str, str, int]]] = {}
        self.owners: list[dict[str, Any]] = fixture("owners.json")["results"]
        self.pipelines: dict[str, list[dict[str, Any]]] = {
            "deals": fixture("deal_pipelines.json")["results"]
        }
        self.properties: dict[str, list[dict[str, Any]]] = {
            "contacts": fixture("contact_properties.json")["results"]
        }
        self._ids = itertools.count(5101)
        self._lock = threading.RLock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to use as HUBSPOT_API_URL."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeHubSpot:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- seeding and reading back ------------------------------------------------------------

    def seed(self, object_type: str, record_id: str | None = None, **properties: Any) -> str:
        """Add a record of `object_type`; returns its id. `_indexed=False` hides it from search."""
        indexed = bool(properties.pop("_indexed", True))
        with self._lock:
            rid = record_id or str(next(self._ids))
            now = self.clock()
            props = {k: self._stored_value(v) for k, v in properties.items() if v is not None}
            props.setdefault("createdate", iso(now))
            props["hs_object_id"] = rid
            self.objects[object_type][rid] = StoredRecord(rid, props, now, now, indexed)
            return rid

    def seed_contact(self, record_id: str | None = None, **properties: Any) -> str:
        """Add a contact."""
        return self.seed("contacts", record_id, **properties)

    def seed_mql(self, record_id: str | None = None, *, mql_at: datetime, **properties: Any) -> str:
        """Add a contact in the MQL lifecycle stage since `mql_at`."""
        properties.setdefault("lifecyclestage", "marketingqualifiedlead")
        properties["hs_lifecyclestage_marketingqualifiedlead_date"] = iso(mql_at)
        return self.seed("contacts", record_id, **properties)

    def seed_deal(self, record_id: str | None = None, **properties: Any) -> str:
        """Add a deal."""
        return self.seed("deals", record_id, **properties)

    def seed_owner(self, owner_id: str, email: str, first: str, last: str) -> None:
        """Add an owner."""
        owner = copy.deepcopy(self.owners[0])
        owner.update(id=owner_id, email=email, firstName=first, lastName=last, teams=[])
        with self._lock:
            self.owners.append(owner)

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Associate two records both ways (HubSpot-defined type)."""
        with self._lock:
            self._associate(from_type, from_id, to_type, to_id, 0)

    def reveal(self, object_type: str, record_id: str) -> None:
        """Let a record seeded with `_indexed=False` reach the search index."""
        with self._lock:
            self.objects[object_type][record_id].indexed = True

    def record(self, object_type: str, record_id: str) -> dict[str, str]:
        """A record's properties as stored now."""
        with self._lock:
            return dict(self.objects[object_type][record_id].properties)

    def records(self, object_type: str) -> list[StoredRecord]:
        """All records of a type."""
        with self._lock:
            return list(self.objects[object_type].values())

    def associated(self, from_type: str, from_id: str, to_type: str) -> list[tuple[str, int]]:
        """(id, association type id) of the `to_type` records associated with one record."""
        with self._lock:
            links = self.associations.get((from_type, from_id), set())
            return sorted((i, t) for kind, i, t in links if kind == to_type)

    # -- faults and counts -------------------------------------------------------------------

    def fail(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        path: str = "/",
        method: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with this status, body and headers."""
        with self._lock:
            self.faults.append(Fault(status, body, headers or {}, path, method, times))

    def rate_limit(
        self, times: int, *, path: str = "/", headers: dict[str, str] | None = None
    ) -> None:
        """A 429 storm: the next `times` matching requests hit the ten-secondly limit."""
        default = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Remaining": "0",
        }
        self.fail(
            429,
            fixture("rate_limited_ten_secondly.json"),
            headers=default if headers is None else headers,
            path=path,
            times=times,
        )

    def calls(self, path: str | None = None, method: str | None = None) -> list[Recorded]:
        """Requests received, optionally only those to `path` (exact, or prefix ending in '/')."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (
                    path is None
                    or r.path == path
                    or (path.endswith("/") and r.path.startswith(path))
                )
                and (method is None or r.method == method)
            ]

    # -- request handling --------------------------------------------------------------------

    def handle(self, request: Recorded, authorization: str | None) -> Reply:
        """Answer one request (called on the server's threads), after `latency` seconds."""
        if self.latency > 0:
            time.sleep(self.latency)  # outside the lock, so concurrent requests wait together
        with self._lock:
            self.requests.append(request)
            if authorization != f"Bearer {self.token}":
                return 401, fixture("unauthorized.json"), {}
            fault = self._fault(request)
            if fault is not None:
                return fault.status, fault.body, fault.headers
            try:
                return self._route(request)
            except jsonschema.ValidationError as exc:
                where = "/".join(str(p) for p in exc.absolute_path) or "(body)"
                problem = f"{request.method} {request.path}: {where}: {exc.message}"
                self.schema_errors.append(problem)
                return _error(400, f"Invalid input JSON: {problem}", "VALIDATION_ERROR")

    def _fault(self, request: Recorded) -> Fault | None:
        for fault in self.faults:
            if request.path.startswith(fault.path) and fault.method in (None, request.method):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _route(self, r: Recorded) -> Reply:
        parts = [p for p in r.path.split("/") if p]
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) >= 4 and parts[3] in OBJECT_TYPES:
            kind, rest = parts[3], parts[4:]
            if r.method == "POST" and rest == ["batch", "update"]:
                jsonschema.validate(r.body, schemas.BATCH_UPDATE)
                return self._batch_update(kind, r.body["inputs"])
            if r.method == "POST" and rest == ["batch", "read"]:
                jsonschema.validate(r.body, schemas.BATCH_READ)
                return self._batch_read(kind, r.body)
            if r.method == "POST" and rest == ["batch", "create"]:
                jsonschema.validate(r.body, schemas.BATCH_CREATE)
                return self._batch_create(kind, r.body["inputs"])
            if r.method == "POST" and rest == ["search"]:
                jsonschema.validate(r.body, schemas.SEARCH)
                return self._search(kind, r.body)
            if r.method == "GET" and len(rest) == 1:
                return self._get(kind, rest[0], r.query)
        if parts[:3] == ["crm", "v3", "owners"] and r.method == "GET":
            return self._owners(parts[3] if len(parts) > 3 else None, r.query)
        if parts[:3] == ["crm", "v3", "pipelines"] and len(parts) == 4 and r.method == "GET":
            return 200, {"results": self.pipelines.get(parts[3], [])}, {}
        if parts[:3] == ["crm", "v3", "properties"] and len(parts) == 4 and r.method == "GET":
            return 200, {"results": self.properties.get(parts[3], [])}, {}
        if (
            parts[:3] == ["crm", "v4", "associations"]
            and len(parts) == 7
            and parts[5:] == ["batch", "read"]
            and r.method == "POST"
        ):
            jsonschema.validate(r.body, schemas.ASSOCIATIONS_BATCH_READ)
            return self._associations_read(parts[3], parts[4], r.body["inputs"])
        return _error(404, f"Unable to route {r.method} request for {r.path}", "OBJECT_NOT_FOUND")

    # -- objects -----------------------------------------------------------------------------

    def _stored_value(self, value: Any) -> str:
        if isinstance(value, datetime):
            return iso(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def _json(self, record: StoredRecord, properties: list[str] | None) -> dict[str, Any]:
        base = ("createdate", "hs_object_id", "lastmodifieddate")
        names = list(dict.fromkeys([*base, *(properties or [])]))
        props = {
            n: record.properties.get(n)
            for n in names
            if n in record.properties or n in base or n in (properties or [])
        }
        props["lastmodifieddate"] = iso(record.updated_at)
        return {
            "id": record.id,
            "properties": props,
            "createdAt": iso(record.created_at),
            "updatedAt": iso(record.updated_at),
            "archived": False,
        }

    def _batch_status(self, results: list[Any], errors: list[dict[str, Any]], ok: int) -> Reply:
        now = iso(self.clock())
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            body.update(numErrors=len(errors), errors=errors)
        body.update(startedAt=now, completedAt=now)
        return (207 if errors else ok), body, {}

    @staticmethod
    def _standard_error(
        category: str, message: str, ids: list[str], **extra: Any
    ) -> dict[str, Any]:
        return {
            "status": "error",
            "category": category,
            "message": message,
            "context": {"ids": ids, **extra.pop("context", {})},
            "errors": extra.pop("errors", []),
            "links": {},
            **extra,
        }

    def _unknown_properties(self, kind: str, inputs: list[dict[str, Any]]) -> list[str]:
        defined = self.properties.get(kind)
        if defined is None:
            return []
        names = {p["name"] for p in defined}
        return sorted({n for i in inputs for n in i["properties"] if n not in names})

    def _batch_update(self, kind: str, inputs: list[dict[str, Any]]) -> Reply:
        ids = [i["id"] for i in inputs]
        if len(set(ids)) != len(ids):
            return _error(400, "Duplicate IDs found in batch input", "VALIDATION_ERROR")
        unknown = self._unknown_properties(kind, inputs)
        if unknown:
            body = fixture("validation_property_missing.json")
            body["message"] = body["message"].replace("revbot_reason", unknown[0])
            body["errors"][0]["message"] = f'Property "{unknown[0]}" does not exist'
            body["errors"][0]["context"]["propertyName"] = unknown
            return 400, body, {}
        store = self.objects[kind]
        missing = [i for i in ids if i not in store]
        refused = {i: self.input_errors[i] for i in ids if i in self.input_errors}
        errors = []
        if missing:
            errors.append(
                self._standard_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {OBJECT_TYPES[kind]} objects, they may be deleted or not exist. Check that ids are valid.",
                    missing,
                )
            )
        for rid, (category, message, prop) in refused.items():
            errors.append(
                self._standard_error(
                    category,
                    "Property values were not valid",
                    [rid],
                    context={"propertyName": [prop]},
                    errors=[
                        {
                            "message": message,
                            "code": "INVALID_OPTION",
                            "context": {"propertyName": [prop]},
                        }
                    ],
                )
            )
        if errors and self.batch_errors == "reject_batch":
            body = errors[0] | {"correlationId": str(uuid.uuid4())}
            body["context"] = {"ids": missing + list(refused)}
            return 400, body, {}
        results = []
        now = self.clock()
        for item in inputs:
            record = store.get(item["id"])
            if record is None or item["id"] in refused:
                continue
            for name, value in item["properties"].items():
                if value == "":
                    record.properties.pop(name, None)
                else:
                    record.properties[name] = value
            record.updated_at = now
            results.append(self._json(record, list(item["properties"])))
        return self._batch_status(results, errors, 200)

    def _batch_read(self, kind: str, body: dict[str, Any]) -> Reply:
        store = self.objects[kind]
        ids = [i["id"] for i in body["inputs"]]
        found = [self._json(store[i], body["properties"]) for i in ids if i in store]
        missing = [i for i in ids if i not in store]
        errors = []
        if missing:
            errors.append(
                self._standard_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {OBJECT_TYPES[kind]} objects, they may be deleted or not exist. Check that ids are valid.",
                    missing,
                )
            )
        return self._batch_status(found, errors, 200)

    def _batch_create(self, kind: str, inputs: list[dict[str, Any]]) -> Reply:
        results = []
        for item in inputs:
            for association in item.get("associations", []):
                target = association["to"]["id"]
                if not any(target in self.objects[t] for t in ("contacts", "deals")):
                    return _error(
                        400,
                        f"One or more associations are invalid: no object with id {target}",
                        "VALIDATION_ERROR",
                    )
        for item in inputs:
            rid = self.seed(kind, **item["properties"])
            for association in item.get("associations", []):
                target = association["to"]["id"]
                to_type = "contacts" if target in self.objects["contacts"] else "deals"
                type_id = association["types"][0]["associationTypeId"]
                self._associate(kind, rid, to_type, target, type_id)
            results.append(self._json(self.objects[kind][rid], list(item["properties"])))
        return self._batch_status(results, [], 201)

    def _associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int
    ) -> None:
        forward = type_id or ASSOCIATION_TYPES.get((from_type, to_type), 1)
        backward = ASSOCIATION_TYPES.get((to_type, from_type), 1)
        self.associations.setdefault((from_type, from_id), set()).add((to_type, to_id, forward))
        self.associations.setdefault((to_type, to_id), set()).add((from_type, from_id, backward))

    def _get(self, kind: str, record_id: str, query: dict[str, str]) -> Reply:
        record = self.objects[kind].get(record_id)
        if record is None:
            return 404, None, {}
        properties = [p for p in query.get("properties", "").split(",") if p]
        return 200, self._json(record, properties), {}

    # -- search ------------------------------------------------------------------------------

    def _search(self, kind: str, body: dict[str, Any]) -> Reply:
        groups = body.get("filterGroups", [])
        if sum(len(g["filters"]) for g in groups) > MAX_TOTAL_FILTERS:
            return _error(400, "Too many filters", "VALIDATION_ERROR")
        for group in groups:
            for f in group["filters"]:
                needs_values = f["operator"] in ("IN", "NOT_IN")
                needs_value = (
                    f["operator"] not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY") and not needs_values
                )
                if (needs_values and "values" not in f) or (needs_value and "value" not in f):
                    self.schema_errors.append(f"search filter without its value: {f}")
                    return _error(400, f"Filter {f} is missing its value", "VALIDATION_ERROR")
        records = [
            r
            for r in self.objects[kind].values()
            if r.indexed
            and (not groups or any(self._matches(kind, r, g["filters"]) for g in groups))
        ]
        sorts = body.get("sorts") or []
        if sorts:
            sort = sorts[0]
            name = sort if isinstance(sort, str) else sort["propertyName"]
            descending = isinstance(sort, dict) and sort.get("direction") == "DESCENDING"
            records.sort(key=lambda r: self._sort_key(r, name), reverse=descending)
        else:
            records.sort(key=lambda r: int(r.id))
        limit = body.get("limit", 10)
        offset = int(body.get("after") or 0)
        if offset + limit > SEARCH_CAP:
            return _error(
                400,
                "The search API cannot page past 10000 results; narrow the filters.",
                "VALIDATION_ERROR",
            )
        page = records[offset : offset + limit]
        reply: dict[str, Any] = {
            "total": len(records),
            "results": [self._json(r, body.get("properties")) for r in page],
        }
        if offset + limit < len(records):
            after = str(offset + limit)
            reply["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return 200, reply, {}

    def _sort_key(self, record: StoredRecord, name: str) -> tuple[int, float, str]:
        value = (
            record.properties.get(name) if name != "hs_lastmodifieddate" else iso(record.updated_at)
        )
        number = to_ms(value)
        return (0 if value is not None else 1, number if number is not None else 0.0, str(value))

    def _matches(self, kind: str, record: StoredRecord, filters: list[dict[str, Any]]) -> bool:
        return all(self._match(kind, record, f) for f in filters)

    def _match(self, kind: str, record: StoredRecord, f: dict[str, Any]) -> bool:
        name, op = f["propertyName"], f["operator"]
        if name.startswith("associations."):
            to_type = name.split(".", 1)[1] + "s"
            linked = {
                i for t, i, _ in self.associations.get((kind, record.id), set()) if t == to_type
            }
            return op == "EQ" and f["value"] in linked
        value = record.properties.get(name)
        if name == "hs_lastmodifieddate":
            value = iso(record.updated_at)
        if op == "HAS_PROPERTY":
            return value not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return value in (None, "")
        if value is None:
            return op in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN")
        text = str(value).lower()
        if op in ("EQ", "NEQ"):
            equal = text == f["value"].lower() or _same_number(value, f["value"])
            return equal if op == "EQ" else not equal
        if op in ("IN", "NOT_IN"):
            inside = text in {v.lower() for v in f["values"]}
            return inside if op == "IN" else not inside
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = f["value"].lower()
            pattern = pattern if "*" in pattern else f"*{pattern}*"
            hit = fnmatch.fnmatchcase(text, pattern)
            return hit if op == "CONTAINS_TOKEN" else not hit
        number, bound = to_ms(value), to_ms(f["value"])
        if number is None or bound is None:
            return False
        if op == "BETWEEN":
            high = to_ms(f.get("highValue"))
            return high is not None and bound <= number <= high
        return {
            "LT": number < bound,
            "LTE": number <= bound,
            "GT": number > bound,
            "GTE": number >= bound,
        }[op]

    # -- owners, associations ----------------------------------------------------------------

    def _owners(self, owner_id: str | None, query: dict[str, str]) -> Reply:
        if owner_id:
            found = next((o for o in self.owners if o["id"] == owner_id), None)
            if found is None:
                return _error(404, f"No owner with id {owner_id}", "OBJECT_NOT_FOUND")
            return 200, found, {}
        email = query.get("email")
        owners = [o for o in self.owners if email is None or o["email"].lower() == email.lower()]
        limit = int(query.get("limit") or 100)
        return 200, {"results": owners[:limit]}, {}

    def _associations_read(
        self, from_type: str, to_type: str, inputs: list[dict[str, Any]]
    ) -> Reply:
        results, errors = [], []
        for item in inputs:
            links = sorted(
                (i, t)
                for kind, i, t in self.associations.get((from_type, item["id"]), set())
                if kind == to_type
            )
            if not links:
                errors.append(
                    self._standard_error(
                        "OBJECT_NOT_FOUND",
                        f"No {to_type} is associated with {from_type} {item['id']}.",
                        [item["id"]],
                        subCategory="crm.associations.NO_ASSOCIATIONS_FOUND",
                    )
                )
                continue
            results.append(
                {
                    "from": {"id": item["id"]},
                    "to": [
                        {
                            "toObjectId": int(i),
                            "associationTypes": [
                                {"category": "HUBSPOT_DEFINED", "typeId": t, "label": None}
                            ],
                        }
                        for i, t in links
                    ],
                }
            )
        return self._batch_status(results, errors, 200)


def _same_number(value: Any, given: str) -> bool:
    a, b = to_ms(value), to_ms(given)
    return (
        a is not None and b is not None and a == b and bool(re.fullmatch(r"-?\d+(\.\d+)?", given))
    )
