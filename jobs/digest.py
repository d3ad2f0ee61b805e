"""The weekly digest: compute the last complete week's scoreboard and queue it for Slack."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core import outbox
from bot.core.db import transaction
from bot.core.metrics import Scoreboard, Week, last_complete_week, weekly_scoreboard
from bot.core.playbook import Playbook
from bot.services import Services
from bot.views.digest import build_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderedDigest:
    """One week's digest: the scoreboard, its Block Kit message and its trend chart."""

    week: Week
    scoreboard: Scoreboard
    message: dict[str, Any]
    png: bytes

    @property
    def filename(self) -> str:
        """The chart's file name, e.g. digest-2026-W47.png."""
        return f"digest-{self.week.label}.png"

    @property
    def title(self) -> str:
        """The chart's title in Slack."""
        return f"Weekly scoreboard {self.week.label}: last {len(self.scoreboard.trend)} weeks"


def digest_channel(playbook: Playbook) -> str:
    """Where the digest is posted: `digest.channel`, else `channels.digest`."""
    return playbook.digest.channel or playbook.channels.digest


def recipients(playbook: Playbook) -> list[str]:
    """The digest channel, then each pool manager when `digest.dm_managers` is on."""
    targets = [digest_channel(playbook)]
    if playbook.digest.dm_managers:
        managers = {p.manager for p in playbook.routing.pools.values() if p.manager}
        targets += sorted(managers)
    return targets


def render(services: Services, week: Week, *, now: datetime) -> RenderedDigest:
    """Compute `week`'s scoreboard (as of `now`) and render its message and chart."""
    playbook = services.playbook
    with transaction(services.engine) as session:
        board = weekly_scoreboard(session, playbook, week, now=now)
    # matplotlib costs ~40 MB and a second to import: load it only when a digest is rendered.
    from bot.views.digest_chart import render_trend_png

    title = f"{week.label}: MQLs, acceptance and time to accept, last {len(board.trend)} weeks"
    return RenderedDigest(
        week, board, build_digest(board, playbook), render_trend_png(board.trend, title=title)
    )


def _key(week: Week, target: str) -> str:
    return f"digest:{week.label}:{target}"


def queue(services: Services, week: Week, *, now: datetime) -> int:
    """Queue `week`'s digest for each recipient not queued before; returns how many were queued."""
    targets = recipients(services.playbook)
    with transaction(services.engine) as session:
        todo = [t for t in targets if not outbox.exists(session, _key(week, t))]
    if not todo:
        return 0
    digest = render(services, week, now=now)
    payload = {
        "week": week.label,
        "text": digest.message["text"],
        "blocks": digest.message["blocks"],
        "png": base64.b64encode(digest.png).decode("ascii"),
        "filename": digest.filename,
        "title": digest.title,
    }
    queued = 0
    with transaction(services.engine) as session:
        for target in todo:
            user = target[:1] in ("U", "W")
            queued += outbox.enqueue(
                session,
                kind=outbox.SLACK_FILE,
                key=_key(week, target),
                lane=outbox.dm_lane(target) if user else outbox.channel_lane(target),
                now=now,
                payload={**payload, "channel": target},
            )
    return queued


def run(services: Services, *, now: datetime) -> int:
    """Queue the last complete week's digest (idempotent per week and recipient); wake the worker."""
    week = last_complete_week(services.playbook, now)
    queued = queue(services, week, now=now)
    if queued:
        log.info("weekly digest %s queued for %d recipient(s)", week.label, queued)
        services.notify()
    return queued
