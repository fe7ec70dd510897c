"""What the data-plane routes do with what is not a normal request: a wrong method (405 in the
route's format), no ``model`` (the configured default, else a 400), and the mock's ``chunks``
(exactly that many content deltas, seen through streaming SDK clients)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from tests.api.client import post
from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, model, serve, settings

ANTHROPIC_AUTH = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
REPLY = "All done, see you."  # 18 characters: 7 pieces of 3 would have been 6 of 3
POST_ROUTES = {
    "/v1/chat/completions": "openai",
    "/chat/completions": "openai",
    "/v1/completions": "openai",
    "/completions": "openai",
    "/v1/embeddings": "openai",
    "/embeddings": "openai",
    "/v1/messages": "anthropic",
    "/v1/messages/count_tokens": "anthropic",
    "/classify": "openai",
    "/plan": "openai",
    "/embed": "openai",
}


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """A gateway of mock models and no default model."""
    config = settings(
        model("echo", "mock"),
        model("seven", "mock", mock={"reply": REPLY, "chunks": 7}),
        model("many", "mock", mock={"reply": "abc", "chunks": 10}),
        model("agent", "mock", mock={"chunks": 4, "tool_arguments": {"city": "Oslo", "days": 3}}),
    )
    async with serve(config) as base:
        yield base


@pytest.fixture
async def defaulted(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> AsyncIterator[str]:
    """A gateway whose default model is on an OpenAI-compatible upstream, with another on Anthropic."""
    oai, ant = openai_upstream, anthropic_upstream
    config = settings(
        model("gpt", "openai", oai.url, oai.api_key, upstream_model="gpt-up"),
        model("claude", "anthropic", ant.url, ant.api_key, upstream_model="claude-up"),
        routing={"default_model": "gpt"},
    )
    async with serve(config) as base:
        yield base


async def request(method: str, url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.request(method, url) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


# -- 405 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(POST_ROUTES))
async def test_a_get_on_a_post_route_is_a_405_in_the_routes_format(url: str, path: str) -> None:
    status, headers, raw = await request("GET", url + path)
    assert status == 405
    assert headers["allow"] == "POST"
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    body = json.loads(raw)
    message = f"{path} takes POST, not GET."
    if POST_ROUTES[path] == "anthropic":
        assert body == {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    else:
        assert body["error"]["type"] == "invalid_request_error"
        assert body["error"]["message"] == message


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
async def test_every_other_method_is_a_405_too(url: str, method: str) -> None:
    status, headers, raw = await request(method, url + "/v1/messages")
    assert (status, headers["allow"]) == (405, "POST")
    if method != "HEAD":  # a HEAD answer has no body
        assert json.loads(raw)["error"]["message"] == f"/v1/messages takes POST, not {method}."


async def test_a_post_on_a_get_route_names_the_methods_it_takes(url: str) -> None:
    status, headers, raw = await request("POST", url + "/v1/models")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    assert json.loads(raw)["error"]["message"] == "/v1/models takes GET or HEAD, not POST."


async def test_an_unknown_route_is_still_a_404(url: str) -> None:
    status, _, raw = await request("GET", url + "/v1/chat/completion")
    assert status == 404
    assert "No route for GET /v1/chat/completion" in json.loads(raw)["error"]["message"]


# -- the default model ------------------------------------------------------------------------------

MESSAGES: Any = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("stream", [False, True])
async def test_an_openai_request_without_model_goes_to_the_default_upstream_model(
    defaulted: str, openai_upstream: OpenAIUpstream, stream: bool
) -> None:
    resp = await post(defaulted + "/v1/chat/completions", {"messages": MESSAGES, "stream": stream})
    assert resp.status == 200
    assert resp.headers["x-waypost-deployment"] == "gpt"
    # The same-format fast path forwards the client's body: with the upstream's model name in it.
    assert openai_upstream.last.path == "/v1/chat/completions"
    assert openai_upstream.last.json["model"] == "gpt-up"
    assert openai_upstream.last.json["messages"] == MESSAGES


async def test_a_legacy_completion_without_model_goes_to_the_default(
    defaulted: str, openai_upstream: OpenAIUpstream
) -> None:
    resp = await post(defaulted + "/v1/completions", {"prompt": "Say hi", "model": None})
    assert resp.status == 200
    assert (openai_upstream.last.path, openai_upstream.last.json["model"]) == ("/v1/completions", "gpt-up")


async def test_an_anthropic_request_without_model_goes_to_the_default(
    defaulted: str, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(text="hello"))
    resp = await post(defaulted + "/v1/messages", {"max_tokens": 20, "messages": MESSAGES}, ANTHROPIC_AUTH)
    assert resp.status == 200
    assert resp.body["content"] == [{"type": "text", "text": "hello"}]
    assert openai_upstream.last.json["model"] == "gpt-up"


async def test_an_anthropic_request_reaches_an_anthropic_default_with_its_upstream_model(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    ant = anthropic_upstream
    config = settings(
        model("claude", "anthropic", ant.url, ant.api_key, upstream_model="claude-up"),
        routing={"default_model": "claude"},
    )
    async with serve(config) as base:
        resp = await post(base + "/v1/messages", {"max_tokens": 20, "messages": MESSAGES}, ANTHROPIC_AUTH)
    assert resp.status == 200
    # The Anthropic fast path: the client's body, with the upstream's model name.
    assert (ant.last.path, ant.last.json["model"]) == ("/v1/messages", "claude-up")
    assert ant.last.json["messages"] == MESSAGES


async def test_a_named_model_is_not_replaced_by_the_default(
    defaulted: str, anthropic_upstream: AnthropicUpstream
) -> None:
    resp = await post(
        defaulted + "/v1/messages",
        {"model": "claude", "max_tokens": 20, "messages": MESSAGES},
        ANTHROPIC_AUTH,
    )
    assert resp.status == 200
    assert anthropic_upstream.last.json["model"] == "claude-up"


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/chat/completions", {"messages": MESSAGES}, None),
        ("/v1/completions", {"prompt": "hi"}, None),
        ("/v1/messages", {"max_tokens": 5, "messages": MESSAGES}, ANTHROPIC_AUTH),
    ],
)
async def test_without_a_default_a_request_without_model_is_a_400_naming_it(
    url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None
) -> None:
    resp = await post(url + path, body, headers)
    assert resp.status == 400
    error = resp.body["error"]
    assert error["message"] == "Missing required parameter: 'model' (this gateway has no default model)."
    if headers is ANTHROPIC_AUTH:
        assert (resp.body["type"], error["type"]) == ("error", "invalid_request_error")
    else:
        assert (error["type"], error["param"]) == ("invalid_request_error", "model")


# -- the mock's chunks ------------------------------------------------------------------------------


async def test_openai_streaming_client_gets_exactly_chunks_content_deltas(url: str) -> None:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=GATEWAY_KEY, _strict_response_validation=True)
    stream = await client.chat.completions.create(model="seven", messages=MESSAGES, stream=True)
    deltas = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == REPLY
    assert len(deltas) == 7
    assert max(map(len, deltas)) - min(map(len, deltas)) <= 1


async def test_anthropic_streaming_client_gets_exactly_chunks_content_deltas(url: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=url, api_key=GATEWAY_KEY, _strict_response_validation=True)
    async with client.messages.stream(model="seven", max_tokens=50, messages=MESSAGES) as s:
        deltas = [text async for text in s.text_stream]
    assert "".join(deltas) == REPLY
    assert len(deltas) == 7


async def test_tool_arguments_stream_in_chunks_deltas(url: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=url, api_key=GATEWAY_KEY, _strict_response_validation=True)
    tool: Any = {"name": "weather", "description": "w", "input_schema": {"type": "object"}}
    fragments = []
    async with client.messages.stream(
        model="agent",
        max_tokens=50,
        messages=MESSAGES,
        tools=[tool],
    ) as s:
        async for event in s:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                fragments.append(event.delta.partial_json)
    assert json.loads("".join(fragments)) == {"city": "Oslo", "days": 3}
    assert len(fragments) == 4


async def test_a_reply_shorter_than_chunks_streams_one_character_per_delta(url: str) -> None:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=GATEWAY_KEY)
    stream = await client.chat.completions.create(model="many", messages=MESSAGES, stream=True)
    deltas = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert deltas == ["a", "b", "c"]
