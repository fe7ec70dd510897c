"""The fake OpenAI server's quirks (``openai_quirks``): each model set to a quirk answers the way the
real servers that have it do, on the wire; other models keep answering like OpenAI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes import OpenAIUpstream, Reply
from tests.fakes import openai_quirks as q
from tests.fakes.raw_client import post_raw, post_stream, sse_data

HI = [{"role": "user", "content": "hi"}]
CALLS = [("call_1", "get_weather", {"city": "Oslo"}), ("call_2", "get_weather", {"city": "Lima"})]
TEN_WORDS = "a b c d e f g h i j"


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream(quirks={name: {name} for name in q.QUIRKS} | {"llama": q.LLAMA_CPP}) as server:
        yield server


async def body(fake: OpenAIUpstream, model: str, **extra: Any) -> tuple[int, Any]:
    return await post_raw(fake.url + "/v1/chat/completions", {"model": model, "messages": HI, **extra}, {})


async def chunks(fake: OpenAIUpstream, model: str, **extra: Any) -> list[dict[str, Any]]:
    request = {"model": model, "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    data = sse_data(await post_stream(fake.url + "/v1/chat/completions", {**request, **extra}, {}))
    assert data[-1] == "[DONE]"
    return list(data[:-1])


def tool_deltas(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [call for c in stream if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls") or []]


# -- the token limit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "limits", "words"),
    [
        ("gpt-4o", {"max_completion_tokens": 3}, 3),
        ("gpt-4o", {"max_tokens": 3}, 3),
        (q.MAX_TOKENS_ONLY, {"max_tokens": 3}, 3),
        (q.MAX_TOKENS_ONLY, {"max_completion_tokens": 3}, 10),  # ignored, like any unknown field
        (q.MAX_COMPLETION_TOKENS_ONLY, {"max_completion_tokens": 3}, 3),
    ],
)
async def test_a_model_stops_at_the_limit_it_understands(
    fake: OpenAIUpstream, model: str, limits: dict[str, int], words: int
) -> None:
    fake.enqueue(Reply(text=TEN_WORDS))
    status, answer = await body(fake, model, **limits)
    assert status == 200
    assert len(answer["choices"][0]["message"]["content"].split()) == words
    assert answer["choices"][0]["finish_reason"] == ("length" if words < 10 else "stop")
    assert answer["usage"]["completion_tokens"] <= words


async def test_a_max_completion_tokens_only_model_refuses_max_tokens(fake: OpenAIUpstream) -> None:
    status, answer = await body(fake, q.MAX_COMPLETION_TOKENS_ONLY, max_tokens=3)
    assert status == 400 and answer["error"]["param"] == "max_tokens"


async def test_a_streamed_answer_stops_at_the_limit_too(fake: OpenAIUpstream) -> None:
    fake.enqueue(Reply(text=TEN_WORDS))
    stream = await chunks(fake, "gpt-4o", max_tokens=4)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in stream if c["choices"])
    assert len(text.split()) == 4
    assert [c["choices"][0]["finish_reason"] for c in stream if c["choices"]][-1] == "length"


# -- tool calls ----------------------------------------------------------------------------------------


async def test_llama_cpp_repeats_the_identity_and_mirrors_function_call(fake: OpenAIUpstream) -> None:
    fake.enqueue(Reply(tool_calls=CALLS[:1], chunks=3))
    stream = await chunks(fake, "llama")
    deltas = tool_deltas(stream)
    assert len(deltas) == 4  # the opening one and three fragments
    assert all(d["id"] == "call_1" and d["function"]["name"] == "get_weather" for d in deltas)
    mirrors = [
        c["choices"][0]["delta"]["function_call"]
        for c in stream
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert [m["arguments"] for m in mirrors] == [d["function"]["arguments"] for d in deltas]


async def test_a_body_can_carry_the_function_call_mirror(fake: OpenAIUpstream) -> None:
    fake.enqueue(Reply(tool_calls=CALLS[:1]))
    _, answer = await body(fake, q.FUNCTION_CALL_MIRROR)
    message = answer["choices"][0]["message"]
    assert message["function_call"] == message["tool_calls"][0]["function"]


async def test_tool_deltas_can_come_without_index(fake: OpenAIUpstream) -> None:
    fake.enqueue(Reply(tool_calls=CALLS))
    deltas = tool_deltas(await chunks(fake, q.TOOL_DELTAS_WITHOUT_INDEX))
    assert deltas and all("index" not in d for d in deltas)
    assert [d["id"] for d in deltas if "id" in d] == ["call_1", "call_2"]


async def test_each_call_can_come_whole(fake: OpenAIUpstream) -> None:
    fake.enqueue(Reply(tool_calls=CALLS))
    deltas = tool_deltas(await chunks(fake, q.WHOLE_TOOL_CALL))
    assert [(d["id"], d["function"]["arguments"]) for d in deltas] == [
        ("call_1", '{"city": "Oslo"}'),
        ("call_2", '{"city": "Lima"}'),
    ]


# -- chunks, usage, reasoning ------------------------------------------------------------------------


async def test_empty_choices_chunks_come_first_and_midway(fake: OpenAIUpstream) -> None:
    stream = await chunks(fake, q.EMPTY_CHOICES_CHUNKS)
    empty = [i for i, c in enumerate(stream) if c["choices"] == [] and c.get("usage") is None]
    assert empty[0] == 0 and len(empty) == 2
    assert stream[0]["id"] == "" and stream[0]["model"] == ""


async def test_the_finish_can_come_after_the_usage_chunk(fake: OpenAIUpstream) -> None:
    stream = await chunks(fake, q.FINISH_AFTER_USAGE)
    assert stream[-2]["choices"] == [] and stream[-2]["usage"]
    assert stream[-1]["choices"][0]["finish_reason"] == "stop"


async def test_usage_can_come_on_every_chunk(fake: OpenAIUpstream) -> None:
    fake.enqueue(Reply(text="one two three", output_tokens=3))
    stream = await chunks(fake, q.USAGE_ON_EVERY_CHUNK)
    assert all(c["choices"] and c["usage"] for c in stream)
    assert [c["usage"]["completion_tokens"] for c in stream][-1] == 3


async def test_reasoning_can_be_named_reasoning(fake: OpenAIUpstream) -> None:
    fake.enqueue(Reply(text="42", thinking=("hmm", "")), Reply(text="42", thinking=("hmm", "")))
    _, answer = await body(fake, q.REASONING_FIELD)
    assert answer["choices"][0]["message"]["reasoning"] == "hmm"
    stream = await chunks(fake, q.REASONING_FIELD)
    deltas = [c["choices"][0]["delta"] for c in stream if c["choices"]]
    assert "".join(d.get("reasoning", "") for d in deltas) == "hmm"
    assert not any("reasoning_content" in d for d in deltas)


async def test_other_models_answer_like_openai(fake: OpenAIUpstream) -> None:
    fake.enqueue(Reply(tool_calls=CALLS[:1]))
    deltas = tool_deltas(await chunks(fake, "gpt-4o"))
    assert [("id" in d, "name" in d["function"]) for d in deltas] == [(True, True)] + [(False, False)] * (
        len(deltas) - 1
    )
