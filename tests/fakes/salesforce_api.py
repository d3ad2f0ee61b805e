"""A fake Salesforce (REST API, SOAP and OAuth logins) served over HTTPS on 127.0.0.1.

simple-salesforce always builds https:// URLs, so the fake has a throwaway certificate authority
(trustme); point `SALESFORCE_CA_BUNDLE` at `fake.ca_path`. Answers are built from the recorded
payloads in tests/fixtures/salesforce/. Every request is recorded (method, path, query, JSON body),
records can be seeded and read back, and faults injected: an expired session, REQUEST_LIMIT_EXCEEDED
for N calls, server errors, UNABLE_TO_LOCK_ROW for some records, validation rules.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import random
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
from defusedxml import ElementTree

from tests.fakes.salesforce_soql import (
    Query,
    SoqlError,
    matches,
    parse,
    parse_datetime,
    where_fields,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "salesforce"
ORG_ID = "00D5g000004Xyz1EAC"
INTEGRATION_USER = "0055g00000AbCdEAAV"
USERNAME = "revbot@acme.example"
PASSWORD = "s3cret"
SECURITY_TOKEN = "TOKEN123"
CLIENT_ID = "3MVG9-client"
CLIENT_SECRET = "client-secret"
ACCESS_TOKEN = "00D5g000004Xyz1!AQ.session-0"
PREFIXES = {"Lead": "00Q", "User": "005", "Opportunity": "006", "Account": "001", "Task": "00T"}
RELATIONSHIPS = {
    "Owner": "OwnerId",
    "Account": "AccountId",
    "ConvertedOpportunity": "ConvertedOpportunityId",
    "Who": "WhoId",
    "What": "WhatId",
}
SYSTEM_FIELDS = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"}


def fixture(name: str) -> Any:
    """A recorded payload: parsed JSON for .json files, text otherwise."""
    text = (FIXTURES / name).read_text()
    return json.loads(text) if name.endswith(".json") else text


def sf_datetime(value: datetime) -> str:
    """A datetime as Salesforce's REST API writes it: `2026-11-23T15:00:00.000+0000`."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{value.microsecond // 1000:03d}+0000"
    )


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    json: Any
    headers: dict[str, str]

    @property
    def soql(self) -> str | None:
        """The SOQL of a query request."""
        return self.query.get("q")


@dataclass
class ValidationRule:
    """A validation rule: refuses an update when `when(merged record)` is true."""

    sobject: str
    field: str | None
    message: str
    when: Callable[[dict[str, Any]], bool]


@dataclass
class _State:
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    describes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    requests: list[Recorded] = field(default_factory=list)
    logins: int = 0
    rate_limited_calls: int = 0
    unavailable_calls: int = 0
    lock_once: set[str] = field(default_factory=set)
    lock_fraction: float = 0.0
    rules: list[ValidationRule] = field(default_factory=list)
    cursors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class FakeSalesforce:
    """The fake org; use as a context manager (`with FakeSalesforce() as sf:`)."""

    def __init__(
        self,
        *,
        api_version: str = "61.0",
        username: str = USERNAME,
        password: str = PASSWORD,
        security_token: str = SECURITY_TOKEN,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        access_token: str | None = ACCESS_TOKEN,
        clock: Callable[[], datetime] | None = None,
        seed: int = 7,
    ) -> None:
        self.api_version = api_version
        self.username, self.password, self.security_token = username, password, security_token
        self.client_id, self.client_secret = client_id, client_secret
        self.access_token = access_token
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._state = _State()
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._random = random.Random(seed)
        # Salesforce answers up to 2,000 records a page and points at the rest with
        # nextRecordsUrl; tests lower it to page small answers.
        self.query_page_size = 2000
        self._cursor_ids = itertools.count(1)
        for name in ("lead", "task", "opportunity", "user", "account"):
            describe = fixture(f"describe_{name}.json")
            self._state.describes[describe["name"]] = describe
        if access_token:
            self._state.tokens.add(access_token)
        self._ca = trustme.CA()
        self._server: ThreadingHTTPServer | None = None
        self.ca_path = ""
        self.url = ""
        self.seed(
            "User",
            Id=INTEGRATION_USER,
            Name="Revbot Integration",
            Email="integration@acme.example",
            IsActive=True,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeSalesforce:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> FakeSalesforce:
        """Serve HTTPS on a free local port; `url` and `ca_path` are set."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = f"https://127.0.0.1:{server.server_port}"
        path = Path(self._tmpdir()) / "fake-salesforce-ca.pem"
        self._ca.cert_pem.write_to_path(str(path))
        self.ca_path = str(path)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _tmpdir(self) -> str:
        self._dir = tempfile.TemporaryDirectory(prefix="fake-sf-")
        return self._dir.name

    def env(self, mode: str = "password") -> dict[str, str]:
        """SALESFORCE_* settings pointing at this fake: `session`, `password` or `client_credentials`."""
        values = {"SALESFORCE_CA_BUNDLE": self.ca_path, "SALESFORCE_API_VERSION": self.api_version}
        if mode == "session":
            assert self.access_token is not None
            values |= {
                "SALESFORCE_INSTANCE_URL": self.url,
                "SALESFORCE_ACCESS_TOKEN": self.access_token,
            }
        elif mode == "password":
            values |= {
                "SALESFORCE_LOGIN_URL": self.url,
                "SALESFORCE_USERNAME": self.username,
                "SALESFORCE_PASSWORD": self.password,
                "SALESFORCE_SECURITY_TOKEN": self.security_token,
            }
        elif mode == "client_credentials":
            values |= {
                "SALESFORCE_LOGIN_URL": self.url,
                "SALESFORCE_CLIENT_ID": self.client_id,
                "SALESFORCE_CLIENT_SECRET": self.client_secret,
            }
        else:
            raise ValueError(f"unknown auth mode {mode!r}")
        return values

    # -- seeding and reading ---------------------------------------------------------------

    def new_id(self, sobject: str) -> str:
        """A fresh 18-character id with the object's key prefix."""
        return f"{PREFIXES.get(sobject, 'a00')}5g{next(self._ids):010d}AAA"

    def seed(self, sobject: str, **fields: Any) -> str:
        """Add a record (missing system fields filled in); returns its Id."""
        now = sf_datetime(self.clock())
        record = {"CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now, **fields}
        record.setdefault("Id", self.new_id(sobject))
        if sobject == "Lead":
            record.setdefault("IsConverted", False)
        if sobject != "User":
            record.setdefault("OwnerId", INTEGRATION_USER)
        record["_type"] = sobject
        with self._lock:
            self._state.records[record["Id"]] = record
        return str(record["Id"])

    def record(self, record_id: str) -> dict[str, Any]:
        """A copy of one stored record."""
        with self._lock:
            found = copy.deepcopy(self._state.records[record_id])
        found.pop("_type")
        return found

    def records(self, sobject: str) -> list[dict[str, Any]]:
        """Copies of every stored record of one type."""
        with self._lock:
            rows = [copy.deepcopy(r) for r in self._state.records.values() if r["_type"] == sobject]
        for row in rows:
            row.pop("_type")
        return rows

    def describe(self, sobject: str) -> dict[str, Any]:
        """The (mutable) describe the fake serves for an object: edit it to change the schema."""
        return self._state.describes[sobject]

    def remove_field(self, sobject: str, name: str) -> None:
        """Delete a field from the org's schema."""
        describe = self._state.describes[sobject]
        describe["fields"] = [f for f in describe["fields"] if f["name"] != name]

    # -- faults ----------------------------------------------------------------------------

    def expire_sessions(self) -> None:
        """Invalidate every session: the next API call answers 401 INVALID_SESSION_ID."""
        with self._lock:
            self._state.tokens.clear()

    def rate_limit(self, calls: int) -> None:
        """Answer the next `calls` API calls with 403 REQUEST_LIMIT_EXCEEDED."""
        with self._lock:
            self._state.rate_limited_calls = calls

    def unavailable(self, calls: int) -> None:
        """Answer the next `calls` API calls with 503 SERVER_UNAVAILABLE."""
        with self._lock:
            self._state.unavailable_calls = calls

    def lock_rows_once(self, *record_ids: str) -> None:
        """The next update of each of these records fails with UNABLE_TO_LOCK_ROW."""
        with self._lock:
            self._state.lock_once.update(record_ids)

    def lock_rows(self, fraction: float) -> None:
        """Every record update fails with UNABLE_TO_LOCK_ROW with this probability (seeded)."""
        with self._lock:
            self._state.lock_fraction = fraction

    def add_validation_rule(
        self,
        sobject: str,
        message: str,
        when: Callable[[dict[str, Any]], bool],
        field: str | None = None,
    ) -> None:
        """Refuse updates (FIELD_CUSTOM_VALIDATION_EXCEPTION) whose resulting record meets `when`."""
        with self._lock:
            self._state.rules.append(ValidationRule(sobject, field, message, when))

    # -- what happened ---------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """Every request received, in order."""
        with self._lock:
            return list(self._state.requests)

    @property
    def logins(self) -> int:
        """How many successful logins (SOAP or OAuth) the fake served."""
        return self._state.logins

    def calls(self, method: str | None = None, path_contains: str = "") -> list[Recorded]:
        """Requests matching a method and a path fragment."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and path_contains in r.path
        ]

    def queries(self) -> list[str]:
        """The SOQL of every query received."""
        return [r.soql for r in self.requests if r.soql is not None]

    # -- request handling (called by the handler thread) -----------------------------------

    def handle(self, rec: Recorded) -> tuple[int, Any, str]:
        with self._lock:
            self._state.requests.append(rec)
        path = rec.path
        if rec.method == "POST" and path.startswith("/services/Soap/u/"):
            return self._soap_login(rec)
        if rec.method == "POST" and path == "/services/oauth2/token":
            return self._oauth_token(rec)
        auth = rec.headers.get("authorization", "")
        with self._lock:
            valid = auth.startswith("Bearer ") and auth[7:] in self._state.tokens
            if not valid:
                return 401, fixture("error_invalid_session.json"), "json"
            if self._state.rate_limited_calls > 0:
                self._state.rate_limited_calls -= 1
                return 403, fixture("error_request_limit.json"), "json"
            if self._state.unavailable_calls > 0:
                self._state.unavailable_calls -= 1
                return 503, fixture("error_server_unavailable.json"), "json"
        if path == "/services/oauth2/userinfo":
            info = fixture("userinfo.json")
            info["urls"]["rest"] = f"{self.url}/services/data/v{{version}}/"
            return 200, info, "json"
        prefix = f"/services/data/v{self.api_version}/"
        if not path.startswith(prefix):
            return (
                404,
                [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
                "json",
            )
        rest = path[len(prefix) :]
        try:
            with self._lock:
                return self._rest(rec.method, rest, rec)
        except SoqlError as exc:
            return 400, [{"message": str(exc), "errorCode": exc.code}], "json"

    def _rest(self, method: str, rest: str, rec: Recorded) -> tuple[int, Any, str]:
        if method == "GET" and rest == "query/":
            return 200, self._query(parse(rec.query.get("q", ""))), "json"
        if method == "GET" and rest.startswith("query/") and rest[6:] in self._state.cursors:
            return 200, self._page(rest[6:]), "json"
        if method == "GET" and rest.startswith("sobjects/") and rest.endswith("/describe"):
            name = rest.split("/")[1]
            if name not in self._state.describes:
                return (
                    404,
                    [
                        {
                            "errorCode": "NOT_FOUND",
                            "message": "The requested resource does not exist",
                        }
                    ],
                    "json",
                )
            return 200, self._state.describes[name], "json"
        if rest.startswith("composite/sobjects") and method in ("PATCH", "POST"):
            return self._collection(method, rest, rec.json)
        return (
            404,
            [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
            "json",
        )

    # -- logins ----------------------------------------------------------------------------

    def _issue_token(self) -> str:
        token = f"{ORG_ID[:15]}!AQ.session-{next(self._tokens)}"
        with self._lock:
            self._state.tokens.add(token)
            self._state.logins += 1
        return token

    def _soap_login(self, rec: Recorded) -> tuple[int, Any, str]:
        root = ElementTree.fromstring(rec.body)
        ns = "{urn:partner.soap.sforce.com}"
        username = root.findtext(f".//{ns}username")
        password = root.findtext(f".//{ns}password")
        if username != self.username or password != self.password + self.security_token:
            return 500, fixture("soap_login_fault.xml"), "xml"
        body = fixture("soap_login_response.xml").format(
            instance_url=self.url,
            version=self.api_version,
            org_id=ORG_ID,
            session_id=self._issue_token(),
            user_id=INTEGRATION_USER,
            username=self.username,
        )
        return 200, body, "xml"

    def _oauth_token(self, rec: Recorded) -> tuple[int, Any, str]:
        form = {k: v[0] for k, v in parse_qs(rec.body.decode()).items()}
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if (
            form.get("grant_type") != "client_credentials"
            or rec.headers.get("authorization") != f"Basic {expected}"
        ):
            return 400, fixture("oauth_error.json"), "json"
        token = fixture("oauth_token.json")
        token["access_token"] = self._issue_token()
        token["instance_url"] = self.url
        return 200, token, "json"

    # -- queries ---------------------------------------------------------------------------

    def _field_names(self, sobject: str) -> set[str]:
        return {f["name"] for f in self._state.describes[sobject]["fields"]}

    def _check_field(self, sobject: str, path: str) -> None:
        parts = path.split(".")
        target = sobject
        for rel in parts[:-1]:
            fk = RELATIONSHIPS.get(rel)
            described = self._state.describes[target]["fields"]
            ref = next((f for f in described if f["name"] == fk), None)
            if ref is None:
                raise SoqlError(
                    f"Didn't understand relationship '{rel}' in field path", "INVALID_FIELD"
                )
            target = ref["referenceTo"][0]
        if parts[-1] not in self._field_names(target):
            raise SoqlError(f"No such column '{parts[-1]}' on entity '{target}'.", "INVALID_FIELD")

    def _get(self, record: dict[str, Any], path: str) -> Any:
        parts = path.split(".")
        current: dict[str, Any] | None = record
        for rel in parts[:-1]:
            fk = RELATIONSHIPS[rel]
            current = self._state.records.get(str(current.get(fk))) if current else None
        return current.get(parts[-1]) if current else None

    def _attributes(self, record: dict[str, Any]) -> dict[str, str]:
        kind = record["_type"]
        return {
            "type": kind,
            "url": f"/services/data/v{self.api_version}/sobjects/{kind}/{record['Id']}",
        }

    def _shape(self, record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"attributes": self._attributes(record)}
        for path in fields:
            parts = path.split(".")
            if len(parts) == 1:
                row[path] = record.get(path)
                continue
            target = self._state.records.get(str(record.get(RELATIONSHIPS[parts[0]])))
            if target is None:
                row[parts[0]] = None
                continue
            nested = row.get(parts[0]) or {"attributes": self._attributes(target)}
            nested[parts[1]] = target.get(parts[1])
            row[parts[0]] = nested
        return row

    def _query(self, query: Query) -> dict[str, Any]:
        if query.sobject not in self._state.describes:
            raise SoqlError(f"sObject type '{query.sobject}' is not supported.", "INVALID_TYPE")
        for path in [*query.fields, *where_fields(query.where), *(o[0] for o in query.order)]:
            self._check_field(query.sobject, path)
        rows = [
            r
            for r in self._state.records.values()
            if r["_type"] == query.sobject and matches(query.where, lambda p, r=r: self._get(r, p))
        ]
        for name, desc, nulls_last in reversed(query.order):
            present = [r for r in rows if self._get(r, name) is not None]
            missing = [r for r in rows if self._get(r, name) is None]
            present.sort(key=lambda r, n=name: _sort_key(self._get(r, n)), reverse=desc)
            rows = present + missing if nulls_last else missing + present
        rows = rows[query.offset :]
        if query.limit is not None:
            rows = rows[: query.limit]
        cursor = f"01gFAKE{next(self._cursor_ids):011d}"
        self._state.cursors[cursor] = [self._shape(r, query.fields) for r in rows]
        return self._page(cursor, total=len(rows))

    def _page(self, cursor: str, total: int | None = None) -> dict[str, Any]:
        """The next page of a query's records, with nextRecordsUrl while more remain."""
        remaining = self._state.cursors.pop(cursor)
        page, rest = remaining[: self.query_page_size], remaining[self.query_page_size :]
        answer: dict[str, Any] = {
            "totalSize": total if total is not None else len(remaining),
            "done": not rest,
            "records": page,
        }
        if rest:
            following = f"{cursor}-{len(page)}"
            self._state.cursors[following] = rest
            answer["nextRecordsUrl"] = f"/services/data/v{self.api_version}/query/{following}"
        return answer

    # -- sObject Collections ---------------------------------------------------------------

    def _collection(self, method: str, rest: str, body: Any) -> tuple[int, Any, str]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return (
                400,
                [{"errorCode": "JSON_PARSER_ERROR", "message": "records is required"}],
                "json",
            )
        records = body["records"]
        if len(records) > 200:
            return 400, fixture("error_exceeded_id_limit.json"), "json"
        parts = rest.split("/")
        upsert_on = (parts[2], parts[3]) if len(parts) == 4 else None
        for rec in records:
            kind = (rec.get("attributes") or {}).get("type")
            if kind not in self._state.describes:
                return (
                    400,
                    [
                        {
                            "errorCode": "INVALID_TYPE",
                            "message": f"sObject type '{kind}' is not supported.",
                        }
                    ],
                    "json",
                )
            for name in rec:
                if name not in ("attributes", "id") and name not in self._field_names(kind):
                    return (
                        400,
                        [
                            {
                                "errorCode": "INVALID_FIELD",
                                "message": f"No such column '{name}' on sobject of type {kind}",
                            }
                        ],
                        "json",
                    )
        if upsert_on is not None:
            sobject, key = upsert_on
            described = {
                f["name"]: f for f in self._state.describes.get(sobject, {"fields": []})["fields"]
            }
            if key not in described or not described[key]["externalId"]:
                return (
                    404,
                    [
                        {
                            "errorCode": "NOT_FOUND",
                            "message": f"Provided external ID field does not exist or is not accessible: {key}",
                        }
                    ],
                    "json",
                )
        results = []
        for rec in records:
            if upsert_on is not None:
                results.append(self._upsert(upsert_on[0], upsert_on[1], rec))
            elif method == "PATCH":
                results.append(self._update(rec))
            else:
                results.append(self._create(rec))
        return 200, results, "json"

    def _error(self, code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
        return {
            "success": False,
            "errors": [{"statusCode": code, "message": message, "fields": fields or []}],
        }

    def _problems(
        self, kind: str, merged: dict[str, Any], values: dict[str, Any], record_id: str | None
    ) -> dict[str, Any] | None:
        if record_id and (
            record_id in self._state.lock_once or self._random.random() < self._state.lock_fraction
        ):
            self._state.lock_once.discard(record_id)
            return self._error(
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {record_id}",
            )
        described = {f["name"]: f for f in self._state.describes[kind]["fields"]}
        for name, value in values.items():
            spec = described[name]
            if (
                name in SYSTEM_FIELDS
                or (record_id and not spec["updateable"])
                or (not record_id and not spec["createable"])
            ):
                return self._error(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    [name],
                )
            if (
                spec["type"] == "picklist"
                and value is not None
                and value not in {p["value"] for p in spec["picklistValues"]}
            ):
                return self._error(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{spec['label']}: bad value for restricted picklist field: {value}",
                    [name],
                )
            if (
                spec["type"] == "reference"
                and value is not None
                and value not in self._state.records
            ):
                return self._error(
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"{spec['label']}: id value of incorrect type: {value}",
                    [name],
                )
            if (
                spec["type"] in ("string", "textarea")
                and isinstance(value, str)
                and spec["length"]
                and len(value) > spec["length"]
            ):
                return self._error(
                    "STRING_TOO_LONG",
                    f"{spec['label']}: data value too large: {value[:20]}... (max length={spec['length']})",
                    [name],
                )
        for rule in self._state.rules:
            if rule.sobject == kind and rule.when(merged):
                return self._error(
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    rule.message,
                    [rule.field] if rule.field else [],
                )
        return None

    def _touch(self, record: dict[str, Any]) -> None:
        now = sf_datetime(self.clock())
        record["LastModifiedDate"] = now
        record["SystemModstamp"] = now

    def _update(self, rec: dict[str, Any]) -> dict[str, Any]:
        record_id = rec.get("id")
        values = {k: v for k, v in rec.items() if k not in ("attributes", "id")}
        current = self._state.records.get(str(record_id))
        if current is None or current["_type"] != rec["attributes"]["type"]:
            return self._error("ENTITY_IS_DELETED", "entity is deleted")
        problem = self._problems(current["_type"], {**current, **values}, values, str(record_id))
        if problem:
            return problem
        current.update(values)
        self._touch(current)
        return {"id": record_id, "success": True, "errors": []}

    def _create(self, rec: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
        kind = kind or rec["attributes"]["type"]
        values = {k: v for k, v in rec.items() if k != "attributes"}
        problem = self._problems(kind, values, values, None)
        if problem:
            return problem
        record_id = self.new_id(kind)
        self.seed(kind, Id=record_id, **values)
        return {"id": record_id, "success": True, "errors": []}

    def _upsert(self, kind: str, key: str, rec: dict[str, Any]) -> dict[str, Any]:
        value = rec.get(key)
        if not value:
            return self._error("MISSING_ARGUMENT", f"{key} not specified")
        existing = next(
            (r for r in self._state.records.values() if r["_type"] == kind and r.get(key) == value),
            None,
        )
        if existing is None:
            created = self._create(rec, kind)
            return {**created, "created": True} if created["success"] else created
        values = {k: v for k, v in rec.items() if k != "attributes"}
        problem = self._problems(kind, {**existing, **values}, values, str(existing["Id"]))
        if problem:
            return problem
        existing.update(values)
        self._touch(existing)
        return {"id": existing["Id"], "success": True, "errors": [], "created": False}


def _sort_key(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return (1, parse_datetime(value).timestamp(), "")
        except ValueError:
            return (2, 0, value.casefold())
    if isinstance(value, bool):
        return (0, int(value), "")
    return (0, value, "")


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, *_: Any) -> None:
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed = (
                json.loads(body)
                if body and "json" in (self.headers.get("Content-Type") or "")
                else None
            )
        except ValueError:
            parsed = None
        rec = Recorded(
            method=self.command,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query).items()},
            body=body,
            json=parsed,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        status, payload, kind = self.server.fake.handle(rec)  # type: ignore[attr-defined]
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type",
            "text/xml; charset=utf-8" if kind == "xml" else "application/json;charset=UTF-8",
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()
