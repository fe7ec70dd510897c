"""Both SDKs, both upstreams, streaming and not: what the client sees and what the upstream gets."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.clients import TOOL, Answer, ask_anthropic, ask_openai
from tests.e2e.conftest import Gateway, upstream_body, upstream_model
from tests.fakes import Reply

CLIENTS = ["openai", "anthropic"]
UPSTREAMS = ["openai", "anthropic"]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()

pytestmark = [
    pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"]),
    pytest.mark.parametrize("upstream", UPSTREAMS, ids=[f"to-{u}" for u in UPSTREAMS]),
    pytest.mark.parametrize("client", CLIENTS, ids=[f"from-{c}" for c in CLIENTS]),
]


@pytest.fixture
def ask(
    client: str,
    upstream: str,
    stream: bool,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> Any:
    async def call(messages: list[dict[str, Any]], **kw: Any) -> Answer:
        if client == "openai":
            return await ask_openai(openai_client, upstream_model(upstream), messages, stream=stream, **kw)
        return await ask_anthropic(anthropic_client, upstream_model(upstream), messages, stream=stream, **kw)

    return call


def user(client: str, text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def upstream_user_texts(body: dict[str, Any]) -> list[str]:
    """Every user text the upstream received, whatever its format."""
    out = []
    for message in body["messages"]:
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            out.append(content)
        else:
            out += [p["text"] for p in content if p.get("type") == "text"]
    return out


async def test_text_answer_arrives_whole(gateway: Gateway, upstream: str, client: str, ask: Any) -> None:
    gateway.upstream(upstream).enqueue(Reply(text="Hello there, traveller.", chunks=5))
    answer = await ask([user(client, "hi")])
    assert answer.text == "Hello there, traveller."
    assert answer.finish == "stop"
    assert answer.output_tokens > 0 and answer.input_tokens > 0


async def test_upstream_gets_its_model_name_and_the_conversation(
    gateway: Gateway, upstream: str, client: str, ask: Any
) -> None:
    history = [user(client, "first"), {"role": "assistant", "content": "ok"}, user(client, "second")]
    await ask(history)
    body = upstream_body(gateway, upstream)
    assert body["model"] == ("gpt-up" if upstream == "openai" else "claude-up")
    assert upstream_user_texts(body) == ["first", "second"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


async def test_system_prompt_reaches_upstream(gateway: Gateway, upstream: str, client: str, ask: Any) -> None:
    if client == "openai":
        await ask([{"role": "system", "content": "Be terse."}, user(client, "hi")])
    else:
        await ask([user(client, "hi")], system="Be terse.")
    body = upstream_body(gateway, upstream)
    if upstream == "openai":
        assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    else:
        system = body["system"]
        assert (system if isinstance(system, str) else system[0]["text"]) == "Be terse."


async def test_tool_call_round_trip(gateway: Gateway, upstream: str, client: str, ask: Any) -> None:
    fake = gateway.upstream(upstream)
    fake.enqueue(Reply(tool_calls=[("call_abc123", "get_weather", {"city": "Paris", "days": [1, 2]})]))
    first = await ask([user(client, "weather in Paris?")], tools=[TOOL])
    assert first.finish == "tool_calls"
    assert len(first.tool_calls) == 1
    call_id, name, args = first.tool_calls[0]
    assert name == "get_weather"
    assert args == {"city": "Paris", "days": [1, 2]}  # never an empty {}

    fake.enqueue(Reply(text="It is sunny."))
    if client == "openai":
        history = [
            user(client, "weather in Paris?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"},
        ]
    else:
        history = [
            user(client, "weather in Paris?"),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call_id, "name": name, "input": args}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny, 21C"}],
            },
        ]
    second = await ask(history, tools=[TOOL])
    assert second.text == "It is sunny."
    body = upstream_body(gateway, upstream)  # the fake rejects results that answer no call
    if upstream == "openai":
        tool_message = body["messages"][-1]
        assert tool_message["role"] == "tool"
        assert tool_message["content"] in ("sunny, 21C", [{"type": "text", "text": "sunny, 21C"}])
    else:
        result = body["messages"][-1]["content"][0]
        assert result["type"] == "tool_result"
        assert result["tool_use_id"] == body["messages"][-2]["content"][0]["id"]


async def test_parallel_tool_calls_keep_ids_and_arguments(
    gateway: Gateway, upstream: str, client: str, ask: Any
) -> None:
    gateway.upstream(upstream).enqueue(
        Reply(
            tool_calls=[
                ("call_1", "get_weather", {"city": "Paris"}),
                ("call_2", "get_weather", {"city": "Rome"}),
            ]
        )
    )
    answer = await ask([user(client, "Paris and Rome?")], tools=[TOOL])
    assert [(name, args) for _, name, args in answer.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert len({call_id for call_id, _, _ in answer.tool_calls}) == 2


async def test_base64_image_reaches_upstream_in_its_format(
    gateway: Gateway, upstream: str, client: str, ask: Any
) -> None:
    if client == "openai":
        content: list[dict[str, Any]] = [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ]
    else:
        content = [
            {"type": "text", "text": "what is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ]
    await ask([{"role": "user", "content": content}])
    parts = upstream_body(gateway, upstream)["messages"][0]["content"]
    if upstream == "openai":
        assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}} in [
            {**p, "image_url": {"url": p["image_url"]["url"]}} if p["type"] == "image_url" else p
            for p in parts
        ]
    else:
        image = next(p for p in parts if p["type"] == "image")
        assert image["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}


async def test_image_url_reaches_upstream(gateway: Gateway, upstream: str, client: str, ask: Any) -> None:
    url = "https://example.com/cat.png"
    if client == "openai":
        content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}}]
    else:
        content = [{"type": "image", "source": {"type": "url", "url": url}}]
    await ask([{"role": "user", "content": [{"type": "text", "text": "look"}, *content]}])
    parts = upstream_body(gateway, upstream)["messages"][0]["content"]
    if upstream == "openai":
        assert any(p["type"] == "image_url" and p["image_url"]["url"] == url for p in parts)
    else:
        assert any(p["type"] == "image" and p["source"] == {"type": "url", "url": url} for p in parts)


async def test_length_finish_is_mapped(gateway: Gateway, upstream: str, client: str, ask: Any) -> None:
    native = "length" if upstream == "openai" else "max_tokens"
    gateway.upstream(upstream).enqueue(Reply(text="cut sho", finish_reason=native))
    answer = await ask([user(client, "long story")], max_tokens=3)
    assert answer.finish == "length"
    body = upstream_body(gateway, upstream)
    assert 3 in (body.get("max_tokens"), body.get("max_completion_tokens"))


async def test_cache_tokens_are_counted_in_input(
    gateway: Gateway, upstream: str, client: str, ask: Any
) -> None:
    if upstream == "openai":  # prompt_tokens includes cached tokens
        reply = Reply(text="ok", input_tokens=1000, output_tokens=5, cache_read_tokens=800)
    else:  # input_tokens excludes cache reads and writes
        reply = Reply(
            text="ok", input_tokens=100, output_tokens=5, cache_read_tokens=800, cache_write_tokens=100
        )
    gateway.upstream(upstream).enqueue(reply)
    answer = await ask([user(client, "hi")])
    assert answer.input_tokens == 1000
    assert answer.output_tokens == 5


async def test_stop_sequences_and_sampling_reach_upstream(
    gateway: Gateway, upstream: str, client: str, ask: Any
) -> None:
    if client == "openai":
        await ask([user(client, "hi")], stop=["END"], temperature=0.3)
    else:  # the Anthropic SDK 2.x has no named sampling arguments; raw clients still send them
        await ask([user(client, "hi")], stop_sequences=["END"], extra_body={"temperature": 0.3})
    body = upstream_body(gateway, upstream)
    assert body.get("stop", body.get("stop_sequences")) in (["END"], "END")
    assert body["temperature"] == 0.3
