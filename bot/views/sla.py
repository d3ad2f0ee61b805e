"""SLA chase messages: nudges, escalations, reassignments, limbo and unassigned notices."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.core.durations import format_duration
from bot.core.sla import ESCALATE, LIMBO, NUDGE, REASSIGN, UNASSIGNED, Notice
from bot.views.blocks import Block, button, clip, context, escape, section, slack_date
from bot.views.lead_card import ACCEPT, RECYCLE, REJECT

Message = dict[str, Any]
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
ACTIONS_BLOCK = "sla_actions"


def build_sla_message(notice: Notice) -> Message:
    """The DM or card-thread line for one SLA step; names the lead, never its email or phone."""
    return _BUILDERS[(notice.kind, notice.audience)](notice)


def _message(text: str, blocks: list[Block]) -> Message:
    return {"text": clip(text, 3000), "blocks": blocks}


def _tier(n: Notice) -> str:
    return escape(n.playbook.tier(n.cycle.tier).display.lower())


def _name(n: Notice) -> str:
    company = n.lead.company if n.lead.company != n.lead.display_name else None
    return escape(n.lead.display_name + (f" ({company})" if company else ""))


def _lead_line(n: Notice) -> str:
    who = " at ".join(p for p in (n.lead.title, n.lead.company) if p)
    return f"*{escape(n.lead.display_name)}*" + (f" · {escape(who)}" if who else "")


def _mention(user: str | None) -> str:
    return f"<@{user}>" if user else ""


def _pool(n: Notice) -> str:
    return f"`{escape(n.cycle.pool)}`"


def _card(n: Notice) -> str:
    channel = n.playbook.channels.pipeline
    return f"the card is in {f'<#{channel}>' if CHANNEL_ID.match(channel) else escape(channel)}"


def _told(manager: str | None) -> str:
    return f" {_mention(manager)} has been told." if manager else ""


def _holder(n: Notice) -> str:
    owner = n.cycle.owner_slack_id
    return f"{_mention(owner)} has not accepted it" if owner else f"nobody in {_pool(n)} claimed it"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _actions(n: Notice) -> Block:
    value = str(n.cycle.id)
    return {
        "type": "actions",
        "block_id": ACTIONS_BLOCK,
        "elements": [
            button("Accept", ACCEPT, value=value, style="primary"),
            button("Reject", REJECT, value=value, style="danger"),
            button("Recycle", RECYCLE, value=value),
        ],
    }


def _duration(span: timedelta) -> str:
    return format_duration(max(span, timedelta(0)))


def _nudge(n: Notice) -> Message:
    left = _duration(n.span)
    return _message(
        f"Reminder: {left} left to accept the {_tier(n)} lead {_name(n)}.",
        [
            section(
                f":hourglass_flowing_sand: *{left} left* to accept this {_tier(n)} lead\n"
                + _lead_line(n)
            ),
            context(
                f"Accept by {slack_date(n.cycle.sla_due_at)}, or reject or recycle it with a reason"
                f" · {_card(n)}"
            ),
            _actions(n),
        ],
    )


def _pool_nudge(n: Notice) -> Message:
    who = " ".join(_mention(m) for m in n.pool_members) or "Anyone here"
    line = (
        f":hourglass_flowing_sand: {who}: this {_tier(n)} lead is still unclaimed, "
        f"{_duration(n.span)} left to accept it (by {slack_date(n.cycle.sla_due_at)})."
    )
    return _message(line, [section(line)])


def _escalation(n: Notice) -> Message:
    late = _duration(n.span)
    details = [f"Was due {slack_date(n.cycle.sla_due_at)}"]
    if n.reassign_in is not None:
        when = f"in {_duration(n.reassign_in)}" if n.reassign_in > timedelta(0) else "now"
        details.append(f"revbot moves it to the next available rep {when}")
    details.append(_card(n))
    return _message(
        f"SLA missed: the {_tier(n)} lead {_name(n)} is overdue by {late}; {_holder(n)}.",
        [
            section(
                f":rotating_light: *SLA missed* · overdue by {late}\n{_lead_line(n)}\n"
                f"{_sentence(_holder(n))}."
            ),
            context(" · ".join(details)),
        ],
    )


def _escalation_note(n: Notice) -> Message:
    line = f":warning: SLA missed: overdue by {_duration(n.span)}; {_holder(n)}.{_told(n.manager)}"
    return _message(line, [section(line)])


def _limbo(n: Notice) -> Message:
    waited = _duration(n.span)
    owner = n.cycle.owner_slack_id
    where = f"It is with {_mention(owner)}" if owner else f"Nobody in {_pool(n)} has claimed it"
    return _message(
        f"No disposition {waited} after it landed: the {_tier(n)} lead {_name(n)} is still open.",
        [
            section(
                f":hourglass: *No disposition {waited} after it landed*\n{_lead_line(n)}\n"
                f"{where}; it needs an accept, reject or recycle."
            ),
            context(_card(n)),
        ],
    )


def _limbo_note(n: Notice) -> Message:
    line = (
        f":hourglass: Still no disposition {_duration(n.span)} after this lead landed."
        f"{_told(n.manager)}"
    )
    return _message(line, [section(line)])


def _why_unassigned(n: Notice) -> str:
    busy = "(and its backup pools) is away or at capacity"
    previous = n.previous_owner
    if previous:
        return f"{_mention(previous)} missed the SLA and every other rep in {_pool(n)} {busy}"
    return f"every rep in {_pool(n)} {busy}"


def _unassigned(n: Notice) -> Message:
    return _message(
        f"Nobody is available to take the {_tier(n)} lead {_name(n)}: it waits unassigned.",
        [
            section(
                f":warning: *Nobody is available to take this {_tier(n)} lead*\n{_lead_line(n)}\n"
                f"{_sentence(_why_unassigned(n))}."
            ),
            context(
                f"It waits unassigned: anyone in {_pool(n)} may accept it, and revbot assigns it "
                f"as soon as a rep is free · {_card(n)}"
            ),
        ],
    )


def _unassigned_note(n: Notice) -> Message:
    line = (
        f":warning: This lead waits unassigned: {_why_unassigned(n)}. Anyone in {_pool(n)} may "
        f"accept it; revbot assigns it as soon as a rep is free.{_told(n.manager)}"
    )
    return _message(line, [section(line)])


def _reassigned(n: Notice) -> Message:
    previous = n.previous_owner
    why = (
        f"{_mention(previous)} did not respond within the SLA"
        if previous
        else "Nobody was available when it arrived"
    )
    sla = format_duration(n.playbook.tier(n.cycle.tier).accept_within)
    return _message(
        f"Reassigned to you: the {_tier(n)} lead {_name(n)}.",
        [
            section(
                f":twisted_rightwards_arrows: *A {_tier(n)} lead was reassigned to you*\n"
                f"{_lead_line(n)}\n{why}."
            ),
            context(f"Accept by {slack_date(n.cycle.sla_due_at)} ({sla} SLA) · {_card(n)}"),
            _actions(n),
        ],
    )


def _reassigned_note(n: Notice) -> Message:
    previous = n.previous_owner
    moved = f"from {_mention(previous)} " if previous else ""
    line = (
        f":twisted_rightwards_arrows: Reassigned {moved}to {_mention(n.cycle.owner_slack_id)}; "
        f"new deadline {slack_date(n.cycle.sla_due_at)}."
    )
    return _message(line, [section(line)])


_BUILDERS: dict[tuple[str, str], Callable[[Notice], Message]] = {
    (NUDGE, "owner"): _nudge,
    (NUDGE, "thread"): _pool_nudge,
    (ESCALATE, "manager"): _escalation,
    (ESCALATE, "thread"): _escalation_note,
    (LIMBO, "manager"): _limbo,
    (LIMBO, "thread"): _limbo_note,
    (UNASSIGNED, "manager"): _unassigned,
    (UNASSIGNED, "thread"): _unassigned_note,
    (REASSIGN, "owner"): _reassigned,
    (REASSIGN, "thread"): _reassigned_note,
}
