"""A cached answer replays into either client format, streamed or not, whatever format and mode
it was stored from; the official SDKs parse every replay with strict validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from tests.cache.conftest import cache_settings
from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.harness import GATEWAY_KEY, serve

QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
# The Anthropic SDK (2.x) has no temperature parameter any more: sent as an extra field, it makes
# the request deterministic, hence cached (cache.sampled is off).
COLD = {"temperature": 0}
TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@dataclass
class Clients:
    oai: openai.AsyncOpenAI
    ant: anthropic.AsyncAnthropic
    openai_fake: OpenAIUpstream
    claude_fake: AnthropicUpstream


@pytest.fixture
async def clients(
    upstream: OpenAIUpstream, claude_upstream: AnthropicUpstream, database: dict[str, Any]
) -> AsyncIterator[Clients]:
    async with serve(cache_settings(upstream, claude_upstream, database=database)) as url:
        oai = openai.AsyncOpenAI(
            base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        ant = anthropic.AsyncAnthropic(
            base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        try:
            yield Clients(oai, ant, upstream, claude_upstream)
        finally:
            await oai.close()
            await ant.close()


async def test_an_openai_answer_replays_as_an_anthropic_stream(clients: Clients) -> None:
    raw = await clients.oai.chat.completions.with_raw_response.create(
        model="gpt",
        messages=QUESTION,
        max_tokens=100,
        temperature=0,  # type: ignore[arg-type]
    )
    assert raw.headers["x-cache-status"] == "MISS"

    async with clients.ant.messages.stream(
        model="gpt", messages=QUESTION, max_tokens=100, extra_body=COLD
    ) as stream:  # type: ignore[arg-type]
        assert stream.response.headers["x-cache-status"] == "HIT"
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()

    assert text == "The answer is 42." == raw.parse().choices[0].message.content
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 100 and final.usage.output_tokens == 50
    assert clients.openai_fake.hits == 1


async def test_an_anthropic_answer_replays_as_an_openai_stream(clients: Clients) -> None:
    raw = await clients.ant.messages.with_raw_response.create(
        model="claude",
        messages=QUESTION,
        max_tokens=100,
        extra_body=COLD,  # type: ignore[arg-type]
    )
    assert raw.headers["x-cache-status"] == "MISS"

    stream = await clients.oai.chat.completions.create(
        model="claude",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=100,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The answer is 42."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 50
    assert usage.model_extra == {"cost_usd": 0.0}  # a hit costs nothing
    assert clients.claude_fake.hits == 1


async def test_a_relayed_anthropic_stream_replays_as_an_openai_body(clients: Clients) -> None:
    # Anthropic client, Anthropic upstream: the stream is relayed byte for byte, and the cache
    # keeps the canonical events that come with the bytes.
    async with clients.ant.messages.stream(
        model="claude", messages=QUESTION, max_tokens=100, extra_body=COLD
    ) as stream:  # type: ignore[arg-type]
        assert stream.response.headers["x-cache-status"] == "MISS"
        await stream.get_final_message()

    raw = await clients.oai.chat.completions.with_raw_response.create(
        model="claude",
        messages=QUESTION,
        max_tokens=100,
        temperature=0,  # type: ignore[arg-type]
    )

    assert raw.headers["x-cache-status"] == "HIT"
    assert raw.parse().choices[0].message.content == "The answer is 42."
    assert clients.claude_fake.hits == 1


async def test_a_streamed_tool_call_replays_into_the_other_format_whole(clients: Clients) -> None:
    clients.openai_fake.enqueue(
        Reply(tool_calls=[("call_1", "get_weather", {"city": "Paris"})], input_tokens=80, output_tokens=20)
    )
    stream = await clients.oai.chat.completions.create(
        model="gpt",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=100,
        temperature=0,
        tools=[{"type": "function", "function": TOOL}],  # type: ignore[list-item]
        stream=True,
    )
    [chunk async for chunk in stream]

    answer = await clients.ant.messages.with_raw_response.create(
        model="gpt",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=100,
        extra_body=COLD,
        tools=[
            {"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}
        ],  # type: ignore[list-item]
    )

    assert answer.headers["x-cache-status"] == "HIT"
    message = await answer.parse()
    assert message.stop_reason == "tool_use"
    calls = [block for block in message.content if block.type == "tool_use"]
    assert [(c.name, c.input) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert clients.openai_fake.hits == 1
