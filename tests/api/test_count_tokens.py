"""POST /v1/messages/count_tokens through a real gateway: the provider's own count where it has
one, the documented estimate otherwise, checked with the anthropic SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import pytest

from tests.api.client import post
from tests.fakes import AnthropicUpstream, Reply
from tests.harness import GATEWAY_KEY, model, serve, settings
from waypost.metering.estimate import MESSAGE_OVERHEAD

CLAUDE_CODE = Path(__file__).parent.parent / "fixtures" / "anthropic" / "request_claude_code.json"
HELLO = [{"role": "user", "content": "hello there"}]
TOOL = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@dataclass
class Setup:
    url: str
    upstream: AnthropicUpstream


@pytest.fixture
async def setup(anthropic_upstream: AnthropicUpstream) -> AsyncIterator[Setup]:
    config = settings(
        model(
            "claude",
            "anthropic",
            anthropic_upstream.url,
            anthropic_upstream.api_key,
            upstream_model="claude-up",
        ),
        model("gpt", "openai", "http://127.0.0.1:9", "unused-key"),
        model("mock", "mock"),
    )
    async with serve(config) as url:
        yield Setup(url, anthropic_upstream)


@pytest.fixture
async def client(setup: Setup) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(
        base_url=setup.url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    )
    yield client
    await client.close()


async def test_anthropic_counts_with_its_own_endpoint(setup: Setup, client: anthropic.AsyncAnthropic) -> None:
    raw = await client.messages.with_raw_response.count_tokens(
        model="claude", messages=HELLO, system="be brief"
    )
    counted = await raw.parse()
    direct = await anthropic.AsyncAnthropic(
        base_url=setup.upstream.url, api_key=setup.upstream.api_key, max_retries=0
    ).messages.count_tokens(model="claude-up", messages=HELLO, system="be brief")
    assert counted.input_tokens == direct.input_tokens
    assert raw.headers["x-waypost-provider"] == "anthropic"
    assert "x-waypost-token-count" not in raw.headers


async def test_anthropic_gets_the_body_with_its_model_and_no_generation_fields(
    setup: Setup, client: anthropic.AsyncAnthropic
) -> None:
    await client.messages.count_tokens(
        model="claude",
        messages=HELLO,
        tools=[TOOL],
        extra_headers={"anthropic-beta": "token-efficient-tools"},
    )
    last = setup.upstream.last
    assert last.path == "/v1/messages/count_tokens"
    assert last.json == {"model": "claude-up", "messages": HELLO, "tools": [TOOL]}
    assert last.headers["anthropic-beta"] == "token-efficient-tools"
    assert last.headers["x-api-key"] == setup.upstream.api_key


async def test_a_max_tokens_sent_anyway_does_not_reach_the_api(setup: Setup) -> None:
    resp = await post(
        setup.url + "/v1/messages/count_tokens",
        {"model": "claude", "max_tokens": 100, "stream": True, "messages": HELLO},
    )
    assert resp.status == 200
    assert "max_tokens" not in setup.upstream.last.json and "stream" not in setup.upstream.last.json


@pytest.mark.parametrize("model_name", ["claude", "gpt"])
async def test_a_claude_code_body_is_counted(setup: Setup, model_name: str) -> None:
    body = json.loads(CLAUDE_CODE.read_text())
    body["model"] = model_name
    resp = await post(setup.url + "/v1/messages/count_tokens?beta=true", body)
    assert resp.status == 200
    assert resp.body["input_tokens"] > 100
    if model_name == "claude":
        sent = setup.upstream.last.json
        assert {"context_management", "output_config", "thinking", "tools", "system"} <= set(sent)
        assert not {"max_tokens", "stream", "temperature", "metadata", "service_tier"} & set(sent)


async def test_other_providers_get_the_documented_estimate(client: anthropic.AsyncAnthropic) -> None:
    raw = await client.messages.with_raw_response.count_tokens(model="gpt", messages=HELLO, system="be brief")
    counted = await raw.parse()
    # "be brief" + "hello there" = 19 characters -> 5 tokens, plus the overhead of two messages
    assert counted.input_tokens == 5 + 2 * MESSAGE_OVERHEAD
    assert raw.headers["x-waypost-token-count"] == "estimate"


async def test_the_estimate_counts_tool_definitions(client: anthropic.AsyncAnthropic) -> None:
    bare = await client.messages.count_tokens(model="gpt", messages=HELLO)
    with_tool = await client.messages.count_tokens(model="gpt", messages=HELLO, tools=[TOOL])
    assert with_tool.input_tokens > bare.input_tokens + 10


async def test_the_mock_counts_what_it_later_reports_as_input(client: anthropic.AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(model="mock", messages=HELLO)
    answer = await client.messages.create(model="mock", max_tokens=50, messages=HELLO)
    assert counted.input_tokens == answer.usage.input_tokens


async def test_an_unknown_model_is_a_404_in_anthropic_format(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.count_tokens(model="nope", messages=HELLO)


async def test_missing_messages_is_a_400_in_anthropic_format(setup: Setup) -> None:
    resp = await post(setup.url + "/v1/messages/count_tokens", {"model": "claude"})
    assert resp.status == 400
    assert resp.body["type"] == "error" and resp.body["error"]["type"] == "invalid_request_error"
    assert setup.upstream.hits == 0


async def test_a_missing_key_is_a_401_in_anthropic_format(setup: Setup) -> None:
    resp = await post(setup.url + "/v1/messages/count_tokens", {"model": "claude", "messages": HELLO}, {})
    assert resp.status == 401
    assert resp.body["error"]["type"] == "authentication_error"


async def test_an_upstream_failure_reaches_the_sdk(setup: Setup, client: anthropic.AsyncAnthropic) -> None:
    setup.upstream.enqueue(Reply(status=529))
    with pytest.raises(anthropic.APIStatusError) as err:
        await client.messages.count_tokens(model="claude", messages=HELLO)
    assert err.value.status_code == 529
