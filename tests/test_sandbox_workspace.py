"""The sandbox's Slack applies the rules that matter: token, Block Kit limits, pacing, trigger life."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import make_server

from bot.core import db, handoff
from bot.core.intake import LeadIn, ingest
from bot.sandbox.web import create_api_app
from bot.sandbox.workspace import User, Workspace, check_blocks
from bot.services import slack_client
from jobs import outbox as outbox_job
from tests.conftest import lead_json, make_services, make_settings

TOKEN = "xoxb-sandbox"


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


def workspace(clock: Clock) -> Workspace:
    users = [User("U0REP1", "Ana", "rep"), User("U0MGR1", "Maya", "manager")]
    return Workspace(
        bot_token=TOKEN, users=users, channels={"revenue-pipeline": "C0PIPE"}, clock=clock
    )


def post(ws: Workspace, **params: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    return ws.call(
        "chat.postMessage", {"channel": "#revenue-pipeline", "text": "hi", **params}, TOKEN
    )


def test_every_call_needs_the_bot_token() -> None:
    ws = workspace(Clock())
    assert ws.call("auth.test", {}, "xoxb-wrong")[1] == {"ok": False, "error": "invalid_auth"}
    assert ws.call("auth.test", {}, TOKEN)[1]["ok"] is True


def test_posts_are_paced_per_channel_with_retry_after() -> None:
    clock = Clock()
    ws = workspace(clock)
    answers = [post(ws) for _ in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 429]
    assert answers[3][2] == {"Retry-After": "1"}
    assert ws.rate_limited == 1
    assert post(ws, channel="U0REP1")[0] == 200  # a DM has its own budget
    clock.now += 1.0
    assert post(ws)[0] == 200


def test_block_kit_limits_are_enforced() -> None:
    ws = workspace(Clock())
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    _, body, _ = post(ws, blocks=too_long)
    assert body["error"] == "invalid_blocks"
    assert "3000" in body["errors"][0]
    assert check_blocks([{"type": "divider"}] * 51, 50) == "no more than 50 blocks are allowed"
    assert check_blocks([{"type": "no_such_block"}], 50) == "blocks[0] is not a known block type"
    assert check_blocks([{"type": "divider"}], 50) is None
    assert ws.timeline("C0PIPE", "U0REP1")["messages"] == []


def test_a_trigger_id_opens_one_modal_within_three_seconds() -> None:
    clock = Clock()
    ws = workspace(clock)
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Reject"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Why?"}}],
    }
    fresh = ws.issue_trigger("U0REP1")
    assert ws.call("views.open", {"trigger_id": fresh, "view": view}, TOKEN)[1]["ok"] is True
    assert ws.top_modal("U0REP1") is not None
    assert (
        ws.call("views.open", {"trigger_id": fresh, "view": view}, TOKEN)[1]["error"]
        == "invalid_trigger_id"
    )
    stale = ws.issue_trigger("U0MGR1")
    clock.now += 3.5
    assert (
        ws.call("views.open", {"trigger_id": stale, "view": view}, TOKEN)[1]["error"]
        == "expired_trigger_id"
    )
    assert ws.top_modal("U0MGR1") is None


def test_submission_answers_drive_the_modal_stack() -> None:
    ws = workspace(Clock())
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Reject"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Why?"}}],
    }
    ws.call("views.open", {"trigger_id": ws.issue_trigger("U0REP1"), "view": view}, TOKEN)
    opened = ws.top_modal("U0REP1")
    assert opened is not None
    errors = ws.answer_submission(
        "U0REP1", opened.id, {"response_action": "errors", "errors": {"note": "Say why"}}
    )
    assert errors == {"note": "Say why"}
    assert ws.top_modal("U0REP1") is opened
    assert ws.answer_submission("U0REP1", opened.id, None) == {}
    assert ws.top_modal("U0REP1") is None


def test_response_urls_are_ephemeral_by_default_and_can_replace_the_original() -> None:
    ws = workspace(Clock())
    ts = post(ws)[1]["ts"]
    ws.respond("C0PIPE", "U0REP1", ts, {"text": "only you"})
    assert [e["text"] for e in ws.timeline("C0PIPE", "U0REP1")["ephemerals"]] == ["only you"]
    assert ws.timeline("C0PIPE", "U0MGR1")["ephemerals"] == []
    ws.respond("C0PIPE", "U0REP1", ts, {"text": "replaced", "replace_original": True})
    [message] = ws.timeline("C0PIPE", "U0MGR1")["messages"]
    assert message["text"] == "replaced"
    assert message["edited"] is True


def test_the_sandbox_web_api_serves_as_slack_for_revbot(
    engine: Any, database_url: str, clock: Any
) -> None:
    ws = Workspace(
        bot_token="xoxb-test-token",
        users=[User("UREP1", "Ana", "rep")],
        channels={"revenue-pipeline": "C0PIPE", "revops-alerts": "C0ALERT"},
        clock=lambda: clock().timestamp(),
    )
    server = make_server("127.0.0.1", 0, create_api_app(ws), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        services = make_services(engine, database_url, None, clock=clock)
        services.settings = make_settings(
            database_url, f"http://127.0.0.1:{server.server_port}/api/"
        )
        services.slack = slack_client(services.settings)
        with db.transaction(engine) as session:
            cycle_id = ingest(
                session, LeadIn.model_validate(lead_json()), playbook=services.playbook, now=clock()
            ).cycle_id
        outbox_job.run(services, now=clock())
        [card] = ws.timeline("C0PIPE", "UREP1")["messages"]
        assert "Ana Diaz" in str(card["blocks"])
        with db.transaction(engine) as session:
            handoff.accept(
                session,
                cycle_id,
                "UREP1",
                playbook=services.playbook,
                now=clock.advance(seconds=90),
            )
        outbox_job.run(services, now=clock())
        [card] = ws.timeline("C0PIPE", "UREP1")["messages"]
        assert card["edited"] is True
        assert "Accepted" in str(card["blocks"])
        assert [m for m, _ in ws.calls] == ["chat.postMessage", "chat.update"]
    finally:
        server.shutdown()
