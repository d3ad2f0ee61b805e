"""The #deal-support SLA: nudge marketing when a request waits past its first-response time,
escalate to the marketing manager later, and nudge whoever has a request past its due date.

Each step is recorded in `deal_support_events`, unique on (request, kind, step), in the same
transaction as its outbox rows: a step another worker already took inserts nothing and is
rolled back, so every step happens exactly once.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core.db import transaction
from bot.core.deal_support import ACTIVE_STATES, CLAIMED, OPEN, enqueue_dm, enqueue_reply
from bot.core.models import DealSupportEvent, DealSupportRequest
from bot.core.playbook import Playbook
from bot.core.sql import insert_ignore

NUDGE = "nudge"
ESCALATE = "escalate"
OVERDUE = "overdue"
STEPS = (NUDGE, ESCALATE, OVERDUE)


def due_end(playbook: Playbook, due_on: date) -> datetime:
    """When a request due on `due_on` becomes overdue: the end of that day in the team's timezone."""
    local = datetime.combine(due_on + timedelta(days=1), time(0), tzinfo=playbook.zone)
    return local.astimezone(UTC)


def escalation_at(playbook: Playbook, request: DealSupportRequest) -> datetime:
    """When an unclaimed request goes to the manager: `escalate_after` past its first-response
    deadline, on its ask type's clock (at the deadline when that is zero)."""
    ds = playbook.deal_support
    due = request.first_response_due_at
    return ds.deadline(playbook.calendar, request.ask_type, due, ds.escalate_after)


def due_steps(request: DealSupportRequest, playbook: Playbook, now: datetime) -> list[str]:
    """The SLA steps whose time has come for a request, in the order they are taken."""
    steps: list[str] = []
    if request.state == OPEN and now >= request.first_response_due_at:
        steps.append(NUDGE)
        if now >= escalation_at(playbook, request):
            steps.append(ESCALATE)
    if (
        request.state in ACTIVE_STATES
        and request.due_on is not None
        and now >= due_end(playbook, request.due_on)
    ):
        steps.append(OVERDUE)
    return steps


class _AlreadyTaken(Exception):
    """Another worker took this step first: roll the transaction back."""


def sweep(engine: Engine, playbook: Playbook, *, now: datetime) -> Counter[str]:
    """Take every deal-support SLA step due now, each in its own short transaction."""
    with transaction(engine) as session:
        requests = list(
            session.exec(
                select(DealSupportRequest)
                .where(col(DealSupportRequest.state).in_(ACTIVE_STATES))
                .order_by(col(DealSupportRequest.id))
            ).all()
        )
        done = set(
            session.exec(
                select(DealSupportEvent.request_id, DealSupportEvent.kind)
                .join(
                    DealSupportRequest,
                    col(DealSupportRequest.id) == col(DealSupportEvent.request_id),
                )
                .where(col(DealSupportRequest.state).in_(ACTIVE_STATES))
            ).all()
        )
    taken: Counter[str] = Counter()
    for snapshot in requests:
        for kind in due_steps(snapshot, playbook, now):
            if (snapshot.id, kind) in done:
                continue
            try:
                with transaction(engine) as session:
                    if _take(session, playbook, snapshot.id, kind, now=now):
                        taken[kind] += 1
            except _AlreadyTaken:
                continue
    return taken


def _take(
    session: Session, playbook: Playbook, request_id: int | None, kind: str, *, now: datetime
) -> bool:
    # The row lock orders this step after any concurrent click on the same request.
    request = session.exec(
        select(DealSupportRequest).where(DealSupportRequest.id == request_id).with_for_update()
    ).first()
    if request is None or kind not in due_steps(request, playbook, now):
        return False  # taken, delivered or declined since the sweep began
    values = {"request_id": request.id, "kind": kind, "step": 0, "created_at": now}
    if not insert_ignore(session, DealSupportEvent, values):
        raise _AlreadyTaken
    manager = playbook.deal_support.manager
    if kind == NUDGE:
        enqueue_reply(session, playbook, request, NUDGE, now=now, broadcast=True)
    elif kind == ESCALATE:
        if manager:
            enqueue_dm(session, request, ESCALATE, manager, now=now)
        enqueue_reply(session, playbook, request, ESCALATE, now=now)
    else:
        owner = request.claimed_by if request.state == CLAIMED else manager
        if owner:
            enqueue_dm(session, request, OVERDUE, owner, now=now)
        enqueue_reply(session, playbook, request, OVERDUE, now=now)
    return True
