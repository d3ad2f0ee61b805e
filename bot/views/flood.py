"""The flood summary and its thread pages: many leads per message when cards would take too long."""

from __future__ import annotations

from typing import Any

from bot.core.models import Lead, MqlCycle
from bot.core.playbook import Playbook
from bot.views.blocks import Block, context, escape, section, slack_date

LINES_PER_SECTION = 10


def build_flood_summary(total: int, tiers: dict[str, int], *, playbook: Playbook) -> dict[str, Any]:
    """The one message posted instead of a flood of cards."""
    counts = " · ".join(
        f"{tiers[t.name]:,} {escape(t.display.lower())}"
        for t in playbook.tiers_by_rank
        if tiers.get(t.name)
    )
    hottest = playbook.tiers_by_rank[0]
    text = (
        f":ocean: *{total:,} new MQLs arrived faster than this channel can show cards* "
        f"({counts}). They are listed in this thread, most urgent first, and more join it while "
        "the burst lasts."
    )
    blocks: list[Block] = [
        section(text),
        context(
            f"{escape(hottest.display)} leads with an owner went straight to the owner's DM. "
            "Accept, reject or recycle from `/pipeline` or the revbot App Home."
        ),
    ]
    return {"text": f"{total:,} new MQLs: listed in the thread", "blocks": blocks}


def build_flood_page(entries: list[tuple[MqlCycle, Lead]], *, playbook: Playbook) -> dict[str, Any]:
    """One thread message listing leads of a flood (no email or phone), ten per section."""
    lines = [_line(cycle, lead, playbook) for cycle, lead in entries]
    blocks: list[Block] = [
        context(f"{len(lines):,} more lead(s) of this burst, most urgent first"),
    ]
    for start in range(0, len(lines), LINES_PER_SECTION):
        blocks.append(section("\n".join(lines[start : start + LINES_PER_SECTION])))
    return {"text": f"{len(lines):,} new MQLs", "blocks": blocks}


def _line(cycle: MqlCycle, lead: Lead, playbook: Playbook) -> str:
    tier = playbook.tier(cycle.tier)
    company = (
        f" · {escape(lead.company[:60])}"
        if lead.company and lead.company != lead.display_name
        else ""
    )
    owner = f"<@{cycle.owner_slack_id}>" if cycle.owner_slack_id else "unclaimed"
    return (
        f"• *{escape(lead.display_name[:80])}*{company} · {escape(tier.display)} · {owner} · "
        f"accept by {slack_date(cycle.sla_due_at, '{time}')}"
    )
