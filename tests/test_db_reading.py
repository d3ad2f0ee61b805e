"""`db.reading`: read-only sessions that never wait for a writer and never commit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import select

from bot.core import db
from bot.core.models import RepAvailability

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def test_a_read_does_not_wait_for_a_writer_holding_the_lock(engine: Any) -> None:
    with db.transaction(engine) as session:
        session.add(RepAvailability(slack_id="UREP1", away=False, updated_at=NOW))
    holding, finish = threading.Event(), threading.Event()

    def writer() -> None:
        with db.transaction(engine) as session:
            row = session.get(RepAvailability, "UREP1")
            assert row is not None
            row.away = True
            session.add(row)
            session.flush()
            holding.set()
            # Held until the read below is done: a read that queued behind it would time out.
            assert finish.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        with db.reading(engine) as session:
            seen = session.exec(select(RepAvailability.away)).all()
        assert seen == [False], "the read sees the last committed state"
    finally:
        finish.set()
        thread.join()
    with db.reading(engine) as session:
        assert session.exec(select(RepAvailability.away)).all() == [True]


def test_a_reading_session_never_commits(engine: Any) -> None:
    with db.reading(engine) as session:
        session.add(RepAvailability(slack_id="UREP2", away=True, updated_at=NOW))
        session.flush()
        assert session.exec(select(RepAvailability.slack_id)).all() == ["UREP2"]
    with db.reading(engine) as session:
        assert session.exec(select(RepAvailability.slack_id)).all() == []
        assert session.exec(text("SELECT 1")).one() == (1,)
