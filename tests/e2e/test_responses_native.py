"""Responses clients to OpenAI's own ``/v1/responses`` (the fake of it): the body forwarded with
its unknown fields, the answer relayed under the client's model name, streamed and not; and the
per-deployment choice between ``/responses`` and chat completions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest_asyncio

from tests.fakes import Reply
from tests.fakes.openai_responses_upstream import OpenAIResponsesUpstream
from tests.fakes.responses_sdk import accumulate, validate_event, validate_response
from tests.harness import GATEWAY_KEY, model, serve, settings

KEY = "sk-native-responses"


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[OpenAIResponsesUpstream]:
    async with OpenAIResponsesUpstream(api_key=KEY) as fake:
        yield fake


@pytest_asyncio.fixture
async def gateway(upstream: OpenAIResponsesUpstream) -> AsyncIterator[str]:
    config = settings(
        model("native", "openai", upstream.url, KEY, upstream_model="gpt-up", responses_api=True),
        model("via-chat", "openai", upstream.url, KEY, upstream_model="gpt-up"),
        model("chat-first", "openai", upstream.url, KEY, upstream_model="gpt-first", fallbacks=["native"]),
        # Never called: the router refuses built-in tools before trying it.
        model("claude", "anthropic", "http://127.0.0.1:9", "sk-ant-unused"),
    )
    async with serve(config) as url:
        yield url


@pytest_asyncio.fixture
async def client(gateway: str) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(
        base_url=gateway + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    )
    yield sdk
    await sdk.close()


async def post(gateway: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            gateway + "/v1/responses", json=body, headers={"authorization": f"Bearer {GATEWAY_KEY}"}
        )


async def test_the_body_reaches_responses_as_sent_and_the_answer_names_the_clients_model(
    client: openai.AsyncOpenAI, upstream: OpenAIResponsesUpstream
) -> None:
    response = await client.responses.create(
        model="native", input="hello", instructions="Be brief.", extra_body={"prompt_cache_key": "k1"}
    )

    assert response.output_text == "echo: hello"
    assert response.model == "native"
    assert upstream.last.path == "/v1/responses"
    sent = upstream.last.json
    assert sent["model"] == "gpt-up" and sent["prompt_cache_key"] == "k1"
    assert sent["instructions"] == "Be brief." and sent["input"] == "hello"


async def test_a_stream_is_relayed_event_for_event(gateway: str, upstream: OpenAIResponsesUpstream) -> None:
    upstream.enqueue(Reply(text="one two three"))
    answer = await post(gateway, {"model": "native", "input": "count", "stream": True})

    assert answer.status_code == 200, answer.text
    events = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: ")]
    for event in events:
        validate_event(event)
    final = accumulate(events)
    assert final is not None and final.output_text == "one two three" and final.model == "native"
    assert final.usage is not None and final.usage.output_tokens > 0
    assert upstream.last.json["stream"] is True


async def test_reasoning_and_tool_calls_come_back_and_replay(
    client: openai.AsyncOpenAI, upstream: OpenAIResponsesUpstream
) -> None:
    upstream.enqueue(Reply(thinking=("plan it", "gAAAA-blob"), tool_calls=[("call_1", "w", {"c": "Oslo"})]))
    tools: Any = [{"type": "function", "name": "w", "parameters": {"type": "object", "properties": {}}}]
    first = await client.responses.create(
        model="native",
        input="weather?",
        tools=tools,
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=False,
    )
    validate_response(first.model_dump(mode="json", exclude_unset=True, warnings=False))
    reasoning = [i for i in first.output if i.type == "reasoning"]
    assert reasoning and reasoning[0].encrypted_content == "gAAAA-blob"
    history: Any = [
        {"role": "user", "content": "weather?"},
        *[i.model_dump(exclude_none=True, warnings=False) for i in first.output],
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    await client.responses.create(model="native", input=history, tools=tools, store=False)

    replayed = upstream.last.json["input"]
    assert any(i.get("encrypted_content") == "gAAAA-blob" for i in replayed)
    assert replayed[-1] == {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}


async def test_a_deployment_without_responses_gets_chat_completions(
    client: openai.AsyncOpenAI, upstream: OpenAIResponsesUpstream
) -> None:
    response = await client.responses.create(model="via-chat", input="hello")

    assert response.output_text == "echo: hello"
    assert upstream.last.path == "/v1/chat/completions"


async def test_chat_clients_keep_chat_completions_on_a_responses_deployment(
    client: openai.AsyncOpenAI, upstream: OpenAIResponsesUpstream
) -> None:
    await client.chat.completions.create(model="native", messages=[{"role": "user", "content": "hi"}])

    assert upstream.last.path == "/v1/chat/completions"


async def test_built_in_tools_need_a_responses_upstream(
    gateway: str, upstream: OpenAIResponsesUpstream
) -> None:
    body = {"input": "news?", "tools": [{"type": "web_search"}]}
    refused = await post(gateway, {"model": "via-chat", **body})
    served = await post(gateway, {"model": "native", **body})

    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "web_search" in error["message"] and error["param"] == "tools"
    assert served.status_code == 200, served.text
    assert upstream.last.json["tools"] == [{"type": "web_search"}]


async def test_an_upstream_error_mid_stream_ends_with_an_error_event(
    gateway: str, upstream: OpenAIResponsesUpstream
) -> None:
    upstream.enqueue(Reply(text="a b c d", error_event_after_chunks=3, error_message="boom"))
    answer = await post(gateway, {"model": "native", "input": "x", "stream": True})

    assert answer.status_code == 200
    assert "event: error" in answer.text
    assert "response.completed" not in answer.text


async def test_built_in_tools_skip_fallback_deployments_that_cannot_run_them(
    gateway: str, upstream: OpenAIResponsesUpstream
) -> None:
    plain = await post(gateway, {"model": "chat-first", "input": "hi"})
    plain_path = upstream.last.path
    served = await post(gateway, {"model": "chat-first", "input": "news?", "tools": [{"type": "web_search"}]})

    assert plain.status_code == 200 and plain_path == "/v1/chat/completions"
    assert served.status_code == 200, served.text
    assert upstream.last.path == "/v1/responses" and upstream.last.json["model"] == "gpt-up"


async def test_the_refusal_names_the_tools_and_the_provider(gateway: str) -> None:
    tools = [{"type": "web_search"}, {"type": "code_interpreter", "container": {"type": "auto"}}]
    refused = await post(gateway, {"model": "claude", "input": "x", "tools": tools})

    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert "code_interpreter, web_search" in message and "anthropic" in message
