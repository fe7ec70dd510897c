"""Byte-level stream shapes: event order, the usage chunk, tool-argument assembly."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Gateway, upstream_model
from tests.fakes import Reply
from tests.harness import GATEWAY_KEY

HEADERS = {"authorization": f"Bearer {GATEWAY_KEY}", "anthropic-version": "2023-06-01"}
TOOLS_OPENAI = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
TOOLS_ANTHROPIC = [{"name": "lookup", "input_schema": {"type": "object"}}]


async def stream_raw(url: str, path: str, body: dict[str, Any]) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + path, json=body, headers=HEADERS) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        return await resp.read()


def frames(raw: bytes) -> list[tuple[str | None, str]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        event = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        out.append((event, "\n".join(data)))
    return out


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_anthropic_stream_has_exact_event_order_with_tool_input(
    gateway: Gateway, upstream: str
) -> None:
    gateway.upstream(upstream).enqueue(
        Reply(text="Let me look.", tool_calls=[("call_9", "lookup", {"q": "waypost", "n": 3})], chunks=3)
    )
    body = {
        "model": upstream_model(upstream),
        "max_tokens": 100,
        "stream": True,
        "tools": TOOLS_ANTHROPIC,
        "messages": [{"role": "user", "content": "find it"}],
    }
    got = [(e, d) for e, d in frames(await stream_raw(gateway.url, "/v1/messages", body)) if e != "ping"]
    names = [e for e, _ in got]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    middle = names[1:-2]
    assert set(middle) == {"content_block_start", "content_block_delta", "content_block_stop"}
    assert middle[0] == "content_block_start" and middle[-1] == "content_block_stop"
    blocks = [json.loads(d) for e, d in got if e == "content_block_start"]
    assert [b["content_block"]["type"] for b in blocks] == ["text", "tool_use"]
    fragments = [
        json.loads(d)["delta"]["partial_json"]
        for e, d in got
        if e == "content_block_delta" and json.loads(d)["delta"]["type"] == "input_json_delta"
    ]
    assert json.loads("".join(fragments)) == {"q": "waypost", "n": 3}
    delta = json.loads(got[-2][1])
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_anthropic_stream_blocks_open_and_close_in_order(gateway: Gateway, upstream: str) -> None:
    gateway.upstream(upstream).enqueue(
        Reply(text="a b c", tool_calls=[("c1", "lookup", {"x": 1}), ("c2", "lookup", {"x": 2})])
    )
    body = {
        "model": upstream_model(upstream),
        "max_tokens": 100,
        "stream": True,
        "tools": TOOLS_ANTHROPIC,
        "messages": [{"role": "user", "content": "go"}],
    }
    open_block: int | None = None
    seen: list[int] = []
    for event, data in frames(await stream_raw(gateway.url, "/v1/messages", body)):
        if event == "content_block_start":
            assert open_block is None, "a block started before the previous one stopped"
            open_block = json.loads(data)["index"]
            seen.append(open_block)
        elif event == "content_block_delta":
            assert json.loads(data)["index"] == open_block
        elif event == "content_block_stop":
            assert json.loads(data)["index"] == open_block
            open_block = None
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_openai_stream_without_include_usage_has_no_usage_chunk(
    gateway: Gateway, upstream: str
) -> None:
    body = {
        "model": upstream_model(upstream),
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    got = frames(await stream_raw(gateway.url, "/v1/chat/completions", body))
    assert got[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in got[:-1]]
    assert all(c["choices"] for c in chunks), "a usage-only chunk reached a client that did not ask for it"
    assert not any(c.get("usage") for c in chunks)
    if upstream == "openai":  # the gateway still asked for usage, to meter the call
        assert gateway.openai_upstream.last.json["stream_options"]["include_usage"] is True


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_openai_stream_with_include_usage_ends_with_usage_chunk(
    gateway: Gateway, upstream: str
) -> None:
    gateway.upstream(upstream).enqueue(Reply(text="one two", input_tokens=11, output_tokens=2))
    body = {
        "model": upstream_model(upstream),
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    got = frames(await stream_raw(gateway.url, "/v1/chat/completions", body))
    assert got[-1] == (None, "[DONE]")
    last = json.loads(got[-2][1])
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 11
    assert last["usage"]["completion_tokens"] == 2
    finish = [json.loads(d)["choices"][0]["finish_reason"] for _, d in got[:-2]]
    assert finish[-1] == "stop"


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_openai_stream_tool_arguments_concatenate_to_full_json(gateway: Gateway, upstream: str) -> None:
    gateway.upstream(upstream).enqueue(
        Reply(tool_calls=[("call_1", "lookup", {"query": "a long query string"})])
    )
    body = {
        "model": upstream_model(upstream),
        "stream": True,
        "tools": TOOLS_OPENAI,
        "messages": [{"role": "user", "content": "go"}],
    }
    got = frames(await stream_raw(gateway.url, "/v1/chat/completions", body))
    arguments = ""
    names = []
    for _, data in got[:-1]:
        chunk = json.loads(data)
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or []:
                if call.get("function", {}).get("name"):
                    names.append(call["function"]["name"])
                arguments += call.get("function", {}).get("arguments") or ""
    assert names == ["lookup"]
    assert json.loads(arguments) == {"query": "a long query string"}
