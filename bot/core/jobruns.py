"""Job runs keyed by (job, scheduled_for), so a run already taken by another worker is skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col

from bot.core.models import JobRun
from bot.core.sql import insert_ignore


def slot(now: datetime, period: timedelta) -> datetime:
    """The start of the period `now` falls in (periods counted from the Unix epoch, UTC)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((now - epoch) // period) * period


def claim_run(
    session: Session, job: str, scheduled_for: datetime, *, runner: str, now: datetime
) -> bool:
    """Record that `runner` runs `job` for `scheduled_for`; False when someone already did."""
    return insert_ignore(
        session,
        JobRun,
        {
            "job": job,
            "scheduled_for": scheduled_for,
            "runner": runner,
            "started_at": now,
            "finished_at": None,
        },
    )


def finish_run(session: Session, job: str, scheduled_for: datetime, *, now: datetime) -> None:
    """Mark a run finished."""
    run = session.get(JobRun, (job, scheduled_for))
    if run is not None:
        run.finished_at = now
        session.add(run)


def purge_runs(session: Session, *, before: datetime) -> int:
    """Delete the records of runs scheduled before `before`; returns how many."""
    result = session.execute(delete(JobRun).where(col(JobRun.scheduled_for) < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
