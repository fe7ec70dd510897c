"""The OpenAI provider's native Responses path against the fake of OpenAI's ``/v1/responses``:
which deployments speak it (``responses_api``), the client's body forwarded with what Waypost
does not know, the answer relayed as it came but for the model name, errors mapped. Specified by
docs/responses.md ("Which upstream API") and docs/configuration.md (``responses_api``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.fakes import OpenAIResponsesUpstream, Reply
from tests.fakes.responses_sdk import accumulate, validate_event
from waypost.core.context import RequestContext
from waypost.core.errors import (
    GatewayError,
    RateLimited,
    StreamInterrupted,
    UpstreamAuthError,
    UpstreamBadRequest,
)
from waypost.core.events import RawFrame, StreamEvent, TextDelta, UsageUpdate
from waypost.core.types import ChatRequest
from waypost.providers.azure import AzureProvider
from waypost.providers.base import Deployment, same_format
from waypost.providers.http import HttpClient
from waypost.providers.openai import OpenAIProvider
from waypost.providers.openai_responses import speaks_responses
from waypost.settings import ModelSettings, Settings
from waypost.wire.openai import responses as wire
from waypost.wire.sse import SSEParser

KEY = "sk-provider-responses"
FORMAT = wire.FORMAT


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.close()


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIResponsesUpstream]:
    async with OpenAIResponsesUpstream(api_key=KEY) as server:
        yield server


@pytest.fixture
def provider(http: HttpClient) -> OpenAIProvider:
    return OpenAIProvider(http)


def deployment(url: str, *, provider: str = "openai", **extra: Any) -> Deployment:
    settings = ModelSettings(name="alias", provider=provider, base_url=url, api_key=KEY, **extra)
    return Deployment(settings, "gpt-up")


def native(fake: OpenAIResponsesUpstream) -> Deployment:
    return deployment(fake.url + "/v1", responses_api=True)


def request(**body: Any) -> ChatRequest:
    return wire.decode_request({"model": "alias", "input": "hello", **body})


def context(client_format: str = FORMAT) -> RequestContext:
    return RequestContext("r", client_format)


async def collect(batches: AsyncIterator[list[StreamEvent]]) -> list[StreamEvent]:
    return [event async for batch in batches for event in batch]


def relayed(events: list[StreamEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, RawFrame))


def relayed_events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    frames, _ = SSEParser().feed_frames(data)
    return [
        (name.decode() if isinstance(name, bytes) else name, json.loads(payload)) for name, payload in frames
    ]


# -- which deployments speak it ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "setting", "speaks"),
    [
        ("https://api.openai.com/v1", None, True),
        ("https://api.openai.com/v1", False, False),
        ("http://127.0.0.1:8000/v1", None, False),  # vLLM, llama.cpp: chat completions only
        ("https://api.groq.com/openai/v1", None, False),
        ("https://api.openai.com.evil.example/v1", None, False),
        ("http://127.0.0.1:8000/v1", True, True),
    ],
)
def test_responses_api_is_auto_for_openais_host_and_a_setting_elsewhere(
    base_url: str, setting: bool | None, speaks: bool
) -> None:
    dep = deployment(base_url, responses_api=setting)

    assert speaks_responses(dep) is speaks


def test_a_preset_may_say_its_server_takes_responses_and_a_model_may_overrule_it() -> None:
    preset = {"base_url": "https://llm-proxy.example/v1", "responses_api": True}
    doc = {
        "presets": {"proxy": preset},
        "models": [
            {"name": "a", "provider": "proxy", "api_key": "k"},
            {"name": "b", "provider": "proxy", "api_key": "k", "responses_api": False},
        ],
        "auth": {"open": True},
    }
    models = {m.name: m for m in Settings.model_validate(doc).models}

    assert speaks_responses(Deployment(models["a"], "m"))
    assert not speaks_responses(Deployment(models["b"], "m"))


def test_the_same_format_path_is_decided_per_deployment(provider: OpenAIProvider) -> None:
    yes = deployment("http://127.0.0.1:1/v1", responses_api=True)
    no = deployment("http://127.0.0.1:1/v1", responses_api=False)

    assert same_format(provider, FORMAT, yes) and not same_format(provider, FORMAT, no)
    assert same_format(provider, "openai", no)  # chat clients: always chat completions


def test_azure_deployments_never_take_responses_requests(http: HttpClient) -> None:
    dep = deployment("https://acme.openai.azure.com", provider="azure", responses_api=True)

    assert not same_format(AzureProvider(http), FORMAT, dep)


# -- not streamed ------------------------------------------------------------------------------------


async def test_a_responses_request_goes_to_responses_with_only_the_model_changed(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream
) -> None:
    body = {"instructions": "Be brief.", "safety_identifier": "u-1", "context_management": [{"type": "x"}]}
    await provider.complete(request(**body), native(fake), context())

    assert fake.last.path == "/v1/responses"
    assert fake.last.json == {"model": "gpt-up", "input": "hello", **body}


async def test_the_answer_is_decoded_and_relayed_under_the_clients_model(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream
) -> None:
    fake.enqueue(Reply(text="hi", input_tokens=12, output_tokens=3, cache_read_tokens=8, reasoning_tokens=1))
    result = await provider.complete(request(), native(fake), context())

    assert result.text() == "hi"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 3)
    assert result.usage.cache_read_tokens == 8
    assert result.raw is not None
    relayed_body = orjson.loads(result.raw)
    assert relayed_body["model"] == "alias" and relayed_body["service_tier"] == "default"


async def test_an_answer_already_under_the_clients_model_is_relayed_byte_for_byte(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream
) -> None:
    answer = {
        "id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "alias",
        "output": [{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "hi", "annotations": []}]}],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}, "a_future_field": {"x": 1},
    }  # fmt: skip
    raw = json.dumps(answer, indent=2).encode()  # spacing no re-encoding would keep
    fake.enqueue(Reply(raw_body=raw))
    result = await provider.complete(request(), native(fake), context())

    assert result.raw == raw and result.text() == "hi"


async def test_a_deployment_without_responses_gets_chat_completions(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream
) -> None:
    dep = deployment(fake.url + "/v1")  # a loopback URL: auto is false
    result = await provider.complete(request(), dep, context())

    assert fake.last.path == "/v1/chat/completions"
    assert result.text() == "echo: hello"


@pytest.mark.parametrize(
    ("status", "error"), [(400, UpstreamBadRequest), (401, UpstreamAuthError), (429, RateLimited)]
)
async def test_upstream_errors_are_mapped_by_status(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream, status: int, error: type[GatewayError]
) -> None:
    fake.enqueue(Reply(status=status, error_message="scripted"))
    with pytest.raises(error):
        await provider.complete(request(), native(fake), context())


async def test_a_parameter_openai_refuses_comes_back_as_a_bad_request_naming_it(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream
) -> None:
    with pytest.raises(UpstreamBadRequest, match="max_completion_tokens"):
        await provider.complete(request(max_completion_tokens=5), native(fake), context())


# -- streamed ----------------------------------------------------------------------------------------


async def test_a_stream_is_relayed_as_typed_events_under_the_clients_model(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream
) -> None:
    fake.enqueue(Reply(text="one two three", input_tokens=5, output_tokens=3))
    events = await collect(provider.stream(request(stream=True), native(fake), context()))

    frames = relayed_events(relayed(events))
    assert [name for name, _ in frames] == [event["type"] for _, event in frames]
    for _, event in frames:
        validate_event(event)
    final = accumulate([event for _, event in frames])
    assert final is not None and final.model == "alias" and final.output_text == "one two three"
    assert all("obfuscation" in e for _, e in frames if e["type"].endswith(".delta"))  # kept as sent
    assert fake.last.json["stream"] is True


async def test_a_stream_decodes_to_canonical_text_and_usage(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream
) -> None:
    fake.enqueue(Reply(text="one two", input_tokens=5, output_tokens=2))
    events = await collect(provider.stream(request(stream=True), native(fake), context()))

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two"
    usage = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert usage and (usage[-1].input_tokens, usage[-1].output_tokens) == (5, 2)


async def test_an_event_waypost_does_not_know_is_relayed_as_it_came(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream
) -> None:
    response = {"id": "resp_1", "object": "response", "created_at": 1, "model": "alias", "output": []}
    done = {
        **response,
        "status": "completed",
        "usage": {"input_tokens": 1, "output_tokens": 0, "total_tokens": 1},
    }
    future = b'event: response.future_thing\ndata: {"type":"response.future_thing",  "sequence_number":1}\n\n'
    raw = (
        b"event: response.created\ndata: "
        + orjson.dumps({"type": "response.created", "sequence_number": 0, "response": response})
        + b"\n\n"
        + future
        + b"event: response.completed\ndata: "
        + orjson.dumps({"type": "response.completed", "sequence_number": 2, "response": done})
        + b"\n\n"
    )
    fake.enqueue(Reply(raw_body=raw))
    events = await collect(provider.stream(request(stream=True), native(fake), context()))

    assert relayed(events) == raw


@pytest.mark.parametrize(
    ("failure", "code", "error"),
    [("error", "server_error", StreamInterrupted), ("response.failed", "rate_limit_exceeded", RateLimited)],
)
async def test_a_stream_failing_midway_raises_after_what_came(
    http: HttpClient, failure: Any, code: str, error: type[GatewayError]
) -> None:
    async with OpenAIResponsesUpstream(api_key=KEY, failure=failure) as fake:
        fake.enqueue(Reply(text="a b c", error_event_after_chunks=5, error_type=code, error_message="gone"))
        seen: list[StreamEvent] = []
        with pytest.raises(error, match="gone"):
            async for batch in OpenAIProvider(http).stream(request(stream=True), native(fake), context()):
                seen += batch

    assert any(isinstance(e, TextDelta) for e in seen)


async def test_a_stream_cut_before_its_final_event_is_interrupted(
    provider: OpenAIProvider, fake: OpenAIResponsesUpstream
) -> None:
    fake.enqueue(Reply(text="a b c", reset_after_chunks=5))
    with pytest.raises(StreamInterrupted):
        await collect(provider.stream(request(stream=True), native(fake), context()))
