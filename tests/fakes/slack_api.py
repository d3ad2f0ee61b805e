"""A fake Slack Web API served over real HTTP on 127.0.0.1, for use with a real slack_sdk client."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import mimetypes
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DEFAULT_BOT_TOKEN = "xoxb-test-token"
DEFAULT_CHANNELS = {
    "revenue-pipeline": "C0PIPELINE",
    "deal-support": "C0DEALSUP",
    "revops-alerts": "C0ALERTS",
}
JSON_FIELDS = ("blocks", "metadata", "view", "attachments", "files")
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
_CONVERSATION_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")

Reply = tuple[int, dict[str, Any] | str | bytes, dict[str, str]]


@dataclass
class Recorded:
    """One HTTP request received by the fake; header names are lower-cased."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    path: str = ""
    body: bytes = b""
    at: float = field(default_factory=time.monotonic)


@dataclass
class UploadedFile:
    """A file uploaded through files.getUploadURLExternal and the upload URL."""

    id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    shared_to: list[str] = field(default_factory=list)


def _ok(**data: Any) -> Reply:
    return 200, {"ok": True, **data}, {}


def _err(error: str) -> Reply:
    return 200, {"ok": False, "error": error}, {}


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


def _valid_blocks(blocks: Any, limit: int) -> bool:
    return (
        isinstance(blocks, list)
        and len(blocks) <= limit
        and all(isinstance(b, dict) and b.get("type") for b in blocks)
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        """Serve a GET request."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST request."""
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.fake._handle(self.path, headers, body)
        if reply is None:
            # Closing without a status line is what a client sees when Slack accepted the
            # call but the response was lost on the way back.
            self.close_connection = True
            return
        status, payload, extra = reply
        if isinstance(payload, dict):
            data = json.dumps(payload).encode()
            content_type = "application/json; charset=utf-8"
        elif isinstance(payload, bytes):
            extra = dict(extra)
            data, content_type = payload, extra.pop("Content-Type", "application/octet-stream")
        else:
            data = str(payload).encode()
            content_type = "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 refuses connections when many clients post at once.
    request_queue_size = 128

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class FakeSlack:
    """In-memory Slack workspace answering the Web API methods revbot uses."""

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        channels: dict[str, str] | None = None,
        rate_limit: bool = False,
        burst: int = 3,
        per_second: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Configure the fake; `clock` (epoch seconds) dates message ts, else 1700000000.000100 on."""
        self.bot_token = bot_token
        self.app_token = "xapp-1-test-app-token"
        self.channel_lookups = 0
        self.socket_url: str | None = None
        self.channels = dict(DEFAULT_CHANNELS if channels is None else channels)
        self.rate_limit, self.burst, self.per_second = rate_limit, burst, per_second
        self.rate_limited_count = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._home_views: dict[str, dict[str, Any]] = {}
        self._faults: dict[str, list[Reply]] = {}
        self._drops: dict[str, int] = {}
        self._outages: dict[str, tuple[float, Reply | float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._last_micros = 1_700_000_000 * 1_000_000
        self._files: dict[str, UploadedFile] = {}
        self._request_host = ""
        self._file_ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], Reply]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.history": self._conversations_history,
            "conversations.list": self._conversations_list,
            "conversations.replies": self._conversations_replies,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "usergroups.users.list": self._usergroups_users_list,
        }
        self.usergroups: dict[str, list[str]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Start serving on an ephemeral port in a daemon thread."""
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll interval
            name="fake-slack",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server and release its port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeSlack:
        """Start the fake for a `with` block."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the fake at the end of a `with` block."""
        self.stop()

    @property
    def base(self) -> str:
        """Root URL of the server, e.g. http://127.0.0.1:PORT."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """Web API base URL to give to WebClient(base_url=...)."""
        return f"{self.base}/api/"

    # -- inspection and fault injection -------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    def calls(self, method: str) -> list[Recorded]:
        """Recorded requests for one API method (or "response_url")."""
        return [r for r in self.requests if r.method == method]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,
        predicate: Callable[[Recorded], bool] | None = None,
    ) -> list[Recorded]:
        """Wait until `count` matching calls of `method` arrived; raise AssertionError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.calls(method) if predicate is None or predicate(r)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                seen = [(r.method, r.params) for r in self.requests]
                raise AssertionError(
                    f"expected {count} call(s) of {method}, got {len(found)} "
                    f"within {timeout}s; received: {seen!r}"
                )
            time.sleep(0.01)

    def fail_next(
        self,
        method: str,
        *,
        times: int = 1,
        status: int = 500,
        error: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next `times` calls of `method` fail without changing any state."""
        if retry_after is not None:
            reply: Reply = (
                429,
                {"ok": False, "error": "ratelimited"},
                {"Retry-After": str(retry_after)},
            )
        elif error is not None:
            reply = _err(error)
        else:
            reply = (status, f"fake failure {status}", {})
        with self._lock:
            self._faults.setdefault(method, []).extend([reply] * times)

    def clear_faults(self) -> None:
        """Forget every scheduled failure and drop: Slack answers normally again."""
        with self._lock:
            self._faults.clear()
            self._drops.clear()
            self._outages.clear()

    def outage(
        self,
        method: str,
        *,
        until: float,
        status: int = 503,
        retry_after: int | None = None,
        hang: float | None = None,
    ) -> None:
        """Until the fake's clock reaches `until` (epoch seconds), fail every call of `method`.

        It answers `status` (or 429 with `Retry-After`), or with `hang` holds the request that
        many seconds and closes the connection unanswered (a client with a shorter timeout sees
        a timeout). Nothing changes state. Needs the `clock` the fake was built with.
        """
        if self._clock is None:
            raise RuntimeError("an outage needs a FakeSlack built with a clock")
        if hang is not None:
            failure: Reply | float = hang
        elif retry_after is not None:
            failure = (
                429,
                {"ok": False, "error": "ratelimited"},
                {"Retry-After": str(retry_after)},
            )
        else:
            failure = (status, f"fake outage {status}", {})
        with self._lock:
            self._outages[method] = (until, failure)

    def drop_response_next(self, method: str, times: int = 1) -> None:
        """Process the next `times` calls of `method` but close the connection unanswered."""
        with self._lock:
            self._drops[method] = self._drops.get(method, 0) + times

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Current messages in a channel ("#name", name or id), oldest first."""
        with self._lock:
            channel_id = self._resolve_channel(channel) or channel
            return copy.deepcopy(self._messages.get(channel_id, []))

    def response_url(self, key: str = "r1") -> str:
        """A response_url on this server; posts to it are recorded as method "response_url"."""
        return f"{self.base}/response/{key}"

    def views(self) -> list[dict[str, Any]]:
        """Modals opened via views.open or views.push (as last updated), each with its "id"."""
        with self._lock:
            return copy.deepcopy(list(self._views.values()))

    def uploaded(self, file_id: str) -> UploadedFile | None:
        """A file started with files.getUploadURLExternal (its bytes once uploaded)."""
        with self._lock:
            found = self._files.get(file_id)
            return copy.deepcopy(found) if found else None

    def file_bytes(self, file_id: str) -> bytes | None:
        """The bytes uploaded for a file, as GET /files/<id> serves them."""
        found = self.uploaded(file_id)
        return found.data if found else None

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        """The Home tab last published for a user via views.publish, if any."""
        with self._lock:
            return copy.deepcopy(self._home_views.get(user_id))

    # -- request handling ---------------------------------------------------------------------

    def _handle(self, raw_path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        parts = urlsplit(raw_path)
        if parts.path.startswith(("/upload/", "/files/")):
            return self._file_route(parts.path, headers, body)
        params: dict[str, Any] = dict(parse_qsl(parts.query))
        bad_json = False
        if body:
            text = body.decode("utf-8", "replace")
            if "json" in headers.get("content-type", "") or text.lstrip().startswith("{"):
                try:
                    params.update(json.loads(text))
                except (ValueError, TypeError):
                    bad_json = True
            else:
                params.update(parse_qsl(text, keep_blank_values=True))
        for name in JSON_FIELDS:
            if isinstance(params.get(name), str):
                # Undecodable values stay as sent so validation reports them.
                with contextlib.suppress(ValueError):
                    params[name] = json.loads(params[name])
        if parts.path.startswith("/response/"):
            method = "response_url"
        elif parts.path.startswith("/api/"):
            method = parts.path.removeprefix("/api/")
        else:
            method = parts.path
        with self._lock:
            self._request_host = headers.get("host", "")
            self._requests.append(Recorded(method, params, headers, parts.path, body))
            # A scheduled drop comes before scheduled failures, so tests can say "lose the
            # next response, then fail the rest".
            if self._drops.get(method):
                self._drops[method] -= 1
                self._dispatch(method, params, headers, bad_json)
                return None
            faults = self._faults.get(method)
            if faults:
                return faults.pop(0)
            until, failure = self._outages.get(method, (0.0, 0.0))
            if self._clock is None or self._clock() >= until:
                return self._dispatch(method, params, headers, bad_json)
        if isinstance(failure, tuple):
            return failure
        time.sleep(failure)  # outside the lock: other requests are still served meanwhile
        return None

    def _dispatch(
        self, method: str, params: dict[str, Any], headers: dict[str, str], bad_json: bool
    ) -> Reply:
        if method == "response_url":
            return _ok()
        if not method or "/" in method:
            return 404, {"ok": False, "error": "not_found"}, {}
        auth = headers.get("authorization", "")
        if method == "apps.connections.open":
            # Socket Mode: authenticated with the app-level token, answers the WebSocket URL.
            if not self.socket_url or auth != f"Bearer {self.app_token}":
                return _err("invalid_auth")
            return _ok(url=self.socket_url)
        if auth != f"Bearer {self.bot_token}" and params.get("token") != self.bot_token:
            return _err("invalid_auth")
        handler = self._methods.get(method)
        if handler is None:
            return _err("unknown_method")
        if bad_json:
            return _err("invalid_json")
        return handler(params)

    def _file_route(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """The upload URL (POST: the file's raw bytes, as files_upload_v2 sends them) and GET /files/<id>."""
        kind, _, file_id = path.strip("/").partition("/")
        with self._lock:
            method = "upload" if kind == "upload" else "files.get"
            recorded = Recorded(
                method, {"file_id": file_id, "size": len(body)}, headers, path, body
            )
            self._requests.append(recorded)
            faults = self._faults.get(method)
            if faults:
                return faults.pop(0)
            found = self._files.get(file_id)
            if kind == "upload":
                if found is None or found.data is not None:
                    return 404, "no such upload", {}
                found.data = body
                return 200, f"OK - {len(body)}", {}
            if found is None or found.data is None or not found.shared_to:
                return 404, "file_not_found", {}
            mimetype = mimetypes.guess_type(found.filename)[0] or "application/octet-stream"
            return 200, found.data, {"Content-Type": mimetype}

    # -- helpers (called with the lock held) --------------------------------------------------

    def _resolve_channel(self, channel: Any) -> str | None:
        if not isinstance(channel, str) or not channel:
            return None
        name = channel.removeprefix("#")
        if name in self.channels:
            return self.channels[name]
        if _USER_ID.fullmatch(channel):
            return "D" + channel[1:]
        if _CONVERSATION_ID.fullmatch(channel):
            return channel
        return None

    def _next_ts(self) -> str:
        # Without a clock the sequence is fixed so tests can name the first card's ts up front;
        # with one, ts follow it (apps filter history by `oldest`) but stay unique and increasing.
        wanted = self._last_micros + 100 if self._clock is None else int(self._clock() * 1e6)
        self._last_micros = max(wanted, self._last_micros + 1)
        seconds, micros = divmod(self._last_micros, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def _find(self, channel: str | None, ts: Any) -> dict[str, Any] | None:
        return next((m for m in self._messages.get(channel or "", []) if m["ts"] == ts), None)

    def _take_token(self, channel: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.per_second)
        allowed = tokens >= 1.0
        self._buckets[channel] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    # -- Web API methods ----------------------------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> Reply:
        return _ok(
            user_id="UBOT",
            bot_id="BBOT",
            team_id="T0TEAM",
            team="Sandbox",
            url="https://sandbox.slack.com/",
        )

    def _chat_post_message(self, params: dict[str, Any]) -> Reply:
        channel = self._resolve_channel(params.get("channel"))
        if channel is None:
            return _err("channel_not_found")
        blocks = params.get("blocks")
        if not (params.get("text") or blocks or params.get("attachments")):
            return _err("no_text")
        if blocks is not None and not _valid_blocks(blocks, MAX_MESSAGE_BLOCKS):
            return _err("invalid_blocks")
        if self.rate_limit and not self._take_token(channel):
            self.rate_limited_count += 1
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
        message = {
            "ts": self._next_ts(),
            "channel": channel,
            "text": params.get("text") or "",
            "blocks": blocks or [],
            "metadata": params.get("metadata"),
            "thread_ts": params.get("thread_ts"),
            "user": "UBOT",
            "bot_id": "BBOT",
        }
        self._messages.setdefault(channel, []).append(message)
        return _ok(channel=channel, ts=message["ts"], message=copy.deepcopy(message))

    def _chat_update(self, params: dict[str, Any]) -> Reply:
        channel = self._resolve_channel(params.get("channel"))
        message = self._find(channel, params.get("ts"))
        if message is None:
            return _err("message_not_found")
        if "blocks" in params and not _valid_blocks(params["blocks"], MAX_MESSAGE_BLOCKS):
            return _err("invalid_blocks")
        for name in ("text", "blocks", "metadata"):
            if name in params:
                message[name] = params[name]
        return _ok(
            channel=channel, ts=message["ts"], text=message["text"], message=copy.deepcopy(message)
        )

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> Reply:
        channel = self._resolve_channel(params.get("channel"))
        if channel is None:
            return _err("channel_not_found")
        if not params.get("user"):
            return _err("user_not_found")
        return _ok(message_ts=self._next_ts())

    def _chat_get_permalink(self, params: dict[str, Any]) -> Reply:
        channel = self._resolve_channel(params.get("channel"))
        if self._find(channel, params.get("message_ts")) is None:
            return _err("message_not_found")
        ts = str(params["message_ts"]).replace(".", "")
        return _ok(channel=channel, permalink=f"https://sandbox.slack.com/archives/{channel}/p{ts}")

    def _views_open(self, params: dict[str, Any]) -> Reply:
        view = params.get("view")
        if not params.get("trigger_id") and not params.get("interactivity_pointer"):
            return _err("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "modal":
            return _err("invalid_arguments")
        if not _valid_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS):
            return _err("invalid_arguments")
        view_id = f"V{len(self._views) + 1:08d}"
        self._views[view_id] = {**copy.deepcopy(view), "id": view_id}
        return _ok(view=copy.deepcopy(self._views[view_id]))

    def _views_update(self, params: dict[str, Any]) -> Reply:
        view = params.get("view")
        view_id = params.get("view_id")
        if not view_id and params.get("external_id"):
            view_id = next(
                (
                    k
                    for k, v in self._views.items()
                    if v.get("external_id") == params["external_id"]
                ),
                None,
            )
        if view_id not in self._views:
            return _err("not_found")
        if not isinstance(view, dict) or not _valid_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS):
            return _err("invalid_arguments")
        self._views[view_id] = {**copy.deepcopy(view), "id": view_id}
        return _ok(view=copy.deepcopy(self._views[view_id]))

    def _views_publish(self, params: dict[str, Any]) -> Reply:
        view = params.get("view")
        if not params.get("user_id"):
            return _err("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            return _err("invalid_arguments")
        if not _valid_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS):
            return _err("invalid_arguments")
        self._home_views[params["user_id"]] = {**copy.deepcopy(view), "id": "VHOME"}
        return _ok(view=copy.deepcopy(self._home_views[params["user_id"]]))

    def _history_entry(self, message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        entry = {"type": "message", **copy.deepcopy(message)}
        del entry["channel"]
        if entry["thread_ts"] is None:
            del entry["thread_ts"]
        if not with_metadata or entry["metadata"] is None:
            del entry["metadata"]
        return entry

    def _conversations_history(self, params: dict[str, Any]) -> Reply:
        channel = self._resolve_channel(params.get("channel"))
        if channel is None:
            return _err("channel_not_found")
        inclusive = _truthy(params.get("inclusive"))
        oldest = Decimal(str(params.get("oldest") or 0))
        latest = Decimal(str(params["latest"])) if params.get("latest") else None
        limit = int(params.get("limit") or 100)

        def in_window(ts: Decimal) -> bool:
            above = ts >= oldest if inclusive else ts > oldest
            below = latest is None or (ts <= latest if inclusive else ts < latest)
            return above and below

        # Thread replies are not part of a channel's history, as on Slack.
        found = [
            m
            for m in reversed(self._messages.get(channel, []))
            if m["thread_ts"] in (None, m["ts"]) and in_window(Decimal(m["ts"]))
        ]
        with_metadata = _truthy(params.get("include_all_metadata"))
        return _ok(
            messages=[self._history_entry(m, with_metadata) for m in found[:limit]],
            has_more=len(found) > limit,
            pin_count=0,
            response_metadata={"next_cursor": ""},
        )

    def _conversations_list(self, params: dict[str, Any]) -> Reply:
        limit = int(params.get("limit") or 100)
        start = int(params.get("cursor") or 0)
        names = sorted(self.channels)
        page = names[start : start + limit]
        more = start + limit < len(names)
        self.channel_lookups += 1
        return _ok(
            channels=[
                {"id": self.channels[n], "name": n, "is_channel": True, "is_archived": False}
                for n in page
            ],
            response_metadata={"next_cursor": str(start + limit) if more else ""},
        )

    def _conversations_replies(self, params: dict[str, Any]) -> Reply:
        channel = self._resolve_channel(params.get("channel"))
        ts = params.get("ts")
        if self._find(channel, ts) is None:
            return _err("thread_not_found")
        thread = [m for m in self._messages[channel or ""] if m["ts"] == ts or m["thread_ts"] == ts]
        with_metadata = _truthy(params.get("include_all_metadata"))
        return _ok(
            messages=[self._history_entry(m, with_metadata) for m in thread],
            has_more=False,
            response_metadata={"next_cursor": ""},
        )

    def _conversations_open(self, params: dict[str, Any]) -> Reply:
        if params.get("channel"):
            channel = self._resolve_channel(params["channel"])
            return _ok(channel={"id": channel}) if channel else _err("channel_not_found")
        users = str(params.get("users") or "").split(",")[0].strip()
        if not _USER_ID.fullmatch(users):
            return _err("user_not_found")
        return _ok(channel={"id": "D" + users[1:]}, no_op=False, already_open=False)

    def _files_get_upload_url(self, params: dict[str, Any]) -> Reply:
        filename = params.get("filename")
        length = str(params.get("length") or "")
        if not filename or not length.isdigit() or int(length) <= 0:
            return _err("invalid_arguments")
        file_id = f"F{next(self._file_ids):08d}"
        self._files[file_id] = UploadedFile(file_id, str(filename), int(length))
        # The upload URL is on this server, at the host and port the client reached it by.
        base = f"http://{self._request_host}" if self._request_host else self.base
        return _ok(upload_url=f"{base}/upload/{file_id}", file_id=file_id)

    def _files_complete_upload(self, params: dict[str, Any]) -> Reply:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            return _err("invalid_arguments")
        found = [self._files.get(str(f.get("id"))) for f in files if isinstance(f, dict)]
        if len(found) != len(files) or any(f is None or f.data is None for f in found):
            return _err("file_not_found")
        channel = None
        if params.get("channel_id"):
            channel = self._resolve_channel(params["channel_id"])
            if channel is None:
                return _err("channel_not_found")
        shared = []
        for item, upload in zip(files, found, strict=True):
            assert upload is not None
            upload.title = item.get("title") or upload.filename
            if channel:
                upload.shared_to.append(channel)
            shared.append(self._file_json(upload))
        if channel:
            message = {
                "ts": self._next_ts(),
                "channel": channel,
                "text": params.get("initial_comment") or "",
                "blocks": [],
                "metadata": None,
                "thread_ts": params.get("thread_ts"),
                "user": "UBOT",
                "bot_id": "BBOT",
                "files": shared,
            }
            self._messages.setdefault(channel, []).append(message)
        return _ok(files=shared)

    def _file_json(self, upload: UploadedFile) -> dict[str, Any]:
        return {
            "id": upload.id,
            "name": upload.filename,
            "title": upload.title,
            "mimetype": mimetypes.guess_type(upload.filename)[0] or "application/octet-stream",
            "size": len(upload.data or b""),
            "url_private": f"{self.base}/files/{upload.id}",
            "channels": list(upload.shared_to),
        }

    def _users_info(self, params: dict[str, Any]) -> Reply:
        user_id = str(params.get("user") or "")
        if not _USER_ID.fullmatch(user_id):
            return _err("user_not_found")
        name = user_id.lower()
        return _ok(
            user={
                "id": user_id,
                "team_id": "T0TEAM",
                "name": name,
                "real_name": name,
                "deleted": False,
                "is_bot": False,
                "tz": "UTC",
                "tz_offset": 0,
                "profile": {
                    "email": f"{name}@example.com",
                    "real_name": name,
                    "display_name": name,
                },
            }
        )

    def _usergroups_users_list(self, params: dict[str, Any]) -> Reply:
        members = self.usergroups.get(str(params.get("usergroup") or ""))
        if members is None:
            return _err("no_such_subteam")
        return _ok(users=list(members))
