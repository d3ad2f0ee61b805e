"""A thread-safe sliding-window limiter: at most N calls in any window of W seconds."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """Blocks callers just long enough that no window of `per_seconds` holds more than `max_calls`.

    Each caller reserves its slot under the lock and sleeps outside it, so waiting threads never
    hold one another up beyond their own turn. `clock` and `sleep` are parameters so tests can
    drive the limiter without waiting.
    """

    def __init__(
        self,
        max_calls: int,
        per_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1 or per_seconds <= 0:
            raise ValueError("a limiter needs max_calls >= 1 and a positive window")
        self.max_calls = max_calls
        self.per_seconds = per_seconds
        self._clock = clock
        self._sleep = sleep
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a slot; returns how long this caller waited (seconds)."""
        with self._lock:
            now = self._clock()
            slot = now
            if len(self._slots) >= self.max_calls:
                slot = max(now, self._slots[0] + self.per_seconds)
                self._slots.popleft()
            self._slots.append(slot)
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait
