"""The lead card posted in #revenue-pipeline (and the hot-lead DM to its owner)."""

from __future__ import annotations

from typing import Any

from bot.core.durations import format_duration
from bot.core.models import ACCEPTED, RECYCLED, REJECTED, Lead, MqlCycle
from bot.core.playbook import Playbook
from bot.views.blocks import Block, button, clip, context, escape, section, slack_date

ACCEPT = "lead_accept"
REJECT = "lead_reject"
RECYCLE = "lead_recycle"
LOG_TOUCH = "lead_log_touch"
OPEN_CRM = "lead_open_crm"
ACTIONS_BLOCK = "lead_actions"

TIER_ICONS = {0: ":fire:", 1: ":large_orange_circle:"}


def _tier_icon(playbook: Playbook, tier: str) -> str:
    names = [t.name for t in playbook.tiers_by_rank]
    rank = names.index(tier) if tier in names else len(names)
    return TIER_ICONS.get(rank, ":seedling:")


def _join(*parts: Any, sep: str = " · ") -> str:
    return sep.join(escape(str(p)) for p in parts if p not in (None, "", []))


def _status_line(cycle: MqlCycle, playbook: Playbook) -> str:
    if cycle.is_open:
        return ""
    first = cycle.first_response_at
    took = f" in {format_duration(first - cycle.received_at)}" if first else ""
    if cycle.state == ACCEPTED:
        return f":white_check_mark: *Accepted* by <@{cycle.accepted_by}>{took}"
    kind = "reject" if cycle.state == REJECTED else "recycle"
    reason = playbook.reason(kind, cycle.reason_code or "")
    label = escape(reason.label if reason else cycle.reason_code or "")
    if cycle.state == REJECTED:
        line = f":no_entry: *Rejected* by <@{cycle.closed_by}>{took} · *{label}*"
    else:
        line = f":recycle: *Recycled* by <@{cycle.closed_by}>{took} · *{label}*"
        if cycle.revisit_on:
            line += f" · revisit on {cycle.revisit_on.isoformat()}"
    if cycle.accepted_by and cycle.state in (REJECTED, RECYCLED):
        line += f"\n_accepted earlier by <@{cycle.accepted_by}>_"
    if cycle.note:
        line += f"\n> {escape(clip(cycle.note, 500))}"
    return line


def _owner_field(cycle: MqlCycle, playbook: Playbook) -> str:
    if cycle.owner_slack_id:
        return f"*Owner*\n<@{cycle.owner_slack_id}>"
    pool = playbook.routing.pools.get(cycle.pool)
    who = "Anyone in the channel" if pool is not None and pool.open else f"Anyone in `{cycle.pool}`"
    return f"*Owner*\nUnclaimed · {who} may accept"


def _actions(cycle: MqlCycle, crm_url: str | None) -> Block | None:
    value = str(cycle.id)
    elements: list[Block] = []
    if cycle.is_open:
        elements.append(button("Accept", ACCEPT, value=value, style="primary"))
    if cycle.state == ACCEPTED:
        elements.append(button("Log touch", LOG_TOUCH, value=value, style="primary"))
    if cycle.state in ("open", ACCEPTED):
        elements.append(button("Reject", REJECT, value=value, style="danger"))
        elements.append(button("Recycle", RECYCLE, value=value))
    if crm_url:
        elements.append(button("Open in CRM", OPEN_CRM, value=value, url=crm_url))
    if not elements:
        return None
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements}


def _touch_line(cycle: MqlCycle, touches: int) -> str:
    if not touches or cycle.first_touch_at is None:
        return ""
    return f"Touches: {touches} (first after {format_duration(cycle.first_touch_at - cycle.received_at)})"


def build_lead_card(
    lead: Lead,
    cycle: MqlCycle,
    *,
    playbook: Playbook,
    crm_url: str | None,
    touches: int = 0,
) -> dict[str, Any]:
    """The card for one MQL cycle, reflecting its current state; no email or phone ever appears.

    `touches` is how many touches the owner has logged on the cycle.
    """
    tier = playbook.tier(cycle.tier)
    icon = _tier_icon(playbook, cycle.tier)
    name = escape(lead.display_name)
    who = _join(lead.title, lead.company, sep=" at ")
    firmographics = _join(
        f"{lead.employees:,} employees" if lead.employees is not None else None,
        lead.industry,
        lead.country,
    )
    fields = [
        f"*Source*\n{_join(lead.lead_source or lead.origin, lead.campaign) or '—'}",
        f"*Score*\n{cycle.score} · {escape(tier.display)}",
        _owner_field(cycle, playbook),
        f"*Accept by*\n{slack_date(cycle.sla_due_at)} ({format_duration(tier.accept_within)} SLA)",
    ]
    if lead.signals:
        fields.append(
            f"*Buying signals*\n{_join(*(s.replace('_', ' ') for s in lead.signals), sep=', ')}"
        )
    if lead.content:
        fields.append(f"*Content engaged*\n{_join(*lead.content, sep=', ')}")
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(f"{tier.display} lead · {lead.display_name}", 150),
                "emoji": True,
            },
        },
        section(
            f"{icon} *{name}*"
            + (f"\n{who}" if who else "")
            + (f"\n{firmographics}" if firmographics else ""),
            fields=fields,
        ),
    ]
    if cycle.score_reasons:
        blocks.append(context(f"*Why it qualified:* {escape(', '.join(cycle.score_reasons))}"))
    status = _status_line(cycle, playbook)
    if status:
        blocks.append(section(status))
    touch_line = _touch_line(cycle, touches)
    if touch_line:
        blocks.append(context(touch_line))
    actions = _actions(cycle, crm_url)
    if actions:
        blocks.append(actions)
    cycle_note = f"MQL #{cycle.seq} (re-qualified)" if cycle.seq > 1 else "MQL"
    blocks.append(context(_join(cycle_note, f"via {lead.origin}", f"id {lead.external_id}")))
    text = (
        f"{tier.display} lead: {lead.display_name}"
        + (f", {lead.title}" if lead.title else "")
        + (f" at {lead.company}" if lead.company else "")
    )
    if cycle.is_open:
        text += f" (accept by {cycle.sla_due_at.strftime('%H:%M UTC')})"
    return {"text": clip(text, 3000), "blocks": blocks}


def build_owner_dm(
    lead: Lead,
    cycle: MqlCycle,
    *,
    playbook: Playbook,
    crm_url: str | None,
    touches: int = 0,
) -> dict[str, Any]:
    """The DM a rep gets when a lead of the hottest tier is assigned to them."""
    card = build_lead_card(lead, cycle, playbook=playbook, crm_url=crm_url, touches=touches)
    intro = section(
        f":rotating_light: A {escape(playbook.tier(cycle.tier).display.lower())} lead was assigned to you."
    )
    return {"text": "Assigned to you: " + card["text"], "blocks": [intro, *card["blocks"]]}
