"""The background side of revbot: the outbox delivery loop and the job scheduler."""

from __future__ import annotations

import logging
import threading

from bot.core import outbox
from bot.core.db import transaction
from bot.core.leadership import PostgresLeader, SqliteWorkerLock
from bot.services import Services
from jobs import outbox as outbox_job
from jobs.scheduler import build_scheduler

log = logging.getLogger(__name__)

LEADERSHIP_CHECK_SECONDS = 5.0
IDLE_POLL_SECONDS = 0.5
ERROR_PAUSE_SECONDS = 2.0
PACED_TICK_SECONDS = 0.1


class Worker:
    """Runs outbox delivery in a thread (woken at once by new work) plus the scheduled jobs.

    Every worker delivers CRM writes; Slack posts and the scheduled jobs are the leader's (on
    SQLite, the one worker), so one process paces each Slack channel.
    """

    def __init__(self, services: Services, *, poll_seconds: float = IDLE_POLL_SECONDS) -> None:
        self._services = services
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="revbot-outbox", daemon=True)
        self._leading = threading.Thread(target=self._lead, name="revbot-leader", daemon=True)
        self._scheduler = build_scheduler(services)
        self._sqlite_lock: SqliteWorkerLock | None = None
        self._leader: PostgresLeader | None = None

    def start(self, *, sole_worker: bool) -> None:
        """Start delivering and scheduling.

        `sole_worker` (SQLite): refuse to run beside another worker, reclaim rows a killed process
        left in flight, and run the jobs. Otherwise (PostgreSQL) the jobs run only while this worker
        holds the advisory lock, which another takes over when this one dies.
        """
        if sole_worker:
            self._sqlite_lock = SqliteWorkerLock(self._services.settings.database_url)
            self._sqlite_lock.acquire()
            with transaction(self._services.engine) as session:
                released = outbox.release_leases(session)
            if released:
                log.info("resuming %d outbox row(s) left in flight by the previous run", released)
            self._scheduler.start()
        else:
            self._leader = PostgresLeader(self._services.engine)
            self._scheduler.start(paused=True)
            self._leading.start()
        self._thread.start()
        log.info("worker started")

    def stop(self, timeout: float = 15.0) -> None:
        """Finish the delivery in progress, then stop."""
        self._stop.set()
        self._services.notify()
        self._scheduler.shutdown(wait=False)
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._leader is not None:
            self._leader.resign()
        if self._sqlite_lock is not None:
            self._sqlite_lock.release()

    @property
    def is_leader(self) -> bool:
        """True while this worker runs the scheduled jobs."""
        return self._sqlite_lock is not None or (
            self._leader is not None and self._leader.is_leader
        )

    def _lead(self) -> None:
        assert self._leader is not None
        while not self._stop.is_set():
            was_leader = self._leader.is_leader
            try:
                leading = self._leader.try_lead()
            except Exception:
                log.exception("could not reach the database to check scheduler leadership")
                leading = False
            if leading and not was_leader:
                log.info("this worker now runs the scheduled jobs")
                self._scheduler.resume()
            elif was_leader and not leading:
                log.warning("this worker no longer runs the scheduled jobs")
                self._scheduler.pause()
            self._stop.wait(LEADERSHIP_CHECK_SECONDS)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._services.wakeup.clear()
            try:
                attempted = outbox_job.run(
                    self._services, now=self._services.clock(), slack=self.is_leader
                )
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
