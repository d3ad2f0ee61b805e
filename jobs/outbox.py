"""Outbox delivery: send due side effects lane by lane, within each lane's rate budget."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from bot.core import flood, outbox
from bot.core.db import transaction
from bot.core.delivery import (
    Deferred,
    Delivered,
    Failed,
    Outcome,
    RateLimited,
    Unavailable,
    record_outcome,
)
from bot.core.models import OutboxMessage
from bot.core.writeback import deliver_batch, deliver_notes, deliver_tasks
from bot.services import Services
from jobs.crm_intake import deliver_intake

log = logging.getLogger(__name__)
CHANNEL_LANE_PREFIX = outbox.channel_lane("")


CRM_DELIVERIES: dict[str, Callable[..., None]] = {
    outbox.CRM_LANE: deliver_batch,
    outbox.CRM_TASK_LANE: deliver_tasks,
    outbox.CRM_NOTE_LANE: deliver_notes,
    outbox.CRM_INTAKE_LANE: deliver_intake,
}
# Write-back lanes hold a partial batch briefly while a stream is filling it (see
# outbox.FILL_WINDOW); intake never waits, as each MQL fetched is a card a rep is waiting for.
FILLED_LANES = frozenset({outbox.CRM_LANE, outbox.CRM_TASK_LANE, outbox.CRM_NOTE_LANE})


def run(services: Services, *, now: datetime, slack: bool = True) -> int:
    """Deliver what is due now; returns how many rows were attempted (0 when idle or all paced).

    `slack=False` leaves Slack rows to another worker: Slack's budgets are per channel, and one
    process pacing each channel is what keeps several workers from exceeding them together.
    """
    with transaction(services.engine) as session:
        lanes = outbox.due_lanes(session, now)
    attempted = 0
    for lane in lanes:
        if lane in CRM_DELIVERIES:
            attempted += _deliver_crm(services, lane, CRM_DELIVERIES[lane], now=now)
    slack_lanes = [lane for lane in lanes if lane not in CRM_DELIVERIES]
    if slack and slack_lanes:
        attempted += _deliver_slack(services, slack_lanes, now=now)
    return attempted


def _deliver_crm(
    services: Services, lane: str, deliver: Callable[..., None], *, now: datetime
) -> int:
    claim = outbox.claim_batch if lane in FILLED_LANES else outbox.claim
    with transaction(services.engine) as session:
        ids = [r.id for r in claim(session, lane, services.crm.max_batch, now=now)]
    if ids:
        deliver(
            services.engine,
            [i for i in ids if i is not None],
            services.crm,
            services.playbook,
            now=now,
        )
    return len(ids)


def _deliver_slack(services: Services, lanes: list[str], *, now: datetime) -> int:
    """Claim every lane's budget in one transaction, send, then record every outcome in one.

    Two transactions a round, however many lanes (each DM is a lane), keep delivery moving while
    intake holds the database busy (SQLite has one writer at a time).
    """
    channels = [lane for lane in lanes if lane.startswith(CHANNEL_LANE_PREFIX)]
    if channels:
        with transaction(services.engine) as session:
            for lane in channels:
                absorbed = flood.absorb(session, lane, now=now)
                if absorbed:
                    log.warning("%d cards waiting for %s: listing them in a thread", absorbed, lane)
    claimed: list[tuple[str, list[OutboxMessage]]] = []
    with transaction(services.engine) as session:
        for lane in lanes:
            # The pacer reads the clock at each send: `now` is when this round began, and a
            # round spent waiting on the database must not make the next send look due earlier.
            budget = services.pacer.available(lane, services.clock())
            if budget:
                rows = outbox.claim(session, lane, budget, now=now)
                for row in rows:
                    session.expunge(row)
                claimed.append((lane, rows))
    outcomes: list[tuple[int, Outcome]] = []
    for lane, rows in claimed:
        outcomes += _send_lane(services, lane, rows)
    if outcomes:
        alert_channel = services.playbook.channels.alerts_channel
        with transaction(services.engine) as session:
            for row_id, outcome in outcomes:
                record_outcome(session, row_id, outcome, now=now, alert_channel=alert_channel)
    return len(outcomes)


def _send_lane(
    services: Services, lane: str, rows: list[OutboxMessage]
) -> list[tuple[int, Outcome]]:
    """Send one lane's claimed rows in order; a 429 pauses the lane and puts the rest back."""
    delivery = services.slack_delivery
    outcomes: list[tuple[int, Outcome]] = []
    for index, row in enumerate(rows):
        assert row.id is not None
        if delivery is None:
            unconfigured = Failed(
                "Slack is not configured (SLACK_BOT_TOKEN is unset)", retryable=True
            )
            outcomes.append((row.id, unconfigured))
            continue
        services.pacer.take(lane, services.clock())
        outcome = delivery.deliver(row)
        if isinstance(outcome, Unavailable):
            pause = services.pacer.failing(lane, services.clock())
            outcome = replace(outcome, retry_after=pause)
        elif isinstance(outcome, Delivered):
            services.pacer.recovered(lane)
        outcomes.append((row.id, outcome))
        if isinstance(outcome, Failed | Unavailable):
            log.warning("outbox #%s (%s) failed: %s", row.id, row.kind, outcome.error)
        if isinstance(outcome, RateLimited | Unavailable):
            until = services.pacer.block(lane, services.clock(), outcome.retry_after)
            why = "rate-limited" if isinstance(outcome, RateLimited) else "failing"
            log.info("Slack %s on lane %s; pausing it until %s", why, lane, until.isoformat())
            untried = Deferred(outcome.retry_after, f"lane paused: Slack {why}")
            outcomes += [(rest.id, untried) for rest in rows[index + 1 :] if rest.id is not None]
            break
    return outcomes
