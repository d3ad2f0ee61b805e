"""The App Home tab: the rep's queue with its buttons, their week's numbers, away/back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.core.access import Viewer
from bot.core.durations import format_duration
from bot.core.lookup import PoolSummary, Queue, RepPipeline, RepWeek
from bot.core.models import OPEN
from bot.core.playbook import Playbook
from bot.views.blocks import Block, button, clip, context, escape, section, slack_date
from bot.views.lead_card import ACCEPT, LOG_TOUCH, RECYCLE, REJECT
from bot.views.lookup import lead_line, sla_clock

HOME_AWAY = "home_away"
HOME_BACK = "home_back"
HOME_QUEUE_LIMIT = 10
MAX_HOME_BLOCKS = 100


@dataclass(frozen=True)
class Availability:
    """Whether the rep is away now, and until when (None: until they say they are back)."""

    away: bool
    until: datetime | None = None


def _header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip(text, 150), "emoji": True},
    }


def _availability_blocks(availability: Availability, playbook: Playbook) -> list[Block]:
    if availability.away:
        until = (
            f"until {slack_date(availability.until, '{date_long_pretty}')}"
            if availability.until
            else "until you say you're back"
        )
        text = f":palm_tree: *You're away* {until}: new leads go to your teammates."
        action = button("I'm back", HOME_BACK, value="back", style="primary")
    else:
        where = "assigned to you" if playbook.routing.mode == "assign" else "sent your way"
        text = f":large_green_circle: *You're available*: new leads can be {where}."
        action = button("Mark me away", HOME_AWAY, value="away")
    return [
        {**section(text), "block_id": "home_availability", "accessory": action},
        context("For a date: `/revbot away until YYYY-MM-DD`."),
    ]


def _week_blocks(week: RepWeek) -> list[Block]:
    median = format_duration_seconds(week.median_accept)
    rate = f"{week.sla_rate * 100:.0f}%" if week.sla_rate is not None else "—"
    return [
        section(
            f"*Your week* (since {week.week.monday:%a %b} {week.week.monday.day})",
            fields=[
                f"*Accepted*\n{week.accepted} of {week.owned}",
                f"*Median time to accept*\n{median}",
                f"*SLA met*\n{rate} ({week.sla_met} of {week.sla_decided})",
            ],
        )
    ]


def format_duration_seconds(seconds: float | None) -> str:
    """A duration given in seconds for people ("—" without one)."""
    if seconds is None:
        return "—"
    return format_duration(timedelta(seconds=seconds))


def _lead_blocks(
    title: str, queue: Queue, playbook: Playbook, who: Viewer, now: datetime
) -> list[Block]:
    if not queue.total:
        return []
    blocks: list[Block] = [section(f"*{title}* ({queue.total})")]
    for item in queue.items[:HOME_QUEUE_LIMIT]:
        cycle = item.cycle
        line = lead_line(item.lead, cycle, playbook, who)
        value = str(cycle.id)
        if cycle.state == OPEN:
            line += "\n" + sla_clock(cycle, now)
            first = button("Accept", ACCEPT, value=value, style="primary")
        else:
            accepted = cycle.accepted_at
            if accepted:
                line += f"\nAccepted {format_duration(now - accepted)} ago · no touch logged yet"
            first = button("Log touch", LOG_TOUCH, value=value, style="primary")
        blocks.append(section(line))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"home_lead_{cycle.id}",
                "elements": [
                    first,
                    button("Reject", REJECT, value=value, style="danger"),
                    button("Recycle", RECYCLE, value=value),
                ],
            }
        )
    shown = min(len(queue.items), HOME_QUEUE_LIMIT)
    if queue.total > shown:
        blocks.append(context(f"…and {queue.total - shown} more; `/pipeline` lists them."))
    return blocks


def _team_blocks(summaries: Sequence[PoolSummary]) -> list[Block]:
    lines = [
        f"`{escape(s.pool)}`: {s.open} open ({s.unclaimed} unclaimed), "
        f"*{s.breaching} past SLA*, {s.untouched} accepted but untouched"
        for s in summaries
    ]
    return [
        section("*Your pools*\n" + "\n".join(lines)),
        context("`/pipeline team` for who holds what."),
    ]


def build_home(
    *,
    pipeline: RepPipeline,
    week: RepWeek | None,
    availability: Availability | None,
    playbook: Playbook,
    who: Viewer,
    now: datetime,
    team: Sequence[PoolSummary] = (),
    notice: str | None = None,
) -> dict[str, Any]:
    """The Home tab view for one person; `notice` (e.g. why a click was refused) shows on top."""
    blocks: list[Block] = [_header("Your leads")]
    if notice:
        blocks.append(section(f":information_source: {notice}"))
    if availability is not None:
        blocks += _availability_blocks(availability, playbook)
    blocks.append({"type": "divider"})
    queue = [
        *_lead_blocks("Open leads you own", pipeline.open, playbook, who, now),
        *_lead_blocks("Unclaimed in your pools", pipeline.unclaimed, playbook, who, now),
        *_lead_blocks("Accepted, no touch logged yet", pipeline.untouched, playbook, who, now),
    ]
    if queue:
        blocks += queue
    else:
        blocks.append(section("Nothing waits for you: no open leads and no untouched ones. :tada:"))
    if team:
        blocks += [{"type": "divider"}, *_team_blocks(team)]
    if week is not None:
        blocks += [{"type": "divider"}, *_week_blocks(week)]
    if not who.roles:
        blocks.append(
            context("You're not in any pool of the playbook; ask RevOps to add you to one.")
        )
    blocks.append(context(f"Updated {slack_date(now, '{date_short_pretty} at {time}')}."))
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}
