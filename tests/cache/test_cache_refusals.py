"""The cache is the last stage: a request that would be a hit is still refused by a rule or a rate
limit before it, and every answer, refusals included, says what the cache did."""

from __future__ import annotations

from typing import Any

from tests.cache.conftest import cache_settings, chat
from tests.control.client import control
from tests.fakes.openai_upstream import OpenAIUpstream

BLOCK_RED = {
    "name": "no-red",
    "weight": 5,
    "conditions": [{"type": "header", "header": "X-Team", "operator": "exact", "value": "red"}],
    "action": {"type": "block", "message": "paused"},
}
ONE_A_MINUTE = {"name": "one-a-minute", "scope": "model", "target": "gpt", "windows": [{"requests": 1}]}


async def test_a_rule_block_refuses_a_request_that_would_hit(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    config = cache_settings(upstream, database=database, rules={"rules": [BLOCK_RED]})
    async with control(config) as api:
        first = await api.post("/v1/chat/completions", chat())
        blocked = await api.post("/v1/chat/completions", chat(), headers={"x-team": "red"})
        again = await api.post("/v1/chat/completions", chat())

    assert first.headers["x-cache-status"] == "MISS" and again.headers["x-cache-status"] == "HIT"
    assert blocked.status_code == 403 and "paused" in blocked.json()["error"]["message"]
    assert blocked.headers["x-cache-status"] == "BYPASS"  # refused before the cache was asked
    assert upstream.hits == 1


async def test_a_rate_limit_refuses_a_request_that_would_hit(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    config = cache_settings(upstream, database=database, rate_limits={"limits": [ONE_A_MINUTE]})
    async with control(config) as api:
        first = await api.post("/v1/chat/completions", chat())
        limited = await api.post("/v1/chat/completions", chat())

    assert first.status_code == 200 and first.headers["x-cache-status"] == "MISS"
    assert limited.status_code == 429 and "one-a-minute" in limited.json()["error"]["message"]
    assert limited.headers["x-cache-status"] == "BYPASS"
    assert upstream.hits == 1


async def test_a_request_refused_before_it_was_understood_says_bypass(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    async with control(cache_settings(upstream, database=database)) as api:
        malformed = await api.post(
            "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )

    assert malformed.status_code == 400 and malformed.headers["x-cache-status"] == "BYPASS"
