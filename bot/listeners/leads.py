"""Lead card listeners: Accept, Reject, Recycle and Log touch buttons and their modals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from sqlmodel import Session

from bot.core import handoff, touches
from bot.core.db import transaction
from bot.services import Services
from bot.views.lead_card import ACCEPT, LOG_TOUCH, OPEN_CRM, RECYCLE, REJECT
from bot.views.modals import (
    NOTE_BLOCK,
    REASON_BLOCK,
    RECYCLE_VIEW,
    REJECT_VIEW,
    REVISIT_BLOCK,
    TOUCH_TYPE_BLOCK,
    TOUCH_VIEW,
    build_recycle_modal,
    build_reject_modal,
    build_touch_modal,
    cycle_id_of,
    submitted_values,
)

STALE_BUTTON = "This card is out of date; revbot cannot tell which lead it is about."


def _clicked_cycle(body: dict[str, Any]) -> int | None:
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def _ephemeral(respond: Respond, text: str) -> None:
    respond(text=text, response_type="ephemeral", replace_original=False)


def _parse_date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def register(app: App, services: Services) -> None:
    """Attach the lead card listeners."""
    playbook = services.playbook

    @app.action(ACCEPT)
    def on_accept(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        cycle_id = _clicked_cycle(body)
        if cycle_id is None:
            _ephemeral(respond, STALE_BUTTON)
            return
        try:
            with transaction(services.engine) as session:
                handoff.accept(
                    session, cycle_id, body["user"]["id"], playbook=playbook, now=services.clock()
                )
        except handoff.HandoffRefused as refused:
            _ephemeral(respond, refused.message)
            return
        services.notify()

    def modal_for(session: Session, cycle_id: int, user_id: str, action: str) -> dict[str, Any]:
        cycle, lead = handoff.load(session, cycle_id)
        if action == "touch":
            touches.check_may_log(playbook, cycle, user_id)
            types = [(code, touches.type_label(code)) for code in playbook.touches.types]
            logged = touches.touch_count(session, cycle_id)
            return build_touch_modal(cycle_id, lead.display_name, types, logged=logged)
        handoff.check_may_act(playbook, cycle, user_id, action=action)
        if action == "reject":
            return build_reject_modal(cycle_id, lead.display_name, playbook.reasons.reject)
        in_window = touches.in_window(session, playbook, cycle_id, now=services.clock())
        return build_recycle_modal(
            cycle_id,
            lead.display_name,
            playbook.reasons.recycle,
            touch_rule=touches.minimum_hint(playbook, in_window or 0),
        )

    def open_modal(
        body: dict[str, Any], client: WebClient, respond: Respond, *, action: str
    ) -> None:
        cycle_id = _clicked_cycle(body)
        if cycle_id is None:
            _ephemeral(respond, STALE_BUTTON)
            return
        try:
            with transaction(services.engine) as session:
                view = modal_for(session, cycle_id, body["user"]["id"], action)
        except handoff.HandoffRefused as refused:
            _ephemeral(respond, refused.message)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(REJECT)
    def on_reject(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        open_modal(body, client, respond, action="reject")

    @app.action(RECYCLE)
    def on_recycle(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        open_modal(body, client, respond, action="recycle")

    @app.action(LOG_TOUCH)
    def on_log_touch(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        open_modal(body, client, respond, action="touch")

    @app.action(OPEN_CRM)
    def on_open_crm(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL, revbot only acknowledges

    def submit(
        ack: Ack,
        view: dict[str, Any],
        dispose: Callable[[Session, int], object],
        *,
        refused_block: str = REASON_BLOCK,
    ) -> None:
        cycle_id = cycle_id_of(view)
        try:
            if cycle_id is None:
                raise handoff.HandoffRefused(STALE_BUTTON)
            with transaction(services.engine) as session:
                dispose(session, cycle_id)
        except handoff.InvalidDisposition as invalid:
            ack(response_action="errors", errors=invalid.errors)
            return
        except handoff.HandoffRefused as refused:
            ack(response_action="errors", errors={refused_block: refused.message})
            return
        ack()
        services.notify()

    @app.view(REJECT_VIEW)
    def on_reject_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = submitted_values(view)
        submit(
            ack,
            view,
            lambda session, cycle_id: handoff.reject(
                session,
                cycle_id,
                body["user"]["id"],
                reason_code=values.get(REASON_BLOCK),
                note=values.get(NOTE_BLOCK),
                playbook=playbook,
                now=services.clock(),
            ),
        )

    @app.view(RECYCLE_VIEW)
    def on_recycle_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = submitted_values(view)
        submit(
            ack,
            view,
            lambda session, cycle_id: handoff.recycle(
                session,
                cycle_id,
                body["user"]["id"],
                reason_code=values.get(REASON_BLOCK),
                revisit_on=_parse_date(values.get(REVISIT_BLOCK)),
                note=values.get(NOTE_BLOCK),
                playbook=playbook,
                now=services.clock(),
            ),
        )

    @app.view(TOUCH_VIEW)
    def on_touch_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = submitted_values(view)
        submit(
            ack,
            view,
            lambda session, cycle_id: touches.log_touch(
                session,
                cycle_id,
                body["user"]["id"],
                values.get(TOUCH_TYPE_BLOCK),
                values.get(NOTE_BLOCK),
                playbook=playbook,
                now=services.clock(),
            ),
            refused_block=TOUCH_TYPE_BLOCK,
        )
