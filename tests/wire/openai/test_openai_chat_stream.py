"""StreamDecoder / StreamEncoder: OpenAI chat.completion.chunk streams <-> canonical events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from waypost.core.errors import RateLimited, StreamInterrupted
from waypost.core.events import (
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    RawFrame,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
    fold,
    response_events,
)
from waypost.core.types import (
    ChatResponse,
    FinishReason,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
)
from waypost.wire.openai.chat import StreamDecoder, StreamEncoder
from waypost.wire.sse import SSEParser

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"
STREAMS = [
    "stream_text_usage.sse",
    "stream_parallel_tool_calls.sse",
    "stream_interleaved_tool_calls.sse",
    "stream_tool_call_no_arguments.sse",
    "stream_whole_arguments_stop.sse",
    "stream_reasoning.sse",
]


def frames(data: bytes) -> list[str]:
    parser = SSEParser()
    return [ev.data for ev in parser.feed(data) + parser.close()]


def decode_frames(datas: list[str]) -> list[StreamEvent]:
    decoder = StreamDecoder()
    events: list[StreamEvent] = []
    for data in datas:
        if data == "[DONE]":
            return events + decoder.finish()
        events += decoder.feed(json.loads(data))
    raise AssertionError("stream ended without [DONE]")


def decode_fixture(name: str) -> list[StreamEvent]:
    return decode_frames(frames((FIXTURES / name).read_bytes()))


def decode_chunks(chunks: list[dict[str, Any]]) -> list[StreamEvent]:
    decoder = StreamDecoder()
    events: list[StreamEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.finish()


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-t",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def call(
    index: int, args: str | None = None, call_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "function": {}}
    if call_id:
        out.update(id=call_id, type="function")
    if name:
        out["function"]["name"] = name
    if args is not None:
        out["function"]["arguments"] = args
    return out


def assert_well_formed(events: list[StreamEvent]) -> None:
    """The canonical grammar: MessageStart, non-interleaved blocks numbered from 0, Finish, MessageEnd."""
    assert isinstance(events[0], MessageStart)
    assert isinstance(events[-2], Finish)
    assert isinstance(events[-1], MessageEnd)
    open_block: BlockStart | None = None
    next_index = 0
    args: dict[int, str] = {}
    for ev in events[1:-2]:
        if isinstance(ev, BlockStart):
            assert open_block is None, f"block {ev.index} starts while {open_block} is open"
            assert ev.index == next_index
            next_index += 1
            open_block = ev
            args[ev.index] = ""
        elif isinstance(ev, BlockStop):
            assert open_block is not None and ev.index == open_block.index
            if open_block.kind == "tool_call":
                assert args[ev.index].strip(), "a tool block closed without arguments"
            open_block = None
        elif isinstance(ev, TextDelta | ThinkingDelta | SignatureDelta | ToolArgsDelta):
            assert open_block is not None and ev.index == open_block.index
            if isinstance(ev, ToolArgsDelta):
                assert open_block.kind == "tool_call"
                args[ev.index] += ev.fragment
        else:
            assert isinstance(ev, UsageUpdate)
    assert open_block is None


# -- decoder on recorded streams -----------------------------------------------------------


@pytest.mark.parametrize("name", STREAMS)
def test_recorded_streams_decode_to_well_formed_events(name: str) -> None:
    assert_well_formed(decode_fixture(name))


def test_text_stream_with_usage_chunk() -> None:
    assert decode_fixture("stream_text_usage.sse") == [
        MessageStart(
            id="chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", model="gpt-4o-2024-08-06", created=1741569952
        ),
        BlockStart(0, "text"),
        TextDelta(0, "Hello"),
        TextDelta(0, "!"),
        TextDelta(0, " How can I help?"),
        BlockStop(0),
        UsageUpdate(Usage(input_tokens=2006, output_tokens=300, cache_read_tokens=1920)),
        Finish(FinishReason.STOP),
        MessageEnd(),
    ]


def test_sequential_parallel_calls_stream_without_buffering() -> None:
    events = decode_fixture("stream_parallel_tool_calls.sse")
    assert events[1:9] == [
        BlockStart(0, "tool_call", tool_call_id="call_paris01", tool_name="get_weather"),
        ToolArgsDelta(0, '{"ci'),
        ToolArgsDelta(0, 'ty": "Par'),
        ToolArgsDelta(0, 'is"}'),
        BlockStop(0),
        BlockStart(1, "tool_call", tool_call_id="call_tokyo02", tool_name="get_weather"),
        ToolArgsDelta(1, '{"ci'),
        ToolArgsDelta(1, 'ty": "Tok'),
    ]
    assert fold(events).finish_reason is FinishReason.TOOL_CALLS


def test_interleaved_parallel_calls_are_serialised_in_order_of_appearance() -> None:
    resp = fold(decode_fixture("stream_interleaved_tool_calls.sse"))
    assert resp.content == [
        TextPart(text="Checking both."),
        ToolCallPart(id="call_a", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCallPart(id="call_b", name="get_time", arguments='{"tz": "CET"}'),
    ]
    assert resp.usage == Usage(input_tokens=300, output_tokens=40)


def test_a_tool_call_without_argument_fragments_gets_empty_object_arguments() -> None:
    events = decode_fixture("stream_tool_call_no_arguments.sse")
    assert events[1:4] == [
        BlockStart(0, "tool_call", tool_call_id="call_now", tool_name="get_current_time"),
        ToolArgsDelta(0, "{}"),
        BlockStop(0),
    ]


def test_whole_arguments_with_repeated_ids_and_finish_stop() -> None:
    resp = fold(decode_fixture("stream_whole_arguments_stop.sse"))
    assert resp.content == [ToolCallPart(id="call_k3", name="read_file", arguments='{"path":"README.md"}')]
    assert resp.finish_reason is FinishReason.TOOL_CALLS


def test_reasoning_content_streams_as_a_thinking_block_before_the_text() -> None:
    resp = fold(decode_fixture("stream_reasoning.sse"))
    assert resp.content == [ThinkingPart(text="9.8 = 9.80 > 9.11."), TextPart(text="9.11 is smaller.")]
    assert resp.usage.reasoning_tokens == 48


def test_an_error_chunk_raises_after_the_earlier_events() -> None:
    datas = frames((FIXTURES / "stream_error.sse").read_bytes())
    decoder = StreamDecoder()
    events = decoder.feed(json.loads(datas[0])) + decoder.feed(json.loads(datas[1]))
    assert events[-1] == TextDelta(0, "The answer")
    with pytest.raises(StreamInterrupted, match="The server had an error"):
        decoder.feed(json.loads(datas[2]))


def test_a_stream_without_any_chunk_is_interrupted() -> None:
    with pytest.raises(StreamInterrupted):
        StreamDecoder().finish()


def test_finish_twice_emits_nothing_more() -> None:
    decoder = StreamDecoder()
    decoder.feed(chunk({"content": "x"}))
    assert decoder.finish()
    assert decoder.finish() == []


def test_calls_reusing_index_zero_with_new_ids_are_separate_calls() -> None:
    resp = fold(
        decode_chunks(
            [
                chunk({"tool_calls": [call(0, '{"q": 1}', "call_1", "search")]}),
                chunk({"tool_calls": [call(0, '{"q": 2}', "call_2", "search")]}),
                chunk({}, "tool_calls"),
            ]
        )
    )
    assert [(c.id, c.arguments) for c in resp.tool_calls()] == [
        ("call_1", '{"q": 1}'),
        ("call_2", '{"q": 2}'),
    ]


def test_an_interleaved_call_that_never_completes_is_flushed_at_the_end() -> None:
    events = decode_chunks(
        [
            chunk({"tool_calls": [call(0, "", "a", "f"), call(1, "", "b", "g")]}),
            chunk({"tool_calls": [call(1, '{"y": ')]}),
            chunk({"tool_calls": [call(0, '{"x": 1')]}),
            chunk({"tool_calls": [call(1, "2}")]}),
            chunk({}, "tool_calls"),
        ]
    )
    assert_well_formed(events)
    assert [(c.name, c.arguments) for c in fold(events).tool_calls()] == [("f", '{"x": 1'), ("g", '{"y": 2}')]


def test_text_after_tool_calls_closes_them_first() -> None:
    events = decode_chunks(
        [
            chunk({"tool_calls": [call(0, '{"a"', "c1", "f")]}),
            chunk({"tool_calls": [call(0, ": 1}")]}),
            chunk({"content": "done"}),
        ]
    )
    assert_well_formed(events)
    assert [p.kind for p in fold(events).content] == ["tool_call", "text"]


def test_a_signed_thinking_block_delta_carries_its_signature() -> None:
    resp = fold(
        decode_chunks(
            [
                chunk({"reasoning_content": "think"}),
                chunk({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig=="}]}),
                chunk({"content": "answer"}),
            ]
        )
    )
    assert resp.content == [ThinkingPart(text="think", signature="sig=="), TextPart(text="answer")]


def test_usage_snapshots_in_several_chunks_are_merged_into_one_update() -> None:
    events = decode_chunks(
        [
            chunk({"content": "a"}, usage={"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}),
            chunk({"content": "b"}, usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}),
        ]
    )
    assert [ev for ev in events if isinstance(ev, UsageUpdate)] == [
        UsageUpdate(Usage(input_tokens=10, output_tokens=2))
    ]


def test_llama_cpp_repeated_ids_names_and_function_call_mirror_make_one_call() -> None:
    events = decode_fixture("stream_llamacpp_tool_call.sse")
    starts = [e for e in events if isinstance(e, BlockStart)]
    assert [(s.kind, s.tool_name) for s in starts] == [("tool_call", "get_weather")]
    assert [(c.name, c.arguments) for c in fold(events).tool_calls()] == [
        ("get_weather", '{"city": "Paris"}')
    ]


def test_a_legacy_function_call_stream_is_a_call() -> None:
    events = decode_chunks(
        [
            chunk({"role": "assistant", "function_call": {"name": "f", "arguments": ""}}),
            chunk({"function_call": {"arguments": '{"a": 1}'}}),
            chunk({}, "function_call"),
        ]
    )
    assert [(c.name, c.arguments) for c in fold(events).tool_calls()] == [("f", '{"a": 1}')]


def test_a_leading_chunk_with_nothing_to_say_does_not_start_the_message() -> None:
    report = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": []}
    events = decode_chunks([report, chunk({"content": "hi"}, "stop")])
    assert events[0] == MessageStart(id="chatcmpl-t", model="m", created=1)
    assert fold(events).text() == "hi"


def test_choices_other_than_the_first_are_ignored() -> None:
    two = chunk({"content": "first"})
    two["choices"].append({"index": 1, "delta": {"content": "second"}, "finish_reason": None})
    assert fold(decode_chunks([two])).text() == "first"


@pytest.mark.parametrize(
    "odd",
    [
        {"choices": None},
        {"choices": [None, "x"]},
        {"choices": [{"index": 0, "delta": "nope"}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [None, {"index": "a"}, {"function": 3}]}}]},
        {"choices": [{"index": 0, "delta": {"content": 5, "reasoning_content": []}}], "usage": "lots"},
    ],
)
def test_odd_chunks_do_not_crash(odd: dict[str, Any]) -> None:
    assert_well_formed(decode_chunks([odd]))


# -- encoder -------------------------------------------------------------------------------------


def encode(events: list[StreamEvent], *, include_usage: bool = True, model: str = "gpt-4o") -> bytes:
    encoder = StreamEncoder(model, include_usage=include_usage, created=1700000000)
    return b"".join(encoder.feed(ev) for ev in events)


def chunks_of(data: bytes) -> list[dict[str, Any]]:
    datas = frames(data)
    assert datas[-1] == "[DONE]"
    return [json.loads(d) for d in datas[:-1]]


def sample() -> ChatResponse:
    return ChatResponse(
        id="msg_01XYZ",
        model="claude-sonnet-4-5",
        content=[
            ThinkingPart(text="Let me think.", signature="EqQBsig"),
            ThinkingPart(redacted=True, data="opaque=="),
            TextPart(text="Calling two tools."),
            ToolCallPart(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}'),
            ToolCallPart(id="toolu_2", name="get_time", arguments="{}"),
        ],
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(
            input_tokens=500,
            output_tokens=80,
            cache_read_tokens=300,
            cache_write_tokens=100,
            reasoning_tokens=20,
        ),
        created=1700000000,
    )


def test_encoded_text_stream_is_exactly_what_openai_sends() -> None:
    events: list[StreamEvent] = [
        MessageStart(id="chatcmpl-1", model="gpt-4o"),
        BlockStart(0, "text"),
        TextDelta(0, "Hi"),
        BlockStop(0),
        UsageUpdate(Usage(input_tokens=5, output_tokens=1)),
        Finish(FinishReason.STOP),
        MessageEnd(),
    ]
    head = (
        '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":'
    )
    assert encode(events, include_usage=False).decode() == (
        f'data: {head}[{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},'
        '"finish_reason":null,"logprobs":null}]}\n\n'
        f'data: {head}[{{"index":0,"delta":{{"content":"Hi"}},"finish_reason":null,"logprobs":null}}]}}\n\n'
        f'data: {head}[{{"index":0,"delta":{{}},"finish_reason":"stop","logprobs":null}}]}}\n\n'
        "data: [DONE]\n\n"
    )


def test_every_encoded_chunk_passes_strict_sdk_validation() -> None:
    for item in chunks_of(encode(response_events(sample()))):
        ChatCompletionChunk.model_validate(item, strict=True)


def test_first_chunk_announces_the_assistant_role() -> None:
    first = chunks_of(encode(response_events(sample())))[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}


def test_tool_calls_are_numbered_from_zero_with_id_and_name_first() -> None:
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks_of(encode(response_events(sample())))
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls == [
        {
            "index": 0,
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"city": "Paris"}'}},
        {"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        {"index": 1, "function": {"arguments": "{}"}},
    ]


def test_usage_chunk_comes_last_with_empty_choices_when_asked_for() -> None:
    items = chunks_of(encode(response_events(sample())))
    assert all("usage" in c and c["usage"] is None for c in items[:-1])
    assert items[-1]["choices"] == []
    assert items[-1]["usage"] == {
        "prompt_tokens": 500,
        "completion_tokens": 80,
        "total_tokens": 580,
        "prompt_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }


def test_no_usage_anywhere_when_not_asked_for() -> None:
    items = chunks_of(encode(response_events(sample()), include_usage=False))
    assert all("usage" not in c for c in items)
    assert items[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_response_id_is_given_the_chatcmpl_prefix() -> None:
    assert {c["id"] for c in chunks_of(encode(response_events(sample())))} == {"chatcmpl-msg_01XYZ"}


def test_an_explicit_response_id_and_the_client_model_are_used() -> None:
    encoder = StreamEncoder("my-alias", include_usage=False, response_id="chatcmpl-fixed", created=5)
    data = b"".join(encoder.feed(ev) for ev in response_events(sample()))
    assert {(c["id"], c["model"], c["created"]) for c in chunks_of(data)} == {
        ("chatcmpl-fixed", "my-alias", 5)
    }


def test_message_end_without_finish_still_sends_a_finish_reason() -> None:
    items = chunks_of(encode([MessageStart(id="x", model="m"), MessageEnd()], include_usage=False))
    assert items[-1]["choices"][0]["finish_reason"] == "stop"


def test_raw_frames_are_not_encoded() -> None:
    assert StreamEncoder("m", include_usage=False).feed(RawFrame(b"data: {}\n\n")) == b""


def test_error_frame_carries_the_openai_error_and_ends_the_stream() -> None:
    encoder = StreamEncoder("m", include_usage=True)
    encoder.feed(MessageStart(id="x", model="m"))
    frame = encoder.error(RateLimited("Too many requests"))
    assert frame.endswith(b"\n\n") and b"[DONE]" not in frame
    assert json.loads(frame.removeprefix(b"data: ")) == {
        "error": {
            "message": "Too many requests",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert encoder.feed(MessageEnd()) == b""


# -- encoder output read back by the decoder ------------------------------------------------


def reread(data: bytes) -> ChatResponse:
    return fold(decode_frames(frames(data)))


def comparable(resp: ChatResponse) -> tuple[Any, ...]:
    return (resp.content, resp.finish_reason, resp.usage)


@pytest.mark.parametrize("name", STREAMS)
def test_encoded_recorded_streams_fold_to_the_same_response(name: str) -> None:
    original = fold(decode_fixture(name))
    data = encode(decode_fixture(name), model=original.model)
    assert comparable(reread(data)) == comparable(original)


def test_signatures_and_redacted_thinking_survive_an_openai_stream() -> None:
    original = sample()
    again = reread(encode(response_events(original)))
    assert comparable(again) == comparable(original)
    assert again.id == "chatcmpl-msg_01XYZ"
