"""SQLite writers of one process take turns in `db.transaction` before they hold a connection."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import func, select

from bot.core import db
from bot.core.models import RepAvailability

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def _count(engine: Any) -> int:
    with db.reading(engine) as session:
        return int(session.exec(select(func.count()).select_from(RepAvailability)).one())


def _write(engine: Any, user: str) -> None:
    with db.transaction(engine) as session:
        session.add(RepAvailability(slack_id=user, away=True, updated_at=NOW))


def _writer_waiting(engine: Any, started: threading.Event, done: threading.Event) -> None:
    started.set()
    _write(engine, "UREP2")
    done.set()


def test_a_second_sqlite_writer_waits_its_turn_without_holding_a_connection(
    engine: Any, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has row locks: its writers do not take turns")
    started, done = threading.Event(), threading.Event()
    waiter = threading.Thread(target=_writer_waiting, args=(engine, started, done))
    with db.transaction(engine) as session:
        session.add(RepAvailability(slack_id="UREP1", away=True, updated_at=NOW))
        session.flush()
        waiter.start()
        started.wait(5)
        waiter.join(0.3)
        # The second writer is parked before the pool: only this transaction holds a connection,
        # and a read still gets one (a writer waiting on SQLite's lock would hold one meanwhile).
        assert not done.is_set()
        assert engine.pool.checkedout() == 1
        assert _count(engine) == 0
    waiter.join(5)
    assert done.is_set()
    assert _count(engine) == 2


def test_a_writer_that_waits_past_the_busy_timeout_gets_database_is_locked(
    engine: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has row locks: its writers do not take turns")
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    failures: list[BaseException] = []

    def late_writer() -> None:
        try:
            _write(engine, "UREP2")
        except OperationalError as exc:
            failures.append(exc)

    with db.transaction(engine) as session:
        session.add(RepAvailability(slack_id="UREP1", away=True, updated_at=NOW))
        late = threading.Thread(target=late_writer)
        late.start()
        late.join(5)
    assert len(failures) == 1
    assert "database is locked" in str(failures[0])
    assert _count(engine) == 1  # the first write committed; the late one changed nothing


def test_postgresql_writers_do_not_wait_for_each_other(engine: Any, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer")
    done = threading.Event()
    with db.transaction(engine) as session:
        session.add(RepAvailability(slack_id="UREP1", away=True, updated_at=NOW))
        session.flush()
        other = threading.Thread(target=lambda: (_write(engine, "UREP2"), done.set()))
        other.start()
        other.join(5)
        assert done.is_set()  # committed while this transaction is still open
    assert _count(engine) == 2
