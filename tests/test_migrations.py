"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from bot.core import db


def test_migrations_match_the_models(engine: Any) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
    assert db.is_current(engine)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Any) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_upgrade_is_idempotent(engine: Any) -> None:
    db.upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {
        "leads",
        "mql_cycles",
        "outbox",
        "slack_messages",
        "routing_weights",
        "local_crm_records",
    } <= tables


def test_the_readiness_revision_is_alembics_head(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        assert db.head_revision(engine) == db.SCHEMA_REVISION
        assert not db.is_current(engine), "a database never migrated is not current"
        db.upgrade(engine)
        assert db.is_current(engine)
        assert db.current_revision(engine) == db.SCHEMA_REVISION
    finally:
        engine.dispose()


def test_0004_gives_existing_cycles_their_leads_source(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    command.upgrade(db._alembic_config(engine), "0003")
    with engine.begin() as conn:
        for lead_id, source in ((1, "Webinar"), (2, None)):
            conn.execute(
                text(
                    "INSERT INTO leads (id, origin, external_id, signals, content, extra, "
                    "lead_source, created_at, updated_at) VALUES (:id, 'test', :ext, '[]', '[]', "
                    "'{}', :source, :now, :now)"
                ),
                {"id": lead_id, "ext": f"L-{lead_id}", "source": source, "now": "2026-11-20"},
            )
            conn.execute(
                text(
                    "INSERT INTO mql_cycles (lead_id, seq, mql_at, received_at, score, "
                    "score_reasons, tier, sla_due_at, pool, state, version, reassignments) "
                    "VALUES (:id, 1, :now, :now, 50, '[]', 'warm', :now, 'sales', 'open', 1, 0)"
                ),
                {"id": lead_id, "now": "2026-11-20"},
            )
    db.upgrade(engine)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT lead_id, lead_source FROM mql_cycles ORDER BY lead_id")
        ).all()
    assert [tuple(row) for row in found] == [(1, "Webinar"), (2, None)]
    engine.dispose()
