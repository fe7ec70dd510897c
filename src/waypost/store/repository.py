"""What every repository shares: transactions, the clock, and turning constraint violations
into the gateway's errors (named after the thing, never showing SQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waypost.core.errors import Conflict, NotFound
from waypost.store import tables
from waypost.store.engine import WRITE


class Unchanged:
    """Marks an argument that was not given, where ``None`` is a value of its own."""

    _instance: Unchanged | None = None

    def __new__(cls) -> Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __bool__(self) -> bool:
        return False


UNCHANGED: Final = Unchanged()

_OWNERS = {"user": tables.users, "group": tables.groups}


def now() -> datetime:
    return datetime.now(UTC)


def one_owner(user_id: int | None, group_id: int | None) -> None:
    """Grants and assignments belong to a user or to a group, never both or neither."""
    if (user_id is None) == (group_id is None):
        raise ValueError("give exactly one of user_id and group_id")


def violation(exc: IntegrityError) -> str:
    """``"unique"``, ``"foreign_key"`` or ``"other"``, from the driver's error code."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)  # asyncpg, through SQLAlchemy's adapter
    if sqlstate == "23505":
        return "unique"
    if sqlstate == "23503":
        return "foreign_key"
    name = getattr(orig, "sqlite_errorname", "")
    if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
        return "unique"
    if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return "foreign_key"
    return "other"


class Repository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _write(
        self, *, conflict: str | None = None, refs: Mapping[str, int | None] | None = None
    ) -> AsyncIterator[AsyncConnection]:
        """A write transaction. A unique violation raises ``Conflict(conflict)``; a foreign key
        violation raises ``NotFound`` naming whichever of ``refs`` (``{"user": id}``) is missing."""
        try:
            async with self._writer.begin() as conn:
                yield conn
        except IntegrityError as exc:
            kind = violation(exc)
            if kind == "unique" and conflict is not None:
                raise Conflict(conflict) from None
            if kind == "foreign_key" and refs is not None:
                raise await self._missing(refs) from None
            raise

    async def _missing(self, refs: Mapping[str, int | None]) -> NotFound:
        async with self._read() as conn:
            for kind, ref in refs.items():
                if ref is None:
                    continue
                table = _OWNERS[kind]
                if await conn.scalar(sa.select(table.c.id).where(table.c.id == ref)) is None:
                    return NotFound(f"{kind} {ref} does not exist")
        # Deleted and the check came too late to see it, or an owner we do not know about.
        return NotFound(f"{' or '.join(f'{k} {v}' for k, v in refs.items() if v is not None)} does not exist")


def _dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignoring_duplicates(conn: AsyncConnection, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` (both backends): for idempotent links."""
    return _dialect_insert(conn, table).on_conflict_do_nothing()


def upsert(conn: AsyncConnection, table: sa.Table, values: Mapping[str, Any], key: str) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` setting every other given column."""
    stmt = _dialect_insert(conn, table).values(**values)
    return stmt.on_conflict_do_update(
        index_elements=[key], set_={k: stmt.excluded[k] for k in values if k != key}
    )
