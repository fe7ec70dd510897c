"""The fakes speak the providers' wire formats well enough for the official SDKs, validating strictly."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import openai
import pytest

from tests.fakes import OpenAIUpstream, Reply
from tests.fakes.base import split_text
from tests.fakes.raw_client import post_raw, post_stream, sse_data

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TWO_CALLS = [
    ("call_1", "get_weather", {"city": "Paris"}),
    ("call_2", "get_weather", {"city": "Lyon, France"}),
]
HELLO: Any = [{"role": "user", "content": "hello there"}]


# -- shared behaviour ----------------------------------------------------------------------------------


def test_split_text_into_n_pieces_keeps_every_character() -> None:
    assert split_text("abcdefg", 3) == ["abc", "de", "fg"]


def test_split_text_by_default_sends_one_word_per_piece() -> None:
    assert split_text("echo: hello there", None) == ["echo: ", "hello ", "there"]


async def test_a_reply_serves_as_many_requests_as_its_repeat_then_the_echo_takes_over(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    openai_upstream.enqueue(Reply(text="scripted", repeat=2))
    texts = [
        (await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)).choices[0].message.content
        for _ in range(3)
    ]
    assert texts == ["scripted", "scripted", "echo: hello there"]
    assert openai_upstream.hits == 3


async def test_requests_are_recorded_with_lower_case_headers_and_parsed_json(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_headers={"X-Trace": "t1"})
    last = openai_upstream.last
    assert (last.method, last.path) == ("POST", "/v1/chat/completions")
    assert last.headers["x-trace"] == "t1"
    assert last.headers["authorization"] == f"Bearer {openai_upstream.api_key}"
    assert last.json["messages"] == HELLO


# -- OpenAI --------------------------------------------------------------------------------------------


async def test_openai_echoes_the_last_user_message_with_usage(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    assert completion.usage is not None and completion.usage.total_tokens > 0


async def test_openai_reports_cached_and_cache_write_tokens(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    openai_upstream.enqueue(
        Reply(text="hi", input_tokens=100, output_tokens=5, cache_read_tokens=60, cache_write_tokens=20)
    )
    usage = (await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)).usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (100, 5, 105)
    assert (usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens_details.cache_write_tokens) == (
        60,
        20,
    )


async def test_openai_returns_parallel_tool_calls_with_string_arguments(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    openai_upstream.enqueue(Reply(tool_calls=TWO_CALLS))
    choice = (
        await oai.chat.completions.create(model="gpt-4o", messages=HELLO, tools=[WEATHER_TOOL])
    ).choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        (cid, name, args) for cid, name, args in TWO_CALLS
    ]


async def test_openai_stream_helper_assembles_fragmented_tool_arguments(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    openai_upstream.enqueue(Reply(text="Checking.", tool_calls=TWO_CALLS))
    async with oai.chat.completions.stream(model="gpt-4o", messages=HELLO, tools=[WEATHER_TOOL]) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Checking."
    assert [json.loads(c.function.arguments) for c in message.tool_calls or []] == [
        {"city": "Paris"},
        {"city": "Lyon, France"},
    ]


async def test_openai_stream_names_a_tool_once_then_sends_only_argument_fragments(
    openai_upstream: OpenAIUpstream,
) -> None:
    openai_upstream.enqueue(Reply(tool_calls=TWO_CALLS[:1]))
    raw = await post_stream(
        openai_upstream.url + "/v1/chat/completions",
        {"model": "gpt-4o", "messages": HELLO, "stream": True},
        {"authorization": f"Bearer {openai_upstream.api_key}"},
    )
    chunks = sse_data(raw)
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks[:-1]
        if c["choices"][0]["delta"].get("tool_calls")
    ]
    assert calls[0]["id"] == "call_1" and calls[0]["function"]["name"] == "get_weather"
    assert len(calls) > 2 and all(set(c) == {"index", "function"} for c in calls[1:])
    assert "".join(c["function"]["arguments"] for c in calls) == json.dumps({"city": "Paris"})
    assert chunks[-1] == "[DONE]"


async def test_openai_stream_with_include_usage_ends_with_a_usage_chunk_without_choices(
    oai: openai.AsyncOpenAI,
) -> None:
    stream = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


async def test_openai_can_ignore_include_usage_like_llama_cpp(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.ignore_include_usage = True
    client = openai.AsyncOpenAI(base_url=openai_upstream.url, api_key=openai_upstream.api_key, max_retries=0)
    stream = await client.chat.completions.create(
        model="m", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    await client.close()
    assert all(c.usage is None and c.choices for c in chunks)
    assert openai_upstream.last.path == "/chat/completions"


async def test_openai_rejects_a_wrong_key_with_invalid_api_key(openai_upstream: OpenAIUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=openai_upstream.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    await client.close()
    assert caught.value.code == "invalid_api_key"


async def test_openai_rejects_a_request_without_messages(openai_upstream: OpenAIUpstream) -> None:
    status, body = await post_raw(
        openai_upstream.url + "/v1/chat/completions",
        {"model": "gpt-4o-mini"},
        {"authorization": f"Bearer {openai_upstream.api_key}"},
    )
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == "messages"


async def test_openai_rejects_a_tool_message_answering_an_unknown_call(oai: openai.AsyncOpenAI) -> None:
    messages: Any = [
        *HELLO,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
    ]
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(model="gpt-4o-mini", messages=messages)


async def test_openai_rejects_tool_calls_left_without_tool_messages(oai: openai.AsyncOpenAI) -> None:
    messages: Any = [
        *HELLO,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(openai.BadRequestError, match="call_1"):
        await oai.chat.completions.create(model="gpt-4o-mini", messages=messages)


async def test_openai_rejects_stream_options_without_stream(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="stream_options"):
        await oai.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream_options={"include_usage": True}
        )


async def test_openai_scripted_429_carries_retry_after(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    openai_upstream.enqueue(Reply(status=429, retry_after="7"))
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"


async def test_openai_error_chunk_mid_stream_raises_in_the_sdk(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    openai_upstream.enqueue(Reply(text="one two three", error_event_after_chunks=2))
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError, match="server had an error"):
        async for _ in stream:
            pass


async def test_openai_lists_models(oai: openai.AsyncOpenAI) -> None:
    assert [m.id async for m in oai.models.list()] == ["gpt-4o-mini", "gpt-4o"]


async def test_openai_reset_mid_stream_surfaces_as_an_incomplete_payload(
    openai_upstream: OpenAIUpstream,
) -> None:
    openai_upstream.enqueue(Reply(text="a b c d", reset_after_chunks=2))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            openai_upstream.url + "/v1/chat/completions",
            json={"model": "m", "messages": HELLO, "stream": True},
            headers={"authorization": f"Bearer {openai_upstream.api_key}"},
        ) as resp,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_openai_reset_mid_stream_is_a_connection_error_in_the_sdk(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    openai_upstream.enqueue(Reply(text="a b c d", reset_after_chunks=3))
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            pass


async def test_openai_stall_trips_the_client_read_timeout(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(text="a b c", stall_after_chunks=1))
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            openai_upstream.url + "/v1/chat/completions",
            json={"model": "m", "messages": HELLO, "stream": True},
            headers={"authorization": f"Bearer {openai_upstream.api_key}"},
        ) as resp,
    ):
        assert await resp.content.readline() != b""
        with pytest.raises(TimeoutError):
            await resp.read()


async def test_a_stalled_non_streamed_reply_never_sends_headers(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(stall_after_chunks=0))
    client = openai.AsyncOpenAI(
        base_url=openai_upstream.url, api_key=openai_upstream.api_key, max_retries=0, timeout=0.2
    )
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m", messages=HELLO)
    await client.close()


async def test_latency_delays_the_response_headers(
    openai_upstream: OpenAIUpstream, oai: openai.AsyncOpenAI
) -> None:
    openai_upstream.enqueue(Reply(latency_s=0.15))
    started = time.monotonic()
    await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert time.monotonic() - started >= 0.15


async def test_a_raw_body_is_sent_verbatim_for_malformed_upstream_tests(
    openai_upstream: OpenAIUpstream,
) -> None:
    openai_upstream.enqueue(Reply(raw_body=b'{"choices": "nope"}', status=200))
    status, body = await post_raw(
        openai_upstream.url + "/v1/chat/completions",
        {"model": "m", "messages": HELLO},
        {"authorization": f"Bearer {openai_upstream.api_key}"},
    )
    assert (status, body) == (200, {"choices": "nope"})


async def test_stopping_the_server_ends_a_stalled_stream_promptly() -> None:
    fake = OpenAIUpstream()
    await fake.start()
    fake.enqueue(Reply(text="a b c", stall_after_chunks=1))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.url + "/v1/chat/completions", json={"model": "m", "messages": HELLO, "stream": True}
        ) as resp,
    ):
        await resp.content.readline()
        started = time.monotonic()
        await fake.stop()
        assert time.monotonic() - started < 0.5
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_openai_rejects_tool_call_arguments_sent_as_an_object(oai: openai.AsyncOpenAI) -> None:
    messages: Any = [
        *HELLO,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {}}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    with pytest.raises(openai.BadRequestError, match="arguments"):
        await oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
