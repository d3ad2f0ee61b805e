"""insert_new / insert_ignore: one row per unique key on both databases, from a cached statement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.default import CACHE_HIT
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, func, select

from bot.core import db
from bot.core.models import DealSupportRequest, OutboxMessage
from bot.core.sql import InsertSkippingConflicts, compare_and_set, insert_ignore, insert_new

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def _row(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "kind": "slack.message",
        "dedupe_key": key,
        "lane": "c:#x",
        "due_at": NOW,
        "created_at": NOW,
        **fields,
    }


def test_a_second_row_with_the_same_key_is_skipped_and_reported(engine: Any) -> None:
    with db.transaction(engine) as session:
        first = insert_new(session, OutboxMessage, _row("k1", payload={"text": "one"}))
        again = insert_new(session, OutboxMessage, _row("k1", payload={"text": "two"}))
        other = insert_ignore(session, OutboxMessage, _row("k2"))
    assert isinstance(first, int)
    assert again is None
    assert other is True
    with Session(engine) as session:
        stored = session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert (stored[0].id, stored[0].dedupe_key, stored[0].payload) == (first, "k1", {"text": "one"})
    assert len(stored) == 2
    # The columns' defaults fill what the row left out.
    assert (stored[1].state, stored[1].attempts, stored[1].payload, stored[1].result) == (
        "pending",
        0,
        {},
        {},
    )
    assert stored[0].due_at == NOW


def test_the_statement_is_compiled_once_and_reused(engine: Any) -> None:
    assert (
        InsertSkippingConflicts(OutboxMessage.__table__)
        .returning(  # type: ignore[attr-defined]
            OutboxMessage.id
        )
        ._generate_cache_key()
        is not None
    )
    executed: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any) -> None:
        executed.append((statement, context.cache_hit))

    with db.transaction(engine) as session:
        insert_ignore(session, OutboxMessage, _row("warm"))  # compiles and caches
        event.listen(engine, "before_cursor_execute", note)
        try:
            for i in range(5):
                insert_ignore(session, OutboxMessage, _row(f"k{i}"))
        finally:
            event.remove(engine, "before_cursor_execute", note)
        assert session.exec(select(func.count()).select_from(OutboxMessage)).one() == 6
    assert [hit for _, hit in executed] == [CACHE_HIT] * 5
    assert all("ON CONFLICT DO NOTHING" in sql for sql, _ in executed)


def test_compare_and_set_writes_only_over_the_version_it_read(engine: Any) -> None:
    with db.transaction(engine) as session:
        request = DealSupportRequest(
            requester_slack_id="UREP1",
            deal_name="Acme renewal",
            ask_type="case_study",
            details="Need a case study.",
            first_response_due_at=NOW,
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(request)
        session.flush()
        request_id = request.id
    executed: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        executed.append(statement.split()[0])

    with db.transaction(engine) as session:
        mine = session.get(DealSupportRequest, request_id)
        assert mine is not None
        event.listen(engine, "before_cursor_execute", note)
        try:
            assert compare_and_set(session, mine, state="claimed", claimed_by="UMKT1")
        finally:
            event.remove(engine, "before_cursor_execute", note)
        # The object holds what was written, and nothing was read back.
        assert (mine.state, mine.claimed_by, mine.version) == ("claimed", "UMKT1", 2)
        assert executed == ["UPDATE"]
        assert not session.dirty
    with db.transaction(engine) as session:
        stale = session.get(DealSupportRequest, request_id)
        assert stale is not None
        set_committed_value(stale, "version", 1)  # as read before the claim above
        assert not compare_and_set(session, stale, state="declined", declined_by="UMKT2")
    with Session(engine) as session:
        stored = session.get(DealSupportRequest, request_id)
        assert stored is not None
        assert (stored.state, stored.claimed_by, stored.declined_by, stored.version) == (
            "claimed",
            "UMKT1",
            None,
            2,
        )
