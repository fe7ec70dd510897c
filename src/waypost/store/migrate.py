"""Schema migrations, run programmatically (no alembic.ini): ``Store.upgrade`` at start and
``waypost db upgrade``. Cheap when the database is already at head; serialised between workers and
replicas that start together (an advisory lock on PostgreSQL, SQLite's write lock), so that one
runs them and the others find the schema at head: the revision is read again under the lock."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from waypost.settings import DatabaseSettings
from waypost.store.engine import WRITE, create_engine, is_sqlite

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest revision, known without loading Alembic (a test keeps it equal to the scripts' head):
# a gateway whose database is current starts without importing Alembic at all.
HEAD_REVISION = "0004_responses"


log = logging.getLogger("waypost.migrate")


class MigrationError(RuntimeError):
    """The schema could not be brought up to date."""


class MigrationBusy(RuntimeError):
    """Another process holds the migration lock (asked not to wait for it)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """What one upgrade found and left: ``before`` is the revision it found under the lock."""

    before: str | None
    revision: str

    @property
    def ran(self) -> bool:
        return self.before != self.revision


def alembic_config(connection: Connection | None = None, schema: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


@cache
def head_revision() -> str:
    """The newest revision this version of Waypost knows, from the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this version's migrations (loads Alembic)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


async def current_revision(engine: AsyncEngine, schema: str | None = None) -> str | None:
    """The revision the database is at; ``None`` before the first migration."""
    table = f'"{schema}".alembic_version' if schema else "alembic_version"
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(f"SELECT version_num FROM {table}"))).scalar()
    except DBAPIError as exc:
        if _missing_table(exc):
            return None
        raise


def _missing_table(exc: DBAPIError) -> bool:
    text_ = str(exc.orig).lower()
    return "no such table" in text_ or "does not exist" in text_


def _lock_key(schema: str | None) -> int:
    """A stable 64-bit advisory lock id per schema (workers of one gateway share it)."""
    digest = hashlib.sha256(f"waypost.migrate:{schema or ''}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def upgrade(engine: AsyncEngine, schema: str | None = None) -> str:
    """Bring the database to head; returns the revision it is at afterwards."""
    return (await migrate(engine, schema)).revision


async def migrate(engine: AsyncEngine, schema: str | None = None, *, wait: bool = True) -> Migration:
    """Bring the database to head, holding the migration lock; ``wait=False``: raise
    ``MigrationBusy`` at once when another process holds it (PostgreSQL; SQLite waits)."""
    head = HEAD_REVISION
    database = engine.url.database
    if is_sqlite(engine) and database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)  # e.g. a fresh /data volume
    current = await current_revision(engine, schema)
    if current == head:
        return Migration(head, head)
    if current is not None and not known_revision(current):
        raise MigrationError(
            f"the database is at revision {current!r}, which this version of Waypost does not know"
            f" (its newest is {head!r}): it was migrated by a newer Waypost"
        )
    if is_sqlite(engine):
        async with engine.execution_options(**{WRITE: True}).connect() as conn:
            before = await conn.run_sync(_upgrade_sqlite)
    else:
        async with engine.begin() as conn:
            # Held to the end of this transaction: a second replica waits, then finds head.
            key = {"key": _lock_key(schema)}
            if wait:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
            elif not (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), key)).scalar():
                raise MigrationBusy("another process is migrating the database")
            if schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            before = await conn.run_sync(lambda sync: _upgrade_locked(sync, schema))
    revision = await current_revision(engine, schema)
    if revision != head:
        raise MigrationError(f"database is at revision {revision!r} after upgrading, expected {head!r}")
    if before != head:
        log.info("migrated the database from %s to revision %s", _described(before), head)
    return Migration(before, revision)


def _described(revision: str | None) -> str:
    return f"revision {revision}" if revision else "an empty database"


def _upgrade_locked(conn: Connection, schema: str | None) -> str | None:
    """Under the lock: the revision the database is at, then the upgrade when it is not head
    (another process may have run it while this one waited)."""
    from alembic.runtime.migration import MigrationContext

    opts = {"version_table_schema": schema} if schema else {}
    before = MigrationContext.configure(conn, opts=opts).get_current_revision()
    if before != HEAD_REVISION:
        _alembic_upgrade(alembic_config(conn, schema))
    return before


def _alembic_upgrade(config: Config) -> None:
    from alembic import command

    command.upgrade(config, "head")


def _upgrade_sqlite(conn: Connection) -> str | None:
    # Migrations that rebuild a table (SQLite's way to alter one) must not fire ON DELETE CASCADE
    # when the old copy is dropped, so foreign keys are off during the upgrade, which can only be
    # switched outside a transaction, and checked before commit instead.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute("PRAGMA foreign_keys = OFF")
    try:
        with conn.begin():  # BEGIN IMMEDIATE (the WRITE option): one upgrader at a time
            before = _upgrade_locked(conn, None)
            if conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                raise MigrationError("the migration left rows that break a foreign key; rolled back")
        return before
    finally:
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()


async def upgrade_database(db: DatabaseSettings) -> Migration:
    """Migrate the configured database to head (``waypost db upgrade``); says what it found."""
    engine = create_engine(db)
    try:
        return await migrate(engine, db.postgres_schema)
    finally:
        await engine.dispose()
