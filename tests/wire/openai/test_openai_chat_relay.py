"""What an OpenAI client reads of an OpenAI-compatible upstream's answer (``chat_relay``): OpenAI's
own chunks as they came, the model it asked for, and the quirks of compatible servers normalised
away. Recorded streams, and chunks in the shapes servers send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from waypost.wire.openai.chat_relay import RelayedChunks, model_member, normalise_body
from waypost.wire.sse import SSEParser, encode_frame

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"
DONE = b"data: [DONE]\n\n"
LLAMA_CPP_MODEL = "smollm2-135m-instruct.q4_1.gguf"


def relay(stream: bytes, model: str, *, include_usage: bool = True) -> bytes:
    """The bytes an OpenAI client gets, as the provider writes them."""
    relayed = RelayedChunks(model, include_usage=include_usage)
    out = b""
    frames, _ = SSEParser().feed_frames(stream)
    for frame in frames:
        if frame[1] == b"[DONE]":
            return relayed.edit(out + relayed.closing() + DONE)
        instead = relayed.feed(json.loads(frame[1]), frame[1])
        out += encode_frame(frame) if instead is None else instead
    raise AssertionError("no [DONE]")


def chunks_of(stream: bytes) -> list[ChatCompletionChunk]:
    """The relayed chunks as the openai SDK parses them, strictly."""
    frames, _ = SSEParser().feed_frames(stream)
    assert frames[-1][1] == b"[DONE]"
    return [ChatCompletionChunk.model_validate(json.loads(f[1]), strict=True) for f in frames[:-1]]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-q",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return {**body, **extra}


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + DONE


USAGE = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}


# -- OpenAI's own streams go through untouched -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("stream_text_usage.sse", "gpt-4o-2024-08-06"),
        ("stream_parallel_tool_calls.sse", "gpt-4.1-2025-04-14"),
    ],
)
def test_openai_own_streams_are_relayed_byte_for_byte(name: str, model: str) -> None:
    stream = (FIXTURES / name).read_bytes()
    relayed = RelayedChunks(model, include_usage=True)
    frames, _ = SSEParser().feed_frames(stream)
    verdicts = [relayed.feed(json.loads(f[1]), f[1]) for f in frames if f[1] != b"[DONE]"]
    assert verdicts == [None] * len(verdicts)
    assert relayed.closing() == b""


# -- llama.cpp ---------------------------------------------------------------------------------------


def test_llama_cpp_tool_call_reaches_the_client_once_with_its_name_once() -> None:
    stream = (FIXTURES / "stream_llamacpp_tool_call.sse").read_bytes()
    chunks = chunks_of(relay(stream, LLAMA_CPP_MODEL))
    calls = [call for c in chunks for call in c.choices[0].delta.tool_calls or []]
    assert calls[0].id and calls[0].type == "function" and calls[0].function
    assert calls[0].function.name == "get_weather"
    for later in calls[1:]:
        assert later.id is None and later.type is None and later.function and later.function.name is None
    assert "".join(c.function.arguments or "" for c in calls if c.function) == '{"city": "Paris"}'
    assert all(c.choices[0].delta.function_call is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_llama_cpp_body_keeps_tool_calls_and_drops_the_function_call_mirror() -> None:
    body = json.loads((FIXTURES / "response_llamacpp_tool_call.json").read_text())
    assert normalise_body(body, "local")
    completion = ChatCompletion.model_validate(body, strict=True)
    message = completion.choices[0].message
    assert message.function_call is None
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls or []] == [  # type: ignore[union-attr]
        ("get_weather", '{"city": "Paris"}')
    ]
    assert completion.model == "local"


def test_a_lone_legacy_function_call_is_left_alone() -> None:
    stream = sse(
        chunk({"role": "assistant", "function_call": {"name": "f", "arguments": ""}}),
        chunk({"function_call": {"arguments": "{}"}}),
        chunk({}, "function_call"),
    )
    assert relay(stream, "up") == stream


# -- tool-call deltas -------------------------------------------------------------------------------


def test_deltas_without_index_get_one() -> None:
    stream = sse(
        chunk({"tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"function": {"arguments": "{}"}}]}),
        chunk(
            {"tool_calls": [{"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}
        ),
        chunk({}, "tool_calls"),
    )
    calls = [call for c in chunks_of(relay(stream, "up")) for call in c.choices[0].delta.tool_calls or []]
    assert [(c.index, c.id) for c in calls] == [(0, "a"), (0, None), (1, "b")]


def test_a_call_sent_whole_in_one_delta_is_relayed_as_it_came() -> None:
    stream = sse(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "a",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x": 1}'},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
    )
    assert relay(stream, "up") == stream


def test_a_server_that_numbers_every_call_zero_gets_its_calls_numbered() -> None:
    stream = sse(
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
                ]
            }
        ),
        chunk({}, "tool_calls"),
    )
    calls = [call for c in chunks_of(relay(stream, "up")) for call in c.choices[0].delta.tool_calls or []]
    assert [(c.index, c.id, c.function.name if c.function else None) for c in calls] == [
        (0, "a", "f"),
        (1, "b", "g"),
    ]


def test_arguments_sent_as_an_object_become_json_text() -> None:
    stream = sse(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "a",
                        "type": "function",
                        "function": {"name": "f", "arguments": {"x": 1}},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
    )
    calls = [call for c in chunks_of(relay(stream, "up")) for call in c.choices[0].delta.tool_calls or []]
    assert calls[0].function is not None and json.loads(calls[0].function.arguments or "") == {"x": 1}


# -- chunks, usage and reasoning ---------------------------------------------------------------------


def test_chunks_with_empty_choices_and_no_usage_are_left_out() -> None:
    report = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": []}
    stream = sse(report, chunk({"content": "hi"}), chunk(None), chunk({}, "stop"), chunk(None, usage=USAGE))
    chunks = chunks_of(relay(stream, "up"))
    assert [c.choices[0].delta.content if c.choices else "usage" for c in chunks] == ["hi", None, "usage"]


def test_a_usage_chunk_before_the_finish_is_sent_after_it() -> None:
    stream = sse(chunk({"content": "hi"}), chunk(None, usage=USAGE), chunk({}, "stop"))
    chunks = chunks_of(relay(stream, "up"))
    assert [bool(c.choices) for c in chunks] == [True, True, False]
    assert chunks[1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 11


def test_usage_on_every_chunk_arrives_once_on_a_usage_chunk() -> None:
    early = {**USAGE, "completion_tokens": 1, "total_tokens": 10}
    stream = sse(chunk({"content": "a"}, usage=early), chunk({"content": "b"}, "stop", usage=USAGE))
    chunks = chunks_of(relay(stream, "up"))
    assert [c.usage for c in chunks[:-1]] == [None, None]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2


def test_deepseek_usage_on_the_finish_chunk_moves_to_a_usage_chunk() -> None:
    stream = (FIXTURES / "stream_reasoning.sse").read_bytes()
    chunks = chunks_of(relay(stream, "deepseek-reasoner"))
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].usage is None
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (18, 60)


def test_usage_a_client_did_not_ask_for_is_not_relayed() -> None:
    stream = sse(chunk({"content": "a"}, usage=USAGE), chunk({}, "stop"), chunk(None, usage=USAGE))
    relayed = relay(stream, "up", include_usage=False)
    assert b"usage" not in relayed
    assert len(chunks_of(relayed)) == 2


def test_reasoning_is_relayed_as_reasoning_content() -> None:
    stream = sse(
        chunk({"reasoning": "think"}),
        chunk({"reasoning": "again", "reasoning_content": "again"}),
        chunk({"content": "ok"}, "stop"),
    )
    deltas = [c.choices[0].delta.model_extra or {} for c in chunks_of(relay(stream, "up"))]
    assert [d.get("reasoning_content") for d in deltas] == ["think", "again", None]
    assert not any("reasoning" in d for d in deltas)


# -- the model name -------------------------------------------------------------------------------------


def test_the_model_is_the_one_the_client_asked_for_in_every_chunk() -> None:
    stream = (FIXTURES / "stream_text_usage.sse").read_bytes()
    chunks = chunks_of(relay(stream, "my-alias"))
    assert {c.model for c in chunks} == {"my-alias"}


def test_the_model_is_renamed_whatever_the_spacing() -> None:
    stream = (FIXTURES / "stream_llamacpp_tool_call.sse").read_bytes()
    assert {c.model for c in chunks_of(relay(stream, "local"))} == {"local"}


@pytest.mark.parametrize(
    "member",
    [b'"model":"a\\/b"', b'"\\u006dodel":"a/b"'],  # an escaped name is found; an escaped key is not
)
def test_a_model_written_escaped_still_gets_renamed(member: bytes) -> None:
    head = b'data: {"id":"x","object":"chat.completion.chunk","created":1,' + member
    tail = b',"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    stream = head + tail + head + tail.replace(b"null", b'"stop"') + DONE
    assert {c.model for c in chunks_of(relay(stream, "alias"))} == {"alias"}


def test_a_chunk_without_a_model_gets_the_requested_one() -> None:
    bare = chunk({"content": "hi"}, "stop")
    del bare["model"]
    assert {c.model for c in chunks_of(relay(sse(bare), "alias"))} == {"alias"}


def test_model_member_finds_the_member_as_written() -> None:
    assert model_member(b'{"id": "x", "model" : "gpt-4o", "o": 1}', "gpt-4o") == b'"model" : "gpt-4o"'
    assert model_member(b'{"model":"gpt-4o-mini"}', "gpt-4o") is None


# -- bodies --------------------------------------------------------------------------------------------


def test_an_openai_body_for_the_requested_model_is_unchanged() -> None:
    body = json.loads((FIXTURES / "response_text.json").read_text())
    assert not normalise_body(body, body["model"])


def test_a_body_gets_the_requested_model_and_reasoning_content() -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "up",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "42", "reasoning": "hmm"},
                "finish_reason": "stop",
            }
        ],
    }
    assert normalise_body(body, "alias")
    assert body["model"] == "alias"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "42", "reasoning_content": "hmm"}


@pytest.mark.parametrize(
    "odd",
    [
        {"choices": None},
        {"choices": [None, "x"], "usage": "lots"},
        {"choices": [{"index": 0, "delta": "nope"}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [None, {"index": [1]}, {"function": 3}, {"index": 0, "function": {}}]
                    },
                }
            ]
        },
        {"choices": [{"index": [0], "delta": {"tool_calls": "x", "function_call": 1, "reasoning": None}}]},
        {"model": 5, "choices": []},
    ],
)
def test_odd_chunks_do_not_crash(odd: dict[str, Any]) -> None:
    relayed = RelayedChunks("m", include_usage=True)
    data = json.dumps(odd).encode()
    result = relayed.feed(odd, data)
    assert result is None or isinstance(result, bytes)
    assert isinstance(relayed.closing(), bytes)
