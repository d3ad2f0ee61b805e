"""The background side of revbot: the outbox delivery loop and the job scheduler."""

from __future__ import annotations

import logging
import threading

from bot.core import outbox
from bot.core.db import transaction
from bot.services import Services
from jobs import outbox as outbox_job
from jobs.scheduler import build_scheduler

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.5
ERROR_PAUSE_SECONDS = 2.0
PACED_TICK_SECONDS = 0.1


class Worker:
    """Runs outbox delivery in a thread (woken at once by new work) plus the scheduled jobs."""

    def __init__(self, services: Services, *, poll_seconds: float = IDLE_POLL_SECONDS) -> None:
        self._services = services
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="revbot-outbox", daemon=True)
        self._scheduler = build_scheduler(services)

    def start(self, *, sole_worker: bool) -> None:
        """Start delivering; `sole_worker` (SQLite) first reclaims rows a killed process left in flight."""
        if sole_worker:
            with transaction(self._services.engine) as session:
                released = outbox.release_leases(session)
            if released:
                log.info("resuming %d outbox row(s) left in flight by the previous run", released)
        self._scheduler.start()
        self._thread.start()
        log.info("worker started")

    def stop(self, timeout: float = 15.0) -> None:
        """Finish the delivery in progress, then stop."""
        self._stop.set()
        self._services.notify()
        self._scheduler.shutdown(wait=False)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._services.wakeup.clear()
            try:
                attempted = outbox_job.run(self._services, now=self._services.clock())
            except Exception:
                log.exception("outbox delivery failed; retrying shortly")
                self._stop.wait(ERROR_PAUSE_SECONDS)
                continue
            if attempted == 0:
                self._services.wakeup.wait(self._idle_wait())

    def _idle_wait(self) -> float:
        """Sleep until the next row is due: at least a tick (due rows may be waiting on pacing), at most a poll."""
        with transaction(self._services.engine) as session:
            due = outbox.next_due_at(session)
        if due is None:
            return self._poll
        return min(
            self._poll, max((due - self._services.clock()).total_seconds(), PACED_TICK_SECONDS)
        )
