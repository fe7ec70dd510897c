"""The OpenAI-compatible provider against the fake OpenAI server: the field the token limit travels
in (per provider type, preset and model), and what a same-format client reads of the answer: the
model it asked for, OpenAI's shapes whatever the server's quirks. Specified by
docs/providers/openai-compatible.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.fakes import OpenAIUpstream, Reply
from tests.fakes import openai_quirks as q
from waypost.core.context import RequestContext
from waypost.core.events import RawFrame, StreamEvent, fold
from waypost.core.types import ChatRequest, Message, TextPart
from waypost.providers.azure import AzureProvider
from waypost.providers.base import Deployment
from waypost.providers.http import HttpClient
from waypost.providers.kinds import default_max_tokens_field
from waypost.providers.openai import OpenAIProvider
from waypost.settings import ModelSettings, Settings
from waypost.wire.openai.chat import decode_request
from waypost.wire.sse import SSEParser

TRANSLATED = RequestContext("r", "anthropic")
RELAYED = RequestContext("r", "openai")
LONG = " ".join(f"w{i}" for i in range(30))


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.close()


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIUpstream]:
    quirks = {"llama": q.LLAMA_CPP, "reasoner": {q.MAX_COMPLETION_TOKENS_ONLY}}
    async with OpenAIUpstream(quirks=quirks) as server:
        yield server


def deployment(url: str, upstream: str = "llama", **extra: Any) -> Deployment:
    return Deployment(ModelSettings(name="alias", provider="openai", base_url=url + "/v1", **extra), upstream)


def canonical(max_tokens: int = 5, stream: bool = False) -> ChatRequest:
    """A request as the Anthropic decoder makes it (rebuilt for the upstream)."""
    return ChatRequest(
        model="alias",
        messages=[Message("user", [TextPart("story")])],
        max_tokens=max_tokens,
        stream=stream,
        source_format="anthropic",
    )


def from_openai(body: dict[str, Any]) -> ChatRequest:
    return decode_request({"model": "alias", "messages": [{"role": "user", "content": "story"}], **body})


async def collect(batches: AsyncIterator[list[StreamEvent]]) -> list[StreamEvent]:
    return [event async for batch in batches for event in batch]


def relayed_chunks(events: list[StreamEvent]) -> list[ChatCompletionChunk]:
    data = b"".join(e.data for e in events if isinstance(e, RawFrame))
    frames, _ = SSEParser().feed_frames(data)
    assert frames[-1][1] == b"[DONE]"
    return [ChatCompletionChunk.model_validate(orjson.loads(f[1]), strict=True) for f in frames[:-1]]


# -- the token limit's field ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "base_url", "field"),
    [
        ("openai", "https://api.openai.com/v1", "max_completion_tokens"),
        ("openai", "https://api.openai.com", "max_completion_tokens"),
        ("azure", "https://acme.openai.azure.com", "max_completion_tokens"),
        ("openai", "http://127.0.0.1:8080/v1", "max_tokens"),
        ("openai", "https://api.openai.com.evil.example/v1", "max_tokens"),
        ("openai", "https://api.groq.com/openai/v1", "max_tokens"),
    ],
)
def test_the_default_field_is_openais_for_openai_and_azure_max_tokens_elsewhere(
    provider: str, base_url: str, field: str
) -> None:
    assert default_max_tokens_field(provider, base_url) == field


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"provider": "openai"}, "max_completion_tokens"),  # the default base URL is OpenAI's
        ({"provider": "openai-api"}, "max_completion_tokens"),
        ({"provider": "llamacpp"}, "max_tokens"),
        ({"provider": "groq"}, "max_tokens"),
        ({"provider": "vllm", "max_tokens_field": "max_completion_tokens"}, "max_completion_tokens"),
        ({"provider": "openai", "max_tokens_field": "max_tokens"}, "max_tokens"),
        ({"provider": "acme"}, "max_completion_tokens"),  # a preset of the config file says so
    ],
)
def test_presets_and_models_may_name_the_field(http: HttpClient, entry: dict[str, Any], field: str) -> None:
    presets = {
        "acme": {"base_url": "https://llm.acme.example/v1", "max_tokens_field": "max_completion_tokens"}
    }
    config = Settings.model_validate({"presets": presets, "models": [{"name": "m", **entry}]})
    model = config.models[0]
    assert OpenAIProvider(http).max_tokens_field(Deployment(model, model.target_model)) == field


async def test_azure_takes_max_completion_tokens(http: HttpClient, fake: OpenAIUpstream) -> None:
    settings = ModelSettings(name="alias", provider="azure", base_url=fake.url)
    await AzureProvider(http).complete(canonical(), Deployment(settings, "reasoner"), TRANSLATED)
    assert fake.last.json["max_completion_tokens"] == 5 and "max_tokens" not in fake.last.json


@pytest.mark.parametrize("stream", [False, True])
async def test_a_max_tokens_only_server_stops_at_the_callers_limit(
    http: HttpClient, fake: OpenAIUpstream, stream: bool
) -> None:
    fake.enqueue(Reply(text=LONG))
    provider = OpenAIProvider(http)
    if stream:
        resp = fold(await collect(provider.stream(canonical(stream=True), deployment(fake.url), TRANSLATED)))
    else:
        resp = await provider.complete(canonical(), deployment(fake.url), TRANSLATED)
    assert fake.last.json["max_tokens"] == 5 and "max_completion_tokens" not in fake.last.json
    assert resp.finish_reason is not None and resp.finish_reason.value == "length"
    assert len(resp.text().split()) == 5 and resp.usage.output_tokens <= 5


async def test_the_fast_path_renames_the_field_the_upstream_ignores(
    http: HttpClient, fake: OpenAIUpstream
) -> None:
    fake.enqueue(Reply(text=LONG))
    resp = await OpenAIProvider(http).complete(
        from_openai({"max_completion_tokens": 5}), deployment(fake.url), RELAYED
    )
    assert fake.last.json["max_tokens"] == 5 and "max_completion_tokens" not in fake.last.json
    assert resp.raw is not None
    assert ChatCompletion.model_validate(orjson.loads(resp.raw)).choices[0].finish_reason == "length"


async def test_a_model_set_to_max_completion_tokens_gets_the_fast_paths_max_tokens_renamed(
    http: HttpClient, fake: OpenAIUpstream
) -> None:
    dep = deployment(fake.url, "reasoner", max_tokens_field="max_completion_tokens")
    await OpenAIProvider(http).complete(from_openai({"max_tokens": 5}), dep, RELAYED)
    assert fake.last.json["max_completion_tokens"] == 5 and "max_tokens" not in fake.last.json


# -- what a same-format client reads -------------------------------------------------------------------


async def test_a_relayed_body_names_the_requested_model_without_the_mirror(
    http: HttpClient, fake: OpenAIUpstream
) -> None:
    fake.enqueue(Reply(tool_calls=[("call_1", "get_weather", {"city": "Oslo"})]))
    resp = await OpenAIProvider(http).complete(from_openai({}), deployment(fake.url), RELAYED)
    assert resp.raw is not None
    completion = ChatCompletion.model_validate(orjson.loads(resp.raw), strict=True)
    assert completion.model == "alias"
    assert completion.choices[0].message.function_call is None
    assert [c.id for c in completion.choices[0].message.tool_calls or []] == ["call_1"]


async def test_a_relayed_stream_names_the_requested_model_and_each_call_once(
    http: HttpClient, fake: OpenAIUpstream
) -> None:
    fake.enqueue(Reply(tool_calls=[("call_1", "get_weather", {"city": "Oslo"})], chunks=4))
    req = from_openai({"stream": True, "stream_options": {"include_usage": True}})
    chunks = relayed_chunks(await collect(OpenAIProvider(http).stream(req, deployment(fake.url), RELAYED)))
    assert {c.model for c in chunks} == {"alias"}
    names = [
        t.function.name
        for c in chunks
        if c.choices
        for t in c.choices[0].delta.tool_calls or []
        if t.function
    ]
    assert [n for n in names if n] == ["get_weather"]
    assert all(c.choices[0].delta.function_call is None for c in chunks if c.choices)


async def test_a_relayed_stream_for_the_upstreams_own_name_is_the_upstreams_bytes(
    http: HttpClient, fake: OpenAIUpstream
) -> None:
    fake.enqueue(Reply(text="one two three"))
    req = decode_request(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "count"}], "stream": True}
    )
    req.include_usage = True
    dep = Deployment(ModelSettings(name="gpt-4o", provider="openai", base_url=fake.url + "/v1"), "gpt-4o")
    events = await collect(OpenAIProvider(http).stream(req, dep, RELAYED))
    raw_frames = [e for e in events if isinstance(e, RawFrame)]
    data = b"".join(f.data for f in raw_frames)
    assert data.count(b"data: ") == 7 and b'"model":"gpt-4o"' in data  # role, 3 words, finish, usage, [DONE]
