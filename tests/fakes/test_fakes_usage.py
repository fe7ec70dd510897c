"""The fakes send every usage field the gateway normalises, where and as the real services do,
and the official clients (validating strictly) read them: Anthropic's ``cache_creation``
breakdown and ``output_tokens_details``, Bedrock's ``cacheDetails`` (body and ``metadata``
frame), the cached prompt of OpenAI legacy completions, Ollama's ``prompt_eval_cached_count``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import boto3
import openai
import pytest
from botocore.config import Config

from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.fakes.bedrock_upstream import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, BedrockUpstream
from tests.fakes.ollama_upstream import OllamaUpstream

HELLO: Any = [{"role": "user", "content": "hello there"}]
CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
CACHED = Reply(
    text="Done.",
    input_tokens=40,
    output_tokens=300,
    cache_read_tokens=4000,
    cache_write_tokens=1500,
    cache_write_1h_tokens=1000,
    reasoning_tokens=120,
)


@pytest.fixture
async def bedrock() -> AsyncIterator[BedrockUpstream]:
    async with BedrockUpstream() as server:
        yield server


def boto(fake: BedrockUpstream) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=fake.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


async def test_anthropic_sends_the_cache_breakdown_and_thinking_count_in_a_body(
    anthropic_upstream: AnthropicUpstream, ant: anthropic.AsyncAnthropic
) -> None:
    anthropic_upstream.enqueue(CACHED)
    usage = (await ant.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=HELLO)).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        40,
        4000,
        1500,
    )
    assert usage.cache_creation is not None
    assert (
        usage.cache_creation.ephemeral_5m_input_tokens,
        usage.cache_creation.ephemeral_1h_input_tokens,
    ) == (
        500,
        1000,
    )
    assert usage.output_tokens_details is not None and usage.output_tokens_details.thinking_tokens == 120


async def test_anthropic_streams_the_breakdown_first_and_the_thinking_count_last(
    anthropic_upstream: AnthropicUpstream, ant: anthropic.AsyncAnthropic
) -> None:
    anthropic_upstream.enqueue(CACHED)
    async with ant.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=HELLO) as stream:
        events = [event async for event in stream]
        message = await stream.get_final_message()
    start = next(e for e in events if e.type == "message_start")
    assert start.message.usage.cache_creation is not None
    assert start.message.usage.cache_creation.ephemeral_1h_input_tokens == 1000
    assert start.message.usage.output_tokens_details is None
    delta = next(e for e in events if e.type == "message_delta")
    assert (
        delta.usage.output_tokens_details is not None
        and delta.usage.output_tokens_details.thinking_tokens == 120
    )
    assert message.usage.output_tokens == 300


async def test_bedrock_sends_cache_details_in_a_converse_body(bedrock: BedrockUpstream) -> None:
    bedrock.enqueue(CACHED)
    messages = [{"role": "user", "content": [{"text": "hello"}]}]
    result = await asyncio.to_thread(lambda: boto(bedrock).converse(modelId=CLAUDE, messages=messages))
    assert result["usage"] == {
        "inputTokens": 40,
        "outputTokens": 300,
        "cacheReadInputTokens": 4000,
        "cacheWriteInputTokens": 1500,
        "cacheDetails": [{"ttl": "1h", "inputTokens": 1000}, {"ttl": "5m", "inputTokens": 500}],
        "totalTokens": 5840,
    }


async def test_bedrock_sends_cache_details_in_the_metadata_frame(bedrock: BedrockUpstream) -> None:
    bedrock.enqueue(Reply(text="Done.", input_tokens=3, output_tokens=2, cache_write_tokens=900))
    messages = [{"role": "user", "content": [{"text": "hello"}]}]

    def events() -> list[dict[str, Any]]:
        return list(boto(bedrock).converse_stream(modelId=CLAUDE, messages=messages)["stream"])

    metadata = [e["metadata"] for e in await asyncio.to_thread(events) if "metadata" in e]
    assert metadata[0]["usage"]["cacheDetails"] == [{"ttl": "5m", "inputTokens": 900}]
    assert metadata[0]["usage"]["cacheWriteInputTokens"] == 900


async def test_bedrock_sends_no_cache_fields_without_a_cache(bedrock: BedrockUpstream) -> None:
    bedrock.enqueue(Reply(text="Done.", input_tokens=3, output_tokens=2))
    messages = [{"role": "user", "content": [{"text": "hello"}]}]
    result = await asyncio.to_thread(lambda: boto(bedrock).converse(modelId=CLAUDE, messages=messages))
    assert result["usage"] == {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}


async def test_openai_legacy_completions_send_the_cached_prompt(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    openai_upstream.enqueue(Reply(text="Done.", input_tokens=900, output_tokens=7, cache_read_tokens=768))
    body = await oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="hello")
    assert body.usage is not None and body.usage.prompt_tokens_details is not None
    assert (body.usage.prompt_tokens, body.usage.prompt_tokens_details.cached_tokens) == (900, 768)
    openai_upstream.enqueue(Reply(text="Done.", input_tokens=5, output_tokens=7))
    plain = await oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="hello")
    assert plain.usage is not None and plain.usage.prompt_tokens_details is None


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_ollama_sends_the_cached_prompt_count_on_the_final_line(stream: bool) -> None:
    async with OllamaUpstream() as fake, aiohttp.ClientSession() as http:
        fake.enqueue(Reply(text="Done.", input_tokens=900, output_tokens=40, cache_read_tokens=850))
        fake.enqueue(Reply(text="Done.", input_tokens=26, output_tokens=12))
        finals = []
        for _ in range(2):
            body = {"model": "qwen3:8b", "messages": HELLO, "stream": stream}
            async with http.post(fake.url + "/api/chat", json=body) as resp:
                lines = [json.loads(line) for line in (await resp.read()).splitlines() if line.strip()]
            finals.append(lines[-1])
    assert finals[0]["done"] is True
    assert (finals[0]["prompt_eval_count"], finals[0]["prompt_eval_cached_count"]) == (900, 850)
    assert "prompt_eval_cached_count" not in finals[1] and finals[1]["prompt_eval_count"] == 26
