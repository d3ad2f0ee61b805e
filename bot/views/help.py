"""The /revbot help message."""

from __future__ import annotations

from typing import Any

from bot.core.durations import format_duration
from bot.core.playbook import Playbook
from bot.core.touches import describe_span, type_label
from bot.views.blocks import context, escape, section


def build_help(playbook: Playbook, *, asked: str = "") -> dict[str, Any]:
    """What revbot does here and how to use it (shown only to the person who asked)."""
    tiers = ", ".join(
        f"{t.display} (score ≥ {t.min_score}): accept within {format_duration(t.accept_within)}"
        for t in playbook.tiers_by_rank
    )
    mode = (
        "Leads are *assigned* round-robin: the owner is @-mentioned, and hot leads also arrive by DM."
        if playbook.routing.mode == "assign"
        else "Leads are *claimed*: anyone in the lead's pool may accept it; the first click wins."
    )
    away_effect = "; new leads go to your teammates" if playbook.routing.mode == "assign" else ""
    blocks = [
        section(
            f"*revbot* posts new marketing-qualified leads in {escape(playbook.channels.pipeline)} "
            "with *Accept*, *Reject* and *Recycle* buttons, and writes what you decide back to the CRM."
        ),
        section(f"{mode}\n*SLA tiers:* {escape(tiers)}"),
        section(
            "*Reject* asks for a reason and one sentence for marketing; *Recycle* asks for a reason "
            "and the date to bring the lead back."
        ),
        section(
            "After accepting, *Log touch* on the card records a "
            f"{escape(_touch_types(playbook))} touch; it becomes a task in the CRM and counts "
            "on the card." + _touch_minimum(playbook)
        ),
        section(
            "*#deal-support* `/deal-support` (or the message shortcut *Ask marketing about this*) "
            "asks marketing for help on a deal; the request is posted in "
            f"{escape(playbook.channels.deal_support)} for a marketer to take. "
            "`/deal-support list` shows your open requests (marketers also see the unclaimed queue)."
        ),
        section(
            "*Commands*\n"
            "`/revbot help`: this message\n"
            "`/revbot away [until YYYY-MM-DD]`: mark yourself away until the start of that day "
            "(or until you are back)" + away_effect + "\n"
            "`/revbot back`: mark yourself available again\n"
            "`/pipeline`: your open leads with their SLA clocks, and those waiting for a first "
            "touch · `/pipeline team`: your pool · `/pipeline @rep`: a rep's leads (managers)\n"
            "`/lead <email | name | company>`: a lead's status, owner and history\n"
            "`/deal <name>`: a deal's stage, amount, close date and next step from the CRM\n"
            "revbot's *Home* tab shows your queue with its buttons and your week's numbers"
        ),
    ]
    word = asked.strip().split(" ", 1)[0].lower()
    if word and word != "help":
        blocks.insert(
            0,
            context(
                f"`/revbot {escape(word)}` is not something revbot knows; here is what it does."
            ),
        )
    return {
        "text": "revbot help: lead handoff in Slack",
        "blocks": blocks,
        "response_type": "ephemeral",
    }


def _touch_types(playbook: Playbook) -> str:
    labels = [type_label(code) for code in playbook.touches.types]
    return (", ".join(labels[:-1]) + " or " + labels[-1]) if len(labels) > 1 else labels[0]


def _touch_minimum(playbook: Playbook) -> str:
    minimum = playbook.touches.minimum
    if minimum is None:
        return ""
    labels = [r.label for r in playbook.reasons.recycle if r.code in minimum.reasons]
    return (
        f" Recycling for {escape(' or '.join(labels))} needs {minimum.touches} touches "
        f"within {describe_span(minimum.within)}."
    )
