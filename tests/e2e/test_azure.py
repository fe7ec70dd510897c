"""Both SDKs through the gateway to Azure OpenAI (the fake OpenAI server's Azure route): the
deployment URL, ``api-version``, the ``api-key`` header, streams and tools. Specified by
docs/providers/azure.md."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.clients import TOOL, ask_anthropic, ask_openai
from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, model, serve, settings

AZURE_KEY = "azure-resource-key-0123456789"
CLIENTS = ["openai", "anthropic"]


def azure(name: str, fake: OpenAIUpstream, **extra: Any) -> dict[str, Any]:
    return model(name, "azure", fake.url, AZURE_KEY, **extra)


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream(api_key=AZURE_KEY) as server:
        yield server


@pytest.fixture
async def url(fake: OpenAIUpstream) -> AsyncIterator[str]:
    config = settings(
        azure("gpt-4o", fake, upstream_model="gpt4o-prod"),
        azure("pinned", fake, upstream_model="gpt4o-prod", api_version="2025-04-01-preview"),
        model("bad-key", "azure", fake.url, "not-the-azure-key", upstream_model="gpt4o-prod"),
    )
    async with serve(config) as gateway_url:
        yield gateway_url


@pytest.fixture
async def openai_client(url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


@pytest.fixture
async def anthropic_client(url: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("client", CLIENTS, ids=[f"from-{c}" for c in CLIENTS])
async def test_answer_comes_from_the_deployment_url(
    client: str,
    stream: bool,
    fake: OpenAIUpstream,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    fake.enqueue(Reply(text="Hello from Azure.", chunks=3, input_tokens=11, output_tokens=4))
    messages = [{"role": "user", "content": "hi"}]
    if client == "openai":
        answer = await ask_openai(openai_client, "gpt-4o", messages, stream=stream)
    else:
        answer = await ask_anthropic(anthropic_client, "gpt-4o", messages, stream=stream)
    assert (answer.text, answer.finish) == ("Hello from Azure.", "stop")
    assert (answer.input_tokens, answer.output_tokens) == (11, 4)
    received = fake.last
    assert received.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert received.query == {"api-version": "2024-10-21"}
    assert received.headers["api-key"] == AZURE_KEY
    assert "authorization" not in received.headers


async def test_a_configured_api_version_is_sent(
    fake: OpenAIUpstream, openai_client: openai.AsyncOpenAI
) -> None:
    await openai_client.chat.completions.create(model="pinned", messages=[{"role": "user", "content": "hi"}])
    assert fake.last.query == {"api-version": "2025-04-01-preview"}


async def test_responses_name_azure_as_the_provider(openai_client: openai.AsyncOpenAI) -> None:
    raw = await openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-waypost-provider"] == "azure"
    assert raw.headers["x-waypost-deployment"] == "gpt-4o"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_tool_calls_round_trip_from_an_anthropic_client(
    stream: bool, fake: OpenAIUpstream, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply(tool_calls=[("call_az_1", "get_weather", {"city": "Paris"})]), Reply(text="Sunny."))
    first = await ask_anthropic(
        anthropic_client, "gpt-4o", [{"role": "user", "content": "weather?"}], stream=stream, tools=[TOOL]
    )
    [(call_id, name, args)] = first.tool_calls
    assert (first.finish, name, args) == ("tool_calls", "get_weather", {"city": "Paris"})
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": name, "input": args}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}]},
    ]
    second = await ask_anthropic(anthropic_client, "gpt-4o", history, stream=stream, tools=[TOOL])
    assert second.text == "Sunny."
    tool_message = fake.last.json["messages"][-1]  # the fake rejects results that answer no call
    assert tool_message["role"] == "tool" and tool_message["content"] == "sunny"
    assert json.loads(fake.last.json["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == args


@pytest.mark.parametrize("client", CLIENTS, ids=[f"from-{c}" for c in CLIENTS])
async def test_a_refused_azure_key_is_a_bad_gateway_without_the_key(
    client: str, openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    if client == "openai":
        with pytest.raises(openai.APIStatusError) as oerr:
            await openai_client.chat.completions.create(model="bad-key", messages=messages)
        status, message = oerr.value.status_code, oerr.value.message
    else:
        with pytest.raises(anthropic.APIStatusError) as aerr:
            await anthropic_client.messages.create(model="bad-key", max_tokens=64, messages=messages)
        status, message = aerr.value.status_code, aerr.value.message
    assert status == 502
    assert "not-the-azure-key" not in message and AZURE_KEY not in message
