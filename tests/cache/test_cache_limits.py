"""How long and how much the cache keeps: the TTL (global or per model), the cap per entry and
the total, at the gateway."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.cache.conftest import cache_settings, chat
from tests.control.client import control
from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream

LONG = "word " * 4000  # a 20,000-character answer


async def test_an_entry_past_its_models_ttl_is_asked_for_again(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    config = cache_settings(upstream, cache={"model_ttl": {"gpt-big": 0.2}}, database=database)
    async with control(config) as api:
        await api.post("/v1/chat/completions", chat(model="gpt-big"))
        await api.post("/v1/chat/completions", chat(model="gpt"))
        await asyncio.sleep(0.3)
        short = await api.post("/v1/chat/completions", chat(model="gpt-big"))
        default = await api.post("/v1/chat/completions", chat(model="gpt"))

    assert short.headers["x-cache-status"] == "MISS"
    assert default.headers["x-cache-status"] == "HIT"  # cache.ttl: an hour
    assert upstream.hits == 3


async def test_an_answer_over_the_entry_cap_is_served_but_not_kept(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    upstream.default_reply = Reply(text=LONG, input_tokens=10, output_tokens=4000)
    config = cache_settings(upstream, cache={"max_entry_bytes": 16 * 1024}, database=database)
    async with control(config) as api:
        whole = [await api.post("/v1/chat/completions", chat(max_tokens=5000)) for _ in range(2)]
        streamed = [
            await api.post("/v1/chat/completions", chat("s", max_tokens=5000, stream=True)) for _ in range(2)
        ]
        counts = api.container.cache.counts

    assert [a.headers["x-cache-status"] for a in whole + streamed] == ["MISS"] * 4
    assert whole[0].json()["choices"][0]["message"]["content"] == LONG
    assert upstream.hits == 4
    assert counts.stored == 0 and counts.too_big == 4  # the streams given up while they ran


async def test_past_the_total_the_least_recently_used_answers_go(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    upstream.default_reply = Reply(text=LONG, input_tokens=10, output_tokens=4000)
    config = cache_settings(upstream, cache={"max_total_bytes": 64 * 1024}, database=database)
    async with control(config) as api:
        for text in ("a", "b", "c"):  # three answers of ~20 KB: the cache is nearly full
            await api.post("/v1/chat/completions", chat(text, max_tokens=5000))
        await api.post("/v1/chat/completions", chat("a", max_tokens=5000))  # a used again
        await api.post("/v1/chat/completions", chat("d", max_tokens=5000))  # b goes
        statuses = {
            text: (await api.post("/v1/chat/completions", chat(text, max_tokens=5000))).headers[
                "x-cache-status"
            ]
            for text in ("a", "c", "d", "b")
        }
        stats = (await api.get("/admin/cache")).json()

    assert statuses == {"a": "HIT", "c": "HIT", "d": "HIT", "b": "MISS"}
    assert stats["bytes"] <= 64 * 1024
