"""#deal-support: a rep's request for marketing help on a live deal, taken, delivered or declined.

Every change is a compare-and-set on the request's version plus its outbox rows (card refresh,
a line to the requester in the card's thread, the CRM note on delivery) in one transaction, so a
race of two marketers has one winner and nothing is sent twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.core import outbox
from bot.core.crm import Deal
from bot.core.models import DealSupportRequest, LocalDeal
from bot.core.playbook import Playbook
from bot.core.sql import compare_and_set

OPEN, CLAIMED, DELIVERED, DECLINED = "open", "claimed", "delivered", "declined"
ACTIVE_STATES = (OPEN, CLAIMED)

DS_CARD = "slack.ds_card"
DS_REFRESH = "slack.ds_refresh"
DS_REPLY = "slack.ds_reply"
DS_DM = "slack.ds_dm"

TAKEN, DELIVERED_LINE, DECLINED_LINE = "taken", "delivered", "declined"

MAX_DETAILS = 3000
MAX_NAME = 255
MAX_COMPETITOR = 255
MAX_URL = 1000
MAX_NOTE = 2000
URL = re.compile(r"^https?://[^\s<>|]+$", re.IGNORECASE)
FIELDS = ("deal", "ask_type", "competitor", "due_on", "details")


class DealSupportRefused(Exception):
    """The user may not do this to this request now; `message` says why, for an ephemeral reply."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidForm(Exception):
    """A deal-support form is incomplete or wrong; `errors` maps each field to its problem."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class RequestForm:
    """What a rep filled in: the opportunity (a CRM id, or a name typed by hand), the ask and details."""

    deal_id: str | None
    deal_name: str | None
    ask_type: str | None
    competitor: str | None
    due_on: date | None
    details: str | None
    source_permalink: str | None = None


def parse_deal_choice(value: str | None) -> tuple[str | None, str | None]:
    """(deal id, typed name) from the opportunity field: `deal:<id>` from the CRM search,
    `name:<text>` when the search offered the typed text, or free text when no CRM is searched."""
    text = (value or "").strip()
    if text.startswith("deal:"):
        return text[5:].strip() or None, None
    if text.startswith("name:"):
        return None, text[5:].strip() or None
    return None, text or None


def crm_has_deals(session: Session, crm_name: str) -> bool:
    """True when the opportunity field can search the CRM: any vendor CRM, or local deals exist."""
    if crm_name != "local":
        return True
    return session.exec(select(LocalDeal.id).limit(1)).first() is not None


def validate_request(
    playbook: Playbook, form: RequestForm, deal: Deal | None, *, today: date
) -> dict[str, str]:
    """Field errors of a request form; `deal` is what the CRM returned for `form.deal_id`."""
    errors: dict[str, str] = {}
    if form.deal_id is not None:
        if deal is None:
            errors["deal"] = (
                "revbot cannot find that opportunity in the CRM any more; search for it again."
            )
    elif not form.deal_name:
        errors["deal"] = "Pick the opportunity this is for."
    elif len(form.deal_name) > MAX_NAME:
        errors["deal"] = f"Keep the opportunity name under {MAX_NAME} characters."
    if not form.ask_type or playbook.deal_support.ask_type(form.ask_type) is None:
        errors["ask_type"] = "Pick what you need from marketing."
    if form.competitor and len(form.competitor.strip()) > MAX_COMPETITOR:
        errors["competitor"] = f"Keep it under {MAX_COMPETITOR} characters."
    if form.due_on is None:
        errors["due_on"] = "Pick the date you need it by."
    elif form.due_on < today:
        errors["due_on"] = (
            f"The due date is in the past; pick today ({today.isoformat()}) or later."
        )
    details = (form.details or "").strip()
    if not details:
        errors["details"] = "Say what you need and why: the deal situation, audience, angle."
    elif len(details) > MAX_DETAILS:
        errors["details"] = f"Keep it under {MAX_DETAILS} characters."
    return errors


def open_request(
    session: Session,
    playbook: Playbook,
    requester: str,
    form: RequestForm,
    deal: Deal | None,
    *,
    now: datetime,
) -> DealSupportRequest:
    """Store a valid request with the deal's snapshot and queue its card; InvalidForm otherwise."""
    today = now.astimezone(playbook.zone).date()
    errors = validate_request(playbook, form, deal, today=today)
    if errors:
        raise InvalidForm(errors)
    ask = playbook.deal_support.ask_type(form.ask_type or "")
    assert ask is not None
    assert form.due_on is not None
    request = DealSupportRequest(
        requester_slack_id=requester,
        deal_id=deal.id if deal else None,
        deal_name=(deal.name if deal else form.deal_name or "")[:MAX_NAME],
        deal_stage=deal.stage if deal else None,
        deal_amount=deal.amount if deal else None,
        deal_currency=deal.currency if deal else None,
        deal_close_date=deal.close_date if deal else None,
        ask_type=ask.code,
        competitor=(form.competitor or "").strip() or None,
        due_on=form.due_on,
        details=(form.details or "").strip(),
        source_permalink=form.source_permalink,
        state=OPEN,
        first_response_due_at=playbook.deal_support.deadline(
            playbook.calendar, ask.code, now, ask.first_response_within
        ),
        created_at=now,
    )
    session.add(request)
    session.flush()
    channel = playbook.channels.deal_support
    outbox.enqueue(
        session,
        kind=DS_CARD,
        key=f"ds:{request.id}:card",
        lane=outbox.channel_lane(channel),
        now=now,
        priority=outbox.PRIORITY_FEEDBACK,
        payload={"request_id": request.id, "channel": channel},
    )
    return request


def is_marketer(playbook: Playbook, user_id: str, *, in_group: bool = False) -> bool:
    """True when the playbook lets `user_id` take requests (`in_group`: a member of its user group)."""
    ds = playbook.deal_support
    return ds.open_to_all or user_id in ds.marketers or user_id == ds.manager or in_group


def load(session: Session, request_id: int) -> DealSupportRequest:
    """The request, or DealSupportRefused when the card points at nothing revbot knows."""
    request = session.get(DealSupportRequest, request_id)
    if request is None:
        raise DealSupportRefused(
            "revbot has no record of this request any more; it may have been removed."
        )
    return request


def _who(user_id: str | None, viewer: str) -> str:
    if user_id == viewer:
        return "you"
    return f"<@{user_id}>" if user_id else "someone"


def explain_state(request: DealSupportRequest, user_id: str) -> str:
    """Why a request can no longer be taken, in words for the person who clicked."""
    if request.state == CLAIMED:
        return f"This request was already taken by {_who(request.claimed_by, user_id)}."
    if request.state == DELIVERED:
        return f"This request was already delivered by {_who(request.claimed_by, user_id)}."
    if request.state == DECLINED:
        return f"This request was declined by {_who(request.declined_by, user_id)}; it is closed."
    return "This request is still waiting for a marketer."


def _not_marketer(playbook: Playbook) -> DealSupportRefused:
    group = playbook.deal_support.marketer_group
    who = "the marketers in the playbook" + (f" or members of <!subteam^{group}>" if group else "")
    return DealSupportRefused(
        f"Only {who} can answer #deal-support requests. Ask RevOps to add you to the playbook."
    )


def _lost_race(session: Session, request: DealSupportRequest, user_id: str) -> DealSupportRefused:
    session.refresh(request)
    if request.state != OPEN:
        return DealSupportRefused(explain_state(request, user_id))
    return DealSupportRefused("Someone else just changed this request; try again.")


def check_may_take(
    playbook: Playbook, request: DealSupportRequest, user_id: str, *, in_group: bool
) -> None:
    """Raise DealSupportRefused unless `user_id` may take this request now."""
    if request.state != OPEN:
        raise DealSupportRefused(explain_state(request, user_id))
    if playbook.deal_support.open_to_all and user_id == request.requester_slack_id:
        raise DealSupportRefused("This is your own request; someone in marketing will take it.")
    if not is_marketer(playbook, user_id, in_group=in_group):
        raise _not_marketer(playbook)


def check_may_finish(
    playbook: Playbook, request: DealSupportRequest, user_id: str, *, action: str, in_group: bool
) -> None:
    """Raise DealSupportRefused unless `user_id` may deliver (or decline) this request now."""
    if request.state in (DELIVERED, DECLINED):
        raise DealSupportRefused(explain_state(request, user_id))
    manager = playbook.deal_support.manager
    if request.state == OPEN:
        if action == "deliver":
            raise DealSupportRefused("Take the request first (*Take it*), then mark it delivered.")
        if not is_marketer(playbook, user_id, in_group=in_group):
            raise _not_marketer(playbook)
        return
    if user_id not in (request.claimed_by, manager):
        raise DealSupportRefused(
            f"<@{request.claimed_by}> has this request; only they or the marketing manager can "
            "change it."
        )


def take(
    session: Session,
    playbook: Playbook,
    request_id: int,
    user_id: str,
    *,
    in_group: bool = False,
    now: datetime,
) -> DealSupportRequest:
    """Claim the request for `user_id`; the first click wins, later clickers learn who has it."""
    request = load(session, request_id)
    check_may_take(playbook, request, user_id, in_group=in_group)
    if not compare_and_set(session, request, state=CLAIMED, claimed_by=user_id, claimed_at=now):
        raise _lost_race(session, request, user_id)
    _after_change(session, playbook, request, TAKEN, now=now)
    return request


def validate_delivery(asset_url: str | None, note: str | None) -> dict[str, str]:
    """Field errors of the Mark delivered form: an http(s) link to the asset, an optional note."""
    errors: dict[str, str] = {}
    url = (asset_url or "").strip()
    if not url:
        errors["asset_url"] = "Paste the link to what you delivered."
    elif len(url) > MAX_URL or not URL.match(url):
        errors["asset_url"] = "That is not a link revbot can use; paste an https:// address."
    if note and len(note.strip()) > MAX_NOTE:
        errors["note"] = f"Keep it under {MAX_NOTE} characters."
    return errors


def deliver(
    session: Session,
    playbook: Playbook,
    request_id: int,
    user_id: str,
    *,
    asset_url: str | None,
    note: str | None,
    author: str | None = None,
    in_group: bool = False,
    now: datetime,
) -> DealSupportRequest:
    """Mark the request delivered with its asset link; the CRM opportunity gets a note once.

    `author` names the marketer in the CRM note (their Slack name; revbot has no email for them).
    """
    errors = validate_delivery(asset_url, note)
    if errors:
        raise InvalidForm(errors)
    request = load(session, request_id)
    check_may_finish(playbook, request, user_id, action="deliver", in_group=in_group)
    if not compare_and_set(
        session,
        request,
        state=DELIVERED,
        delivered_at=now,
        asset_url=(asset_url or "").strip(),
        delivery_note=(note or "").strip() or None,
    ):
        raise _lost_race(session, request, user_id)
    _after_change(session, playbook, request, DELIVERED_LINE, now=now)
    if request.deal_id:
        _enqueue_crm_note(session, playbook, request, user_id, author, now=now)
    return request


def validate_decline(reason: str | None) -> dict[str, str]:
    """Field errors of the Can't do it form: a reason the rep can act on."""
    text = (reason or "").strip()
    if not text:
        return {"reason": "Tell the rep why, so they can look elsewhere or adjust the ask."}
    if len(text) > MAX_NOTE:
        return {"reason": f"Keep it under {MAX_NOTE} characters."}
    return {}


def decline(
    session: Session,
    playbook: Playbook,
    request_id: int,
    user_id: str,
    *,
    reason: str | None,
    in_group: bool = False,
    now: datetime,
) -> DealSupportRequest:
    """Close the request as something marketing cannot do, with the reason for the rep."""
    errors = validate_decline(reason)
    if errors:
        raise InvalidForm(errors)
    request = load(session, request_id)
    check_may_finish(playbook, request, user_id, action="decline", in_group=in_group)
    if not compare_and_set(
        session,
        request,
        state=DECLINED,
        declined_by=user_id,
        declined_at=now,
        decline_reason=(reason or "").strip(),
    ):
        raise _lost_race(session, request, user_id)
    _after_change(session, playbook, request, DECLINED_LINE, now=now)
    return request


def enqueue_refresh(session: Session, request: DealSupportRequest, *, now: datetime) -> None:
    """Queue an in-place update of the request's card to its current state."""
    outbox.enqueue(
        session,
        kind=DS_REFRESH,
        key=f"ds:{request.id}:refresh:v{request.version}",
        lane=outbox.REFRESH_LANE,
        now=now,
        priority=outbox.PRIORITY_FEEDBACK,
        payload={"request_id": request.id},
    )


def enqueue_reply(
    session: Session,
    playbook: Playbook,
    request: DealSupportRequest,
    kind: str,
    *,
    now: datetime,
    broadcast: bool = False,
) -> None:
    """Queue a line of kind `kind` in the request card's thread (rendered when it is sent)."""
    channel = playbook.channels.deal_support
    outbox.enqueue(
        session,
        kind=DS_REPLY,
        key=f"ds:{request.id}:reply:{kind}",
        lane=outbox.channel_lane(channel),
        now=now,
        priority=outbox.PRIORITY_FEEDBACK,
        payload={"request_id": request.id, "kind": kind, "broadcast": broadcast},
    )


def enqueue_dm(
    session: Session, request: DealSupportRequest, kind: str, user_id: str, *, now: datetime
) -> None:
    """Queue a DM of kind `kind` about the request to `user_id` (rendered when it is sent)."""
    outbox.enqueue(
        session,
        kind=DS_DM,
        key=f"ds:{request.id}:dm:{kind}:{user_id}",
        lane=outbox.dm_lane(user_id),
        now=now,
        priority=outbox.PRIORITY_FEEDBACK,
        payload={"request_id": request.id, "kind": kind, "user": user_id},
    )


def _after_change(
    session: Session, playbook: Playbook, request: DealSupportRequest, kind: str, *, now: datetime
) -> None:
    enqueue_refresh(session, request, now=now)
    enqueue_reply(session, playbook, request, kind, now=now)


def note_external_id(request: DealSupportRequest) -> str:
    """The CRM note's stable id: the same on every retry, so the CRM holds it once."""
    return f"revbot-deal-support-{request.id}"


def _enqueue_crm_note(
    session: Session,
    playbook: Playbook,
    request: DealSupportRequest,
    user_id: str,
    author: str | None,
    *,
    now: datetime,
) -> None:
    ask = playbook.deal_support.ask_type(request.ask_type)
    label = ask.label if ask else request.ask_type
    who = f"{author} (Slack {user_id})" if author else f"Slack user {user_id}"
    lines = [
        f"Marketing delivered: {label}",
        f"Asset: {request.asset_url}",
        f"Delivered by {who} on {now.strftime('%Y-%m-%d %H:%M UTC')}",
        f"Requested by Slack user {request.requester_slack_id} on "
        f"{request.created_at.strftime('%Y-%m-%d')}",
    ]
    if request.competitor:
        lines.append(f"Competitor: {request.competitor}")
    if request.delivery_note:
        lines.append(f"Note: {request.delivery_note}")
    outbox.enqueue(
        session,
        kind=outbox.CRM_NOTE,
        key=f"ds:{request.id}:crm-note",
        lane=outbox.CRM_NOTE_LANE,
        now=now,
        payload={
            "external_id": note_external_id(request),
            "deal_id": request.deal_id,
            "title": f"Deal support delivered: {label}"[:255],
            "body": "\n".join(lines)[:4000],
            "author_email": None,
            "created_at": now.isoformat(),
        },
    )


@dataclass(frozen=True)
class Listing:
    """What `/deal-support list` shows one person: their own open requests, what they are
    working on, and (for marketers) the queue of unclaimed requests."""

    mine: list[DealSupportRequest]
    working: list[DealSupportRequest]
    queue: list[DealSupportRequest] | None
    queue_total: int = 0


QUEUE_SHOWN = 15


def listing(session: Session, user_id: str, *, marketer: bool) -> Listing:
    """The caller's open requests (oldest first), the ones they took, and for marketers the
    unclaimed queue: soonest due first, then oldest."""
    active = col(DealSupportRequest.state).in_(ACTIVE_STATES)
    mine = session.exec(
        select(DealSupportRequest)
        .where(DealSupportRequest.requester_slack_id == user_id, active)
        .order_by(col(DealSupportRequest.created_at), col(DealSupportRequest.id))
    ).all()
    working = session.exec(
        select(DealSupportRequest)
        .where(DealSupportRequest.claimed_by == user_id, DealSupportRequest.state == CLAIMED)
        .order_by(col(DealSupportRequest.due_on), col(DealSupportRequest.created_at))
    ).all()
    if not marketer:
        return Listing(list(mine), list(working), None)
    unclaimed = DealSupportRequest.state == OPEN
    queue = session.exec(
        select(DealSupportRequest)
        .where(unclaimed)
        .order_by(
            col(DealSupportRequest.due_on),
            col(DealSupportRequest.created_at),
            col(DealSupportRequest.id),
        )
        .limit(QUEUE_SHOWN)
    ).all()
    total = session.exec(
        select(func.count()).select_from(DealSupportRequest).where(unclaimed)
    ).one()
    return Listing(list(mine), list(working), list(queue), total)
