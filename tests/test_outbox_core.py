"""The outbox: dedupe, leasing claims in priority order, retries, dead letters and alerts."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bot.core import db, outbox
from bot.core.models import OutboxMessage
from tests.conftest import FrozenClock

LANE = "channel:#revenue-pipeline"
ALERTS = "#revops-alerts"


def put(
    engine: Any,
    key: str,
    now: datetime,
    *,
    lane: str = LANE,
    kind: str = outbox.SLACK_CARD,
    priority: int = 5,
    deadline: datetime | None = None,
    payload: dict[str, Any] | None = None,
) -> bool:
    with db.transaction(engine) as session:
        return outbox.enqueue(
            session,
            kind=kind,
            key=key,
            lane=lane,
            now=now,
            payload=payload,
            priority=priority,
            deadline_at=deadline,
        )


def claim(engine: Any, now: datetime, *, lane: str = LANE, limit: int = 10) -> list[str]:
    """Claim in its own transaction; the claimed rows' keys in claim order."""
    with db.transaction(engine) as session:
        return [r.dedupe_key for r in outbox.claim(session, lane, limit, now=now)]


def row(engine: Any, key: str) -> OutboxMessage:
    with db.transaction(engine) as session:
        found = session.exec(select(OutboxMessage).where(OutboxMessage.dedupe_key == key)).one()
        session.expunge(found)
        return found


def all_rows(engine: Any) -> list[OutboxMessage]:
    with db.transaction(engine) as session:
        rows = list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())
        for r in rows:
            session.expunge(r)
        return rows


def fail(
    engine: Any, key: str, now: datetime, *, retryable: bool, error: str = "boom", **kw: Any
) -> str:
    with db.transaction(engine) as session:
        target = session.exec(select(OutboxMessage).where(OutboxMessage.dedupe_key == key)).one()
        return outbox.fail(
            session,
            target,
            error,
            now=now,
            retryable=retryable,
            alert_channel=kw.pop("alert_channel", ALERTS),
            **kw,
        )


def alerts(engine: Any) -> list[OutboxMessage]:
    return [r for r in all_rows(engine) if r.kind == outbox.SLACK_ALERT]


# --- enqueue ---------------------------------------------------------------------------------


def test_enqueue_stores_a_pending_row_due_now(engine: Any, clock: FrozenClock) -> None:
    deadline = clock.now + timedelta(minutes=15)
    assert put(engine, "card:1", clock.now, priority=2, deadline=deadline, payload={"cycle_id": 1})
    [stored] = all_rows(engine)
    assert stored.kind == outbox.SLACK_CARD
    assert stored.lane == LANE
    assert stored.state == outbox.PENDING
    assert stored.due_at == clock.now
    assert stored.created_at == clock.now
    assert stored.deadline_at == deadline
    assert stored.priority == 2
    assert stored.payload == {"cycle_id": 1}
    assert stored.attempts == 0
    assert stored.uncertain is False


def test_enqueue_dedupes_on_the_key(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now, payload={"v": 1})
    put(engine, "card:1", clock.advance(seconds=5), payload={"v": 2}, lane="other")
    [stored] = all_rows(engine)
    assert stored.payload == {"v": 1}
    assert stored.lane == LANE
    assert stored.created_at == clock.now - timedelta(seconds=5)


def test_enqueue_reports_whether_it_added_a_row(engine: Any, clock: FrozenClock) -> None:
    assert put(engine, "card:1", clock.now) is True
    assert put(engine, "card:1", clock.now) is False
    assert put(engine, "card:2", clock.now) is True


def test_enqueue_dedupes_even_after_delivery(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, LANE, 1, now=clock.now)
        outbox.complete(session, claimed, now=clock.now, result={"ts": "1.2"})
    put(engine, "card:1", clock.advance(seconds=1))
    [stored] = all_rows(engine)
    assert stored.state == outbox.DONE
    assert stored.result == {"ts": "1.2"}


def test_enqueue_dedupes_within_one_transaction(engine: Any, clock: FrozenClock) -> None:
    with db.transaction(engine) as session:
        outbox.enqueue(session, kind="k", key="same", lane=LANE, now=clock.now)
        outbox.enqueue(session, kind="k", key="same", lane=LANE, now=clock.now)
    assert [r.dedupe_key for r in all_rows(engine)] == ["same"]


# --- claim -----------------------------------------------------------------------------------


def test_claim_orders_by_priority_then_deadline_with_nulls_last_then_id(
    engine: Any, clock: FrozenClock
) -> None:
    now = clock.now
    soon, later = now + timedelta(minutes=5), now + timedelta(hours=4)
    put(engine, "p5-none-a", now, priority=5)
    put(engine, "p3-later", now, priority=3, deadline=later)
    put(engine, "p3-none", now, priority=3)
    put(engine, "p3-soon", now, priority=3, deadline=soon)
    put(engine, "p5-none-b", now, priority=5)
    put(engine, "p0-none", now, priority=0)
    put(engine, "p3-soon-b", now, priority=3, deadline=soon)
    assert claim(engine, now) == [
        "p0-none",
        "p3-soon",
        "p3-soon-b",
        "p3-later",
        "p3-none",
        "p5-none-a",
        "p5-none-b",
    ]


def test_claim_takes_one_lane_and_respects_the_limit(engine: Any, clock: FrozenClock) -> None:
    for i in range(5):
        put(engine, f"a{i}", clock.now)
    put(engine, "other-lane", clock.now, lane="dm:UREP1", priority=0)
    assert claim(engine, clock.now, limit=3) == ["a0", "a1", "a2"]
    assert claim(engine, clock.now, limit=3) == ["a3", "a4"]
    assert claim(engine, clock.now, lane="dm:UREP1") == ["other-lane"]


def test_claim_sets_in_flight_with_a_lease(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, LANE, 5, now=clock.now, lease=timedelta(seconds=30))
        assert claimed.state == outbox.IN_FLIGHT
    stored = row(engine, "card:1")
    assert stored.state == outbox.IN_FLIGHT
    assert stored.lease_until == clock.now + timedelta(seconds=30)
    assert stored.uncertain is False


def test_claim_uses_the_default_lease(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    claim(engine, clock.now)
    assert row(engine, "card:1").lease_until == clock.now + outbox.LEASE


def test_leased_rows_are_not_claimed_again(engine: Any, clock: FrozenClock) -> None:
    start = clock.now
    put(engine, "card:1", start)
    put(engine, "card:2", start)
    assert claim(engine, start, limit=1) == ["card:1"]
    assert claim(engine, start + outbox.LEASE / 2) == ["card:2"]
    assert claim(engine, start + outbox.LEASE) == []


def test_an_expired_lease_makes_the_row_claimable_and_uncertain(
    engine: Any, clock: FrozenClock
) -> None:
    start = clock.now
    put(engine, "card:1", start)
    claim(engine, start)
    assert claim(engine, start + outbox.LEASE) == []  # the lease runs until its last instant
    later = start + outbox.LEASE + timedelta(seconds=1)
    assert claim(engine, later) == ["card:1"]
    stored = row(engine, "card:1")
    assert stored.uncertain is True
    assert stored.state == outbox.IN_FLIGHT
    assert stored.lease_until == later + outbox.LEASE


def test_rows_not_yet_due_are_not_claimed(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, LANE, 1, now=clock.now)
        outbox.postpone(session, claimed, until=clock.now + timedelta(seconds=30))
    assert claim(engine, clock.advance(seconds=29)) == []
    assert claim(engine, clock.advance(seconds=1)) == ["card:1"]


def test_done_and_dead_rows_are_never_claimed(engine: Any, clock: FrozenClock) -> None:
    put(engine, "done", clock.now)
    put(engine, "dead", clock.now)
    with db.transaction(engine) as session:
        done, dead = outbox.claim(session, LANE, 2, now=clock.now)
        outbox.complete(session, done, now=clock.now)
        outbox.fail(session, dead, "no", now=clock.now, retryable=False, alert_channel=None)
    assert claim(engine, clock.advance(hours=1)) == []


def test_concurrent_claims_never_share_a_row(engine: Any, clock: FrozenClock) -> None:
    for i in range(10):
        put(engine, f"row{i}", clock.now)
    start = threading.Barrier(4)
    claimed: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            keys = claim(engine, clock.now, limit=3)
            claimed.append(keys)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    flat = [k for keys in claimed for k in keys]
    assert len(flat) == len(set(flat)) == 10
    assert {r.state for r in all_rows(engine)} == {outbox.IN_FLIGHT}


# --- complete / fail / postpone --------------------------------------------------------------


def test_complete_marks_done_with_the_result(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, LANE, 1, now=clock.now)
        outbox.complete(session, claimed, now=clock.advance(seconds=1), result={"ts": "123.4"})
    stored = row(engine, "card:1")
    assert stored.state == outbox.DONE
    assert stored.completed_at == clock.now
    assert stored.lease_until is None
    assert stored.result == {"ts": "123.4"}


def test_retryable_failure_backs_off(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    claim(engine, clock.now)
    assert fail(engine, "card:1", clock.now, retryable=True) == outbox.PENDING
    stored = row(engine, "card:1")
    assert stored.state == outbox.PENDING
    assert stored.attempts == 1
    assert stored.last_error == "boom"
    assert stored.lease_until is None
    assert clock.now + timedelta(seconds=1.5) <= stored.due_at <= clock.now + timedelta(seconds=2.5)
    assert claim(engine, clock.now) == []
    assert alerts(engine) == []


def test_retry_after_sets_the_next_attempt_exactly(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    claim(engine, clock.now)
    fail(engine, "card:1", clock.now, retryable=True, retry_after=42)
    assert row(engine, "card:1").due_at == clock.now + timedelta(seconds=42)


def test_backoff_grows_and_is_capped() -> None:
    for attempts, base in ((1, 2), (2, 4), (3, 8), (6, 64)):
        for _ in range(20):
            delay = outbox.backoff(attempts).total_seconds()
            assert base * 0.8 <= delay <= base * 1.2
    for _ in range(20):
        assert outbox.backoff(30) <= outbox.MAX_BACKOFF * 1.2


def test_a_failed_delivery_marks_the_row_uncertain_when_told(
    engine: Any, clock: FrozenClock
) -> None:
    put(engine, "card:1", clock.now)
    claim(engine, clock.now)
    fail(engine, "card:1", clock.now, retryable=True, uncertain=True)
    assert row(engine, "card:1").uncertain is True


def test_after_max_attempts_the_row_is_dead_and_one_alert_is_raised(
    engine: Any, clock: FrozenClock
) -> None:
    put(engine, "crm:1", clock.now, lane=outbox.CRM_LANE, kind=outbox.CRM_SYNC)
    states = []
    for _ in range(outbox.MAX_ATTEMPTS):
        claim(engine, clock.advance(hours=1), lane=outbox.CRM_LANE)
        states.append(fail(engine, "crm:1", clock.now, retryable=True))
    assert states == [outbox.PENDING] * (outbox.MAX_ATTEMPTS - 1) + [outbox.DEAD]
    dead = row(engine, "crm:1")
    assert dead.state == outbox.DEAD
    assert dead.attempts == outbox.MAX_ATTEMPTS
    assert dead.completed_at == clock.now
    [alert] = alerts(engine)
    assert alert.lane == outbox.channel_lane(ALERTS)
    assert alert.priority == outbox.PRIORITY_ALERT
    assert alert.dedupe_key.startswith("alert:dead:")
    assert alert.payload["channel"] == ALERTS
    assert "crm.sync" in alert.payload["text"]
    assert f"#{dead.id}" in alert.payload["text"]
    assert "too many attempts" in alert.payload["text"]
    assert claim(engine, clock.advance(days=1), lane=outbox.CRM_LANE) == []


def test_rows_dying_the_same_way_in_one_hour_raise_one_alert(
    engine: Any, clock: FrozenClock
) -> None:
    for key in ("card:1", "card:2", "card:3"):
        put(engine, key, clock.now)
    claim(engine, clock.now)
    fail(engine, "card:1", clock.now, retryable=False, error="channel_not_found")
    fail(engine, "card:2", clock.advance(minutes=5), retryable=False, error="channel_not_found")
    assert len(alerts(engine)) == 1
    fail(engine, "card:3", clock.now, retryable=False, error="invalid_blocks")
    assert len(alerts(engine)) == 2
    put(engine, "card:4", clock.advance(hours=1))
    claim(engine, clock.now)
    fail(engine, "card:4", clock.now, retryable=False, error="channel_not_found")
    assert len(alerts(engine)) == 3


def test_non_retryable_failure_is_dead_at_once(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    claim(engine, clock.now)
    assert fail(engine, "card:1", clock.now, retryable=False) == outbox.DEAD
    stored = row(engine, "card:1")
    assert stored.state == outbox.DEAD
    assert stored.attempts == 1
    [alert] = alerts(engine)
    assert "will not be retried" in alert.payload["text"]


def test_an_alert_that_dies_raises_no_further_alert(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    claim(engine, clock.now)
    fail(engine, "card:1", clock.now, retryable=False)
    [alert] = alerts(engine)
    assert claim(engine, clock.now, lane=alert.lane) == [alert.dedupe_key]
    assert fail(engine, alert.dedupe_key, clock.now, retryable=False) == outbox.DEAD
    assert len(alerts(engine)) == 1
    assert len(all_rows(engine)) == 2


def test_no_alert_without_an_alert_channel(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    claim(engine, clock.now)
    assert fail(engine, "card:1", clock.now, retryable=False, alert_channel=None) == outbox.DEAD
    assert alerts(engine) == []


def test_long_errors_are_truncated(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, LANE, 1, now=clock.now)
        outbox.fail(session, claimed, "x" * 5000, now=clock.now, retryable=True, alert_channel=None)
    assert len(row(engine, "card:1").last_error or "") == 2000


def test_postpone_does_not_count_an_attempt(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    until = clock.now + timedelta(seconds=3)
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, LANE, 1, now=clock.now)
        outbox.postpone(session, claimed, until=until)
    stored = row(engine, "card:1")
    assert stored.state == outbox.PENDING
    assert stored.attempts == 0
    assert stored.due_at == until
    assert stored.lease_until is None
    assert stored.uncertain is False


def test_postpone_keeps_an_uncertain_row_uncertain(engine: Any, clock: FrozenClock) -> None:
    put(engine, "card:1", clock.now)
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, LANE, 1, now=clock.now)
        outbox.postpone(session, claimed, until=clock.now, uncertain=True)
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, LANE, 1, now=clock.now)
        outbox.postpone(session, claimed, until=clock.now)
    assert row(engine, "card:1").uncertain is True


# --- maintenance -----------------------------------------------------------------------------


def test_release_leases_returns_in_flight_rows_as_uncertain(
    engine: Any, clock: FrozenClock
) -> None:
    put(engine, "a", clock.now)
    put(engine, "b", clock.now)
    put(engine, "c", clock.now + timedelta(seconds=1))
    claim(engine, clock.now, limit=1)
    claim(engine, clock.now, limit=1)
    with db.transaction(engine) as session:
        assert outbox.release_leases(session) == 2
    by_key = {r.dedupe_key: r for r in all_rows(engine)}
    assert {k: (r.state, r.uncertain) for k, r in by_key.items()} == {
        "a": (outbox.PENDING, True),
        "b": (outbox.PENDING, True),
        "c": (outbox.PENDING, False),
    }
    assert by_key["a"].due_at == clock.now
    assert by_key["a"].lease_until is None
    assert claim(engine, clock.now) == ["a", "b"]
    with db.transaction(engine) as session:
        assert outbox.release_leases(session) == 2


def test_next_due_at_is_the_earliest_pending_row(engine: Any, clock: FrozenClock) -> None:
    with db.transaction(engine) as session:
        assert outbox.next_due_at(session) is None
    put(engine, "now", clock.now)
    put(engine, "later", clock.now + timedelta(minutes=5))
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, LANE, 1, now=clock.now)
        outbox.postpone(session, claimed, until=clock.now + timedelta(minutes=9))
    with db.transaction(engine) as session:
        assert outbox.next_due_at(session) == clock.now + timedelta(minutes=5)
    claim(engine, clock.now + timedelta(minutes=10))
    with db.transaction(engine) as session:
        assert outbox.next_due_at(session) is None  # in-flight rows are not pending


def test_purge_done_removes_only_old_delivered_rows(engine: Any, clock: FrozenClock) -> None:
    start = clock.now
    for key in ("old-done", "new-done", "dead", "pending", "in-flight"):
        put(engine, key, start)
    with db.transaction(engine) as session:
        rows = {r.dedupe_key: r for r in outbox.claim(session, LANE, 4, now=start)}
        outbox.complete(session, rows["old-done"], now=start)
        outbox.complete(session, rows["new-done"], now=start + timedelta(days=2))
        outbox.fail(session, rows["dead"], "x", now=start, retryable=False, alert_channel=None)
        outbox.postpone(session, rows["pending"], until=start)
    with db.transaction(engine) as session:
        assert outbox.purge_done(session, before=start + timedelta(days=1)) == 1
    assert sorted(r.dedupe_key for r in all_rows(engine)) == [
        "dead",
        "in-flight",
        "new-done",
        "pending",
    ]


def test_due_lanes_lists_lanes_with_due_work_most_urgent_first(
    engine: Any, clock: FrozenClock
) -> None:
    now = clock.now
    put(engine, "a1", now, lane="channel:#a", priority=5)
    put(engine, "a2", now, lane="channel:#a", priority=1)
    put(engine, "b1", now, lane="channel:#b", priority=3)
    put(engine, "crm1", now, lane=outbox.CRM_LANE, priority=4)
    put(engine, "dm1", now, lane="dm:UREP1", priority=0)
    put(engine, "future", now + timedelta(minutes=1), lane="channel:#future", priority=2)
    claim(engine, now, lane="dm:UREP1")
    later = now + outbox.LEASE + timedelta(minutes=1)
    with db.transaction(engine) as session:
        assert outbox.due_lanes(session, now) == ["channel:#a", "channel:#b", outbox.CRM_LANE]
        assert outbox.due_lanes(session, later) == [
            "dm:UREP1",
            "channel:#a",
            "channel:#future",
            "channel:#b",
            outbox.CRM_LANE,
        ]


def test_has_pending_looks_at_kind_key_prefix_and_state(engine: Any, clock: FrozenClock) -> None:
    put(engine, "crm:7:1:v1", clock.now, kind=outbox.CRM_SYNC, lane=outbox.CRM_LANE)
    with db.transaction(engine) as session:
        assert outbox.has_pending(session, kind=outbox.CRM_SYNC, key_prefix="crm:7:")
        assert not outbox.has_pending(session, kind=outbox.CRM_SYNC, key_prefix="crm:8:")
        assert not outbox.has_pending(session, kind=outbox.SLACK_CARD, key_prefix="crm:7:")
    claim(engine, clock.now, lane=outbox.CRM_LANE)
    with db.transaction(engine) as session:
        assert not outbox.has_pending(session, kind=outbox.CRM_SYNC, key_prefix="crm:7:")


@pytest.mark.parametrize(
    ("fn", "arg", "lane"),
    [(outbox.channel_lane, "#sales", "channel:#sales"), (outbox.dm_lane, "UREP1", "dm:UREP1")],
)
def test_lane_names(fn: Any, arg: str, lane: str) -> None:
    assert fn(arg) == lane
