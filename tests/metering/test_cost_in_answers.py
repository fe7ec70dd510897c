"""The cost reaches the caller (docs/metering.md, "The cost in the answer"): ``X-Waypost-Cost-USD``
on non-streamed answers and ``cost_usd`` in the usage object of bodies and of the final stream
event, in both client formats, relayed (same format) and translated, through the official SDKs
validating strictly. Cost = each usage component x its price, exactly. Also: tags, and
``metering.unpriced: block``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import anthropic
import openai
import pytest
import pytest_asyncio

from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, serve, settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "sk-cost-0123456789"
# USD per million tokens
OPENAI_PRICES = {"input": 2.5, "output": 10, "cache_read": 1.25}
ANTHROPIC_PRICES = {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}
M = Decimal(1_000_000)


def micros(tokens: dict[str, int], prices: dict[str, float]) -> int:
    """The exact cost in micro-dollars (tokens x USD per million tokens), rounded once."""
    total = sum(Decimal(n) * Decimal(str(prices[k])) for k, n in tokens.items())
    return int(total.to_integral_value())


@dataclass
class Stage:
    url: str
    oai_fake: OpenAIUpstream
    ant_fake: AnthropicUpstream
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stage() -> AsyncIterator[Stage]:
    async with AsyncExitStack() as stack:
        oai_fake = await stack.enter_async_context(OpenAIUpstream(api_key=KEY))
        ant_fake = await stack.enter_async_context(AnthropicUpstream(api_key=KEY))
        entries = [
            {
                "name": "gpt",
                "provider": "openai",
                "base_url": oai_fake.url + "/v1",
                "api_key": KEY,
                "upstream_model": "gpt-test",
                "prices": OPENAI_PRICES,
                "retry": {"max_retries": 0},
            },
            {
                "name": "claude",
                "provider": "anthropic",
                "base_url": ant_fake.url,
                "api_key": KEY,
                "upstream_model": "claude-test",
                "prices": ANTHROPIC_PRICES,
                "retry": {"max_retries": 0},
            },
            {
                "name": "free",
                "provider": "openai",
                "base_url": oai_fake.url + "/v1",
                "api_key": KEY,
                "upstream_model": "no-such-priced-model",
                "retry": {"max_retries": 0},
            },
        ]
        url = await stack.enter_async_context(serve(settings(*entries, metering={"unpriced": "block"})))
        oai = openai.AsyncOpenAI(
            base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        ant = anthropic.AsyncAnthropic(
            base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        stack.push_async_callback(oai.close)
        stack.push_async_callback(ant.close)
        yield Stage(url, oai_fake, ant_fake, oai, ant)


# 1,000 prompt tokens of which 400 cached; 200 out.
OPENAI_REPLY = Reply(text="Priced.", input_tokens=1000, output_tokens=200, cache_read_tokens=400)
OPENAI_COST = micros({"input": 600, "cache_read": 400, "output": 200}, OPENAI_PRICES)
# Anthropic's input_tokens exclude the cache: 300 uncached, 500 read, 100 written (5 minutes).
ANTHROPIC_REPLY = Reply(
    text="Priced.", input_tokens=300, output_tokens=50, cache_read_tokens=500, cache_write_tokens=100
)
ANTHROPIC_COST = micros({"input": 300, "cache_read": 500, "cache_write": 100, "output": 50}, ANTHROPIC_PRICES)


async def test_openai_body_relayed(stage: Stage) -> None:
    stage.oai_fake.enqueue(OPENAI_REPLY)
    raw = await stage.openai.chat.completions.with_raw_response.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}]
    )
    completion = raw.parse()
    assert completion.usage is not None
    expected = OPENAI_COST / 1_000_000
    assert completion.usage.model_extra == {"cost_usd": expected}
    assert Decimal(raw.headers["x-waypost-cost-usd"]) == Decimal(OPENAI_COST) / M


async def test_openai_stream_relayed(stage: Stage) -> None:
    stage.oai_fake.enqueue(OPENAI_REPLY)
    stream = await stage.openai.chat.completions.create(
        model="gpt",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usages = [chunk.usage async for chunk in stream if chunk.usage is not None]
    assert usages[-1].model_extra == {"cost_usd": OPENAI_COST / 1_000_000}


async def test_anthropic_body_and_stream_relayed(stage: Stage) -> None:
    stage.ant_fake.enqueue(ANTHROPIC_REPLY)
    raw = await stage.anthropic.messages.with_raw_response.create(
        model="claude", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    message = await raw.parse()
    assert message.usage.model_extra == {"cost_usd": ANTHROPIC_COST / 1_000_000}
    assert Decimal(raw.headers["x-waypost-cost-usd"]) == Decimal(ANTHROPIC_COST) / M
    stage.ant_fake.enqueue(ANTHROPIC_REPLY)
    async with stage.anthropic.messages.stream(
        model="claude", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        deltas = [ev for ev in [e async for e in stream] if ev.type == "message_delta"]
    assert deltas[-1].usage.model_extra == {"cost_usd": ANTHROPIC_COST / 1_000_000}


async def test_translated_both_ways(stage: Stage) -> None:
    """An Anthropic client on the OpenAI upstream, an OpenAI client on the Anthropic one."""
    stage.oai_fake.enqueue(OPENAI_REPLY)
    message = await stage.anthropic.messages.create(
        model="gpt", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.usage.model_extra == {"cost_usd": OPENAI_COST / 1_000_000}
    stage.oai_fake.enqueue(OPENAI_REPLY)
    async with stage.anthropic.messages.stream(
        model="gpt", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        deltas = [ev async for ev in stream if ev.type == "message_delta"]
    assert deltas[-1].usage.model_extra == {"cost_usd": OPENAI_COST / 1_000_000}
    stage.ant_fake.enqueue(ANTHROPIC_REPLY)
    completion = await stage.openai.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.usage is not None
    assert completion.usage.model_extra == {"cost_usd": ANTHROPIC_COST / 1_000_000}
    stage.ant_fake.enqueue(ANTHROPIC_REPLY)
    stream = await stage.openai.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usages = [chunk.usage async for chunk in stream if chunk.usage is not None]
    assert usages[-1].model_extra == {"cost_usd": ANTHROPIC_COST / 1_000_000}


async def post(
    stage: Stage, path: str, body: dict[str, object], **headers: str
) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            stage.url + path, json=body, headers={"authorization": f"Bearer {GATEWAY_KEY}", **headers}
        ) as resp,
    ):
        return resp.status, json.loads(await resp.read())


async def test_unpriced_model_blocked(stage: Stage) -> None:
    hits = stage.oai_fake.hits
    status, body = await post(
        stage, "/v1/chat/completions", {"model": "free", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 400
    assert "'free' has no price" in body["error"]["message"]  # type: ignore[index]
    status, body = await post(
        stage,
        "/v1/messages",
        {"model": "free", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert status == 400 and body["type"] == "error"
    assert stage.oai_fake.hits == hits  # nothing went upstream


@pytest.mark.parametrize(
    ("header", "metadata", "problem"),
    [
        ("a" * 65, None, "at most 64 are allowed"),
        (",".join(f"t{i}" for i in range(11)), None, "11 tags, at most 10"),
        ("ok,bad tag", None, "'bad tag' has characters outside"),
        (None, {"tags": 7}, "metadata.tags must be a list"),
    ],
)
async def test_invalid_tags(
    stage: Stage, header: str | None, metadata: dict[str, object] | None, problem: str
) -> None:
    body: dict[str, object] = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    if metadata is not None:
        body["metadata"] = metadata
    headers = {"x-waypost-tags": header} if header is not None else {}
    status, answer = await post(stage, "/v1/chat/completions", body, **headers)
    assert status == 400
    assert problem in answer["error"]["message"]  # type: ignore[index]


async def test_metadata_tags_do_not_go_upstream(stage: Stage) -> None:
    """The client's own body goes to a same-format upstream, but for the tags."""
    stage.ant_fake.enqueue(ANTHROPIC_REPLY)
    body = {
        "model": "claude",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"tags": ["team-a", "feature-x"], "user_id": "u1"},
    }
    status, _ = await post(stage, "/v1/messages", body, **{"x-waypost-tags": "team-b"})
    assert status == 200
    assert stage.ant_fake.last.json["metadata"] == {"user_id": "u1"}


async def test_an_unpriced_model_answers_with_no_cost_rather_than_zero() -> None:
    """Under ``metering.unpriced: allow`` (the default) the request is served, its row flagged
    unpriced; the caller gets no cost header and ``cost_usd: null``, never a misleading 0."""
    async with OpenAIUpstream(api_key=KEY) as fake:
        entry = {
            "name": "unknown",
            "provider": "openai",
            "base_url": fake.url + "/v1",
            "api_key": KEY,
            "upstream_model": "no-such-priced-model",
            "retry": {"max_retries": 0},
        }
        async with serve(settings(entry)) as url:
            client = openai.AsyncOpenAI(
                base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
            )
            fake.enqueue(OPENAI_REPLY)
            raw = await client.chat.completions.with_raw_response.create(
                model="unknown", messages=[{"role": "user", "content": "hi"}]
            )
            await client.close()
    completion = raw.parse()
    assert completion.usage is not None and completion.usage.model_extra == {"cost_usd": None}
    assert "x-waypost-cost-usd" not in raw.headers
