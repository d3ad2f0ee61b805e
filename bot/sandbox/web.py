"""The sandbox's HTTP side: its Web API for revbot's WebClient, and the page a person uses."""

from __future__ import annotations

import json
import secrets
from importlib import resources
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request, send_from_directory
from pydantic import SecretStr

from bot.core.db import transaction
from bot.core.intake import LeadIn, ingest, validate_lead
from bot.core.metrics import week_bounds
from bot.core.playbook import Playbook, resolve_playbook_path
from bot.core.settings import Settings
from bot.sandbox.interactions import Interactions
from bot.sandbox.samples import sample_mqls, sandbox_users, seed_deals
from bot.sandbox.workspace import UPLOAD_BASE, OpenView, Workspace
from bot.services import Services
from bot.views.deal_support import SHORTCUT
from jobs import deal_support_sla as deal_support_sla_job
from jobs import digest as digest_job
from jobs import sla as sla_job

STATIC = Path(__file__).resolve().parent / "static"
SANDBOX_DATABASE = "revbot-sandbox.db"
COMMANDS = ["/revbot", "/deal-support"]
JSON_PARAMS = ("blocks", "metadata", "view", "attachments")


def sandbox_settings(settings: Settings, cwd: Path) -> Settings:
    """Settings that point revbot at the sandbox: local tokens, its Web API, its own database."""
    update: dict[str, Any] = {
        "slack_bot_token": SecretStr(f"xoxb-sandbox-{secrets.token_hex(12)}"),
        "slack_signing_secret": SecretStr(secrets.token_hex(16)),
        "slack_app_token": None,
        "slack_api_url": f"http://{_local_host(settings)}:{settings.port}/sandbox/api/",
    }
    if "database_url" not in settings.model_fields_set:
        update["database_url"] = f"sqlite:///{SANDBOX_DATABASE}"
    if resolve_playbook_path(settings.playbook_path, cwd) is None:
        update["playbook_path"] = Path(
            str(resources.files("bot.sandbox").joinpath("sample_playbook.yml"))
        )
    return settings.model_copy(update=update)


def _local_host(settings: Settings) -> str:
    return "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104


def fresh_sandbox_database(settings: Settings, cwd: Path) -> bool:
    """Start the sandbox's own SQLite file afresh (its workspace lives in memory); True if it did."""
    if settings.database_url != f"sqlite:///{SANDBOX_DATABASE}":
        return False
    for suffix in ("", "-wal", "-shm"):
        (cwd / f"{SANDBOX_DATABASE}{suffix}").unlink(missing_ok=True)
    return True


def build_workspace(
    playbook: Playbook, bot_token: str, *, upload_base: str = UPLOAD_BASE
) -> Workspace:
    """A workspace with the playbook's channels and its team (plus a marketer)."""
    names = [playbook.channels.pipeline, playbook.channels.deal_support, playbook.channels.digest]
    if playbook.channels.alerts:
        names.append(playbook.channels.alerts)
    channels: dict[str, str] = {}
    for ref in names:
        name = ref.lstrip("#")
        channels.setdefault(
            name, ref if not ref.startswith("#") else "C0" + name.upper().replace("-", "")[:9]
        )
    return Workspace(
        bot_token=bot_token,
        users=sandbox_users(playbook),
        channels=channels,
        upload_base=upload_base,
    )


def install_sandbox(web: Flask, services: Services) -> Workspace:
    """Serve the sandbox (page, actions, Web API) from revbot's own HTTP app."""
    settings = services.settings
    assert settings.slack_bot_token is not None
    assert settings.slack_signing_secret is not None
    base = f"http://{_local_host(settings)}:{settings.port}"
    workspace = build_workspace(
        services.playbook,
        settings.slack_bot_token.get_secret_value(),
        upload_base=f"{base}/sandbox",
    )
    interactions = Interactions(
        workspace,
        events_url=f"{base}/slack/events",
        respond_base=f"{base}/sandbox/respond/",
        signing_secret=settings.slack_signing_secret.get_secret_value(),
    )
    web.register_blueprint(_blueprint(services, workspace, interactions))
    if services.crm.name == "local":
        with transaction(services.engine) as session:
            seed_deals(session)
    return workspace


def _blueprint(services: Services, workspace: Workspace, interactions: Interactions) -> Blueprint:
    page = Blueprint("sandbox", __name__)
    pipeline = workspace.channel_id(services.playbook.channels.pipeline) or next(
        iter(workspace.channels.values())
    )

    @page.get("/sandbox")
    def index() -> Any:
        return send_from_directory(STATIC, "sandbox.html")

    @page.get("/sandbox/static/<path:name>")
    def static(name: str) -> Any:
        return send_from_directory(STATIC, name)

    @page.route("/sandbox/api/<method>", methods=["GET", "POST"])
    def web_api(method: str) -> Any:
        return _api_call(workspace, method)

    @page.post("/sandbox/upload/<file_id>")
    def upload(file_id: str) -> Any:
        # files_upload_v2 POSTs the file's raw bytes to the URL files.getUploadURLExternal gave.
        received = workspace.receive_upload(file_id, request.get_data())
        return (f"OK - {request.content_length or 0}", 200) if received else ("no such upload", 404)

    @page.get("/sandbox/files/<file_id>")
    def shared_file(file_id: str) -> Any:
        found = workspace.file_bytes(file_id)
        if found is None:
            return "file_not_found", 404
        data, mimetype = found
        return Response(data, mimetype=mimetype)

    @page.post("/sandbox/respond/<key>")
    def respond(key: str) -> Any:
        delivered = interactions.respond(key, request.get_json(silent=True) or {})
        return (jsonify(ok=True), 200) if delivered else (jsonify(ok=False, error="used_url"), 404)

    @page.get("/sandbox/state")
    def state() -> Any:
        user = request.args.get("user") or next(iter(workspace.users))
        if user not in workspace.users:
            return jsonify(error="unknown user"), 400
        channel = request.args.get("channel") or pipeline
        me = workspace.users[user]
        channels = [
            {"id": cid, "name": name, "kind": "channel"} for name, cid in workspace.channels.items()
        ]
        channels += [
            {"id": me.dm_channel, "name": "revbot", "kind": "dm"},
            {"id": "home", "name": "revbot (Home)", "kind": "home"},
        ]
        shown = (
            {"messages": [], "ephemerals": []}
            if channel == "home"
            else workspace.timeline(channel, user)
        )
        modal = workspace.top_modal(user)
        home = workspace.home(user) if channel == "home" else None
        return jsonify(
            me=user,
            users=[
                {"id": u.id, "name": u.name, "role": u.role, "title": u.title}
                for u in workspace.users.values()
            ],
            channels=channels,
            channel=channel,
            **shown,
            modal={"id": modal.id, "view": modal.view, "errors": modal.errors} if modal else None,
            home={**home.view, "id": home.id} if home else None,
            features={"sample_mqls": True, "sla_sweep": True, "digest": True},
            commands=COMMANDS,
            notice=None,
        )

    @page.post("/sandbox/act")
    def act() -> Any:
        body = request.get_json(silent=True) or {}
        kind = body.get("type")
        if kind == "sample_mqls":
            return jsonify(ok=True, **_add_samples(services))
        if kind == "sla_sweep":
            steps = sla_job.run(services, now=services.clock())
            steps += deal_support_sla_job.run(services, now=services.clock())
            return jsonify(ok=True, steps=steps)
        if kind == "digest":
            # The sandbox shows this week so far (the scheduled digest covers the last full week).
            now = services.clock()
            queued = digest_job.queue(services, week_bounds(services.playbook, now), now=now)
            services.notify()
            return jsonify(ok=True, queued=queued)
        user = body.get("user")
        if user not in workspace.users:
            return jsonify(ok=False, error="unknown user"), 400
        handler = {
            "click": _click,
            "select": _click,
            "submit": _submit,
            "close": _close,
            "options": _options,
            "command": _command,
            "shortcut": _shortcut,
            "home": _home,
        }.get(str(kind))
        if handler is None:
            return jsonify(ok=False, error=f"unknown action {kind!r}"), 400
        return handler(workspace, interactions, user, body)

    return page


def _api_call(workspace: Workspace, method: str) -> Any:
    params: dict[str, Any] = dict(request.args)
    if request.is_json:
        params.update(request.get_json(silent=True) or {})
    else:
        params.update(request.form)
    for name in JSON_PARAMS:
        if isinstance(params.get(name), str):
            try:
                params[name] = json.loads(params[name])
            except ValueError:
                return jsonify(ok=False, error=f"invalid_{name}")
    auth = request.headers.get("Authorization", "")
    token = (
        auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.pop("token", None)
    )
    status, body, headers = workspace.call(method, params, token)
    return jsonify(body), status, headers


def create_api_app(workspace: Workspace) -> Flask:
    """The workspace's Web API on its own, at /api/<method>: a stand-in Slack for other programs and tests."""
    api = Flask("revbot-sandbox-api")
    api.add_url_rule(
        "/api/<method>", "api", lambda method: _api_call(workspace, method), methods=["GET", "POST"]
    )
    return api


def _view_for(workspace: Workspace, user: str, view_id: Any) -> OpenView | None:
    if not view_id:
        return None
    home = workspace.home(user)
    return home if home is not None and home.id == view_id else workspace.modal(str(view_id))


def _answer(response: Any) -> Any:
    if response.status_code >= 400:
        return jsonify(ok=False, error=f"revbot answered HTTP {response.status_code}")
    return jsonify(ok=True)


def _click(
    workspace: Workspace, interactions: Interactions, user: str, body: dict[str, Any]
) -> Any:
    action: dict[str, Any] = {"action_id": body.get("action_id"), "block_id": body.get("block_id")}
    if body.get("type") == "select":
        action.update(
            type="static_select",
            selected_option={
                "value": body.get("value"),
                "text": {"type": "plain_text", "text": str(body.get("value"))},
            },
        )
    else:
        action.update(
            type="button",
            value=body.get("value") or "",
            text={"type": "plain_text", "text": str(body.get("action_id"))},
        )
    view = _view_for(workspace, user, body.get("view_id"))
    if view is None and (not body.get("channel") or not body.get("message_ts")):
        return jsonify(ok=False, error="a click needs a message or a view"), 400
    return _answer(
        interactions.click(
            user, action, channel=body.get("channel"), message_ts=body.get("message_ts"), view=view
        )
    )


def _submit(
    workspace: Workspace, interactions: Interactions, user: str, body: dict[str, Any]
) -> Any:
    view = workspace.modal(str(body.get("view_id")))
    if view is None:
        return jsonify(ok=False, error="that modal is no longer open"), 404
    response = interactions.submit(user, view, body.get("values") or {})
    if response.status_code >= 400:
        return _answer(response)
    answer = response.json() if response.content.strip() else None
    return jsonify(ok=True, errors=workspace.answer_submission(user, view.id, answer))


def _close(
    workspace: Workspace, interactions: Interactions, user: str, body: dict[str, Any]
) -> Any:
    view = workspace.modal(str(body.get("view_id")))
    workspace.close_modal(user)
    if view is not None:
        interactions.close(user, view)
    return jsonify(ok=True)


def _options(
    workspace: Workspace, interactions: Interactions, user: str, body: dict[str, Any]
) -> Any:
    view = workspace.modal(str(body.get("view_id")))
    if view is None:
        return jsonify(ok=False, error="that modal is no longer open"), 404
    response = interactions.suggest(
        user,
        view,
        str(body.get("action_id")),
        str(body.get("block_id")),
        str(body.get("value") or ""),
    )
    options = response.json().get("options", []) if response.ok and response.content.strip() else []
    return jsonify(ok=True, options=options)


def _command(
    workspace: Workspace, interactions: Interactions, user: str, body: dict[str, Any]
) -> Any:
    channel = str(body.get("channel") or "")
    text = str(body.get("text") or "").strip()
    if not text.startswith("/") or workspace.channel_id(channel) is None:
        return jsonify(ok=False, error="type a slash command, such as /revbot help"), 400
    response = interactions.command(user, workspace.channel_id(channel) or channel, text)
    if response.status_code == 404:
        # What Slack shows when no app handles the command.
        workspace.add_ephemeral(
            channel, user, f'{text.split()[0]} failed with the error "dispatch_failed"', []
        )
    elif response.content.strip():
        answer = (
            response.json()
            if response.headers.get("Content-Type", "").startswith("application/json")
            else {"text": response.text}
        )
        workspace.respond(channel, user, None, answer)
    return _answer(response) if response.status_code != 404 else jsonify(ok=True)


def _shortcut(
    workspace: Workspace, interactions: Interactions, user: str, body: dict[str, Any]
) -> Any:
    channel, ts = str(body.get("channel") or ""), str(body.get("message_ts") or "")
    if workspace.message(channel, ts) is None:
        return jsonify(ok=False, error="a shortcut needs a message"), 400
    return _answer(
        interactions.message_shortcut(
            user, str(body.get("callback_id") or SHORTCUT), channel=channel, message_ts=ts
        )
    )


def _home(workspace: Workspace, interactions: Interactions, user: str, body: dict[str, Any]) -> Any:
    response = interactions.home_opened(user)
    # An app with no App Home listener leaves the tab empty, as in Slack; that is not an error.
    return jsonify(ok=True) if response.status_code == 404 else _answer(response)


def _add_samples(services: Services) -> dict[str, int]:
    counts = {"created": 0, "duplicate": 0, "requalified": 0}
    now = services.clock()
    for data in sample_mqls(now):
        checked = validate_lead(data)
        if not isinstance(checked, LeadIn):
            continue
        with transaction(services.engine) as session:
            counts[ingest(session, checked, playbook=services.playbook, now=now).status] += 1
    services.notify()
    return counts
