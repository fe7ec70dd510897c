"""Exact under concurrency (docs/policy.md, "Rate limits"): 50 clients sending 10 requests each
against 100 requests per minute, and exactly 100 reach the upstream (counted there), in one
gateway (memory counters) and across two ``waypost serve`` processes sharing Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from cryptography.fernet import Fernet

from tests.dbs import fresh_database
from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, running, settings
from tests.rate_limits.conftest import REDIS_URL, Processes, forget_prefix, need_redis, unique_prefix
from waypost.settings import DatabaseSettings
from waypost.store import Store

CLIENTS, EACH, RPM = 50, 10, 100
LIMIT = {
    "name": "rpm-100",
    "scope": "model",
    "target": "gpt",
    "windows": [{"per": "minute", "requests": RPM}],
}
BODY = {"model": "gpt", "max_tokens": 20, "messages": [{"role": "user", "content": "count me"}]}


async def client_run(urls: list[str], n: int, key: str | None) -> list[int]:
    """One client: ``EACH`` requests in a row on a connection of its own."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    statuses = []
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(EACH):
            url = urls[(n + i) % len(urls)]
            answer = await client.post(f"{url}/v1/chat/completions", json=BODY, headers=headers)
            if answer.status_code == 429:
                assert answer.json()["error"]["type"] == "rate_limit_error", answer.text
                assert "retry-after" in answer.headers
            statuses.append(answer.status_code)
    return statuses


async def hammer(urls: list[str], key: str | None = GATEWAY_KEY) -> list[int]:
    runs = await asyncio.gather(*(client_run(urls, n, key) for n in range(CLIENTS)))
    return [status for run in runs for status in run]


def model_entry(url: str) -> dict[str, Any]:
    return model("gpt", "openai", url, "sk-x", upstream_model="gpt-4o-mini", public=True)


async def test_in_one_process_exactly_the_limit_reaches_the_upstream() -> None:
    async with OpenAIUpstream() as upstream:
        upstream.default_reply = Reply(text="ok", input_tokens=5, output_tokens=2)
        config = settings(model_entry(upstream.url), rate_limits={"limits": [LIMIT]})
        async with running(config) as gateway:
            statuses = await hammer([gateway.url])

    assert statuses.count(200) == RPM and statuses.count(429) == CLIENTS * EACH - RPM
    assert upstream.hits == RPM


async def test_across_two_processes_sharing_redis_exactly_the_limit_reaches_the_upstream(
    processes: Processes,
) -> None:
    need_redis()
    prefix = unique_prefix()
    async with OpenAIUpstream() as upstream, fresh_database(migrated=True) as database:
        upstream.default_reply = Reply(text="ok", input_tokens=5, output_tokens=2)
        store = Store.from_settings(DatabaseSettings.model_validate(database))
        await store.upgrade()  # a PostgreSQL schema starts empty (a SQLite copy is migrated)
        await store.close()
        doc = {
            "auth": {"jwt_secret": "s" * 40, "open": True},
            "security": {"encryption_keys": [Fernet.generate_key().decode()], "allow_private_targets": True},
            "logging": {"level": "warning"},
            "database": database,
            "state": {
                "backend": "redis",
                "redis_url": REDIS_URL,
                "key_prefix": prefix,
                "socket_timeout": 2.0,
            },
            "rate_limits": {"limits": [LIMIT]},
            "models": [model_entry(upstream.url)],
        }
        try:
            urls = [processes.start(f"gateway-{i}", doc) for i in range(2)]
            statuses = await hammer(urls, None)
        finally:
            processes.stop()
            await forget_prefix(prefix)

    assert statuses.count(200) == RPM and statuses.count(429) == CLIENTS * EACH - RPM
    assert upstream.hits == RPM  # each process alone would have let 100 through
