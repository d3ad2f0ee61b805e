"""Database engine, sessions and migrations (SQLite in WAL mode by default, PostgreSQL to scale)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

if TYPE_CHECKING:
    from alembic.config import Config

SQLITE_BUSY_TIMEOUT_MS = 15_000
READ_ONLY = "revbot_read_only"
# The newest migration's revision, so /readyz can check the schema without loading alembic
# (tests/test_migrations.py keeps it equal to alembic's head).
SCHEMA_REVISION = "0004"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and write-ahead BEGIN IMMEDIATE."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event own transactions instead of pysqlite's implicit ones.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        # A deferred transaction that reads then writes fails at once with "database is locked"
        # when another writer holds the lock; IMMEDIATE waits on the busy timeout instead. Reads
        # (see `reading`) stay deferred: in WAL mode they never wait for the writer.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN DEFERRED")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


_sqlite_writers: dict[str, threading.RLock] = {}
_sqlite_writers_guard = threading.Lock()


def _writer_lock(engine: Engine) -> threading.RLock | None:
    """This process's turn at a SQLite file's single writer (None on PostgreSQL)."""
    if engine.dialect.name != "sqlite":
        return None
    with _sqlite_writers_guard:
        return _sqlite_writers.setdefault(str(engine.url), threading.RLock())


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    On SQLite, threads of one process take turns at the file's single writer here, before they
    hold a pooled connection: waiting on SQLite's busy handler instead would sleep in steps of up
    to 100 ms while the lock stood free, and hold a connection all the while (revbot run is one
    process, so this is where its writers meet). Other processes still meet at SQLite's lock.
    """
    writer = _writer_lock(engine)
    if writer is not None and not writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
        raise OperationalError(
            "BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")
        )
    try:
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        if writer is not None:
            writer.release()


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A session for reads only: on SQLite it does not queue behind writers; it never commits."""
    with Session(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False) as session:
        try:
            yield session
        finally:
            # Detach first: rolling back would expire what was read, and callers use it after.
            session.expunge_all()
            session.rollback()


# alembic (with mako and pygments) is imported only when migrating: a running worker never needs it.
def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Apply every pending migration."""
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")


def head_revision(engine: Engine) -> str | None:
    """The newest migration revision shipped with revbot."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_current(engine: Engine) -> bool:
    """True when the database schema is at the newest revision."""
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:
        return False  # no version table: never migrated
    return found == [SCHEMA_REVISION]


def ping(engine: Engine) -> None:
    """Raise if the database cannot be reached."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
