"""The sandbox's Slack: an in-memory workspace answering the Web API methods revbot calls."""

from __future__ import annotations

import itertools
import json
import mimetypes
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
TRIGGER_LIFETIME_SECONDS = 3.0
POSTS_PER_SECOND = 1.0
POST_BURST = 3
UPLOAD_BASE = "http://127.0.0.1:3000/sandbox"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024

Reply = tuple[int, dict[str, Any], dict[str, str]]


def ok(**data: Any) -> Reply:
    """A successful Web API answer."""
    return 200, {"ok": True, **data}, {}


def error(code: str, **data: Any) -> Reply:
    """A Web API error answer (HTTP 200 with ok=false, as Slack does)."""
    return 200, {"ok": False, "error": code, **data}, {}


@dataclass
class User:
    """A person in the sandbox workspace."""

    id: str
    name: str
    role: str
    title: str = ""

    @property
    def dm_channel(self) -> str:
        """The id of this user's DM with revbot."""
        return "D" + self.id[1:]


@dataclass
class Message:
    """A posted message, updated in place by chat.update."""

    ts: str
    channel: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    edited: bool = False
    reply_broadcast: bool = False
    files: list[dict[str, Any]] | None = None


@dataclass
class SharedFile:
    """A file revbot uploaded (files.getUploadURLExternal, the upload URL, completeUploadExternal)."""

    id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None


@dataclass
class Ephemeral:
    """A message only one user sees, in one channel."""

    id: str
    ts: str
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]]


@dataclass
class OpenView:
    """A modal on a user's screen (or their App Home)."""

    id: str
    user: str
    view: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class _Bucket:
    tokens: float
    at: float


class Workspace:
    """Channels, users, messages, modals and App Home views, behind Slack's Web API rules."""

    def __init__(
        self,
        *,
        bot_token: str,
        users: list[User],
        channels: dict[str, str],
        clock: Callable[[], float] = time.time,
        upload_base: str = UPLOAD_BASE,
    ) -> None:
        """`upload_base` is where the sandbox's routes are served: uploads go to
        `{upload_base}/upload/<id>` and files are shown from `{upload_base}/files/<id>`."""
        self.bot_token = bot_token
        self.upload_base = upload_base.rstrip("/")
        self._files: dict[str, SharedFile] = {}
        self.users = {u.id: u for u in users}
        self.channels = dict(channels)  # name -> id
        self._clock = clock
        self._lock = threading.RLock()
        self._messages: dict[str, list[Message]] = {cid: [] for cid in self.channels.values()}
        self._ephemerals: list[Ephemeral] = []
        self._modals: dict[str, list[OpenView]] = {}
        self._homes: dict[str, OpenView] = {}
        self._triggers: dict[str, tuple[str, float]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._ids = itertools.count(1)
        self._last_ts = 0
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.rate_limited = 0
        self.methods: dict[str, Callable[[dict[str, Any]], Reply]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.list": self._list,
            "conversations.open": self._open_dm,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # -- the Web API ----------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any], token: str | None) -> Reply:
        """Answer one Web API call as Slack would."""
        with self._lock:
            self.calls.append((method, params))
            if token != self.bot_token:
                return error("invalid_auth")
            handler = self.methods.get(method)
            if handler is None:
                return error("unknown_method")
            return handler(params)

    def _auth_test(self, _: dict[str, Any]) -> Reply:
        return ok(
            url="http://127.0.0.1/sandbox",
            team="revbot sandbox",
            user="revbot",
            team_id="T0SANDBOX",
            user_id="U0REVBOT",
            bot_id="B0REVBOT",
        )

    def channel_id(self, ref: Any) -> str | None:
        """Resolve a channel id, #name, name or user id (a DM) to a channel id."""
        if not isinstance(ref, str) or not ref:
            return None
        if ref in self._messages:
            return ref
        name = ref.lstrip("#")
        if name in self.channels:
            return self.channels[name]
        user = self.users.get(ref)
        if user is not None:
            self._messages.setdefault(user.dm_channel, [])
            return user.dm_channel
        return None

    def _next_ts(self) -> str:
        micros = max(int(self._clock() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _allow_post(self, channel: str) -> bool:
        now = self._clock()
        bucket = self._buckets.setdefault(channel, _Bucket(float(POST_BURST), now))
        bucket.tokens = min(float(POST_BURST), bucket.tokens + (now - bucket.at) * POSTS_PER_SECOND)
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _post_message(self, p: dict[str, Any]) -> Reply:
        channel = self.channel_id(p.get("channel"))
        if channel is None:
            return error("channel_not_found")
        problem = check_blocks(p.get("blocks"), MAX_MESSAGE_BLOCKS)
        if problem:
            return error("invalid_blocks", errors=[problem])
        if not p.get("text") and not p.get("blocks"):
            return error("no_text")
        if not self._allow_post(channel):
            self.rate_limited += 1
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
        thread_ts = p.get("thread_ts") or None
        if thread_ts and self._find(channel, thread_ts) is None:
            return error("thread_not_found")
        message = Message(
            ts=self._next_ts(),
            channel=channel,
            text=str(p.get("text") or ""),
            blocks=list(p.get("blocks") or []),
            thread_ts=thread_ts,
            metadata=p.get("metadata"),
            reply_broadcast=bool(p.get("reply_broadcast")),
        )
        self._messages[channel].append(message)
        return ok(channel=channel, ts=message.ts, message=self._as_json(message))

    def _update(self, p: dict[str, Any]) -> Reply:
        channel = self.channel_id(p.get("channel"))
        message = self._find(channel, p.get("ts"))
        if message is None:
            return error("message_not_found")
        problem = check_blocks(p.get("blocks"), MAX_MESSAGE_BLOCKS)
        if problem:
            return error("invalid_blocks", errors=[problem])
        if "text" in p:
            message.text = str(p.get("text") or "")
        if "blocks" in p:
            message.blocks = list(p.get("blocks") or [])
        if p.get("metadata"):
            message.metadata = p["metadata"]
        message.edited = True
        return ok(channel=message.channel, ts=message.ts, text=message.text)

    def _post_ephemeral(self, p: dict[str, Any]) -> Reply:
        channel = self.channel_id(p.get("channel"))
        if channel is None or p.get("user") not in self.users:
            return error("channel_not_found" if channel is None else "user_not_in_channel")
        problem = check_blocks(p.get("blocks"), MAX_MESSAGE_BLOCKS)
        if problem:
            return error("invalid_blocks", errors=[problem])
        eph = self.add_ephemeral(
            channel, str(p["user"]), str(p.get("text") or ""), list(p.get("blocks") or [])
        )
        return ok(message_ts=eph.ts)

    def add_ephemeral(
        self, channel: str, user: str, text: str, blocks: list[dict[str, Any]]
    ) -> Ephemeral:
        """Show a message to one user in one channel."""
        with self._lock:
            eph = Ephemeral(f"e{next(self._ids)}", self._next_ts(), channel, user, text, blocks)
            self._ephemerals.append(eph)
            return eph

    def _permalink(self, p: dict[str, Any]) -> Reply:
        return ok(
            channel=p.get("channel"), permalink=f"/sandbox#{p.get('channel')}/{p.get('message_ts')}"
        )

    def issue_trigger(self, user: str) -> str:
        """A trigger_id for a user's interaction; views.open accepts it for three seconds."""
        with self._lock:
            trigger = f"{next(self._ids)}.{secrets.token_hex(6)}"
            self._triggers[trigger] = (user, self._clock())
            return trigger

    def _trigger_user(self, p: dict[str, Any]) -> str | Reply:
        issued = self._triggers.pop(str(p.get("trigger_id") or ""), None)
        if issued is None:
            return error("invalid_trigger_id")
        user, at = issued
        if self._clock() - at > TRIGGER_LIFETIME_SECONDS:
            return error("expired_trigger_id")
        return user

    def _view_problem(self, view: Any) -> str | None:
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            return "the view must be a modal or home view"
        return check_blocks(view.get("blocks"), MAX_VIEW_BLOCKS, allow_empty=False)

    def _open_view(self, user: str, view: dict[str, Any], *, push: bool) -> Reply:
        opened = OpenView(f"V{next(self._ids):08d}", user, view)
        stack = self._modals.setdefault(user, [])
        if not push:
            stack.clear()
        stack.append(opened)
        return ok(view={**view, "id": opened.id})

    def _views_open(self, p: dict[str, Any]) -> Reply:
        return self._open_with_trigger(p, push=False)

    def _views_push(self, p: dict[str, Any]) -> Reply:
        return self._open_with_trigger(p, push=True)

    def _open_with_trigger(self, p: dict[str, Any], *, push: bool) -> Reply:
        user = self._trigger_user(p)
        if not isinstance(user, str):
            return user
        problem = self._view_problem(p.get("view"))
        if problem:
            return error("invalid_arguments", response_metadata={"messages": [problem]})
        return self._open_view(user, p["view"], push=push)

    def _views_update(self, p: dict[str, Any]) -> Reply:
        problem = self._view_problem(p.get("view"))
        if problem:
            return error("invalid_arguments", response_metadata={"messages": [problem]})
        for stack in self._modals.values():
            for opened in stack:
                if opened.id == p.get("view_id") or opened.view.get("external_id") == p.get(
                    "external_id"
                ):
                    opened.view, opened.errors = p["view"], {}
                    return ok(view={**opened.view, "id": opened.id})
        return error("not_found")

    def _views_publish(self, p: dict[str, Any]) -> Reply:
        user = str(p.get("user_id") or "")
        if user not in self.users:
            return error("user_not_found")
        problem = self._view_problem(p.get("view"))
        if problem:
            return error("invalid_arguments", response_metadata={"messages": [problem]})
        home = self._homes.get(user) or OpenView(f"V{next(self._ids):08d}", user, {})
        home.view = p["view"]
        self._homes[user] = home
        return ok(view={**home.view, "id": home.id})

    def _history(self, p: dict[str, Any]) -> Reply:
        channel = self.channel_id(p.get("channel"))
        if channel is None:
            return error("channel_not_found")
        oldest = float(p.get("oldest") or 0)
        found = [
            m
            for m in reversed(self._messages[channel])
            if m.thread_ts in (None, m.ts) and float(m.ts) > oldest
        ]
        limit = int(p.get("limit") or 100)
        return ok(messages=[self._as_json(m) for m in found[:limit]], has_more=len(found) > limit)

    def _replies(self, p: dict[str, Any]) -> Reply:
        channel = self.channel_id(p.get("channel"))
        parent = self._find(channel, p.get("ts"))
        if channel is None or parent is None:
            return error("thread_not_found")
        thread = [
            m for m in self._messages[channel] if m.ts == parent.ts or m.thread_ts == parent.ts
        ]
        return ok(messages=[self._as_json(m) for m in thread])

    def _list(self, _: dict[str, Any]) -> Reply:
        return ok(
            channels=[
                {"id": cid, "name": name, "is_channel": True, "is_archived": False}
                for name, cid in self.channels.items()
            ],
            response_metadata={"next_cursor": ""},
        )

    def _open_dm(self, p: dict[str, Any]) -> Reply:
        user = self.users.get(str(p.get("users") or ""))
        if user is None:
            return error("user_not_found")
        self._messages.setdefault(user.dm_channel, [])
        return ok(channel={"id": user.dm_channel})

    def _users_info(self, p: dict[str, Any]) -> Reply:
        user = self.users.get(str(p.get("user") or ""))
        if user is None:
            return error("user_not_found")
        return ok(
            user={
                "id": user.id,
                "name": user.name,
                "real_name": user.name,
                "tz": "UTC",
                "profile": {"real_name": user.name, "title": user.title},
            }
        )

    def _get_upload_url(self, p: dict[str, Any]) -> Reply:
        length = str(p.get("length") or "")
        if not p.get("filename") or not length.isdigit() or not 0 < int(length) <= MAX_UPLOAD_BYTES:
            return error("invalid_arguments")
        file_id = f"F{next(self._ids):08d}"
        self._files[file_id] = SharedFile(file_id, str(p["filename"]), int(length))
        return ok(upload_url=f"{self.upload_base}/upload/{file_id}", file_id=file_id)

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        """Take the bytes POSTed to a file's upload URL; False for an unknown or finished upload."""
        with self._lock:
            found = self._files.get(file_id)
            if found is None or found.data is not None or len(data) > MAX_UPLOAD_BYTES:
                return False
            found.data = data
            return True

    def _complete_upload(self, p: dict[str, Any]) -> Reply:
        items = p.get("files")
        if isinstance(items, str):
            try:
                items = json.loads(items)
            except ValueError:
                return error("invalid_arguments")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return error("invalid_arguments")
        found = [self._files.get(str(i.get("id"))) for i in items]
        uploads = [f for f in found if f is not None and f.data is not None]
        if len(uploads) != len(items):
            return error("file_not_found")
        channel = None
        if p.get("channel_id"):
            channel = self.channel_id(p["channel_id"])
            if channel is None:
                return error("channel_not_found")
        for item, upload in zip(items, uploads, strict=True):
            upload.title = str(item.get("title") or upload.filename)
        shared = [self._file_json(f) for f in uploads]
        if channel:
            thread_ts = p.get("thread_ts") or None
            if thread_ts and self._find(channel, thread_ts) is None:
                return error("thread_not_found")
            self._messages[channel].append(
                Message(
                    ts=self._next_ts(),
                    channel=channel,
                    text=str(p.get("initial_comment") or ""),
                    blocks=[],
                    thread_ts=thread_ts,
                    files=shared,
                )
            )
        return ok(files=shared)

    def _file_json(self, f: SharedFile) -> dict[str, Any]:
        return {
            "id": f.id,
            "name": f.filename,
            "title": f.title or f.filename,
            "mimetype": _mimetype(f.filename),
            "size": len(f.data or b""),
            "url_private": f"{self.upload_base}/files/{f.id}",
        }

    def file_bytes(self, file_id: str) -> tuple[bytes, str] | None:
        """A shared file's bytes and MIME type, for GET /sandbox/files/<id>."""
        with self._lock:
            found = self._files.get(file_id)
            if found is None or found.data is None or found.title is None:
                return None
            return found.data, _mimetype(found.filename)

    # -- what the page shows ---------------------------------------------------------------------

    def _find(self, channel: str | None, ts: Any) -> Message | None:
        return next((m for m in self._messages.get(channel or "", []) if m.ts == ts), None)

    @staticmethod
    def _as_json(m: Message) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "ts": m.ts,
            "text": m.text,
            "blocks": m.blocks,
            "bot_id": "B0REVBOT",
        }
        if m.thread_ts:
            data["thread_ts"] = m.thread_ts
        if m.metadata:
            data["metadata"] = m.metadata
        if m.files:
            data["files"] = m.files
        return data

    def message(self, channel: str, ts: str) -> Message | None:
        """One message, for building payloads about it."""
        with self._lock:
            return self._find(channel, ts)

    def timeline(self, channel: str, user: str) -> dict[str, Any]:
        """A channel as one user sees it: top-level messages with their threads, and ephemerals."""
        with self._lock:
            messages = self._messages.get(channel, [])
            top = [m for m in messages if m.thread_ts in (None, m.ts) or m.reply_broadcast]

            def shown(m: Message) -> dict[str, Any]:
                return {
                    "ts": m.ts,
                    "user": None,
                    "bot": True,
                    "username": "revbot",
                    "text": m.text,
                    "blocks": m.blocks,
                    "edited": m.edited,
                    "files": m.files or [],
                }

            return {
                "messages": [
                    {
                        **shown(m),
                        "replies": [
                            shown(r) for r in messages if r.thread_ts == m.ts and r.ts != m.ts
                        ],
                    }
                    for m in top
                ],
                "ephemerals": [
                    {"id": e.id, "ts": e.ts, "text": e.text, "blocks": e.blocks}
                    for e in self._ephemerals
                    if e.channel == channel and e.user == user
                ],
            }

    def top_modal(self, user: str) -> OpenView | None:
        """The modal on top of a user's stack."""
        with self._lock:
            stack = self._modals.get(user) or []
            return stack[-1] if stack else None

    def modal(self, view_id: str) -> OpenView | None:
        """An open modal by id."""
        with self._lock:
            return next((v for s in self._modals.values() for v in s if v.id == view_id), None)

    def home(self, user: str) -> OpenView | None:
        """A user's App Home view, once revbot has published one."""
        with self._lock:
            return self._homes.get(user)

    def close_modal(self, user: str, *, clear: bool = False) -> None:
        """Take the top modal (or the whole stack) off a user's screen."""
        with self._lock:
            stack = self._modals.get(user) or []
            if clear:
                stack.clear()
            elif stack:
                stack.pop()

    def answer_submission(
        self, user: str, view_id: str, answer: dict[str, Any] | None
    ) -> dict[str, str]:
        """Apply revbot's answer to a view submission; returns the errors to show, if any."""
        with self._lock:
            action = (answer or {}).get("response_action")
            opened = self.modal(view_id)
            if action == "errors" and opened is not None:
                opened.errors = dict(answer.get("errors") or {})  # type: ignore[union-attr]
                return opened.errors
            if action == "update" and opened is not None:
                opened.view, opened.errors = answer["view"], {}  # type: ignore[index]
            elif action == "push":
                self._open_view(user, answer["view"], push=True)  # type: ignore[index]
            else:
                self.close_modal(user, clear=action == "clear")
            return {}

    def respond(
        self, channel: str, user: str, message_ts: str | None, body: dict[str, Any]
    ) -> None:
        """Apply a response_url post: ephemeral by default, in channel, or replacing the original."""
        with self._lock:
            text, blocks = str(body.get("text") or ""), list(body.get("blocks") or [])
            original = self._find(channel, message_ts) if message_ts else None
            if body.get("delete_original") and original is not None:
                self._messages[channel].remove(original)
            elif body.get("replace_original") and original is not None:
                original.text, original.blocks, original.edited = text, blocks, True
            elif body.get("response_type") == "in_channel":
                self._messages.setdefault(channel, []).append(
                    Message(self._next_ts(), channel, text, blocks)
                )
            else:
                self.add_ephemeral(channel, user, text, blocks)


def _mimetype(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def check_blocks(blocks: Any, limit: int, *, allow_empty: bool = True) -> str | None:
    """What is wrong with a list of Block Kit blocks by Slack's rules, or None."""
    if blocks is None or blocks == []:
        return None if allow_empty else "a view needs at least one block"
    if not isinstance(blocks, list):
        return "blocks must be a list"
    if len(blocks) > limit:
        return f"no more than {limit} blocks are allowed"
    for index, raw in enumerate(blocks):
        block = Block.parse(raw) if isinstance(raw, dict) else None
        if block is None:
            return f"blocks[{index}] is not a known block type"
        try:
            block.validate_json()
        except SlackObjectFormationError as exc:
            return f"blocks[{index}]: {exc}"
    return None
