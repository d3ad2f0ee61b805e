"""Touches: calls, emails and LinkedIn messages the owner logs on an accepted lead."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from bot.core import handoff, outbox
from bot.core.durations import format_duration
from bot.core.models import OPEN, MqlCycle, Touch
from bot.core.playbook import Playbook
from bot.core.sql import compare_and_set

MAX_NOTE = 500
TYPE_FIELD, NOTE_FIELD = "touch_type", "note"
LABELS = {"call": "Call", "email": "Email", "linkedin": "LinkedIn"}


def type_label(kind: str) -> str:
    """How a touch type reads in Slack and in the CRM ("linkedin" -> "LinkedIn")."""
    return LABELS.get(kind, kind.replace("_", " ").capitalize())


def validate_touch(playbook: Playbook, kind: str | None, note: str | None) -> dict[str, str]:
    """Field errors of the touch form: a touch type from the playbook and an optional short note."""
    errors = {}
    if not kind or kind not in playbook.touches.types:
        errors[TYPE_FIELD] = "Pick the kind of touch you made."
    if note and len(note.strip()) > MAX_NOTE:
        errors[NOTE_FIELD] = f"Keep it under {MAX_NOTE} characters."
    return errors


def check_may_log(playbook: Playbook, cycle: MqlCycle, user_id: str) -> None:
    """Raise HandoffRefused unless the lead is accepted and `user_id` owns it (or manages its pool)."""
    if cycle.state == OPEN:
        raise handoff.HandoffRefused("Accept this lead before logging touches on it.")
    handoff.check_may_act(playbook, cycle, user_id, action="touch")


def check_touch(
    session: Session,
    cycle_id: int,
    user_id: str,
    kind: str | None,
    note: str | None,
    *,
    playbook: Playbook,
) -> MqlCycle:
    """The cycle the touch would be logged on, or what logging it would raise
    (InvalidDisposition, HandoffRefused), writing nothing."""
    errors = validate_touch(playbook, kind, note)
    if errors:
        raise handoff.InvalidDisposition(errors)
    cycle, _ = handoff.load(session, cycle_id)
    check_may_log(playbook, cycle, user_id)
    return cycle


def log_touch(
    session: Session,
    cycle_id: int,
    user_id: str,
    kind: str | None,
    note: str | None,
    *,
    playbook: Playbook,
    now: datetime,
) -> Touch:
    """Record a touch; the first one stamps the cycle's first_touch_at; queue a card refresh and a CRM task."""
    cycle = check_touch(session, cycle_id, user_id, kind, note, playbook=playbook)
    assert kind is not None
    # Touches logged at the same moment queue on the row lock instead of failing each other;
    # the lead may have changed while this one waited, so it is checked again under the lock.
    session.refresh(cycle, with_for_update=True)
    check_may_log(playbook, cycle, user_id)
    first = {"first_touch_at": now} if cycle.first_touch_at is None else {}
    # The version bump orders the touch against a concurrent reject or recycle of the lead.
    if not compare_and_set(session, cycle, **first):
        raise handoff.HandoffRefused("Someone else just changed this lead; try again.")
    touch = Touch(
        cycle_id=cycle_id,
        lead_id=cycle.lead_id,
        rep_slack_id=user_id,
        kind=kind,
        note=(note or "").strip() or None,
        touched_at=now,
    )
    session.add(touch)
    session.flush()
    outbox.enqueue(
        session,
        kind=outbox.SLACK_REFRESH,
        key=f"refresh:{cycle.id}:v{cycle.version}",
        lane=outbox.REFRESH_LANE,
        now=now,
        priority=outbox.PRIORITY_FEEDBACK,
        payload={"cycle_id": cycle.id},
    )
    outbox.enqueue(
        session,
        kind=outbox.CRM_TASK,
        key=f"task:{touch.id}",
        lane=outbox.CRM_TASK_LANE,
        now=now,
        payload={"touch_id": touch.id},
    )
    return touch


def touch_count(
    session: OrmSession,
    cycle_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """How many touches were logged on a cycle (optionally only those in [since, until])."""
    query = select(func.count()).select_from(Touch).where(col(Touch.cycle_id) == cycle_id)
    if since is not None:
        query = query.where(col(Touch.touched_at) >= since)
    if until is not None:
        query = query.where(col(Touch.touched_at) <= until)
    return int(session.execute(query).scalar_one())


def toward_minimum(
    session: OrmSession,
    playbook: Playbook,
    cycle_id: int,
    reason_code: str | None,
    *,
    now: datetime,
) -> int | None:
    """Touches on a cycle within the minimum's window before `now`; None when `reason_code` needs none."""
    minimum = playbook.touches.minimum
    if minimum is None or reason_code not in minimum.reasons:
        return None
    return in_window(session, playbook, cycle_id, now=now)


def in_window(
    session: OrmSession, playbook: Playbook, cycle_id: int, *, now: datetime
) -> int | None:
    """Touches on a cycle within the touch minimum's window before `now` (None without a minimum)."""
    minimum = playbook.touches.minimum
    if minimum is None:
        return None
    return touch_count(session, cycle_id, since=now - minimum.within, until=now)


def shortfall(playbook: Playbook, reason_code: str, count: int) -> str | None:
    """Why recycling for `reason_code` must wait for more touches (None when `count` is enough)."""
    minimum = playbook.touches.minimum
    if minimum is None or reason_code not in minimum.reasons or count >= minimum.touches:
        return None
    reason = playbook.reason("recycle", reason_code)
    label = reason.label if reason else reason_code
    return (
        f"Log at least {minimum.touches} touches in {describe_span(minimum.within)} before "
        f"recycling for \u201c{label}\u201d ({count} so far)."
    )


def minimum_hint(playbook: Playbook, count: int) -> str | None:
    """The touch minimum as the recycle modal states it up front (None without one)."""
    minimum = playbook.touches.minimum
    if minimum is None:
        return None
    labels = [r.label for r in playbook.reasons.recycle if r.code in minimum.reasons]
    reasons = " or ".join(f"\u201c{label}\u201d" for label in labels)
    return (
        f"Recycling for {reasons} needs {minimum.touches} touches logged in "
        f"{describe_span(minimum.within)}; this lead has {count}."
    )


def describe_span(delta: timedelta) -> str:
    """A window as people say it: "14 days", "36 hours", else "1m 30s"."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return format_duration(delta)
