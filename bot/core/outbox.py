"""The outbox: side effects stored with the state change that caused them, delivered at least once."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_
from sqlmodel import Session, col, select

from bot.core.models import OutboxMessage
from bot.core.sql import insert_ignore

SLACK_CARD = "slack.card"
SLACK_DM = "slack.dm"
SLACK_REFRESH = "slack.refresh"
SLACK_ALERT = "slack.alert"
SLACK_MESSAGE = "slack.message"
SLACK_FILE = "slack.file"
SLACK_FLOOD = "slack.flood"
SLACK_FLOOD_PAGE = "slack.flood_page"
CRM_SYNC = "crm.sync"
CRM_TASK = "crm.task"
CRM_NOTE = "crm.note"
CRM_INTAKE = "crm.intake"

CRM_LANE = "crm"
CRM_TASK_LANE = "crm:tasks"
CRM_NOTE_LANE = "crm:notes"
CRM_INTAKE_LANE = "crm:intake"
REFRESH_LANE = "slack:update"

PRIORITY_FEEDBACK = 0
PRIORITY_ALERT = 1
PRIORITY_FIRST_TIER = 2

PENDING, IN_FLIGHT, DONE, DEAD = "pending", "in_flight", "done", "dead"
LEASE = timedelta(seconds=30)
MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(minutes=15)

# Batch filling (CRM write-back): the longest a due write waits for more to share its API call.
# Click → CRM has a 2 s bar; one second of waiting leaves the other for the call itself. Waiting
# alone fills a 200-record Salesforce batch from 200 writes/s up (HubSpot's 100: from 100/s);
# slower streams get what a window brings, and full batches once the calls themselves back up.
FILL_WINDOW = timedelta(seconds=1)
# Traffic is heavy when this share of a batch fell due within the last window: 20 writes/s for
# Salesforce, 10/s for HubSpot. A lone click, or a few a second, goes at once.
FILL_MIN_SHARE = 0.1
# Under load rows come milliseconds apart: a quarter second with none means the stream has
# ended, and its remainder goes now rather than at the window's end.
FILL_LULL = timedelta(milliseconds=250)


def channel_lane(channel: str) -> str:
    """The pacing lane of posts to one channel (or a DM, keyed by user)."""
    return f"channel:{channel}"


def dm_lane(user_id: str) -> str:
    """The pacing lane of DMs to one user."""
    return f"dm:{user_id}"


def enqueue_message(
    session: Session,
    *,
    key: str,
    to: str,
    text: str,
    now: datetime,
    blocks: list[dict[str, Any]] | None = None,
    thread_of: int | None = None,
    priority: int = PRIORITY_FEEDBACK,
) -> bool:
    """Queue a message to a channel (or a DM to a user id), optionally in a cycle's card thread."""
    lane = dm_lane(to) if to[:1] in ("U", "W") and not to.startswith("#") else channel_lane(to)
    payload = {"channel": to, "text": text, "blocks": blocks or [], "thread_of": thread_of}
    return enqueue(
        session, kind=SLACK_MESSAGE, key=key, lane=lane, now=now, payload=payload, priority=priority
    )


def enqueue(
    session: Session,
    *,
    kind: str,
    key: str,
    lane: str,
    now: datetime,
    payload: dict[str, Any] | None = None,
    priority: int = 5,
    deadline_at: datetime | None = None,
) -> bool:
    """Add a side effect unless one with the same key exists; True when it was added."""
    # A plain row, not an OutboxMessage: the columns' defaults fill the rest, and building a
    # model object costs more than the INSERT on this path (every click and every lead).
    values = {
        "kind": kind,
        "dedupe_key": key,
        "lane": lane,
        "payload": payload or {},
        "priority": priority,
        "deadline_at": deadline_at,
        "due_at": now,
        "created_at": now,
    }
    return insert_ignore(session, OutboxMessage, values)


def _due(now: datetime) -> Any:
    return or_(
        and_(col(OutboxMessage.state) == PENDING, col(OutboxMessage.due_at) <= now),
        and_(col(OutboxMessage.state) == IN_FLIGHT, col(OutboxMessage.lease_until) < now),
    )


def due_lanes(session: Session, now: datetime) -> list[str]:
    """Lanes with work due now, most urgent first."""
    rows = session.exec(
        select(OutboxMessage.lane, func.min(OutboxMessage.priority))
        .where(_due(now))
        .group_by(OutboxMessage.lane)
        .order_by(func.min(OutboxMessage.priority))
    ).all()
    return [lane for lane, _ in rows]


def claim(
    session: Session, lane: str, limit: int, *, now: datetime, lease: timedelta = LEASE
) -> list[OutboxMessage]:
    """Lease up to `limit` due rows of one lane, most urgent first; other workers skip them."""
    return _lease(session, _due_rows(session, lane, limit, now), now=now, lease=lease)


def claim_batch(
    session: Session, lane: str, limit: int, *, now: datetime, lease: timedelta = LEASE
) -> list[OutboxMessage]:
    """Lease a lane's due rows as one batch, or none while a stream of new rows is filling it."""
    rows = _due_rows(session, lane, limit, now)
    partial = 0 < len(rows) < limit and now - min(r.due_at for r in rows) < FILL_WINDOW
    if partial and streaming(arrivals(session, lane, now=now), limit, now=now):
        return []
    return _lease(session, rows, now=now, lease=lease)


@dataclass(frozen=True)
class Arrivals:
    """How many of a lane's rows fell due within the last fill window: the first and last when."""

    count: int
    first: datetime | None
    last: datetime | None


def arrivals(session: Session, lane: str, *, now: datetime) -> Arrivals:
    """The lane's rows (sent or not) that fell due within the FILL_WINDOW before `now`."""
    count, first, last = session.exec(
        select(func.count(), func.min(OutboxMessage.due_at), func.max(OutboxMessage.due_at)).where(
            # Naming the states lets the (state, due_at) index find the window's rows.
            col(OutboxMessage.state).in_((PENDING, IN_FLIGHT, DONE)),
            OutboxMessage.lane == lane,
            col(OutboxMessage.due_at) > now - FILL_WINDOW,
            col(OutboxMessage.due_at) <= now,
        )
    ).one()
    return Arrivals(int(count), first, last)


def streaming(recent: Arrivals, limit: int, *, now: datetime) -> bool:
    """True while rows arrive fast enough to be worth waiting for: at least FILL_MIN_SHARE of a
    batch within the last window, spread over time, the latest less than FILL_LULL ago."""
    if recent.count < max(2, math.ceil(limit * FILL_MIN_SHARE)):
        return False
    if recent.first is None or recent.last is None:
        return False
    # Rows written by one transaction share their due time: a bulk change, not a stream.
    return recent.first < recent.last and now - recent.last < FILL_LULL


def _due_rows(session: Session, lane: str, limit: int, now: datetime) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.lane == lane, _due(now))
            .order_by(
                col(OutboxMessage.priority),
                col(OutboxMessage.deadline_at).is_(None),
                col(OutboxMessage.deadline_at),
                col(OutboxMessage.id),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def _lease(
    session: Session, rows: list[OutboxMessage], *, now: datetime, lease: timedelta
) -> list[OutboxMessage]:
    for row in rows:
        if row.state == IN_FLIGHT:
            # Its worker died or stalled mid-send: the effect may or may not have happened.
            row.uncertain = True
        row.state = IN_FLIGHT
        row.lease_until = now + lease
        session.add(row)
    session.flush()
    return rows


def complete(
    session: Session, row: OutboxMessage, *, now: datetime, result: dict[str, Any] | None = None
) -> None:
    """Mark a delivered side effect done."""
    row.state = DONE
    row.completed_at = now
    row.lease_until = None
    row.result = result or {}
    session.add(row)


def postpone(
    session: Session, row: OutboxMessage, *, until: datetime, uncertain: bool = False
) -> None:
    """Put a row back without counting an attempt (pacing, Retry-After, waiting on another row)."""
    row.state = PENDING
    row.due_at = until
    row.lease_until = None
    row.uncertain = row.uncertain or uncertain
    session.add(row)


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with jitter: about 2s, 4s, 8s … capped at 15 minutes."""
    base = min(2.0**attempts, MAX_BACKOFF.total_seconds())
    return timedelta(seconds=base * random.uniform(0.8, 1.2))  # noqa: S311  (jitter, not crypto)


def fail(
    session: Session,
    row: OutboxMessage,
    error: str,
    *,
    now: datetime,
    retryable: bool,
    alert_channel: str | None,
    retry_after: float | None = None,
    uncertain: bool = False,
) -> str:
    """Record a failed attempt: retry later with backoff, or dead-letter it and raise an alert."""
    row.attempts += 1
    row.last_error = error[:2000]
    row.lease_until = None
    row.uncertain = row.uncertain or uncertain
    if retryable and row.attempts < MAX_ATTEMPTS:
        delay = timedelta(seconds=retry_after) if retry_after else backoff(row.attempts)
        row.state = PENDING
        row.due_at = now + delay
        session.add(row)
        return PENDING
    row.state = DEAD
    row.completed_at = now
    session.add(row)
    if row.kind != SLACK_ALERT and alert_channel:
        why = "after too many attempts" if retryable else "and will not be retried"
        # One alert per kind of failure per hour: a whole batch failing the same way is one alert.
        fingerprint = hashlib.sha256(f"{row.kind}|{error}".encode()).hexdigest()[:16]
        enqueue_alert(
            session,
            key=f"alert:dead:{fingerprint}:{now:%Y%m%d%H}",
            channel=alert_channel,
            now=now,
            text=(
                f":rotating_light: revbot could not deliver `{row.kind}` {why}: {error[:300]} "
                f"(first: outbox #{row.id}, {row.attempts} attempt(s); any more like it this hour "
                "are dead-lettered without another alert)"
            ),
        )
    return DEAD


def enqueue_alert(session: Session, *, key: str, channel: str, text: str, now: datetime) -> bool:
    """Queue an operational alert (once per key) for the alerts channel, ahead of other posts."""
    return enqueue(
        session,
        kind=SLACK_ALERT,
        key=key,
        lane=channel_lane(channel),
        now=now,
        priority=PRIORITY_ALERT,
        payload={"channel": channel, "text": text},
    )


def release_leases(session: Session) -> int:
    """Return every in-flight row to pending (one-process SQLite start-up: nobody else holds them)."""
    rows = session.exec(select(OutboxMessage).where(OutboxMessage.state == IN_FLIGHT)).all()
    for row in rows:
        postpone(session, row, until=row.due_at, uncertain=True)
    return len(rows)


def next_due_at(session: Session) -> datetime | None:
    """When the earliest pending row becomes due (None when nothing is pending)."""
    return session.exec(
        select(func.min(OutboxMessage.due_at)).where(OutboxMessage.state == PENDING)
    ).one()


def purge_done(session: Session, *, before: datetime) -> int:
    """Delete delivered rows completed before `before`; dead letters are kept for inspection."""
    result = session.execute(
        delete(OutboxMessage).where(
            col(OutboxMessage.state) == DONE, col(OutboxMessage.completed_at) < before
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def has_pending(session: Session, *, kind: str, key_prefix: str) -> bool:
    """True when a not-yet-delivered row of `kind` has a key starting with `key_prefix`."""
    # The key range lets the unique index on dedupe_key find the few rows of this prefix
    # (SQLite would otherwise pick the state index and test every pending row); LIKE keeps the
    # match exact whatever the column's collation, and kind and state are checked on those rows.
    upper = key_prefix[:-1] + chr(ord(key_prefix[-1]) + 1)
    rows = session.exec(
        select(OutboxMessage.kind, OutboxMessage.state).where(
            col(OutboxMessage.dedupe_key) >= key_prefix,
            col(OutboxMessage.dedupe_key) < upper,
            col(OutboxMessage.dedupe_key).startswith(key_prefix),
        )
    ).all()
    row = next((r for r in rows if r[0] == kind and r[1] == PENDING), None)
    return row is not None


def undelivered(session: Session, key: str) -> bool:
    """True while the row with this dedupe key is still pending or in flight."""
    state = session.exec(select(OutboxMessage.state).where(OutboxMessage.dedupe_key == key)).first()
    return state in (PENDING, IN_FLIGHT)


def exists(session: Session, key: str) -> bool:
    """True when a row with this dedupe key was ever queued (and not yet purged)."""
    found = session.exec(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)).first()
    return found is not None
