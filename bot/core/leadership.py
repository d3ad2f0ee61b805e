"""Which worker runs the scheduled jobs: a PostgreSQL advisory lock, or a lock file on SQLite."""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# A fixed 32-bit number shared by every revbot worker; the lock's second key is the schema's
# hash, so revbot stores in separate schemas of one database each have their own leader.
ADVISORY_LOCK_KEY = 0x72657662


class SecondWorkerError(Exception):
    """Another worker already owns this SQLite database."""


class SqliteWorkerLock:
    """One worker per SQLite file: an exclusive lock on `<database>.worker.lock`, held for life."""

    def __init__(self, database_url: str) -> None:
        self.database = make_url(database_url).database or ""
        self.path = (
            Path(f"{self.database}.worker.lock") if self.database not in ("", ":memory:") else None
        )
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise SecondWorkerError naming the database."""
        if self.path is None:
            return
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise SecondWorkerError(
                f"another revbot worker is already running on {self.database}; "
                "SQLite supports one worker. Stop it, or move to PostgreSQL (DATABASE_URL) to run several."
            ) from exc
        self._handle = handle

    def release(self) -> None:
        """Let the lock go (also released by the OS when the process dies)."""
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class PostgresLeader:
    """Scheduler leadership through a session-level advisory lock on a connection kept open."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Any = None

    @property
    def is_leader(self) -> bool:
        """True while this process holds the lock."""
        return self._connection is not None

    def try_lead(self) -> bool:
        """Hold the lock if free (or check it is still held); the lock dies with its connection."""
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                return True
            except Exception:  # the connection broke: the lock is gone with it
                log.warning("lost the scheduler lock: its database connection failed")
                self.resign()
                return False
        connection = self._engine.connect()
        try:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key, hashtext(current_schema()))"),
                {"key": ADVISORY_LOCK_KEY},
            ).scalar()
            connection.commit()
        except Exception:
            connection.close()
            raise
        if got:
            self._connection = connection
            return True
        connection.close()
        return False

    def resign(self) -> None:
        """Give leadership up: drop the lock's connection for real (not back into the pool)."""
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            finally:
                self._connection = None
