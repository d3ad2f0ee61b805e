"""#deal-support listeners: /deal-support, the message shortcut, the opportunity search, and the
card's Take it / Mark delivered / Can't do it buttons with their modals."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from cachetools import TTLCache
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core import deal_support, outbox
from bot.core.crm import CrmError, Deal
from bot.core.db import reading, transaction
from bot.core.deal_support import DealSupportRefused, InvalidForm, RequestForm
from bot.services import Services
from bot.views.deal_support import (
    ASSET,
    DEAL,
    DEAL_SEARCH,
    DECLINE,
    DECLINE_VIEW,
    DELIVER,
    DELIVER_VIEW,
    NOTE,
    REASON,
    REQUEST_VIEW,
    SHORTCUT,
    TAKE,
    build_deal_gone,
    build_deal_options,
    build_decline_modal,
    build_deliver_modal,
    build_listing,
    build_request_modal,
    build_usage,
    form_values,
    metadata_of,
    request_id_of,
    selected_label,
)

log = logging.getLogger(__name__)

CRM_TIMEOUT_SECONDS = 2.0  # Slack wants an answer within 3 s; the rest is revbot's own work
GROUP_CACHE_FOR = timedelta(minutes=5)
SEEN_DEALS_SECONDS = 1800
MAX_QUERY = 100
STALE_BUTTON = "This card is out of date; revbot cannot tell which request it is about."
UNREADABLE = (
    "revbot can't read that message (it has no text revbot can see, only files or "
    "attachments). Use `/deal-support` and describe what you need instead."
)
_PERMALINK_PARTS = (
    re.compile(r"^[a-z0-9][a-z0-9-]*$"),
    re.compile(r"^[CGD][A-Z0-9]{2,}$"),
    re.compile(r"^\d+\.\d+$"),
)
_crm_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="revbot-crm-lookup")

T = TypeVar("T")


def within(seconds: float, call: Callable[[], T]) -> T:
    """Run a CRM call on the lookup pool; TimeoutError when it takes longer than `seconds`
    (the call finishes in the background, its answer unused)."""
    try:
        return _crm_pool.submit(call).result(timeout=seconds)
    except FutureTimeout:
        raise TimeoutError(f"no answer within {seconds:.0f}s") from None


class MarketerGroup:
    """Members of the playbook's marketer user group (`usergroups.users.list`), cached briefly."""

    def __init__(self, client: WebClient | None, group: str | None, clock: Callable[[], datetime]):
        self._client, self._group, self._clock = client, group, clock
        self._members: frozenset[str] = frozenset()
        self._fetched_at: datetime | None = None
        self._lock = threading.Lock()

    def has(self, user_id: str) -> bool:
        """True when `user_id` is in the group (False without a group or when Slack fails)."""
        if self._group is None or self._client is None:
            return False
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= GROUP_CACHE_FOR:
                try:
                    response = self._client.usergroups_users_list(usergroup=self._group)
                    self._members = frozenset(response.get("users") or [])
                    self._fetched_at = now
                except (SlackApiError, OSError) as exc:
                    log.warning("could not read the marketer user group: %s", type(exc).__name__)
            return user_id in self._members


def readable_text(message: dict[str, Any]) -> str:
    """The text of a message the shortcut was used on (its blocks' text when `text` is empty)."""
    text = str(message.get("text") or "").strip()
    if text:
        return text
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("text", "mrkdwn", "plain_text") and isinstance(
                node.get("text"), str
            ):
                parts.append(node["text"])
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.get("blocks") or [])
    return " ".join(p.strip() for p in parts if p.strip())


def permalink(shortcut: dict[str, Any]) -> str | None:
    """The message's permalink, built from the payload (no API call before the modal opens)."""
    domain = str((shortcut.get("team") or {}).get("domain") or "")
    channel = str((shortcut.get("channel") or {}).get("id") or "")
    ts = str(shortcut.get("message_ts") or (shortcut.get("message") or {}).get("ts") or "")
    if not all(p.match(v) for p, v in zip(_PERMALINK_PARTS, (domain, channel, ts), strict=True)):
        return None
    return f"https://{domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"


def _ephemeral(respond: Respond, text: str) -> None:
    respond(text=text, response_type="ephemeral", replace_original=False)


def _clicked(body: dict[str, Any]) -> int | None:
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def register(app: App, services: Services) -> None:
    """Attach the #deal-support listeners."""
    playbook = services.playbook
    group = MarketerGroup(services.slack, playbook.deal_support.marketer_group, services.clock)

    def in_group(user_id: str) -> bool:
        return not deal_support.is_marketer(playbook, user_id) and group.has(user_id)

    def request_modal(details: str | None = None, source: str | None = None) -> dict[str, Any]:
        with reading(services.engine) as session:
            search = deal_support.crm_has_deals(session, services.crm.name)
        today = services.clock().astimezone(playbook.zone).date()
        return build_request_modal(
            playbook, search=search, details=details, source_permalink=source, today=today
        )

    @app.command("/deal-support")
    def on_command(ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        words = (command.get("text") or "").split()
        if not words:
            ack()
            client.views_open(trigger_id=command["trigger_id"], view=request_modal())
            return
        if words[0].lower() != "list" or len(words) > 1:
            ack(**build_usage(command.get("text", "").strip()))
            return
        ack()
        user_id = command["user_id"]
        marketer = deal_support.is_marketer(playbook, user_id) or group.has(user_id)
        with reading(services.engine) as session:
            found = deal_support.listing(session, user_id, marketer=marketer)
        respond(**build_listing(found, playbook), replace_original=False)

    @app.shortcut(SHORTCUT)
    def on_shortcut(
        ack: Ack, shortcut: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        text = readable_text(shortcut.get("message") or {})
        if not text:
            _ephemeral(respond, UNREADABLE)
            return
        view = request_modal(details=text[: deal_support.MAX_DETAILS], source=permalink(shortcut))
        client.views_open(trigger_id=shortcut["trigger_id"], view=view)

    # Deals the opportunity search just offered: submitting one of them needs no CRM call
    # before the ack (the CRM may take seconds; Slack waits three).
    seen: TTLCache[str, Deal] = TTLCache(maxsize=4096, ttl=SEEN_DEALS_SECONDS)
    seen_lock = threading.Lock()

    @app.options(DEAL_SEARCH)
    def on_deal_search(ack: Ack, payload: dict[str, Any]) -> None:
        typed = str(payload.get("value") or "").strip()[:MAX_QUERY]
        if len(typed) < 2:
            ack(options=[])
            return
        try:
            deals = within(CRM_TIMEOUT_SECONDS, lambda: services.crm.search_deals(typed, limit=20))
        except (TimeoutError, CrmError) as exc:
            log.warning("opportunity search failed: %s", type(exc).__name__)
            ack(**build_deal_options([], typed=typed, failed=True))
            return
        with seen_lock:
            seen.update((deal.id, deal) for deal in deals)
        ack(**build_deal_options(deals, typed=typed))

    def store_request(requester: str, form: RequestForm, deal: Deal | None, now: datetime) -> None:
        with transaction(services.engine) as session:
            deal_support.open_request(session, playbook, requester, form, deal, now=now)
        services.notify()

    def store_with_fresh_deal(
        requester: str, form: RequestForm, chosen: Deal, view_id: str, now: datetime
    ) -> None:
        """After the ack: read the chosen deal for the card's facts. A CRM that fails keeps the
        ask (the card shows the name picked); a deal the CRM no longer holds is DMed, not posted."""
        try:
            deal = services.crm.get_deal(chosen.id)
        except (CrmError, OSError) as exc:
            log.warning(
                "opportunity lookup failed (%s); the card shows its name", type(exc).__name__
            )
            deal = chosen
        try:
            if deal is not None:
                store_request(requester, form, deal, now)
                return
            gone = build_deal_gone(chosen.name, form.details)
            with transaction(services.engine) as session:
                outbox.enqueue_message(
                    session,
                    key=f"ds:deal-gone:{view_id}",
                    to=requester,
                    text=gone["text"],
                    blocks=gone["blocks"],
                    now=now,
                )
            services.notify()
        except Exception:
            log.exception("could not store the #deal-support request of %s", requester)

    @app.view(REQUEST_VIEW)
    def on_request(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values, requester, now = form_values(view), body["user"]["id"], services.clock()
        deal_id, deal_name = deal_support.parse_deal_choice(values.get(DEAL))
        with seen_lock:
            deal = seen.get(deal_id) if deal_id is not None else None
        source = metadata_of(view).get("source")
        form = RequestForm(
            deal_id=deal_id,
            deal_name=deal_name,
            ask_type=values.get("ask_type"),
            competitor=values.get("competitor"),
            due_on=_date(values.get("due_on")),
            details=values.get("details"),
            source_permalink=source if isinstance(source, str) else None,
        )
        if deal_id is not None and deal is None:
            # Offered by a search in another process or long ago: check the form, ack, then read
            # the deal (the CRM may take seconds; Slack waits three).
            chosen = Deal(id=deal_id, name=selected_label(view, DEAL) or deal_id)
            today = now.astimezone(playbook.zone).date()
            errors = deal_support.validate_request(playbook, form, chosen, today=today)
            if errors:
                ack(response_action="errors", errors=errors)
                return
            ack()
            _crm_pool.submit(
                store_with_fresh_deal,
                requester,
                form,
                chosen,
                str(view.get("id") or now.timestamp()),
                now,
            )
            return
        try:
            store_request(requester, form, deal, now)
        except InvalidForm as invalid:
            ack(response_action="errors", errors=invalid.errors)
            return
        ack()

    @app.action(TAKE)
    def on_take(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        request_id, user_id = _clicked(body), body["user"]["id"]
        if request_id is None:
            _ephemeral(respond, STALE_BUTTON)
            return
        member = in_group(user_id)
        try:
            with transaction(services.engine) as session:
                deal_support.take(
                    session, playbook, request_id, user_id, in_group=member, now=services.clock()
                )
        except DealSupportRefused as refused:
            _ephemeral(respond, refused.message)
            return
        services.notify()

    def open_modal(body: dict[str, Any], client: WebClient, respond: Respond, action: str) -> None:
        request_id, user_id = _clicked(body), body["user"]["id"]
        if request_id is None:
            _ephemeral(respond, STALE_BUTTON)
            return
        member = in_group(user_id)
        try:
            with transaction(services.engine) as session:
                request = deal_support.load(session, request_id)
                deal_support.check_may_finish(
                    playbook, request, user_id, action=action, in_group=member
                )
        except DealSupportRefused as refused:
            _ephemeral(respond, refused.message)
            return
        build = build_deliver_modal if action == "deliver" else build_decline_modal
        client.views_open(trigger_id=body["trigger_id"], view=build(request, playbook))

    @app.action(DELIVER)
    def on_deliver(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        open_modal(body, client, respond, "deliver")

    @app.action(DECLINE)
    def on_decline(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        open_modal(body, client, respond, "decline")

    def finish(
        ack: Ack,
        view: dict[str, Any],
        user_id: str,
        change: Callable[[Any, int, bool], object],
        refused_block: str,
    ) -> None:
        request_id = request_id_of(view)
        try:
            if request_id is None:
                raise DealSupportRefused(STALE_BUTTON)
            member = in_group(user_id)
            with transaction(services.engine) as session:
                change(session, request_id, member)
        except InvalidForm as invalid:
            ack(response_action="errors", errors=invalid.errors)
            return
        except DealSupportRefused as refused:
            ack(response_action="errors", errors={refused_block: refused.message})
            return
        ack()
        services.notify()

    @app.view(DELIVER_VIEW)
    def on_deliver_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values, user = form_values(view), body["user"]
        finish(
            ack,
            view,
            user["id"],
            lambda session, request_id, member: deal_support.deliver(
                session,
                playbook,
                request_id,
                user["id"],
                asset_url=values.get(ASSET),
                note=values.get(NOTE),
                author=user.get("name") or user.get("username"),
                in_group=member,
                now=services.clock(),
            ),
            ASSET,
        )

    @app.view(DECLINE_VIEW)
    def on_decline_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values, user_id = form_values(view), body["user"]["id"]
        finish(
            ack,
            view,
            user_id,
            lambda session, request_id, member: deal_support.decline(
                session,
                playbook,
                request_id,
                user_id,
                reason=values.get(REASON),
                in_group=member,
                now=services.clock(),
            ),
            REASON,
        )
