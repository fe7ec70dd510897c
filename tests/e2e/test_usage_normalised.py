"""Every provider's own usage figures reach the caller's usage object faithfully (docs/metering.md,
"Usage"): through a real gateway to the five fake upstreams (OpenAI, Anthropic, Bedrock, Gemini,
Ollama), from both client formats, streamed and not, with a prompt cache and without.

The caller's object is read raw off the wire (and validated strictly with the official SDKs'
types): an OpenAI caller sees the cached prompt in ``prompt_tokens_details.cached_tokens`` and the
reasoning in ``completion_tokens_details.reasoning_tokens``, both inside the totals; an Anthropic
caller sees ``input_tokens`` without the cache, ``cache_read_input_tokens``,
``cache_creation_input_tokens`` with its ``cache_creation`` breakdown by duration, and the
reasoning in ``output_tokens_details.thinking_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic.types
import pytest
import pytest_asyncio
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.fakes.bedrock_upstream import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, BedrockUpstream
from tests.fakes.gemini_upstream import GeminiUpstream
from tests.fakes.ollama_upstream import OllamaUpstream
from tests.harness import GATEWAY_KEY, model, serve, settings
from waypost.core.types import Usage

pytestmark = pytest.mark.asyncio(loop_scope="module")

GEMINI_KEY = "AIzaSy-usage-normalised-key"
ANTHROPIC_EVENT = TypeAdapter(anthropic.types.RawMessageStreamEvent)


@dataclass(frozen=True)
class Case:
    """What one upstream is told to report, and the canonical usage that is."""

    reply: Reply
    canonical: Usage


# Each upstream's figures in its own convention (see tests/fakes/base.py Reply).
CASES: dict[tuple[str, str], Case] = {
    ("openai", "cached"): Case(
        Reply(
            text="Done.", input_tokens=2006, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=256
        ),
        Usage(2006, 300, cache_read_tokens=1920, reasoning_tokens=256),
    ),
    ("openai", "uncached"): Case(Reply(text="Done.", input_tokens=25, output_tokens=12), Usage(25, 12)),
    ("anthropic", "cached"): Case(
        Reply(
            text="Done.",
            input_tokens=40,
            output_tokens=300,
            cache_read_tokens=4000,
            cache_write_tokens=1500,
            cache_write_1h_tokens=1000,
            reasoning_tokens=120,
        ),
        Usage(5540, 300, 4000, 1500, reasoning_tokens=120, cache_write_1h_tokens=1000),
    ),
    ("anthropic", "uncached"): Case(Reply(text="Done.", input_tokens=25, output_tokens=12), Usage(25, 12)),
    ("bedrock", "cached"): Case(
        Reply(
            text="Done.",
            input_tokens=40,
            output_tokens=300,
            cache_read_tokens=4000,
            cache_write_tokens=1500,
            cache_write_1h_tokens=1000,
        ),
        Usage(5540, 300, 4000, 1500, cache_write_1h_tokens=1000),
    ),
    ("bedrock", "uncached"): Case(Reply(text="Done.", input_tokens=25, output_tokens=12), Usage(25, 12)),
    ("gemini", "cached"): Case(
        # candidatesTokenCount 180 plus 120 thoughts: 300 output tokens.
        Reply(
            text="Done.", input_tokens=5540, output_tokens=180, cache_read_tokens=4000, reasoning_tokens=120
        ),
        Usage(5540, 300, cache_read_tokens=4000, reasoning_tokens=120),
    ),
    ("gemini", "uncached"): Case(Reply(text="Done.", input_tokens=25, output_tokens=12), Usage(25, 12)),
    ("ollama", "cached"): Case(
        Reply(text="Done.", input_tokens=900, output_tokens=40, cache_read_tokens=850),
        Usage(900, 40, cache_read_tokens=850),
    ),
    ("ollama", "uncached"): Case(Reply(text="Done.", input_tokens=26, output_tokens=12), Usage(26, 12)),
}
PROVIDERS = ["openai", "anthropic", "bedrock", "gemini", "ollama"]


@dataclass
class Stage:
    url: str
    fakes: dict[str, Any]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stage() -> AsyncIterator[Stage]:
    async with AsyncExitStack() as stack:
        fakes: dict[str, Any] = {
            "openai": OpenAIUpstream(api_key="sk-usage-0123456789"),
            "anthropic": AnthropicUpstream(api_key="sk-ant-usage-0123456789"),
            "bedrock": BedrockUpstream(),
            "gemini": GeminiUpstream(api_key=GEMINI_KEY),
            "ollama": OllamaUpstream(),
        }
        for fake in fakes.values():
            await stack.enter_async_context(fake)
        aws = {
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "endpoint_url": fakes["bedrock"].url,
        }
        config = settings(
            model("openai", "openai", fakes["openai"].url, fakes["openai"].api_key, upstream_model="o4-mini"),
            model(
                "anthropic",
                "anthropic",
                fakes["anthropic"].url,
                fakes["anthropic"].api_key,
                upstream_model="claude-sonnet-4-5",
            ),
            model("bedrock", "bedrock", upstream_model="anthropic.claude-sonnet-4-20250514-v1:0", aws=aws),
            model("gemini", "gemini", fakes["gemini"].url, GEMINI_KEY, upstream_model="gemini-2.5-flash"),
            model("ollama", "ollama", fakes["ollama"].url, upstream_model="qwen3:8b"),
        )
        url = await stack.enter_async_context(serve(config))
        yield Stage(url, fakes)


async def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.read()


def sse(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, data) of each SSE frame, ``[DONE]`` left as text."""
    out: list[tuple[str | None, Any]] = []
    for frame in raw.decode().split("\n\n"):
        name, data = None, None
        for line in frame.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


async def openai_usage(stage: Stage, name: str, *, stream: bool) -> dict[str, Any]:
    """The usage object an OpenAI caller reads: the body's, or the stream's usage chunk's."""
    body: dict[str, Any] = {"model": name, "messages": [{"role": "user", "content": "Hello?"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    status, raw = await post(
        stage.url + "/v1/chat/completions", body, {"authorization": f"Bearer {GATEWAY_KEY}"}
    )
    assert status == 200, raw
    if not stream:
        usage = ChatCompletion.model_validate(json.loads(raw), strict=True).usage
        assert usage is not None
        return json.loads(raw)["usage"]
    chunks = [data for _, data in sse(raw) if data != "[DONE]"]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk, strict=True)
    with_usage = [c for c in chunks if c.get("usage")]
    assert len(with_usage) == 1 and with_usage[0]["choices"] == []
    return with_usage[0]["usage"]


async def anthropic_usage(stage: Stage, name: str, *, stream: bool) -> dict[str, Any]:
    """The usage an Anthropic caller reads: the body's, or ``message_start``'s updated by the
    fields ``message_delta`` reports (the SDKs' accumulation, field by field)."""
    body: dict[str, Any] = {
        "model": name,
        "max_tokens": 512,
        "messages": [{"role": "user", "content": "Hello?"}],
        "stream": stream,
    }
    headers = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
    status, raw = await post(stage.url + "/v1/messages", body, headers)
    assert status == 200, raw
    if not stream:
        anthropic.types.Message.model_validate(json.loads(raw), strict=True)
        return json.loads(raw)["usage"]
    usage: dict[str, Any] = {}
    for event, data in sse(raw):
        if event == "ping":  # the SDKs skip pings; their types have none
            continue
        ANTHROPIC_EVENT.validate_python(data, strict=True)
        if event == "message_start":
            usage = dict(data["message"]["usage"])
        elif event == "message_delta":
            usage |= {k: v for k, v in data["usage"].items() if v is not None}
    return usage


def as_openai(u: Usage) -> tuple[int, int, int, int, int]:
    return (
        u.input_tokens,
        u.output_tokens,
        u.input_tokens + u.output_tokens,
        u.cache_read_tokens,
        u.reasoning_tokens,
    )


def seen_by_openai(usage: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (
        usage["prompt_tokens"],
        usage["completion_tokens"],
        usage["total_tokens"],
        (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
        (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
    )


def as_anthropic(u: Usage) -> tuple[Any, ...]:
    uncached = u.input_tokens - u.cache_read_tokens - u.cache_write_tokens
    breakdown = {
        "ephemeral_5m_input_tokens": u.cache_write_tokens - u.cache_write_1h_tokens,
        "ephemeral_1h_input_tokens": u.cache_write_1h_tokens,
    }
    thinking = {"thinking_tokens": u.reasoning_tokens} if u.reasoning_tokens else None
    return (uncached, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, breakdown, thinking)


def seen_by_anthropic(usage: dict[str, Any]) -> tuple[Any, ...]:
    return (
        usage["input_tokens"],
        usage["output_tokens"],
        usage.get("cache_read_input_tokens"),
        usage.get("cache_creation_input_tokens"),
        usage.get("cache_creation"),
        usage.get("output_tokens_details"),
    )


@pytest.mark.parametrize("mode", ["body", "stream"])
@pytest.mark.parametrize("cache", ["cached", "uncached"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_openai_caller_reads_the_upstreams_usage(
    stage: Stage, provider: str, cache: str, mode: str
) -> None:
    case = CASES[provider, cache]
    stage.fakes[provider].enqueue(case.reply)
    usage = await openai_usage(stage, provider, stream=mode == "stream")
    assert seen_by_openai(usage) == as_openai(case.canonical)


@pytest.mark.parametrize("mode", ["body", "stream"])
@pytest.mark.parametrize("cache", ["cached", "uncached"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_anthropic_caller_reads_the_upstreams_usage(
    stage: Stage, provider: str, cache: str, mode: str
) -> None:
    case = CASES[provider, cache]
    stage.fakes[provider].enqueue(case.reply)
    usage = await anthropic_usage(stage, provider, stream=mode == "stream")
    assert seen_by_anthropic(usage) == as_anthropic(case.canonical)
