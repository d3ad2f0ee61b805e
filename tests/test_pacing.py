"""Pacing: per-lane token buckets (burst, then a steady rate) and Retry-After blocks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from bot.core.pacing import Budget, Pacer

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
LANE = "channel:#revenue-pipeline"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pacer(rate: float = 1.0, burst: int = 3) -> Pacer:
    return Pacer(budget_for={"channel": Budget(rate=rate, burst=burst)})


def drain(p: Pacer, lane: str, now: datetime) -> int:
    """Take every send the lane allows at `now`; how many there were."""
    taken = 0
    while p.take(lane, now):
        taken += 1
        assert taken < 1000
    return taken


def test_a_fresh_lane_allows_its_burst_then_nothing() -> None:
    p = pacer(burst=3)
    assert p.available(LANE, T0) == 3
    assert [p.take(LANE, T0) for _ in range(4)] == [True, True, True, False]
    assert p.available(LANE, T0) == 0


def test_tokens_refill_at_the_rate() -> None:
    p = pacer(rate=1.0, burst=3)
    drain(p, LANE, T0)
    assert p.available(LANE, at(0.5)) == 0
    assert not p.take(LANE, at(0.5))
    assert p.available(LANE, at(1.0)) == 1
    assert p.take(LANE, at(1.0))
    assert not p.take(LANE, at(1.5))
    assert p.available(LANE, at(3.0)) == 2


def test_refill_never_exceeds_the_burst() -> None:
    p = pacer(rate=1.0, burst=3)
    drain(p, LANE, T0)
    assert p.available(LANE, at(3600)) == 3
    assert drain(p, LANE, at(3600)) == 3


def test_fractional_rates() -> None:
    p = pacer(rate=0.5, burst=1)
    assert p.take(LANE, T0)
    assert not p.take(LANE, at(1.9))
    assert p.take(LANE, at(2.0))


def test_steady_demand_gets_burst_plus_rate_per_second() -> None:
    p = pacer(rate=2.0, burst=5)
    taken = sum(p.take(LANE, at(step / 10)) for step in range(0, 601))
    assert taken == 5 + 2 * 60


def test_budget_by_exact_lane_then_prefix_then_default() -> None:
    p = Pacer(
        budget_for={
            "channel": Budget(rate=1.0, burst=2),
            "channel:#alerts": Budget(rate=1.0, burst=7),
        },
        default=Budget(rate=1.0, burst=4),
    )
    assert p.available("channel:#alerts", T0) == 7
    assert p.available("channel:#sales", T0) == 2
    assert p.available("dm:UREP1", T0) == 4
    assert p.available("crm", T0) == 4


def test_lanes_have_separate_buckets() -> None:
    p = pacer(burst=2)
    drain(p, "channel:#a", T0)
    assert p.available("channel:#a", T0) == 0
    assert p.available("channel:#b", T0) == 2


def test_block_closes_the_lane_until_the_retry_after() -> None:
    p = pacer(rate=1.0, burst=3)
    until = p.block(LANE, T0, 30)
    assert until == at(30)
    assert p.available(LANE, at(10)) == 0
    assert not p.take(LANE, at(29.9))
    assert p.available(LANE, at(30)) == 3
    assert p.take(LANE, at(30))


def test_block_empties_the_bucket() -> None:
    p = pacer(rate=1.0, burst=3)
    p.block(LANE, T0, 0)
    assert p.available(LANE, T0) == 0
    assert p.available(LANE, at(1)) == 1


def test_a_shorter_block_does_not_shorten_a_longer_one() -> None:
    p = pacer()
    assert p.block(LANE, T0, 60) == at(60)
    assert p.block(LANE, at(1), 5) == at(60)
    assert not p.take(LANE, at(59))
    assert p.take(LANE, at(60))


def test_a_later_block_extends_the_wait() -> None:
    p = pacer()
    p.block(LANE, T0, 5)
    assert p.block(LANE, at(1), 10) == at(11)
    assert p.next_ready(LANE, at(2)) == at(11)


def test_a_negative_retry_after_blocks_nothing_beyond_now() -> None:
    p = pacer()
    assert p.block(LANE, T0, -5) == T0


def test_next_ready_is_now_when_a_send_is_available() -> None:
    p = pacer()
    assert p.next_ready(LANE, T0) == T0
    p.take(LANE, T0)
    assert p.next_ready(LANE, T0) == T0


def test_next_ready_when_the_bucket_is_empty() -> None:
    p = pacer(rate=2.0, burst=2)
    drain(p, LANE, T0)
    assert p.next_ready(LANE, T0) == at(0.5)
    assert p.next_ready(LANE, at(0.25)) == at(0.5)
    assert p.take(LANE, p.next_ready(LANE, at(0.25)))


def test_next_ready_honours_a_block() -> None:
    p = pacer(rate=1.0, burst=3)
    p.block(LANE, T0, 12)
    assert p.next_ready(LANE, at(1)) == at(12)
    assert p.next_ready(LANE, at(12)) == at(12)


def test_time_going_backwards_does_not_add_or_remove_tokens() -> None:
    p = pacer(rate=1.0, burst=3)
    drain(p, LANE, at(10))
    assert p.available(LANE, at(5)) == 0
    assert not p.take(LANE, at(5))
    assert p.available(LANE, at(11)) == 1


def test_concurrent_takes_never_overspend() -> None:
    p = pacer(rate=1.0, burst=5)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(10):
            ok = p.take(LANE, T0)
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 5
    assert len(results) == 80
