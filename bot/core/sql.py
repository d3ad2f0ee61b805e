"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, SQLModel


class InsertSkippingConflicts(Insert):
    """INSERT … ON CONFLICT DO NOTHING (SQLite and PostgreSQL spell it alike) that SQLAlchemy's
    statement cache keeps: its dialects' own inserts with that clause are compiled anew on every
    execution (sqlalchemy#10445), and revbot runs one on every click and every lead."""

    inherit_cache = True  # adds no state: the class itself is in the cache key


@compiles(InsertSkippingConflicts)
def _skip_conflicts(insert: InsertSkippingConflicts, compiler: SQLCompiler, **kw: Any) -> str:
    sql = compiler.visit_insert(insert, **kw)
    # Values are bound parameters, so the only RETURNING in the text is the clause itself.
    head, returning, tail = sql.partition(" RETURNING ")
    return f"{head} ON CONFLICT DO NOTHING{returning}{tail}"


def insert_ignore(session: Session, model: type[SQLModel], values: dict[str, Any]) -> bool:
    """INSERT a row unless it would break a unique constraint; True when a row was inserted."""
    return insert_new(session, model, values) is not None


def insert_new(session: Session, model: type[SQLModel], values: dict[str, Any]) -> Any | None:
    """INSERT a row unless it would break a unique constraint: its primary key, or None."""
    table = model.__table__  # type: ignore[attr-defined]
    # RETURNING tells inserted from skipped on both backends (PostgreSQL reports no rowcount here).
    key = next(iter(table.primary_key.columns))
    # The values go as parameters, not into the statement, so its compiled form is reused.
    statement = InsertSkippingConflicts(table).returning(key)
    return session.execute(statement, values).scalar()


class Versioned(Protocol):
    """A row with an optimistic-lock `version` column."""

    id: int | None
    version: int


def compare_and_set(session: Session, row: Versioned, **changes: Any) -> bool:
    """Write `changes` (and bump the version) only if nobody changed the row since it was read.

    On success `row` holds the new values as loaded ones: the UPDATE wrote exactly these, so the
    row is not read back (this runs on every click)."""
    model: Any = type(row)
    version = row.version
    result = session.execute(
        update(model)
        .where(model.id == row.id, model.version == version)
        .values(version=version + 1, **changes)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    for name, value in {**changes, "version": version + 1}.items():
        set_committed_value(row, name, value)
    return True


LIKE_ESCAPE = "\\"


def like_escape(text: str) -> str:
    """`text` with LIKE's wildcards escaped (use with `escape=LIKE_ESCAPE`), so it matches literally."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
