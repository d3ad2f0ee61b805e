"""The /revbot help message."""

from __future__ import annotations

from typing import Any

from bot.core.durations import format_duration
from bot.core.playbook import Playbook
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
        section("*Commands*\n`/revbot help`: this message"),
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
