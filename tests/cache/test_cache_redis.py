"""The cache in Redis (``state.backend: redis``): gateways sharing a Redis share their answers
and their invalidations; a Redis that does not answer makes requests go upstream, never fail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.budgets.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from tests.cache.conftest import cache_settings, chat
from tests.control.client import Control, control
from tests.dbs import fresh_database
from tests.fakes.openai_upstream import OpenAIUpstream


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    need_redis()
    prefix = unique_prefix()
    try:
        yield prefix
    finally:
        await forget_prefix(prefix)


def redis_settings(
    upstream: OpenAIUpstream, database: dict[str, Any], prefix: str, url: str = REDIS_URL
) -> Any:
    state = {"backend": "redis", "redis_url": url, "key_prefix": prefix, "socket_timeout": 0.5}
    return cache_settings(upstream, database=database, state=state)


async def test_two_gateways_on_one_redis_share_answers_and_invalidations(
    upstream: OpenAIUpstream, prefix: str
) -> None:
    async with AsyncExitStack() as stack:
        # Each gateway has a database of its own: the administrator is user 1 in both.
        one: Control = await stack.enter_async_context(
            control(redis_settings(upstream, await stack.enter_async_context(fresh_database()), prefix))
        )
        two: Control = await stack.enter_async_context(
            control(redis_settings(upstream, await stack.enter_async_context(fresh_database()), prefix))
        )

        miss = await one.post("/v1/chat/completions", chat())
        hit = await two.post("/v1/chat/completions", chat(stream=True))
        removed = await one.post("/admin/cache/invalidate", {"model": "gpt"})
        after = await two.post("/v1/chat/completions", chat())
        stats = (await two.get("/admin/cache")).json()

    assert (miss.headers["x-cache-status"], hit.headers["x-cache-status"]) == ("MISS", "HIT")
    assert "The answer is 42." in hit.text
    assert removed.json()["removed"] == 1
    assert after.headers["x-cache-status"] == "MISS"
    assert upstream.hits == 2
    assert (stats["backend"], stats["entries"]) == ("redis", 1)


async def test_an_unreachable_redis_sends_requests_upstream(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    # A port nothing listens on: every store call fails at once.
    config = redis_settings(upstream, database, "waypost-test-down:", url="redis://127.0.0.1:1/0")
    async with control(config) as api:
        answers = [await api.post("/v1/chat/completions", chat()) for _ in range(2)]
        errors = api.container.cache.counts.store_errors

    assert [a.status_code for a in answers] == [200, 200]
    assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "MISS"]
    assert upstream.hits == 2 and errors >= 1
