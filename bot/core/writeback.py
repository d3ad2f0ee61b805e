"""CRM write-back: turn due outbox rows into one batched CRM call and record each write's outcome."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core import outbox
from bot.core.crm import (
    CRM,
    CrmError,
    CrmRateLimited,
    CrmTask,
    CrmWrite,
    DealNote,
    LeadDisposition,
    LeadRef,
    WriteResult,
)
from bot.core.db import transaction
from bot.core.models import Lead, MqlCycle, OutboxMessage, Touch
from bot.core.playbook import Playbook
from bot.core.touches import type_label


def lead_ref(lead: Lead) -> LeadRef:
    """The CRM-facing identity of a lead."""
    assert lead.id is not None
    return LeadRef(lead.id, lead.origin, lead.external_id, lead.crm_record_id)


def disposition(lead: Lead, cycle: MqlCycle, playbook: Playbook, crm_name: str) -> LeadDisposition:
    """The lead's current handoff state as the CRM should hold it."""
    kind = "reject" if cycle.state == "rejected" else "recycle"
    reason = playbook.reason(kind, cycle.reason_code) if cycle.reason_code else None
    pool = playbook.routing.pools.get(cycle.pool)
    member = pool.member(cycle.owner_slack_id) if pool and cycle.owner_slack_id else None
    status = cycle.state
    return LeadDisposition(
        lead=lead_ref(lead),
        status=status,  # type: ignore[arg-type]
        status_value=playbook.field_map(crm_name).status_value(status),
        owner_slack_id=cycle.owner_slack_id,
        owner_email=member.email if member else None,
        reason_code=cycle.reason_code,
        reason_value=reason.crm if reason else cycle.reason_code,
        note=cycle.note,
        revisit_on=cycle.revisit_on,
        mql_at=cycle.mql_at,
        accepted_at=cycle.accepted_at,
        closed_at=cycle.closed_at,
    )


def build_writes(
    session: Session, rows: Sequence[OutboxMessage], playbook: Playbook, crm_name: str
) -> list[CrmWrite]:
    """One write per outbox row, rendered from the lead's state now (so a late row never regresses it)."""
    # Two reads for the whole batch, not two per record.
    lead_ids = {row.payload["lead_id"] for row in rows}
    leads = {lead.id: lead for lead in session.exec(select(Lead).where(col(Lead.id).in_(lead_ids)))}
    latest: dict[int, MqlCycle] = {}
    cycles = select(MqlCycle).where(col(MqlCycle.lead_id).in_(lead_ids)).order_by(col(MqlCycle.seq))
    for found in session.exec(cycles):
        latest[found.lead_id] = found  # ordered by seq: the last one stays
    writes = []
    for row in rows:
        lead, cycle = leads.get(row.payload["lead_id"]), latest.get(row.payload["lead_id"])
        if lead is None or cycle is None:
            continue
        writes.append(
            CrmWrite(key=str(row.id), disposition=disposition(lead, cycle, playbook, crm_name))
        )
    return writes


def record_results(
    session: Session,
    rows: Sequence[OutboxMessage],
    results: Sequence[WriteResult],
    *,
    now: datetime,
    alert_channel: str | None,
) -> None:
    """Complete, retry or dead-letter each row according to the CRM's per-record result."""
    by_key = {r.key: r for r in results}
    for row in rows:
        result = by_key.get(str(row.id))
        if result is None:
            outbox.fail(
                session,
                row,
                "the CRM returned no result for this record",
                now=now,
                retryable=True,
                alert_channel=alert_channel,
            )
        elif result.ok:
            outbox.complete(session, row, now=now)
        else:
            outbox.fail(
                session,
                row,
                result.error or "rejected by the CRM",
                now=now,
                retryable=result.retryable,
                alert_channel=alert_channel,
            )


def owner_email(playbook: Playbook, slack_id: str, pool: str | None = None) -> str | None:
    """A rep's email from the playbook: their entry in `pool` first, else in any pool."""
    pools = playbook.routing.pools
    ordered = ([pools[pool]] if pool in pools else []) + list(pools.values())
    member = next((m for p in ordered if (m := p.member(slack_id)) is not None), None)
    return member.email if member else None


def build_tasks(
    session: Session, rows: Sequence[OutboxMessage], playbook: Playbook
) -> list[CrmTask]:
    """One completed task per `crm.task` row, from the touch it records."""
    tasks = []
    for row in rows:
        touch = session.get(Touch, row.payload["touch_id"])
        lead = session.get(Lead, touch.lead_id) if touch else None
        cycle = session.get(MqlCycle, touch.cycle_id) if touch else None
        if touch is None or lead is None:
            continue
        tasks.append(
            CrmTask(
                key=str(row.id),
                external_id=f"revbot-touch-{touch.id}",
                lead=lead_ref(lead),
                kind=touch.kind,
                label=type_label(touch.kind),
                note=touch.note,
                owner_slack_id=touch.rep_slack_id,
                owner_email=owner_email(
                    playbook, touch.rep_slack_id, cycle.pool if cycle else None
                ),
                done_at=touch.touched_at,
            )
        )
    return tasks


def deliver_batch(
    engine: Engine, row_ids: Sequence[int], crm: CRM, playbook: Playbook, *, now: datetime
) -> None:
    """Write claimed CRM rows in one `apply` call (outside any transaction) and record each outcome."""
    _deliver(
        engine,
        row_ids,
        playbook,
        lambda session, rows: build_writes(session, rows, playbook, crm.name),
        crm.apply,
        skipped="lead no longer exists",
        now=now,
    )


def deliver_tasks(
    engine: Engine, row_ids: Sequence[int], crm: CRM, playbook: Playbook, *, now: datetime
) -> None:
    """Write claimed touch-task rows in one `log_tasks` call and record each outcome."""
    _deliver(
        engine,
        row_ids,
        playbook,
        lambda session, rows: build_tasks(session, rows, playbook),
        crm.log_tasks,
        skipped="touch no longer exists",
        now=now,
    )


def build_notes(rows: Sequence[OutboxMessage]) -> list[DealNote]:
    """One deal note per `crm.note` row; the row's payload holds the note as enqueued."""
    return [
        DealNote(
            key=str(row.id),
            external_id=row.payload["external_id"],
            deal_id=row.payload["deal_id"],
            title=row.payload["title"],
            body=row.payload["body"],
            author_email=row.payload.get("author_email"),
            created_at=datetime.fromisoformat(row.payload["created_at"]),
        )
        for row in rows
    ]


def deliver_notes(
    engine: Engine, row_ids: Sequence[int], crm: CRM, playbook: Playbook, *, now: datetime
) -> None:
    """Write claimed deal-note rows in one `add_deal_notes` call and record each outcome."""
    _deliver(
        engine,
        row_ids,
        playbook,
        lambda session, rows: build_notes(rows),
        crm.add_deal_notes,
        skipped="note could not be built",
        now=now,
    )


def _alert_paused(session: Session, exc: CrmRateLimited, channel: str, *, now: datetime) -> None:
    """Say once an hour that the CRM's API budget is spent and writes wait (nothing is lost)."""
    resume = f" for about {round(exc.retry_after / 60)} min" if exc.retry_after else ""
    outbox.enqueue_alert(
        session,
        key=f"alert:crm-rate-limited:{now:%Y%m%d%H}",
        channel=channel,
        now=now,
        text=(
            f":hourglass: The CRM's API limit is reached ({exc}): revbot pauses CRM writes{resume} "
            "and delivers them afterwards; nothing is lost."
        ),
    )


def _wait_out(session: Session, row: OutboxMessage, exc: CrmRateLimited, *, now: datetime) -> None:
    """Retry a write after the CRM's wait, however long its API limit lasts.

    A spent budget is no fault of the write, so no attempt is counted (as for a Slack 429):
    counted toward MAX_ATTEMPTS it would dead-letter every queued write once a daily limit
    outlasts eight waits.
    """
    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    wait = timedelta(seconds=exc.retry_after or outbox.backoff(row.attempts + 1).total_seconds())
    outbox.postpone(session, row, until=now + wait)


def fail_call(
    engine: Engine,
    row_ids: Sequence[int],
    exc: CrmError,
    *,
    now: datetime,
    alert_channel: str | None,
) -> None:
    """Record a CRM call that failed as a whole: wait out a spent API budget, else retry or dead-letter."""
    with transaction(engine) as session:
        if isinstance(exc, CrmRateLimited) and alert_channel:
            _alert_paused(session, exc, alert_channel, now=now)
        for row_id in row_ids:
            row = session.get(OutboxMessage, row_id)
            if row is None:
                continue
            if isinstance(exc, CrmRateLimited):
                _wait_out(session, row, exc, now=now)
            else:
                outbox.fail(
                    session,
                    row,
                    f"{type(exc).__name__}: {exc}",
                    now=now,
                    retryable=exc.retryable,
                    alert_channel=alert_channel,
                    retry_after=exc.retry_after,
                )


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


T = TypeVar("T", bound=_Keyed)


def _deliver(
    engine: Engine,
    row_ids: Sequence[int],
    playbook: Playbook,
    render: Callable[[Session, list[OutboxMessage]], list[T]],
    send: Callable[[Sequence[T]], list[WriteResult]],
    *,
    skipped: str,
    now: datetime,
) -> None:
    alert_channel = playbook.channels.alerts_channel
    with transaction(engine) as session:
        rows = [r for r in (session.get(OutboxMessage, i) for i in row_ids) if r is not None]
        items = render(session, rows)
        rendered = {item.key for item in items}
        for row in rows:
            if str(row.id) not in rendered:
                outbox.complete(session, row, now=now, result={"skipped": skipped})
    if not items:
        return
    try:
        results = send(items)
    except CrmError as exc:
        fail_call(engine, [int(key) for key in rendered], exc, now=now, alert_channel=alert_channel)
        return
    with transaction(engine) as session:
        live = [r for r in (session.get(OutboxMessage, int(k)) for k in rendered) if r is not None]
        record_results(session, live, results, now=now, alert_channel=alert_channel)
