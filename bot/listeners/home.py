"""The App Home tab: published when opened, after an away/back toggle and after the rep acts.

The queue's Reject, Recycle and Log touch buttons carry the lead card's action ids, so the card's
own listeners open their modals. A Home tab has no `response_url`: the middleware below gives
those listeners a `respond` that shows its message on top of the Home tab instead, and
republishes the tab once a modal from them is saved (the listener runs `AFTER_CHANGE`). Accept gets its own listener here
(ahead of the card's) because the tab must be republished after the click.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.core import access, availability, handoff, lookup
from bot.core.db import reading, transaction
from bot.core.metrics import week_bounds
from bot.core.models import RepAvailability
from bot.listeners.leads import AFTER_CHANGE
from bot.services import Services
from bot.views.blocks import escape
from bot.views.home import HOME_AWAY, HOME_BACK, HOME_QUEUE_LIMIT, Availability, build_home
from bot.views.lead_card import ACCEPT, LOG_TOUCH, RECYCLE, REJECT
from bot.views.modals import RECYCLE_VIEW, REJECT_VIEW, TOUCH_VIEW

log = logging.getLogger(__name__)

PUBLISH_THREADS = 2
CARD_ACTIONS = frozenset({LOG_TOUCH, REJECT, RECYCLE})
CARD_MODALS = frozenset({REJECT_VIEW, RECYCLE_VIEW, TOUCH_VIEW})


def from_home(body: dict[str, Any]) -> bool:
    """True for a click on revbot's App Home tab."""
    view = body.get("view") or {}
    return (body.get("container") or {}).get("type") == "view" and view.get("type") == "home"


def register(app: App, services: Services) -> None:
    """Attach the App Home listeners (before the lead card's, so Home clicks reach these first)."""
    playbook = services.playbook
    publisher = ThreadPoolExecutor(PUBLISH_THREADS, thread_name_prefix="revbot-home")

    def render(user_id: str, notice: str | None = None) -> dict[str, Any]:
        who = access.viewer(playbook, user_id)
        now = services.clock()
        week = week_bounds(playbook, now)
        with reading(services.engine) as session:
            pipeline = lookup.rep_pipeline(
                session, user_id, claimable_pools=who.member_of, limit=HOME_QUEUE_LIMIT
            )
            figures = lookup.rep_week(session, user_id, week, now=now) if who.roles else None
            state = None
            if who.member_of:
                away = user_id in availability.away_reps(session, now=now)
                row = session.get(RepAvailability, user_id)
                state = Availability(away, row.away_until if away and row else None)
            team = lookup.team_summary(session, sorted(who.manages), now=now, week=week)
            return build_home(
                pipeline=pipeline,
                week=figures,
                availability=state,
                playbook=playbook,
                who=who,
                now=now,
                team=team,
                notice=notice,
            )

    # Users whose Home tab this process published or who clicked in it: a modal submitted from a
    # channel card by someone else has no tab to bring up to date.
    home_users: set[str] = set()

    def publish(client: WebClient, user_id: str, notice: str | None = None) -> None:
        client.views_publish(user_id=user_id, view=render(user_id, notice))
        home_users.add(user_id)

    def publish_later(client: WebClient, user_id: str) -> None:
        publisher.submit(publish, client, user_id).add_done_callback(_log_failure)

    @app.middleware
    def home_replies(
        body: dict[str, Any], context: BoltContext, client: WebClient, next: Callable[[], None]
    ) -> None:
        kind = body.get("type")
        user_id = (body.get("user") or {}).get("id")
        action_id = ((body.get("actions") or [{}])[0] or {}).get("action_id")
        callback_id = (body.get("view") or {}).get("callback_id")
        if user_id and kind == "block_actions" and from_home(body):
            home_users.add(user_id)
        if user_id and kind == "block_actions" and from_home(body) and action_id in CARD_ACTIONS:

            def respond(text: str = "", **_: Any) -> None:
                publish(client, user_id, notice=text)

            context["respond"] = respond
        elif (
            user_id
            and kind == "view_submission"
            and callback_id in CARD_MODALS
            and user_id in home_users
        ):
            context[AFTER_CHANGE] = lambda: publish_later(client, user_id)
        next()

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            publish(client, event["user"])

    @app.action(ACCEPT, matchers=[from_home])
    def on_home_accept(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user_id = body["user"]["id"]
        cycle_id = _clicked_cycle(body)
        if cycle_id is None:
            publish(client, user_id, notice="That button is out of date; here is your queue now.")
            return
        try:
            with transaction(services.engine) as session:
                done = handoff.accept(
                    session, cycle_id, user_id, playbook=playbook, now=services.clock()
                )
        except handoff.HandoffRefused as refused:
            publish(client, user_id, notice=refused.message)
            return
        services.notify()
        name = escape(done.lead.display_name)
        publish(client, user_id, notice=f"You accepted *{name}*. Log a touch once you reach out.")

    @app.action(HOME_AWAY)
    def on_away(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user_id = body["user"]["id"]
        with transaction(services.engine) as session:
            availability.set_away(session, user_id, now=services.clock(), until=None)
        publish(client, user_id)

    @app.action(HOME_BACK)
    def on_back(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user_id = body["user"]["id"]
        with transaction(services.engine) as session:
            availability.set_back(session, user_id, now=services.clock())
        publish(client, user_id)


def _clicked_cycle(body: dict[str, Any]) -> int | None:
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def _log_failure(future: Future[None]) -> None:
    error = future.exception()
    if error is not None:
        log.error("publishing the App Home failed: %s", type(error).__name__, exc_info=error)
