"""The fake Anthropic server satisfies the official SDK and rejects what the real Messages API rejects."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import pytest

from tests.fakes import AnthropicUpstream, Reply
from tests.fakes.raw_client import post_raw, post_stream, sse_data, sse_event_names

MODEL = "claude-sonnet-4-6"
TOOL: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
HELLO: Any = [{"role": "user", "content": "hello there"}]
TOOL_TURN: Any = {
    "role": "assistant",
    "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
}


def headers(fake: AnthropicUpstream, **extra: str) -> dict[str, str]:
    return {"x-api-key": fake.api_key or "", "anthropic-version": "2023-06-01", **extra}


async def test_echoes_the_last_user_message(ant: anthropic.AsyncAnthropic) -> None:
    message = await ant.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


async def test_reports_cache_read_and_creation_tokens(
    anthropic_upstream: AnthropicUpstream, ant: anthropic.AsyncAnthropic
) -> None:
    anthropic_upstream.enqueue(
        Reply(text="hi", input_tokens=12, output_tokens=3, cache_read_tokens=900, cache_write_tokens=50)
    )
    usage = (await ant.messages.create(model=MODEL, max_tokens=64, messages=HELLO)).usage
    assert (usage.input_tokens, usage.output_tokens) == (12, 3)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (900, 50)


async def test_returns_tool_use_blocks_with_object_input(
    anthropic_upstream: AnthropicUpstream, ant: anthropic.AsyncAnthropic
) -> None:
    anthropic_upstream.enqueue(Reply(tool_calls=[("toolu_1", "get_weather", {"city": "Paris"})]))
    message = await ant.messages.create(model=MODEL, max_tokens=64, messages=HELLO, tools=[TOOL])
    assert message.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in message.content] == [  # type: ignore[union-attr]
        ("toolu_1", "get_weather", {"city": "Paris"})
    ]


async def test_stream_helper_assembles_thinking_text_and_tool_input(
    anthropic_upstream: AnthropicUpstream, ant: anthropic.AsyncAnthropic
) -> None:
    anthropic_upstream.enqueue(
        Reply(
            text="Let me check.",
            thinking=("The user wants weather.", "sig-abc"),
            tool_calls=[("toolu_1", "get_weather", {"city": "Lyon, France"}), ("toolu_2", "get_weather", {})],
            cache_read_tokens=7,
        )
    )
    async with ant.messages.stream(model=MODEL, max_tokens=64, messages=HELLO, tools=[TOOL]) as stream:
        message = await stream.get_final_message()
    kinds = [b.type for b in message.content]
    assert kinds == ["thinking", "text", "tool_use", "tool_use"]
    thinking, text, first, second = message.content
    assert (thinking.thinking, thinking.signature) == ("The user wants weather.", "sig-abc")  # type: ignore[union-attr]
    assert text.text == "Let me check."  # type: ignore[union-attr]
    assert (first.input, second.input) == ({"city": "Lyon, France"}, {})  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert message.usage.cache_read_input_tokens == 7


async def test_stream_follows_the_documented_event_order(anthropic_upstream: AnthropicUpstream) -> None:
    anthropic_upstream.enqueue(Reply(text="a b", tool_calls=[("toolu_1", "get_weather", {"city": "Paris"})]))
    raw = await post_stream(
        anthropic_upstream.url + "/v1/messages",
        {"model": MODEL, "max_tokens": 64, "messages": HELLO, "stream": True},
        headers(anthropic_upstream),
    )
    names = sse_event_names(raw)
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names[2:-2] == [
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
    ]
    data = sse_data(raw)
    fragments = [
        d["delta"]["partial_json"] for d in data if d.get("delta", {}).get("type") == "input_json_delta"
    ]
    assert fragments[0] == "" and "".join(fragments) == '{"city": "Paris"}'
    assert data[-2]["delta"]["stop_reason"] == "tool_use" and data[-2]["usage"]["output_tokens"] > 0


async def test_accepts_bearer_auth_like_newer_sdks(anthropic_upstream: AnthropicUpstream) -> None:
    status, _ = await post_raw(
        anthropic_upstream.url + "/v1/messages",
        {"model": MODEL, "max_tokens": 8, "messages": HELLO},
        {"authorization": f"Bearer {anthropic_upstream.api_key}", "anthropic-version": "2023-06-01"},
    )
    assert status == 200


async def test_rejects_a_wrong_key_with_authentication_error(anthropic_upstream: AnthropicUpstream) -> None:
    client = anthropic.AsyncAnthropic(base_url=anthropic_upstream.url, api_key="sk-ant-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await client.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
    await client.close()
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_requires_the_anthropic_version_header(anthropic_upstream: AnthropicUpstream) -> None:
    status, body = await post_raw(
        anthropic_upstream.url + "/v1/messages",
        {"model": MODEL, "max_tokens": 8, "messages": HELLO},
        {"x-api-key": anthropic_upstream.api_key or ""},
    )
    assert (status, body["type"], body["error"]["type"]) == (400, "error", "invalid_request_error")


async def test_requires_max_tokens(anthropic_upstream: AnthropicUpstream) -> None:
    status, body = await post_raw(
        anthropic_upstream.url + "/v1/messages",
        {"model": MODEL, "messages": HELLO},
        headers(anthropic_upstream),
    )
    assert status == 400 and "max_tokens" in body["error"]["message"]


async def test_rejects_a_tool_result_for_an_unknown_tool_use(ant: anthropic.AsyncAnthropic) -> None:
    messages: Any = [
        *HELLO,
        TOOL_TURN,
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "sunny"}]},
    ]
    with pytest.raises(anthropic.BadRequestError, match="toolu_9"):
        await ant.messages.create(model=MODEL, max_tokens=8, messages=messages)


async def test_accepts_a_tool_result_answering_the_previous_tool_use(ant: anthropic.AsyncAnthropic) -> None:
    messages: Any = [
        *HELLO,
        TOOL_TURN,
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    message = await ant.messages.create(model=MODEL, max_tokens=8, messages=messages)
    assert message.stop_reason == "end_turn"


async def test_rejects_tool_use_input_that_is_not_an_object(anthropic_upstream: AnthropicUpstream) -> None:
    turn = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": "{}"}]}
    answer = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}
    status, body = await post_raw(
        anthropic_upstream.url + "/v1/messages",
        {"model": MODEL, "max_tokens": 8, "messages": [*HELLO, turn, answer]},
        headers(anthropic_upstream),
    )
    assert status == 400 and "input" in body["error"]["message"]


async def test_rejects_consecutive_turns_of_one_role(ant: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="alternate"):
        await ant.messages.create(model=MODEL, max_tokens=8, messages=[*HELLO, *HELLO])


async def test_tolerates_a_system_role_inside_messages_by_default(ant: anthropic.AsyncAnthropic) -> None:
    messages: Any = [{"role": "system", "content": "be brief"}, *HELLO]
    message = await ant.messages.create(model=MODEL, max_tokens=8, messages=messages)
    assert message.content[0].text == "echo: hello there"  # type: ignore[union-attr]


async def test_strict_roles_rejects_a_system_role_inside_messages(
    anthropic_upstream: AnthropicUpstream, ant: anthropic.AsyncAnthropic
) -> None:
    anthropic_upstream.strict_roles = True
    messages: Any = [{"role": "system", "content": "be brief"}, *HELLO]
    with pytest.raises(anthropic.BadRequestError, match="system"):
        await ant.messages.create(model=MODEL, max_tokens=8, messages=messages)


async def test_scripted_529_is_an_overloaded_error(
    anthropic_upstream: AnthropicUpstream, ant: anthropic.AsyncAnthropic
) -> None:
    anthropic_upstream.enqueue(Reply(status=529, retry_after="2"))
    with pytest.raises(anthropic.OverloadedError) as caught:
        await ant.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "2"


async def test_error_event_mid_stream_raises_overloaded_in_the_sdk(
    anthropic_upstream: AnthropicUpstream, ant: anthropic.AsyncAnthropic
) -> None:
    anthropic_upstream.enqueue(Reply(text="one two three", error_event_after_chunks=4))
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        async with ant.messages.stream(model=MODEL, max_tokens=8, messages=HELLO) as stream:
            await stream.get_final_message()


async def test_count_tokens_matches_the_default_usage_estimate(ant: anthropic.AsyncAnthropic) -> None:
    counted = await ant.messages.count_tokens(model=MODEL, messages=HELLO, system="be brief")
    message = await ant.messages.create(model=MODEL, max_tokens=8, messages=HELLO, system="be brief")
    assert counted.input_tokens == message.usage.input_tokens > 0


async def test_lists_models(ant: anthropic.AsyncAnthropic) -> None:
    assert [m.id async for m in ant.models.list()] == ["claude-sonnet-4-6", "claude-haiku-4-5"]


async def test_reset_mid_stream_surfaces_as_an_incomplete_payload(
    anthropic_upstream: AnthropicUpstream,
) -> None:
    anthropic_upstream.enqueue(Reply(text="a b c", reset_after_chunks=3))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            anthropic_upstream.url + "/v1/messages",
            json={"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True},
            headers=headers(anthropic_upstream),
        ) as resp,
    ):
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_stall_trips_the_client_read_timeout(anthropic_upstream: AnthropicUpstream) -> None:
    anthropic_upstream.enqueue(Reply(text="a b c", stall_after_chunks=2))
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.2)) as session,
        session.post(
            anthropic_upstream.url + "/v1/messages",
            json={"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True},
            headers=headers(anthropic_upstream),
        ) as resp,
    ):
        with pytest.raises(TimeoutError):
            await resp.read()


async def test_rejects_a_thinking_block_without_its_signature(ant: anthropic.AsyncAnthropic) -> None:
    turn: Any = {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": ""}]}
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        await ant.messages.create(model=MODEL, max_tokens=8, messages=[*HELLO, turn, *HELLO])


async def test_full_delta_usage_repeats_input_and_cache_counts_in_message_delta(
    anthropic_upstream: AnthropicUpstream,
) -> None:
    anthropic_upstream.full_delta_usage = True
    anthropic_upstream.enqueue(Reply(text="hi", input_tokens=10, output_tokens=2, cache_read_tokens=4))
    raw = await post_stream(
        anthropic_upstream.url + "/v1/messages",
        {"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True},
        headers(anthropic_upstream),
    )
    delta = next(d for d in sse_data(raw) if d["type"] == "message_delta")
    assert delta["usage"] == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
        "output_tokens": 2,
    }
