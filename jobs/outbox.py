"""Outbox delivery: send due side effects lane by lane, within each lane's rate budget."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.core import flood, outbox
from bot.core.db import transaction
from bot.core.delivery import Failed, RateLimited, record_outcome
from bot.core.writeback import deliver_batch, deliver_notes, deliver_tasks
from bot.services import Services
from jobs.crm_intake import deliver_intake

log = logging.getLogger(__name__)
CHANNEL_LANE_PREFIX = outbox.channel_lane("")


def run(services: Services, *, now: datetime) -> int:
    """Deliver what is due now; returns how many rows were attempted (0 when idle or all paced)."""
    with transaction(services.engine) as session:
        lanes = outbox.due_lanes(session, now)
    attempted = 0
    for lane in lanes:
        if lane == outbox.CRM_LANE:
            attempted += _deliver_crm(services, lane, deliver_batch, now=now)
        elif lane == outbox.CRM_TASK_LANE:
            attempted += _deliver_crm(services, lane, deliver_tasks, now=now)
        elif lane == outbox.CRM_NOTE_LANE:
            attempted += _deliver_crm(services, lane, deliver_notes, now=now)
        elif lane == outbox.CRM_INTAKE_LANE:
            attempted += _deliver_crm(services, lane, deliver_intake, now=now)
        else:
            attempted += _deliver_slack_lane(services, lane, now=now)
    return attempted


def _deliver_crm(
    services: Services, lane: str, deliver: Callable[..., None], *, now: datetime
) -> int:
    with transaction(services.engine) as session:
        ids = [r.id for r in outbox.claim(session, lane, services.crm.max_batch, now=now)]
    if ids:
        deliver(
            services.engine,
            [i for i in ids if i is not None],
            services.crm,
            services.playbook,
            now=now,
        )
    return len(ids)


def _deliver_slack_lane(services: Services, lane: str, *, now: datetime) -> int:
    if lane.startswith(CHANNEL_LANE_PREFIX):
        with transaction(services.engine) as session:
            absorbed = flood.absorb(session, lane, now=now)
        if absorbed:
            log.warning("%d cards waiting for %s: listing them in a flood thread", absorbed, lane)
    budget = services.pacer.available(lane, now)
    if budget == 0:
        return 0
    with transaction(services.engine) as session:
        rows = outbox.claim(session, lane, budget, now=now)
    alert_channel = services.playbook.channels.alerts_channel
    delivery = services.slack_delivery
    if delivery is None:
        unconfigured = Failed("Slack is not configured (SLACK_BOT_TOKEN is unset)", retryable=True)
        with transaction(services.engine) as session:
            for row in rows:
                assert row.id is not None
                record_outcome(session, row.id, unconfigured, now=now, alert_channel=alert_channel)
        return len(rows)
    for index, row in enumerate(rows):
        assert row.id is not None
        services.pacer.take(lane, now)
        outcome = delivery.deliver(row)
        if isinstance(outcome, Failed):
            log.warning("outbox #%s (%s) failed: %s", row.id, row.kind, outcome.error)
        with transaction(services.engine) as session:
            record_outcome(session, row.id, outcome, now=now, alert_channel=alert_channel)
            if isinstance(outcome, RateLimited):
                until = services.pacer.block(lane, now, outcome.retry_after)
                log.info("Slack rate-limited lane %s; pausing it until %s", lane, until.isoformat())
                for rest in rows[index + 1 :]:
                    assert rest.id is not None
                    record_outcome(session, rest.id, outcome, now=now, alert_channel=alert_channel)
        if isinstance(outcome, RateLimited):
            return index + 1
    return len(rows)
