"""The Slack fakes behave like Slack for a real slack_sdk client and for slack_bolt."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import (
    block_action_payload,
    date_state,
    form_body,
    select_state,
    slash_command_form,
    text_state,
    view_submission_payload,
)
from tests.fakes.slack_signing import signed_headers

TOKEN = "xoxb-test-token"
SECRET = "test-signing-secret"
CARD = [{"type": "section", "text": {"type": "mrkdwn", "text": "*New MQL* Ada Lovelace"}}]
LEAD_META = {"event_type": "revbot_lead", "event_payload": {"lead_id": "L-1"}}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """A running fake Slack."""
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    """A real WebClient pointed at the fake; no retries so lost responses surface."""
    return WebClient(base_url=fake.url, token=TOKEN, retry_handlers=[])


def _error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> Any:
    return excinfo.value.response["error"]


# -- Web API ----------------------------------------------------------------------------------


def test_post_update_and_history_with_metadata(fake: FakeSlack, client: WebClient) -> None:
    """An updated message shows its new text and metadata in history."""
    posted = client.chat_postMessage(
        channel="#revenue-pipeline", text="New MQL", blocks=CARD, metadata=LEAD_META
    )
    assert posted["channel"] == "C0PIPELINE"
    assert posted["ts"] == "1700000000.000100"
    assert posted["message"]["blocks"] == CARD

    new_meta = {"event_type": "revbot_lead", "event_payload": {"lead_id": "L-1", "state": "ok"}}
    updated = client.chat_update(
        channel="C0PIPELINE", ts=posted["ts"], text="Accepted", blocks=[], metadata=new_meta
    )
    assert (updated["channel"], updated["ts"], updated["text"]) == (
        "C0PIPELINE",
        posted["ts"],
        "Accepted",
    )

    history = client.conversations_history(channel="C0PIPELINE", include_all_metadata=True)
    [message] = history["messages"]
    assert message["ts"] == posted["ts"]
    assert message["text"] == "Accepted"
    assert message["metadata"] == new_meta
    plain = client.conversations_history(channel="C0PIPELINE")
    assert "metadata" not in plain["messages"][0]

    [stored] = fake.messages("#revenue-pipeline")
    assert stored["text"] == "Accepted"
    assert stored["user"] == "UBOT"
    assert stored["bot_id"] == "BBOT"
    assert fake.calls("chat.update")[0].params["metadata"] == new_meta


def test_history_is_newest_first_and_windowed(client: WebClient) -> None:
    """History is newest first, honours oldest/latest/limit and leaves out thread replies."""
    ts = [client.chat_postMessage(channel="C0ALERTS", text=f"m{i}")["ts"] for i in range(4)]
    assert ts == sorted(ts)
    assert len(set(ts)) == 4
    client.chat_postMessage(channel="C0ALERTS", text="reply", thread_ts=ts[0])

    history = client.conversations_history(channel="C0ALERTS")
    assert [m["text"] for m in history["messages"]] == ["m3", "m2", "m1", "m0"]
    window = client.conversations_history(channel="C0ALERTS", oldest=ts[0], latest=ts[3])
    assert [m["ts"] for m in window["messages"]] == [ts[2], ts[1]]
    limited = client.conversations_history(channel="C0ALERTS", limit=1)
    assert [m["text"] for m in limited["messages"]] == ["m3"]
    assert limited["has_more"] is True
    replies = client.conversations_replies(channel="C0ALERTS", ts=ts[0])
    assert [m["text"] for m in replies["messages"]] == ["m0", "reply"]


def test_clock_dates_message_ts() -> None:
    """With a clock, ts follow it so history filtered by `oldest` finds the messages."""
    now = 1_795_446_000.25
    with FakeSlack(clock=lambda: now) as fake:
        client = WebClient(base_url=fake.url, token=TOKEN, retry_handlers=[])
        first = client.chat_postMessage(channel="C0PIPELINE", text="a")["ts"]
        second = client.chat_postMessage(channel="C0PIPELINE", text="b")["ts"]
        assert (first, second) == ("1795446000.250000", "1795446000.250001")
        recent = client.conversations_history(channel="C0PIPELINE", oldest=f"{now - 5:.6f}")
        assert [m["text"] for m in recent["messages"]] == ["b", "a"]


def test_post_to_user_id_lands_in_dm(fake: FakeSlack, client: WebClient) -> None:
    """Posting to a user id delivers into that user's DM channel."""
    posted = client.chat_postMessage(channel="U123ABC", text="Your lead is waiting")
    assert posted["channel"] == "D123ABC"
    assert [m["text"] for m in fake.messages("D123ABC")] == ["Your lead is waiting"]
    assert client.conversations_open(users="U123ABC")["channel"]["id"] == "D123ABC"


def test_post_validation_errors(fake: FakeSlack, client: WebClient) -> None:
    """Bad posts and updates get Slack's error codes and store nothing."""
    with pytest.raises(SlackApiError) as unknown:
        client.chat_postMessage(channel="#nowhere", text="hi")
    assert _error(unknown) == "channel_not_found"
    with pytest.raises(SlackApiError) as empty:
        client.api_call("chat.postMessage", json={"channel": "C0PIPELINE"})
    assert _error(empty) == "no_text"
    with pytest.raises(SlackApiError) as bad_blocks:
        client.chat_postMessage(channel="C0PIPELINE", text="x", blocks=[{"text": "no type"}])
    assert _error(bad_blocks) == "invalid_blocks"
    with pytest.raises(SlackApiError) as too_many:
        client.chat_postMessage(channel="C0PIPELINE", text="x", blocks=[{"type": "divider"}] * 51)
    assert _error(too_many) == "invalid_blocks"
    with pytest.raises(SlackApiError) as missing:
        client.chat_update(channel="C0PIPELINE", ts="1.000000", text="x")
    assert _error(missing) == "message_not_found"
    with pytest.raises(SlackApiError) as unknown_method:
        client.api_call("files.upload")
    assert _error(unknown_method) == "unknown_method"
    assert fake.messages("C0PIPELINE") == []


def test_form_encoded_post_decodes_json_fields(fake: FakeSlack, client: WebClient) -> None:
    """Form posts have their JSON-encoded fields decoded in the record."""
    client.api_call(
        "chat.postMessage",
        params={"channel": "deal-support", "text": "hi", "blocks": json.dumps(CARD)},
    )
    [recorded] = fake.calls("chat.postMessage")
    assert recorded.params["blocks"] == CARD
    assert recorded.path == "/api/chat.postMessage"
    assert recorded.headers["authorization"] == f"Bearer {TOKEN}"
    assert fake.messages("#deal-support")[0]["blocks"] == CARD


def test_token_form_field_is_accepted(fake: FakeSlack) -> None:
    """A token form field authenticates like a bearer header."""
    anonymous = WebClient(base_url=fake.url, retry_handlers=[])
    assert anonymous.api_call("auth.test", params={"token": TOKEN})["user_id"] == "UBOT"


def test_bad_token_is_invalid_auth(fake: FakeSlack) -> None:
    """A wrong token is rejected with invalid_auth but still recorded."""
    intruder = WebClient(base_url=fake.url, token="xoxb-wrong", retry_handlers=[])
    with pytest.raises(SlackApiError) as excinfo:
        intruder.chat_postMessage(channel="C0PIPELINE", text="hi")
    assert _error(excinfo) == "invalid_auth"
    assert fake.messages("C0PIPELINE") == []
    assert len(fake.calls("chat.postMessage")) == 1


def test_misc_methods(fake: FakeSlack, client: WebClient) -> None:
    """auth.test, users.info, chat.getPermalink and chat.postEphemeral answer sensibly."""
    auth = client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("UBOT", "BBOT", "T0TEAM")
    user = client.users_info(user="U0REP1")["user"]
    assert user["profile"]["email"] == "u0rep1@example.com"
    assert user["tz"] == "UTC"
    ts = client.chat_postMessage(channel="C0PIPELINE", text="card")["ts"]
    link = client.chat_getPermalink(channel="C0PIPELINE", message_ts=ts)["permalink"]
    assert link.endswith("/archives/C0PIPELINE/p1700000000000100")
    ephemeral = client.chat_postEphemeral(channel="C0PIPELINE", user="U0REP1", text="only you")
    assert ephemeral["message_ts"]
    assert fake.calls("chat.postEphemeral")[0].params["user"] == "U0REP1"


def test_views_open_update_push(fake: FakeSlack, client: WebClient) -> None:
    """Modals can be opened, updated and pushed; oversized views are refused."""
    modal = {
        "type": "modal",
        "callback_id": "reject_lead",
        "title": {"type": "plain_text", "text": "Reject lead"},
        "blocks": [{"type": "divider"}],
    }
    opened = client.views_open(trigger_id="trig-1", view=modal)["view"]
    assert opened["id"].startswith("V")
    assert fake.views() == [{**modal, "id": opened["id"]}]
    client.views_update(view_id=opened["id"], view={**modal, "blocks": []})
    assert fake.views()[0]["blocks"] == []
    client.views_push(trigger_id="trig-2", view=modal)
    assert len(fake.views()) == 2
    with pytest.raises(SlackApiError) as too_big:
        client.views_open(
            trigger_id="trig-3", view={**modal, "blocks": [{"type": "divider"}] * 101}
        )
    assert _error(too_big) == "invalid_arguments"
    with pytest.raises(SlackApiError) as no_trigger:
        client.api_call("views.open", json={"view": modal})
    assert _error(no_trigger) == "invalid_arguments"
    client.views_publish(user_id="U0REP1", view={"type": "home", "blocks": []})
    assert fake.home_view("U0REP1") == {"type": "home", "blocks": [], "id": "VHOME"}


# -- fault injection --------------------------------------------------------------------------


def test_fail_next_retry_after_is_429(fake: FakeSlack, client: WebClient) -> None:
    """An injected rate limit is a 429 with Retry-After and changes no state."""
    fake.fail_next("chat.postMessage", retry_after=3)
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C0PIPELINE", text="hi")
    assert excinfo.value.response.status_code == 429
    assert excinfo.value.response.headers["Retry-After"] == "3"
    assert _error(excinfo) == "ratelimited"
    assert fake.messages("C0PIPELINE") == []
    client.chat_postMessage(channel="C0PIPELINE", text="hi")
    assert len(fake.calls("chat.postMessage")) == 2
    assert len(fake.messages("C0PIPELINE")) == 1


def test_fail_next_error_and_status(fake: FakeSlack, client: WebClient) -> None:
    """Injected Slack errors and HTTP failures apply to the next calls only."""
    fake.fail_next("chat.update", error="cant_update_message", times=2)
    fake.fail_next("auth.test", status=503)
    for _ in range(2):
        with pytest.raises(SlackApiError) as excinfo:
            client.chat_update(channel="C0PIPELINE", ts="1.0", text="x")
        assert _error(excinfo) == "cant_update_message"
    with pytest.raises(SlackApiError) as excinfo:
        client.auth_test()
    assert excinfo.value.response.status_code == 503
    assert client.auth_test()["ok"] is True


def test_dropped_response_still_stores_message(fake: FakeSlack, client: WebClient) -> None:
    """A lost response raises in the client although Slack kept the message."""
    fake.drop_response_next("chat.postMessage")
    with pytest.raises(OSError, match=r"(?i)closed|disconnect|reset|aborted"):
        client.chat_postMessage(channel="#revenue-pipeline", text="lost ack")
    assert [m["text"] for m in fake.messages("C0PIPELINE")] == ["lost ack"]
    assert client.chat_postMessage(channel="C0PIPELINE", text="next")["ok"] is True


def test_rate_limit_per_channel() -> None:
    """The token bucket lets `burst` posts through per channel, then answers 429."""
    with FakeSlack(rate_limit=True, burst=3, per_second=1.0) as fake:
        client = WebClient(base_url=fake.url, token=TOKEN, retry_handlers=[])
        outcomes = []
        for i in range(5):
            try:
                response = client.chat_postMessage(channel="C0PIPELINE", text=f"m{i}")
            except SlackApiError as exc:
                response = exc.response
            outcomes.append(
                (response.status_code, response.get("error"), response.headers.get("Retry-After"))
            )
        assert outcomes == [(200, None, None)] * 3 + [(429, "ratelimited", "1")] * 2
        assert fake.rate_limited_count == 2
        assert len(fake.calls("chat.postMessage")) == 5
        assert len(fake.messages("C0PIPELINE")) == 3
        # Buckets are per channel.
        assert client.chat_postMessage(channel="C0DEALSUP", text="other")["ok"] is True


def test_response_url_receives_webhook_post(fake: FakeSlack) -> None:
    """WebhookClient posts to a response_url are recorded."""
    url = fake.response_url("r7")
    response = WebhookClient(url).send(text="Got it", replace_original=True)
    assert response.status_code == 200
    [recorded] = fake.calls("response_url")
    assert recorded.path == "/response/r7"
    assert recorded.params == {"text": "Got it", "replace_original": True}


def test_wait_for_sees_calls_from_other_threads(fake: FakeSlack, client: WebClient) -> None:
    """wait_for returns calls made concurrently and fails loudly on timeout."""
    timer = threading.Timer(
        0.1, lambda: client.chat_postMessage(channel="C0PIPELINE", text="later")
    )
    timer.start()
    try:
        [recorded] = fake.wait_for(
            "chat.postMessage", predicate=lambda r: r.params.get("text") == "later"
        )
    finally:
        timer.join()
    assert recorded.params["channel"] == "C0PIPELINE"
    with pytest.raises(AssertionError, match=r"views\.open"):
        fake.wait_for("views.open", timeout=0.05)


def test_concurrent_posts_get_unique_ts(fake: FakeSlack, client: WebClient) -> None:
    """Posts from many threads are all stored, each with its own ts."""
    threads = [
        threading.Thread(
            target=client.chat_postMessage, kwargs={"channel": "C0PIPELINE", "text": str(i)}
        )
        for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = fake.messages("C0PIPELINE")
    assert len(stored) == 20
    assert len({m["ts"] for m in stored}) == 20


# -- signing and payloads ---------------------------------------------------------------------


def test_signed_headers_match_slack_sdk_verifier() -> None:
    """signed_headers agrees with slack_sdk's SignatureVerifier."""
    body = urlencode({"command": "/lead", "text": "ada@example.com"}).encode()
    headers = signed_headers(body, SECRET, timestamp=1_700_000_000)
    assert headers["X-Slack-Request-Timestamp"] == "1700000000"
    verifier = SignatureVerifier(SECRET, clock=_FixedClock(1_700_000_010))
    assert verifier.is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    expected = verifier.generate_signature(timestamp="1700000000", body=body)
    assert headers["X-Slack-Signature"] == expected
    assert not SignatureVerifier("other-secret", clock=_FixedClock(1_700_000_010)).is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    fresh = signed_headers(body, SECRET)
    assert SignatureVerifier(SECRET).is_valid_request(body, fresh)


class _FixedClock:
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def _bolt_app(fake: FakeSlack) -> App:
    # Bolt still authorizes each request with auth.test, so its client must talk to the fake.
    return App(
        client=WebClient(base_url=fake.url, token=TOKEN),
        signing_secret=SECRET,
        request_verification_enabled=False,
        token_verification_enabled=False,
        process_before_response=True,
    )


def test_block_action_payload_reaches_bolt_listener(fake: FakeSlack) -> None:
    """Bolt routes a built block_actions payload to its action listener."""
    app = _bolt_app(fake)
    seen: dict[str, Any] = {}

    @app.action("lead_accept")
    def on_accept(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        seen.update(
            action_id=action["action_id"],
            value=action["value"],
            user=body["user"]["id"],
            channel=body["channel"]["id"],
            ts=body["container"]["message_ts"],
        )

    payload = block_action_payload(
        user_id="U0REP1", action_id="lead_accept", value="lead:42", response_url="https://x/r"
    )
    assert payload["type"] == "block_actions"
    assert payload["api_app_id"] == "A0REVBOT"
    assert len(payload["actions"]) == 1
    assert "function_data" not in payload
    body = form_body(payload)
    assert body.startswith(b"payload=")
    response = app.dispatch(BoltRequest(body=body.decode(), headers=signed_headers(body, SECRET)))
    assert response.status == 200
    assert seen == {
        "action_id": "lead_accept",
        "value": "lead:42",
        "user": "U0REP1",
        "channel": "C0PIPELINE",
        "ts": "1700000000.000100",
    }


def test_view_submission_payload_reaches_bolt_listener(fake: FakeSlack) -> None:
    """Bolt routes a built view_submission payload with its state values."""
    app = _bolt_app(fake)
    seen: dict[str, Any] = {}

    @app.view("reject_lead")
    def on_submit(ack: Any, view: dict[str, Any], body: dict[str, Any]) -> None:
        ack()
        seen.update(user=body["user"]["id"], meta=view["private_metadata"])
        seen["values"] = view["state"]["values"]

    values = {
        "reason": {"value": select_state("not_icp")},
        "note": {"value": text_state("too small")},
        "recycle": {"value": date_state("2026-12-01")},
        "empty": {"value": select_state(None)},
    }
    payload = view_submission_payload(
        user_id="U0REP1", callback_id="reject_lead", private_metadata='{"lead": 42}', values=values
    )
    body = form_body(payload)
    response = app.dispatch(BoltRequest(body=body.decode(), headers=signed_headers(body, SECRET)))
    assert response.status == 200
    assert seen["user"] == "U0REP1"
    assert seen["meta"] == '{"lead": 42}'
    assert seen["values"]["reason"]["value"]["selected_option"]["value"] == "not_icp"
    assert seen["values"]["note"]["value"]["value"] == "too small"
    assert seen["values"]["recycle"]["value"]["selected_date"] == "2026-12-01"
    assert seen["values"]["empty"]["value"]["selected_option"] is None


def test_signed_slash_command_is_verified_by_bolt(fake: FakeSlack) -> None:
    """Bolt accepts a correctly signed slash command and rejects a forged one."""
    # Full verification path: Bolt checks the signature and authorizes via auth.test on the fake.
    app = App(
        signing_secret=SECRET,
        client=WebClient(base_url=fake.url, token=TOKEN),
        process_before_response=True,
    )
    seen: dict[str, Any] = {}

    @app.command("/lead")
    def on_lead(ack: Any, command: dict[str, Any]) -> None:
        ack()
        seen.update(command)

    form = slash_command_form(command="/lead", text="ada@example.com", user_id="U0REP1")
    assert set(form.values()) >= {"/lead", "ada@example.com", "U0REP1", "C0PIPELINE"}
    body = urlencode(form).encode()
    good = app.dispatch(BoltRequest(body=body.decode(), headers=signed_headers(body, SECRET)))
    assert good.status == 200
    assert seen["command"] == "/lead"
    assert seen["text"] == "ada@example.com"
    assert seen["user_id"] == "U0REP1"
    assert seen["channel_name"] == "revenue-pipeline"
    forged = app.dispatch(BoltRequest(body=body.decode(), headers=signed_headers(body, "nope")))
    assert forged.status == 401
    assert fake.calls("auth.test")
