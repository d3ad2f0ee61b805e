"""Per-lane token buckets: about one Slack post per second per channel, with a small burst."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

OUTAGE_PAUSE_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Budget:
    """How fast a lane may send: `rate` per second, up to `burst` at once."""

    rate: float
    burst: int


@dataclass
class _Bucket:
    tokens: float
    updated: datetime
    blocked_until: datetime | None = None
    failures: int = 0


@dataclass
class Pacer:
    """Token buckets per lane; `block` honours a Retry-After by closing the lane until then."""

    budget_for: dict[str, Budget]
    default: Budget = field(default_factory=lambda: Budget(rate=1.0, burst=3))
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _budget(self, lane: str) -> Budget:
        prefix = lane.split(":", 1)[0]
        return self.budget_for.get(lane) or self.budget_for.get(prefix) or self.default

    def _refill(self, lane: str, now: datetime) -> _Bucket:
        budget = self._budget(lane)
        bucket = self._buckets.setdefault(lane, _Bucket(tokens=float(budget.burst), updated=now))
        elapsed = max((now - bucket.updated).total_seconds(), 0.0)
        bucket.tokens = min(float(budget.burst), bucket.tokens + elapsed * budget.rate)
        bucket.updated = max(bucket.updated, now)
        return bucket

    def available(self, lane: str, now: datetime) -> int:
        """How many sends the lane allows right now."""
        with self._lock:
            bucket = self._refill(lane, now)
            if bucket.blocked_until and now < bucket.blocked_until:
                return 0
            return int(bucket.tokens)

    def take(self, lane: str, now: datetime) -> bool:
        """Spend one send; False when the lane has none left."""
        with self._lock:
            bucket = self._refill(lane, now)
            if (bucket.blocked_until and now < bucket.blocked_until) or bucket.tokens < 1:
                return False
            bucket.tokens -= 1
            return True

    def block(self, lane: str, now: datetime, seconds: float) -> datetime:
        """Close the lane for `seconds` (a Retry-After) and empty its bucket; returns when it reopens."""
        with self._lock:
            bucket = self._refill(lane, now)
            until = now + timedelta(seconds=max(seconds, 0.0))
            bucket.blocked_until = max(until, bucket.blocked_until or until)
            bucket.tokens = 0.0
            return bucket.blocked_until

    def failing(self, lane: str, now: datetime) -> float:
        """Close the lane after the platform failed as a whole; returns the pause in seconds,
        doubling from 2 s up to 60 s while the failures last."""
        with self._lock:
            bucket = self._refill(lane, now)
            bucket.failures += 1
            seconds = min(2.0**bucket.failures, OUTAGE_PAUSE_MAX_SECONDS)
            bucket.blocked_until = now + timedelta(seconds=seconds)
            bucket.tokens = 0.0
            return seconds

    def recovered(self, lane: str) -> None:
        """The lane delivered again: the next failure starts from the shortest pause."""
        with self._lock:
            bucket = self._buckets.get(lane)
            if bucket is not None:
                bucket.failures = 0

    def next_ready(self, lane: str, now: datetime) -> datetime:
        """The earliest time the lane will allow one send."""
        with self._lock:
            bucket = self._refill(lane, now)
            budget = self._budget(lane)
            ready = now
            if bucket.tokens < 1:
                ready = now + timedelta(seconds=(1 - bucket.tokens) / budget.rate)
            if bucket.blocked_until and bucket.blocked_until > ready:
                ready = bucket.blocked_until
            return ready
