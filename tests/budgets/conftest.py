"""Budget tests: both state backends (Redis at 127.0.0.1:6379, or $WAYPOST_TEST_REDIS_URL), each
Redis test under a key prefix of its own, removed afterwards."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest

from waypost.settings import DatabaseSettings
from waypost.state.counters import Counters
from waypost.state.memory import MemoryCounters
from waypost.store import Store

REDIS_URL = os.environ.get("WAYPOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@cache
def redis_available() -> bool:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def need_redis() -> None:
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set WAYPOST_TEST_REDIS_URL)")


def unique_prefix() -> str:
    return f"waypost-test-{uuid.uuid4().hex[:12]}:"


async def forget_prefix(prefix: str) -> None:
    """Delete every key under ``prefix``."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    """Counters of each backend, empty."""
    if request.param == "memory":
        yield MemoryCounters()
        return
    need_redis()
    from waypost.state.redis_backend import RedisCounters

    prefix = unique_prefix()
    backend = RedisCounters(REDIS_URL, prefix=prefix, socket_timeout=2.0)
    try:
        yield backend
    finally:
        await backend.close()
        await forget_prefix(prefix)


@pytest.fixture
async def store(database: dict[str, Any]) -> AsyncIterator[Store]:
    """A migrated store on a fresh database of the run's backend."""
    store = Store.from_settings(DatabaseSettings.model_validate(database))
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()
