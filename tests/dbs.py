"""Fresh databases for tests: a SQLite file in a temporary directory, or a PostgreSQL schema of
its own on the server at 127.0.0.1:5432 (``WAYPOST_TEST_POSTGRES_URL``), dropped afterwards."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest

BACKENDS = ("sqlite", "postgresql")
POSTGRES_URL = os.environ.get("WAYPOST_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# The backend the gateway-level suites run on (the store and identity suites run on both).
DEFAULT_BACKEND = os.environ.get("WAYPOST_TEST_DATABASE", "sqlite")


@cache
def postgres_available() -> bool:
    parts = urlsplit(POSTGRES_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=1):
            return True
    except OSError:
        return False


_sqlite_template: list[str] = []


async def migrated_sqlite_file() -> str:
    """A SQLite file migrated to head once per test session; gateways start from copies of it."""
    if not _sqlite_template:
        from waypost.settings import DatabaseSettings
        from waypost.store import Store

        directory = tempfile.mkdtemp(prefix="waypost-template-")
        atexit.register(shutil.rmtree, directory, True)
        path = f"{directory}/waypost.db"
        store = Store.from_settings(DatabaseSettings(url=f"sqlite:///{path}"))
        await store.upgrade()
        await store.close()
        _sqlite_template.append(path)
    return _sqlite_template[0]


@asynccontextmanager
async def fresh_database(
    backend: str = DEFAULT_BACKEND, *, migrated: bool = False
) -> AsyncIterator[dict[str, Any]]:
    """Yield a ``database`` settings section for an empty database of ``backend``; with
    ``migrated`` a SQLite database already has the schema (cheaper; its tables are still empty)."""
    if backend == "sqlite":
        directory = tempfile.mkdtemp(prefix="waypost-db-")
        if migrated:
            shutil.copyfile(await migrated_sqlite_file(), f"{directory}/waypost.db")
        try:
            yield {"url": f"sqlite:///{directory}/waypost.db"}
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    if not postgres_available():
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL} (set WAYPOST_TEST_POSTGRES_URL)")
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield {"url": POSTGRES_URL, "postgres_schema": schema, "pool_size": 5}
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
