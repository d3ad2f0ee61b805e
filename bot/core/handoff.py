"""The handoff state machine: accept (first click wins), reject and recycle with reason codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from bot.core import outbox
from bot.core.models import ACCEPTED, CLOSED_STATES, RECYCLED, REJECTED, Lead, MqlCycle
from bot.core.playbook import Playbook
from bot.core.sql import compare_and_set

MAX_NOTE = 500


class HandoffRefused(Exception):
    """The user may not do this to this lead now; `message` says why, for an ephemeral reply."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidDisposition(Exception):
    """The reject/recycle form is incomplete; `errors` maps each form field to its problem."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Disposed:
    """A successful accept, reject or recycle."""

    cycle: MqlCycle
    lead: Lead


def load(session: Session, cycle_id: int) -> tuple[MqlCycle, Lead]:
    """The cycle and its lead, or HandoffRefused when the card points at nothing revbot knows."""
    cycle = session.get(MqlCycle, cycle_id)
    lead = session.get(Lead, cycle.lead_id) if cycle else None
    if cycle is None or lead is None:
        raise HandoffRefused(
            "revbot has no record of this lead any more; it may have been removed."
        )
    return cycle, lead


def _who(user_id: str | None) -> str:
    return f"<@{user_id}>" if user_id else "someone"


def explain_state(cycle: MqlCycle, user_id: str) -> str:
    """Why a lead can no longer be taken, in words for the person who clicked."""
    if cycle.state == ACCEPTED:
        who = "you" if cycle.accepted_by == user_id else _who(cycle.accepted_by)
        return f"This lead was already accepted by {who}."
    verb = "rejected" if cycle.state == REJECTED else "recycled"
    who = "you" if cycle.closed_by == user_id else _who(cycle.closed_by)
    return f"This lead was already {verb} by {who}; it is closed."


def check_may_act(playbook: Playbook, cycle: MqlCycle, user_id: str, *, action: str) -> None:
    """Raise HandoffRefused unless `user_id` may accept/reject/recycle this cycle now."""
    if cycle.state in CLOSED_STATES or (action == "accept" and cycle.state == ACCEPTED):
        raise HandoffRefused(explain_state(cycle, user_id))
    routing = playbook.routing
    pool = routing.pools.get(cycle.pool) or routing.pools[routing.default_pool]
    if pool.manager == user_id:
        return
    if cycle.state == ACCEPTED:
        if cycle.owner_slack_id != user_id:
            raise HandoffRefused(
                f"This lead belongs to {_who(cycle.owner_slack_id)}; only they or the pool's manager can change it."
            )
        return
    in_pool = pool.open or pool.member(user_id) is not None
    if routing.mode == "assign" and cycle.owner_slack_id and cycle.owner_slack_id != user_id:
        raise HandoffRefused(
            f"This lead is assigned to {_who(cycle.owner_slack_id)}; only they or the pool's manager can act on it."
        )
    if not in_pool:
        raise HandoffRefused(
            f"Only members of the `{cycle.pool}` pool can act on this lead. Ask RevOps to add you to the playbook."
        )


def _lost_race(session: Session, cycle: MqlCycle, user_id: str) -> HandoffRefused:
    session.refresh(cycle)
    return HandoffRefused(
        explain_state(cycle, user_id)
        if not cycle.is_open
        else "Someone else just changed this lead; try again."
    )


def accept(
    session: Session, cycle_id: int, user_id: str, *, playbook: Playbook, now: datetime
) -> Disposed:
    """Claim the lead for `user_id`; the first click wins, later clickers learn who has it."""
    cycle, lead = load(session, cycle_id)
    check_may_act(playbook, cycle, user_id, action="accept")
    if not compare_and_set(
        session, cycle, state=ACCEPTED, owner_slack_id=user_id, accepted_by=user_id, accepted_at=now
    ):
        raise _lost_race(session, cycle, user_id)
    after_change(session, cycle, now=now)
    return Disposed(cycle, lead)


def validate_reject(
    playbook: Playbook, reason_code: str | None, note: str | None
) -> dict[str, str]:
    """Field errors of a reject form: a known reason code and one sentence of context."""
    errors = {}
    if not reason_code or playbook.reason("reject", reason_code) is None:
        errors["reason"] = "Pick a reason for rejecting this lead."
    text = (note or "").strip()
    if not text:
        errors["note"] = "Add one sentence of context for marketing."
    elif len(text) > MAX_NOTE:
        errors["note"] = f"Keep it under {MAX_NOTE} characters."
    return errors


def validate_recycle(
    playbook: Playbook,
    reason_code: str | None,
    revisit_on: date | None,
    note: str | None,
    *,
    today: date,
    touches: int | None = None,
) -> dict[str, str]:
    """Field errors of a recycle form: a known reason code, a revisit date in the future, and
    (given `touches`, the count within the playbook's window) the touch minimum for that reason."""
    errors = {}
    if not reason_code or playbook.reason("recycle", reason_code) is None:
        errors["reason"] = "Pick a reason for recycling this lead."
    elif touches is not None:
        shortfall = _touch_shortfall(playbook, reason_code, touches)
        if shortfall:
            errors["reason"] = shortfall
    if revisit_on is None:
        errors["revisit_on"] = "Pick the date marketing should bring this lead back."
    elif revisit_on <= today:
        errors["revisit_on"] = "The revisit date must be in the future."
    if note and len(note.strip()) > MAX_NOTE:
        errors["note"] = f"Keep it under {MAX_NOTE} characters."
    return errors


@dataclass(frozen=True)
class Close:
    """A reject (`state` REJECTED) or recycle as submitted: by whom, why, and until when."""

    state: str
    user_id: str
    reason_code: str | None
    note: str | None
    revisit_on: date | None = None


def check_close(
    session: Session, cycle_id: int, request: Close, *, playbook: Playbook, now: datetime
) -> tuple[MqlCycle, Lead]:
    """The cycle and lead `request` would close, or what closing would raise (InvalidDisposition,
    HandoffRefused), writing nothing: lets a listener answer a form before it waits for the writer."""
    if request.state == REJECTED:
        errors = validate_reject(playbook, request.reason_code, request.note)
    else:
        errors = validate_recycle(
            playbook,
            request.reason_code,
            request.revisit_on,
            request.note,
            today=now.astimezone(playbook.zone).date(),
            touches=_touches_in_window(session, playbook, cycle_id, request.reason_code, now=now),
        )
    if errors:
        raise InvalidDisposition(errors)
    cycle, lead = load(session, cycle_id)
    check_may_act(playbook, cycle, request.user_id, action=request.state)
    return cycle, lead


def close(
    session: Session, cycle_id: int, request: Close, *, playbook: Playbook, now: datetime
) -> Disposed:
    """Reject or recycle the lead as `request` asks, if nobody changed it since it was read."""
    cycle, lead = check_close(session, cycle_id, request, playbook=playbook, now=now)
    if not compare_and_set(
        session,
        cycle,
        state=request.state,
        owner_slack_id=cycle.owner_slack_id or request.user_id,
        closed_by=request.user_id,
        closed_at=now,
        reason_code=request.reason_code,
        note=(request.note or "").strip() or None,
        revisit_on=request.revisit_on,
    ):
        raise _lost_race(session, cycle, request.user_id)
    after_change(session, cycle, now=now)
    return Disposed(cycle, lead)


def already_done(session: Session, cycle_id: int, request: Close) -> bool:
    """Whether the lead is already closed exactly as `request` asks, by the same user (a retry)."""
    cycle = session.get(MqlCycle, cycle_id)
    return (
        cycle is not None
        and cycle.state == request.state
        and cycle.closed_by == request.user_id
        and cycle.reason_code == request.reason_code
    )


def reject(
    session: Session,
    cycle_id: int,
    user_id: str,
    *,
    reason_code: str | None,
    note: str | None,
    playbook: Playbook,
    now: datetime,
) -> Disposed:
    """Close the lead as not sales-ready, with a reason code and a sentence of context."""
    request = Close(REJECTED, user_id, reason_code, note)
    return close(session, cycle_id, request, playbook=playbook, now=now)


def recycle(
    session: Session,
    cycle_id: int,
    user_id: str,
    *,
    reason_code: str | None,
    revisit_on: date | None,
    note: str | None,
    playbook: Playbook,
    now: datetime,
) -> Disposed:
    """Send the lead back to marketing until `revisit_on`, with a reason code (and, for reasons
    the playbook's touch minimum names, enough touches logged within its window)."""
    request = Close(RECYCLED, user_id, reason_code, note, revisit_on)
    return close(session, cycle_id, request, playbook=playbook, now=now)


def _touches_in_window(
    session: Session, playbook: Playbook, cycle_id: int, reason_code: str | None, *, now: datetime
) -> int | None:
    from bot.core import touches  # touches builds on this module, so it is imported late

    return touches.toward_minimum(session, playbook, cycle_id, reason_code, now=now)


def _touch_shortfall(playbook: Playbook, reason_code: str, count: int) -> str | None:
    from bot.core import touches  # touches builds on this module, so it is imported late

    return touches.shortfall(playbook, reason_code, count)


def after_change(session: Session, cycle: MqlCycle, *, now: datetime) -> None:
    """Queue what follows any change to a cycle: the card refresh and the CRM write."""
    outbox.enqueue(
        session,
        kind=outbox.SLACK_REFRESH,
        key=f"refresh:{cycle.id}:v{cycle.version}",
        lane=outbox.REFRESH_LANE,
        now=now,
        priority=outbox.PRIORITY_FEEDBACK,
        payload={"cycle_id": cycle.id},
    )
    enqueue_crm_sync(session, cycle, now=now)


def enqueue_crm_sync(session: Session, cycle: MqlCycle, *, now: datetime) -> None:
    """Queue a write of the lead's current handoff state to the CRM (one pending write per lead)."""
    prefix = f"crm:{cycle.lead_id}:"
    if outbox.has_pending(session, kind=outbox.CRM_SYNC, key_prefix=prefix):
        return  # the pending write renders the latest state when it is delivered
    outbox.enqueue(
        session,
        kind=outbox.CRM_SYNC,
        key=f"{prefix}{cycle.id}:v{cycle.version}",
        lane=outbox.CRM_LANE,
        now=now,
        payload={"lead_id": cycle.lead_id},
    )


def latest_cycle(session: Session, lead_id: int) -> MqlCycle | None:
    """The lead's most recent MQL cycle."""
    return session.exec(
        select(MqlCycle).where(MqlCycle.lead_id == lead_id).order_by(col(MqlCycle.seq).desc())
    ).first()
