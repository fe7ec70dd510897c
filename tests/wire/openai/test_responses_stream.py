"""Responses API streams: canonical events -> typed SSE events (every event and the final
response checked strictly with the official SDK's models, and run through the SDK's own stream
accumulator), and an upstream's recorded-shape streams -> canonical events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.responses_sdk import accumulate, validate_event, validate_response

from waypost.core.errors import RateLimited, StreamInterrupted, UpstreamTimeout
from waypost.core.events import (
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    RawFrame,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
    fold,
    response_events,
)
from waypost.core.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
)
from waypost.wire.openai.responses import StreamDecoder, StreamEncoder, decode_response, encode_response
from waypost.wire.sse import SSEParser

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai_responses"
RID = "resp_9a8b7c6d"
CREATED = 1_700_000_000
ENC = "gAAAAABo1aPmX3q9Lw2vR8tYbN6cK1jH4fD0sZ7aQ5eU3iO9pM2xV8rT1yW6nB4gC0kL7hJ5fS3dA9qE2zX8cV6bN1mQ4wR7tY0uI3oP5a=="
REQ = ChatRequest(model="gpt-test", messages=[Message("user", [TextPart("hi")])])

TEXT = ChatResponse(
    id="up",
    model="m",
    content=[TextPart("Hello there, friend.")],
    finish_reason=FinishReason.STOP,
    usage=Usage(input_tokens=20, output_tokens=5, cache_read_tokens=16),
)
PARALLEL = ChatResponse(
    id="up",
    model="m",
    content=[
        ToolCallPart("call_1", "get_weather", '{"city":"Paris"}'),
        ToolCallPart("call_2", "get_time", '{"city":"Tokyo"}'),
    ],
    finish_reason=FinishReason.TOOL_CALLS,
    usage=Usage(input_tokens=50, output_tokens=30),
)
REASONING = ChatResponse(
    id="up",
    model="m",
    content=[
        ThinkingPart(text="Adding the numbers.", signature="openai:" + ENC),
        ThinkingPart(text="Claude thought.", signature="EqQBsig"),
        TextPart("391"),
    ],
    finish_reason=FinishReason.STOP,
    usage=Usage(input_tokens=30, output_tokens=200, reasoning_tokens=180),
)
INCOMPLETE = ChatResponse(
    id="up",
    model="m",
    content=[TextPart("Once upon a")],
    finish_reason=FinishReason.LENGTH,
    usage=Usage(input_tokens=9, output_tokens=4),
)
SCENARIOS = {"text": TEXT, "parallel": PARALLEL, "reasoning": REASONING, "incomplete": INCOMPLETE}


def split(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    parser = SSEParser()
    return [(ev.event, json.loads(ev.data)) for ev in parser.feed(data) + parser.close()]


def encoder() -> StreamEncoder:
    return StreamEncoder(REQ, response_id=RID, created_at=CREATED, body=None)


def encode_events(events: list[StreamEvent], enc: StreamEncoder | None = None) -> list[dict[str, Any]]:
    enc = enc or encoder()
    frames = split(b"".join(enc.feed(ev) for ev in events))
    for name, data in frames:
        assert name == data["type"]
    return [data for _, data in frames]


def stream(resp: ChatResponse) -> list[StreamEvent]:
    """A response as a stream whose deltas come in small pieces, as upstreams send them."""
    out: list[StreamEvent] = []
    for ev in response_events(resp):
        if isinstance(ev, TextDelta) and len(ev.text) > 4:
            out += [TextDelta(ev.index, ev.text[i : i + 4]) for i in range(0, len(ev.text), 4)]
        elif isinstance(ev, ToolArgsDelta) and len(ev.fragment) > 4:
            out += [ToolArgsDelta(ev.index, ev.fragment[i : i + 4]) for i in range(0, len(ev.fragment), 4)]
        else:
            out.append(ev)
    return out


# -- encoding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_event_and_the_final_response_validate_strictly_with_the_sdk(name: str) -> None:
    enc = encoder()
    events = encode_events(stream(SCENARIOS[name]), enc)
    for event in events:
        validate_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert enc.response is not None
    validate_response(enc.response)
    assert events[-1]["response"] == enc.response


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_final_response_is_the_body_of_the_same_answer(name: str) -> None:
    enc = encoder()
    events = encode_events(stream(SCENARIOS[name]), enc)
    body = encode_response(
        fold(list(stream(SCENARIOS[name]))), REQ, response_id=RID, created_at=CREATED, body=None
    )
    assert enc.response == body
    # Each item's done event carries the item the final response lists.
    done = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.done"}
    assert [done[n] for n in sorted(done)] == body["output"]


@pytest.mark.parametrize("name", ["text", "parallel", "reasoning"])
def test_the_sdk_stream_accumulator_completes_with_the_same_output(name: str) -> None:
    enc = encoder()
    final = accumulate(encode_events(stream(SCENARIOS[name]), enc))
    assert final is not None and enc.response is not None
    assert final.output_text == SCENARIOS[name].text()
    assert [item.model_dump(exclude_none=True) for item in final.output] == [
        {k: v for k, v in item.items() if v is not None} for item in enc.response["output"]
    ]


def test_text_streams_as_output_text_deltas_of_one_message() -> None:
    events = encode_events(stream(TEXT))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == TEXT.text()
    assert {e.get("item_id") for e in events[3:-2]} == {"msg_9a8b7c6d_0"}
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[-1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 16


def test_parallel_calls_stream_their_arguments_item_by_item() -> None:
    events = encode_events(stream(PARALLEL))
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert [(i["id"], i["call_id"], i["name"], i["arguments"]) for i in added] == [
        ("fc_9a8b7c6d_0", "call_1", "get_weather", ""),
        ("fc_9a8b7c6d_1", "call_2", "get_time", ""),
    ]
    args = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["output_index"], e["arguments"]) for e in args] == [
        (0, '{"city":"Paris"}'),
        (1, '{"city":"Tokyo"}'),
    ]
    # The first call is done before the second is added.
    kinds = [(e["type"], e.get("output_index")) for e in events]
    assert kinds.index(("response.output_item.done", 0)) < kinds.index(("response.output_item.added", 1))


def test_reasoning_streams_as_a_summary_and_carries_its_encrypted_content() -> None:
    events = encode_events(stream(REASONING))
    types = [e["type"] for e in events]
    assert types[2:8] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done[0]["encrypted_content"] == ENC
    assert done[0]["summary"] == [{"type": "summary_text", "text": "Adding the numbers."}]
    assert done[1]["encrypted_content"] == "waypost:signature:EqQBsig"


def test_the_last_item_of_a_response_cut_short_is_incomplete() -> None:
    events = encode_events(stream(INCOMPLETE))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"]["status"] == "incomplete"


def test_empty_blocks_make_no_items_and_leave_no_gaps() -> None:
    events: list[StreamEvent] = [
        MessageStart(id="up", model="m"),
        BlockStart(0, "text"),
        BlockStop(0),
        BlockStart(1, "thinking"),
        BlockStop(1),
        BlockStart(2, "text"),
        TextDelta(2, "hi"),
        BlockStop(2),
        Finish(FinishReason.STOP),
        MessageEnd(),
    ]
    out = encode_events(events)
    assert [e["output_index"] for e in out if e["type"] == "response.output_item.added"] == [0]
    assert out[-1]["response"]["output"][0]["id"] == "msg_9a8b7c6d_0"


def test_a_call_without_arguments_gets_an_empty_object() -> None:
    events: list[StreamEvent] = [
        BlockStart(0, "tool_call", tool_call_id="c", tool_name="ping"),
        BlockStop(0),
        Finish(FinishReason.TOOL_CALLS),
        MessageEnd(),
    ]
    out = encode_events(events)
    assert [e["delta"] for e in out if e["type"] == "response.function_call_arguments.delta"] == ["{}"]
    assert out[-1]["response"]["output"][0]["arguments"] == "{}"


def test_an_error_mid_stream_sends_error_then_response_failed_and_ends() -> None:
    enc = encoder()
    head = encode_events([MessageStart(id="up", model="m"), BlockStart(0, "text"), TextDelta(0, "Part")], enc)
    tail = [data for _, data in split(enc.error(UpstreamTimeout("upstream timed out")))]
    assert [e["type"] for e in tail] == ["error", "response.failed"]
    for event in head + tail:
        validate_event(event)
    assert accumulate(head + tail) is None  # the SDK's accumulator takes the failure in order
    assert [e["sequence_number"] for e in head + tail] == list(range(len(head) + len(tail)))
    assert tail[0] | {"sequence_number": 0} == {
        "type": "error",
        "sequence_number": 0,
        "code": "timeout",
        "message": "upstream timed out",
        "param": None,
    }
    failed = tail[1]["response"]
    assert failed == enc.response
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "upstream timed out"}
    assert failed["output"][0]["content"][0]["text"] == "Part"
    assert enc.feed(TextDelta(0, "more")) == b"" and enc.error(UpstreamTimeout("again")) == b""


def test_a_rate_limit_mid_stream_fails_the_response_as_rate_limited() -> None:
    enc = encoder()
    events = [data for _, data in split(enc.error(RateLimited("slow down")))]
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "error",
        "response.failed",
    ]
    assert events[-1]["response"]["error"]["code"] == "rate_limit_exceeded"
    validate_response(events[-1]["response"])


def test_the_stream_is_deterministic_and_ignores_raw_frames() -> None:
    first = b"".join(encoder().feed(ev) for ev in stream(REASONING))
    second = b"".join(encoder().feed(ev) for ev in [RawFrame(b"data: x\n\n"), *stream(REASONING)])
    assert first == second


def test_client_body_parameters_appear_in_every_response_state() -> None:
    body = {"model": "gpt-test", "input": "hi", "store": False, "instructions": "Be brief."}
    enc = StreamEncoder(REQ, response_id=RID, created_at=CREATED, body=body)
    events = [data for _, data in split(b"".join(enc.feed(ev) for ev in stream(TEXT)))]
    states = [e["response"] for e in events if "response" in e]
    assert len(states) == 3
    assert all(
        (s["store"], s["instructions"], s["created_at"], s["id"]) == (False, "Be brief.", CREATED, RID)
        for s in states
    )


# -- decoding ----------------------------------------------------------------------------------------


def fixture_events(name: str) -> list[dict[str, Any]]:
    return [data for _, data in split((FIXTURES / name).read_bytes())]


def decode(events: list[dict[str, Any]]) -> list[StreamEvent]:
    decoder = StreamDecoder()
    out: list[StreamEvent] = []
    for event in events:
        out += decoder.feed(event)
    return out + decoder.finish()


def assert_grammar(events: list[StreamEvent]) -> None:
    """One block open at a time, numbered from 0 in order, then usage, finish and end."""
    open_block: int | None = None
    expected = 0
    for ev in events:
        if isinstance(ev, BlockStart):
            assert open_block is None and ev.index == expected
            open_block, expected = ev.index, expected + 1
        elif isinstance(ev, BlockStop):
            assert ev.index == open_block
            open_block = None
        elif hasattr(ev, "index"):
            assert ev.index == open_block
    assert open_block is None
    assert isinstance(events[0], MessageStart) and isinstance(events[-1], MessageEnd)


STREAM_FIXTURES = [
    "stream_text.txt",
    "stream_parallel_tool_calls.txt",
    "stream_reasoning.txt",
    "stream_incomplete.txt",
]


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_a_decoded_stream_folds_to_its_decoded_final_body(name: str) -> None:
    events = fixture_events(name)
    decoded = decode(events)
    assert_grammar(decoded)
    assert fold(decoded) == decode_response(events[-1]["response"])


@pytest.mark.parametrize("name", [*STREAM_FIXTURES, "stream_rate_limited.txt"])
def test_fixture_streams_are_valid_for_the_sdk(name: str) -> None:
    for event in fixture_events(name):
        validate_event(event)


def test_decodes_text_deltas_as_they_come() -> None:
    decoded = decode(fixture_events("stream_text.txt"))
    assert [ev.text for ev in decoded if isinstance(ev, TextDelta)] == [
        "Hello",
        "!",
        " How can",
        " I help",
        " you today?",
    ]
    start = decoded[0]
    assert isinstance(start, MessageStart)
    assert (start.model, start.created) == ("gpt-4.1-2025-04-14", 1758797000)


def test_decodes_parallel_calls_into_one_block_each() -> None:
    resp = fold(decode(fixture_events("stream_parallel_tool_calls.txt")))
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls()] == [
        ("call_kD3sJv0m2XbQ9pLr7TnYwE1a", "get_weather", '{"city":"Paris"}'),
        ("call_Zq8Hn4bT1yWc6RfA0sLpGu7e", "get_time", '{"city":"Tokyo"}'),
    ]
    assert resp.finish_reason is FinishReason.TOOL_CALLS
    assert resp.usage == Usage(input_tokens=96, output_tokens=41, cache_read_tokens=64)


def test_decodes_reasoning_with_its_signature() -> None:
    resp = fold(decode(fixture_events("stream_reasoning.txt")))
    thinking = resp.content[0]
    assert isinstance(thinking, ThinkingPart)
    assert thinking.signature == "openai:" + ENC
    assert (
        thinking.text.startswith("**Checking the arithmetic**")
        and "\n\n**Answering briefly**" in thinking.text
    )


def test_an_incomplete_stream_finishes_for_length() -> None:
    resp = fold(decode(fixture_events("stream_incomplete.txt")))
    assert resp.finish_reason is FinishReason.LENGTH


def test_an_error_event_raises_after_the_deltas_before_it() -> None:
    decoder = StreamDecoder()
    events = fixture_events("stream_rate_limited.txt")
    seen: list[StreamEvent] = []
    with pytest.raises(RateLimited, match="Rate limit reached"):
        for event in events:
            seen += decoder.feed(event)
    assert [ev.text for ev in seen if isinstance(ev, TextDelta)] == ["Partial"]


def test_an_error_event_with_a_nested_error_object_raises_its_message() -> None:
    with pytest.raises(StreamInterrupted, match="Foobar"):
        StreamDecoder().feed(
            {"type": "error", "sequence_number": 2, "error": {"code": "unknown", "message": "Foobar"}}
        )


def test_response_failed_raises() -> None:
    event = {
        "type": "response.failed",
        "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}},
    }
    with pytest.raises(StreamInterrupted, match="boom"):
        StreamDecoder().feed(event)


def test_a_stream_that_ends_before_its_final_response_broke_off() -> None:
    decoder = StreamDecoder()
    for event in fixture_events("stream_text.txt")[:-1]:
        decoder.feed(event)
    with pytest.raises(StreamInterrupted, match=r"before response\.completed"):
        decoder.finish()


def test_a_server_that_sends_whole_items_only_decodes_the_same() -> None:
    events = [
        e
        for e in fixture_events("stream_reasoning.txt")
        if e["type"] in ("response.created", "response.output_item.done", "response.completed")
    ]
    full = fixture_events("stream_reasoning.txt")
    assert fold(decode(events)) == fold(decode(full))


@pytest.mark.parametrize("name", SCENARIOS)
def test_our_own_stream_decodes_to_the_answer_it_encoded(name: str) -> None:
    resp = SCENARIOS[name]
    decoded = fold(decode(encode_events(stream(resp))))
    assert decoded.content == resp.content
    assert (decoded.finish_reason, decoded.usage) == (resp.finish_reason, resp.usage)
