"""MQL intake from a CRM: the polling job, and the webhook inbox the outbox worker drains."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine

from bot.core import outbox
from bot.core.crm import CRM, CrmError
from bot.core.crm_intake import read_watermark, save_watermark, store_crm_leads
from bot.core.db import transaction
from bot.core.models import OutboxMessage
from bot.core.playbook import Playbook
from bot.core.writeback import fail_call
from bot.services import Services

log = logging.getLogger(__name__)

MAX_PAGES_PER_POLL = 20


def poll_source(crm_name: str) -> str:
    """The watermark key of polling one CRM."""
    return f"{crm_name}:mql_poll"


def poll(services: Services, *, now: datetime) -> int:
    """Fetch MQLs changed since the stored watermark, store them, advance it; returns records seen."""
    crm = services.crm
    source = poll_source(crm.name)
    seen = 0
    for _ in range(MAX_PAGES_PER_POLL):
        with transaction(services.engine) as session:
            watermark = read_watermark(session, source)
        page = crm.poll_mqls(watermark, now=now)
        with transaction(services.engine) as session:
            summary = store_crm_leads(
                session, crm.name, page.leads, playbook=services.playbook, now=now
            )
            if page.watermark is not None and page.watermark != watermark:
                save_watermark(session, source, page.watermark, now=now)
        seen += len(page.leads)
        if summary.counts["created"] or summary.counts["requalified"]:
            services.notify()
            log.info("polled %s: %s", crm.name, dict(summary.counts))
        if not page.more:
            break
    return seen


def deliver_intake(
    engine: Engine, row_ids: Sequence[int], crm: CRM, playbook: Playbook, *, now: datetime
) -> None:
    """Fetch the records webhook events named, store those that are MQLs, complete the rows."""
    with transaction(engine) as session:
        rows = [r for r in (session.get(OutboxMessage, i) for i in row_ids) if r is not None]
        record_ids = list(dict.fromkeys(str(r.payload["record_id"]) for r in rows))
    if not rows:
        return
    alert_channel = playbook.channels.alerts_channel
    try:
        leads = crm.fetch_mqls(record_ids)
    except CrmError as exc:
        fail_call(
            engine,
            [r.id for r in rows if r.id is not None],
            exc,
            now=now,
            alert_channel=alert_channel,
        )
        return
    with transaction(engine) as session:
        summary = store_crm_leads(session, crm.name, leads, playbook=playbook, now=now)
        stored = {r.external_id for r in summary.results}
        for row in rows:
            live = session.get(OutboxMessage, row.id)
            if live is None:
                continue
            record_id = str(live.payload["record_id"])
            result = {"stored": record_id in stored}
            outbox.complete(session, live, now=now, result=result)
