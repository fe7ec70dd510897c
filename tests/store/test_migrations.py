"""Schema migrations, the engine's URL handling and the health check."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from tests.dbs import POSTGRES_URL, fresh_database, postgres_available
from waypost.settings import DatabaseSettings
from waypost.store import Store
from waypost.store.engine import database_url
from waypost.store.migrate import MIGRATIONS, MigrationError, head_revision, upgrade_database
from waypost.store.tables import metadata


def _store(database: dict[str, Any]) -> Store:
    return Store.from_settings(DatabaseSettings.model_validate(database))


async def test_a_fresh_database_has_no_revision(database: dict[str, Any]) -> None:
    store = _store(database)
    try:
        assert await store.revision() is None
    finally:
        await store.close()


async def test_upgrade_reports_the_head_revision(store: Store) -> None:
    assert await store.revision() == head_revision() == "0004_responses"


async def test_upgrading_twice_changes_nothing(store: Store) -> None:
    user = await store.users.create("kept@example.org", "Kept")
    await store.upgrade()
    assert await store.revision() == head_revision()
    assert await store.users.get(user.id) == user


async def test_two_workers_upgrading_at_once_both_succeed(database: dict[str, Any]) -> None:
    first, second = _store(database), _store(database)
    try:
        await asyncio.gather(first.upgrade(), second.upgrade())
        assert await first.revision() == await second.revision() == head_revision()
    finally:
        await first.close()
        await second.close()


async def test_upgrade_database_returns_the_revision(database: dict[str, Any]) -> None:
    migrated = await upgrade_database(DatabaseSettings.model_validate(database))
    assert (migrated.before, migrated.revision, migrated.ran) == (None, head_revision(), True)
    again = await upgrade_database(DatabaseSettings.model_validate(database))
    assert (again.before, again.ran) == (head_revision(), False)


async def test_migrated_tables_match_the_table_definitions(store: Store) -> None:
    def differences(conn: Connection) -> list[Any]:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)

    async with store.engine.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_upgrade_creates_a_missing_postgres_schema() -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable at WAYPOST_TEST_POSTGRES_URL (127.0.0.1:5432)")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    store = _store({"url": POSTGRES_URL, "postgres_schema": schema, "pool_size": 2})
    try:
        await store.upgrade()
        await store.users.create("in-schema@example.org", "In schema")
        conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema = $1 AND table_name IN ('users', 'alembic_version')",
                schema,
            )
        finally:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
        assert found == 2
    finally:
        await store.close()


async def test_upgrade_creates_the_sqlite_file_and_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "volume" / "waypost.db"
    store = _store({"url": f"sqlite:///{path}"})
    try:
        await store.upgrade()
        assert path.exists()
        assert await store.revision() == head_revision()
    finally:
        await store.close()


async def test_an_in_memory_sqlite_database_works_across_calls() -> None:
    store = _store({"url": "sqlite:///:memory:"})
    try:
        await store.upgrade()
        user = await store.users.create("memory@example.org", "Memory")
        assert await store.users.by_email("memory@example.org") == user
    finally:
        await store.close()


async def test_ping_answers_true_when_reachable(store: Store) -> None:
    assert await store.ping() is True


async def test_ping_answers_false_when_the_server_is_down() -> None:
    store = _store({"url": "postgresql://nobody@127.0.0.1:1/none"})
    try:
        assert await store.ping() is False
    finally:
        await store.close()


async def test_postgres_schema_is_the_search_path() -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable at WAYPOST_TEST_POSTGRES_URL (127.0.0.1:5432)")
    async with fresh_database("postgresql") as section:
        store = _store(section)
        try:
            async with store.engine.connect() as conn:
                assert (await conn.exec_driver_sql("SELECT current_schema()")).scalar() == section[
                    "postgres_schema"
                ]
        finally:
            await store.close()


async def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: Path) -> None:
    store = _store({"url": f"sqlite:///{tmp_path}/w.db", "pool_size": 1})
    try:
        await store.upgrade()  # switches foreign keys off on its connection for a while
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///waypost.db", "sqlite+aiosqlite:///waypost.db"),
        ("sqlite:////var/lib/waypost/w.db", "sqlite+aiosqlite:////var/lib/waypost/w.db"),
        ("sqlite+aiosqlite:///w.db", "sqlite+aiosqlite:///w.db"),
        ("postgres://u@db/waypost", "postgresql+asyncpg://u@db/waypost"),
        ("postgresql://u@db:5433/waypost", "postgresql+asyncpg://u@db:5433/waypost"),
        ("postgresql+asyncpg://u@db/waypost", "postgresql+asyncpg://u@db/waypost"),
        ("postgresql://u@db/waypost?sslmode=require", "postgresql+asyncpg://u@db/waypost?ssl=require"),
    ],
)
def test_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert database_url(given).render_as_string(hide_password=False) == expected


def test_the_migration_template_ships_with_the_package() -> None:
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert (MIGRATIONS / "env.py").is_file()


async def test_a_database_from_a_newer_waypost_is_refused(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_future'")
    with pytest.raises(MigrationError, match="'0099_future', which this version of Waypost does not know"):
        await store.upgrade()


def test_the_head_revision_constant_matches_the_migration_scripts() -> None:
    from waypost.store.migrate import HEAD_REVISION

    assert head_revision() == HEAD_REVISION, "set HEAD_REVISION in store/migrate.py to the newest revision"


def test_a_current_database_starts_without_loading_alembic(tmp_path: Any) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/w.db"
    script = (
        "import asyncio, sys\n"
        "from waypost.settings import DatabaseSettings\n"
        "from waypost.store.migrate import upgrade_database\n"
        f"asyncio.run(upgrade_database(DatabaseSettings(url={url!r})))\n"
        "print('alembic' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert first.stdout.strip() == "True"
    assert second.stdout.strip() == "False"
