"""Body fields that would steer a downstream proxy (another endpoint, key, headers, a router
config) never reach the upstream: dropped and named in X-Waypost-Dropped, or refused with a 400
when ``security.steering_fields: refuse``. Content that merely looks like them stays as it is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.client import post
from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.harness import model, serve, settings

EVIL = "http://169.254.169.254/latest"
# A schema whose property names look like steering fields: the user's data, never touched.
SCHEMA = {
    "type": "object",
    "properties": {"base_url": {"type": "string"}, "api_key": {"type": "string"}},
    "required": ["base_url"],
}
STEERING = {
    "base_url": EVIL,
    "api_base": EVIL,
    "api_key": "sk-attacker",
    "extra_headers": {"x-target": EVIL},
    "extra_body": {"api_base": EVIL},
    "user_config": {"model_list": [{"litellm_params": {"api_base": EVIL}}]},
}
DROPPED = ["base_url", "api_base", "api_key", "extra_headers", "extra_body", "user_config"]


@dataclass
class Setup:
    url: str
    openai: OpenAIUpstream
    anthropic: AnthropicUpstream


@asynccontextmanager
async def gateway(
    oai: OpenAIUpstream, ant: AnthropicUpstream, mode: str | None = None
) -> AsyncIterator[Setup]:
    config = settings(
        model("gpt", "openai", oai.url, oai.api_key, upstream_model="gpt-up"),
        model("claude", "anthropic", ant.url, ant.api_key, upstream_model="claude-up"),
        security={"steering_fields": mode} if mode else {},
    )
    async with serve(config) as url:
        yield Setup(url, oai, ant)


@pytest.fixture
async def gw(openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream) -> AsyncIterator[Setup]:
    async with gateway(openai_upstream, anthropic_upstream) as setup:
        yield setup


def openai_chat(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": name,
        "messages": [
            {"role": "user", "content": "configure it"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "configure", "arguments": '{"base_url": "https://mine"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
        "tools": [{"type": "function", "function": {"name": "configure", "parameters": SCHEMA}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA}},
        **extra,
    }


def anthropic_messages(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": name,
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "configure it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "configure", "input": {"api_key": "mine"}}
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
        ],
        "tools": [{"name": "configure", "input_schema": SCHEMA}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
        **extra,
    }


def assert_dropped(headers: dict[str, str], *paths: str) -> None:
    dropped = headers["x-waypost-dropped"]
    assert "fields that would steer an upstream proxy dropped: " in dropped
    for path in paths:
        assert path in dropped


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_openai_chat_fields_never_reach_an_openai_upstream(gw: Setup, stream: bool) -> None:
    body = openai_chat(
        "gpt",
        stream=stream,
        metadata={"trace": "t1", "base_url": EVIL},
        stream_options={"include_usage": True, "extra_headers": {"a": "b"}},
        **STEERING,
    )
    resp = await post(gw.url + "/v1/chat/completions", body)
    assert resp.status == 200, resp.body
    sent = gw.openai.last.json
    assert not set(DROPPED) & set(sent)
    assert sent["metadata"] == {"trace": "t1"}
    assert "extra_headers" not in sent.get("stream_options", {})
    # Content that looks like the fields is the user's and arrives as sent.
    assert sent["messages"] == body["messages"]
    assert sent["tools"] == body["tools"]
    assert sent["response_format"] == body["response_format"]
    assert_dropped(resp.headers, *DROPPED, "metadata.base_url", "stream_options.extra_headers")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_anthropic_fields_never_reach_an_anthropic_upstream(gw: Setup, stream: bool) -> None:
    body = anthropic_messages(
        "claude", stream=stream, metadata={"user_id": "u1", "api_base": EVIL}, **STEERING
    )
    resp = await post(gw.url + "/v1/messages", body)
    assert resp.status == 200, resp.body
    sent = gw.anthropic.last.json
    assert not set(DROPPED) & set(sent)
    assert sent["metadata"] == {"user_id": "u1"}
    assert sent["output_config"] == body["output_config"]  # Anthropic's own field, kept
    assert sent["messages"] == body["messages"]
    assert sent["tools"] == body["tools"]
    assert_dropped(resp.headers, *DROPPED, "metadata.api_base")


async def test_fields_are_named_when_the_call_is_translated(gw: Setup) -> None:
    resp = await post(gw.url + "/v1/chat/completions", openai_chat("claude", **STEERING))
    assert resp.status == 200, resp.body
    assert not set(DROPPED) & set(gw.anthropic.last.json)
    assert_dropped(resp.headers, *DROPPED)


async def test_legacy_completions_fields_never_reach_the_upstream(gw: Setup) -> None:
    body = {"model": "gpt", "prompt": "p", "metadata": {"api_key": "sk-x"}, **STEERING}
    resp = await post(gw.url + "/v1/completions", body)
    assert resp.status == 200, resp.body
    sent = gw.openai.last.json
    assert not set(DROPPED) & set(sent)
    assert sent["metadata"] == {}
    assert_dropped(resp.headers, *DROPPED, "metadata.api_key")


async def test_embeddings_fields_never_reach_the_upstream(gw: Setup) -> None:
    resp = await post(gw.url + "/v1/embeddings", {"model": "gpt", "input": "base_url", **STEERING})
    assert resp.status == 200, resp.body
    sent = gw.openai.last.json
    assert not set(DROPPED) & set(sent)
    assert sent["input"] == "base_url"
    assert_dropped(resp.headers, *DROPPED)


async def test_token_counts_never_carry_the_fields_upstream(gw: Setup) -> None:
    body = anthropic_messages("claude", **STEERING)
    del body["max_tokens"], body["output_config"]
    resp = await post(gw.url + "/v1/messages/count_tokens", body)
    assert resp.status == 200, resp.body
    assert gw.anthropic.last.path == "/v1/messages/count_tokens"
    assert not set(DROPPED) & set(gw.anthropic.last.json)


async def test_a_key_that_cannot_go_in_a_header_is_named_safely(gw: Setup) -> None:
    body = openai_chat("gpt", metadata={"evil\r\nset-cookie: a=b\r\nx_config": 1})
    resp = await post(gw.url + "/v1/chat/completions", body)
    assert resp.status == 200, resp.body
    assert "set-cookie" not in resp.headers
    assert_dropped(resp.headers, "metadata.evil??set-cookie: a=b??x_config")


async def test_any_note_quoting_a_key_that_cannot_go_in_a_header_is_made_safe(gw: Setup) -> None:
    # Translated, an unknown top-level field is noted by name; a CR/LF in it once broke the answer.
    body = {
        "model": "gpt",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "x\r\nset-cookie: a=b": 1,
    }
    resp = await post(gw.url + "/v1/messages", body)
    assert resp.status == 200, resp.body
    assert "set-cookie" not in resp.headers
    assert "fields kept only for Anthropic upstreams: x??set-cookie: a=b" in resp.headers["x-waypost-dropped"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", openai_chat("gpt", api_base=EVIL), "api_base"),
        ("/v1/chat/completions", openai_chat("claude", metadata={"base_url": EVIL}), "metadata.base_url"),
        ("/v1/completions", {"model": "gpt", "prompt": "p", "extra_body": {}}, "extra_body"),
        ("/v1/embeddings", {"model": "gpt", "input": "x", "api_key": "sk-x"}, "api_key"),
    ],
)
async def test_refuse_mode_answers_400_naming_the_field_in_openai_format(
    openai_upstream: OpenAIUpstream,
    anthropic_upstream: AnthropicUpstream,
    path: str,
    body: dict[str, Any],
    param: str,
) -> None:
    async with gateway(openai_upstream, anthropic_upstream, "refuse") as gw:
        resp = await post(gw.url + path, body)
    assert resp.status == 400, resp.body
    assert resp.body["error"]["param"] == param
    assert resp.body["error"]["message"].startswith(f"{param}: this field would steer the upstream call")
    assert openai_upstream.hits + anthropic_upstream.hits == 0


async def test_refuse_mode_answers_400_naming_the_field_in_anthropic_format(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    body = anthropic_messages("claude", metadata={"user_id": "u", "user_config": {}})
    async with gateway(openai_upstream, anthropic_upstream, "refuse") as gw:
        resp = await post(gw.url + "/v1/messages", body)
    assert resp.status == 400, resp.body
    assert resp.body["type"] == "error"
    assert resp.body["error"]["type"] == "invalid_request_error"
    assert resp.body["error"]["message"].startswith("metadata.user_config: ")
    assert anthropic_upstream.hits == 0


async def test_refuse_mode_lets_content_that_looks_like_the_fields_through(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    async with gateway(openai_upstream, anthropic_upstream, "refuse") as gw:
        resp = await post(gw.url + "/v1/messages", anthropic_messages("claude"))
    assert resp.status == 200, resp.body
    assert "x-waypost-dropped" not in resp.headers
