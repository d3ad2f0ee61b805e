"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel


def insert_ignore(session: Session, model: type[SQLModel], values: dict[str, Any]) -> bool:
    """INSERT a row unless it would break a unique constraint; True when a row was inserted."""
    return insert_new(session, model, values) is not None


def insert_new(session: Session, model: type[SQLModel], values: dict[str, Any]) -> Any | None:
    """INSERT a row unless it would break a unique constraint: its primary key, or None."""
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING tells inserted from skipped on both backends (PostgreSQL reports no rowcount here).
    key = next(iter(table.primary_key.columns))
    # The values go as parameters, not into the statement, so its compiled form is cached.
    statement = insert(table).on_conflict_do_nothing().returning(key)
    return session.execute(statement, values).scalar()


LIKE_ESCAPE = "\\"


def like_escape(text: str) -> str:
    """`text` with LIKE's wildcards escaped (use with `escape=LIKE_ESCAPE`), so it matches literally."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
