"""Lead card listeners: Accept, Reject, Recycle and Log touch buttons and their modals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlmodel import Session

from bot.core import handoff, outbox, touches
from bot.core.db import reading, transaction
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
    build_not_saved,
    build_recycle_modal,
    build_reject_modal,
    build_touch_modal,
    cycle_id_of,
    submitted_values,
)

STALE_BUTTON = "This card is out of date; revbot cannot tell which lead it is about."
# A context key: what to run once a card modal's change is saved (the Home tab sets it).
AFTER_CHANGE = "revbot_after_change"


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
        body: dict[str, Any],
        context: BoltContext,
        check: Callable[[Session, int], object],
        dispose: Callable[[Session, int], object],
        *,
        refused_block: str = REASON_BLOCK,
        done_already: Callable[[Session, int], bool] | None = None,
    ) -> None:
        """Check the form with a read, ack (closing the modal), then write.

        The write waits for the database's writer (SQLite has one), which Slack's 3 s must not
        include. A change between the check and the write (another user's click) is told by DM,
        unless `done_already` says the lead already is as this user asked (a retried submission).
        """
        view, user_id = body["view"], body["user"]["id"]
        cycle_id = cycle_id_of(view)
        try:
            if cycle_id is None:
                raise handoff.HandoffRefused(STALE_BUTTON)
            with reading(services.engine) as session:
                check(session, cycle_id)
        except handoff.InvalidDisposition as invalid:
            ack(response_action="errors", errors=invalid.errors)
            return
        except handoff.HandoffRefused as refused:
            ack(response_action="errors", errors={refused_block: refused.message})
            return
        ack()
        try:
            with transaction(services.engine) as session:
                dispose(session, cycle_id)
        except (handoff.InvalidDisposition, handoff.HandoffRefused) as late:
            problem = (
                late.message
                if isinstance(late, handoff.HandoffRefused)
                else " ".join(late.errors.values())
            )
            with transaction(services.engine) as session:
                if done_already is None or not done_already(session, cycle_id):
                    outbox.enqueue_message(
                        session,
                        key=f"not-saved:{view.get('id')}:{cycle_id}",
                        to=user_id,
                        text=build_not_saved(view, problem),
                        now=services.clock(),
                    )
        else:
            after_change = context.get(AFTER_CHANGE)
            if callable(after_change):
                after_change()
        services.notify()

    def submit_close(
        ack: Ack, body: dict[str, Any], context: BoltContext, request: handoff.Close
    ) -> None:
        now = services.clock()
        submit(
            ack,
            body,
            context,
            lambda session, cycle_id: handoff.check_close(
                session, cycle_id, request, playbook=playbook, now=now
            ),
            lambda session, cycle_id: handoff.close(
                session, cycle_id, request, playbook=playbook, now=now
            ),
            done_already=lambda session, cycle_id: handoff.already_done(session, cycle_id, request),
        )

    @app.view(REJECT_VIEW)
    def on_reject_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        values = submitted_values(body["view"])
        request = handoff.Close(
            handoff.REJECTED, body["user"]["id"], values.get(REASON_BLOCK), values.get(NOTE_BLOCK)
        )
        submit_close(ack, body, context, request)

    @app.view(RECYCLE_VIEW)
    def on_recycle_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        values = submitted_values(body["view"])
        request = handoff.Close(
            handoff.RECYCLED,
            body["user"]["id"],
            values.get(REASON_BLOCK),
            values.get(NOTE_BLOCK),
            _parse_date(values.get(REVISIT_BLOCK)),
        )
        submit_close(ack, body, context, request)

    @app.view(TOUCH_VIEW)
    def on_touch_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        values, user_id = submitted_values(body["view"]), body["user"]["id"]
        kind, note = values.get(TOUCH_TYPE_BLOCK), values.get(NOTE_BLOCK)
        submit(
            ack,
            body,
            context,
            lambda session, cycle_id: touches.check_touch(
                session, cycle_id, user_id, kind, note, playbook=playbook
            ),
            lambda session, cycle_id: touches.log_touch(
                session, cycle_id, user_id, kind, note, playbook=playbook, now=services.clock()
            ),
            refused_block=TOUCH_TYPE_BLOCK,
        )
