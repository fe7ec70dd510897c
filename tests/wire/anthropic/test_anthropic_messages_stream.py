"""Anthropic Messages streams: recorded upstream SSE -> canonical events, and events -> client SSE."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from waypost.core.errors import Overloaded, RateLimited, StreamInterrupted
from waypost.core.events import (
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
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
from waypost.wire.anthropic.messages import StreamDecoder, StreamEncoder
from waypost.wire.sse import SSEParser

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "anthropic"
COMPLETE_STREAMS = [
    "stream_text.sse",
    "stream_tool_use.sse",
    "stream_thinking.sse",
    "stream_server_tool.sse",
    "stream_tool_input_in_start.sse",
    "stream_zero_arg_tool.sse",
]
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)


def sse_frames(raw: bytes, chunk: int = 0) -> list[tuple[str | None, dict[str, Any]]]:
    parser = SSEParser()
    events = []
    pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)] if chunk else [raw]
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.close()
    return [(e.event, json.loads(e.data)) for e in events]


def decode(raw: bytes, chunk: int = 0) -> list[StreamEvent]:
    decoder = StreamDecoder()
    out: list[StreamEvent] = []
    for event, data in sse_frames(raw, chunk):
        out += decoder.feed(event, data)
    out += decoder.finish()
    return out


def recorded(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def encode(events: Sequence[StreamEvent], model: str = "claude-sonnet-4-5", **kwargs: Any) -> bytes:
    encoder = StreamEncoder(model, **kwargs)
    return b"".join(encoder.feed(ev) for ev in events)


def sdk_accumulate(raw: bytes) -> SDKMessage:
    """Validate every frame strictly and fold the stream the way the official SDK does."""
    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    for event, data in sse_frames(raw):
        assert event == data["type"]
        parsed = STREAM_EVENT.validate_python(data, strict=True)
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=bufs)
    return SDKMessage.model_validate(snapshot.to_dict(), strict=True)


def openai_like_tool_stream() -> list[StreamEvent]:
    """The shape an OpenAI upstream decodes to: an empty text block, fragmented parallel calls,
    and Finish arriving before the final usage."""
    return [
        MessageStart(id="chatcmpl-42", model="gpt-4o"),
        BlockStart(0, "text"),
        TextDelta(0, ""),
        BlockStop(0),
        BlockStart(1, "tool_call", tool_call_id="call_A", tool_name="get_weather"),
        ToolArgsDelta(1, '{"ci'),
        ToolArgsDelta(1, 'ty": "Par'),
        ToolArgsDelta(1, 'is"}'),
        BlockStop(1),
        BlockStart(2, "tool_call", tool_call_id="call_B", tool_name="get_time"),
        BlockStop(2),
        Finish(FinishReason.TOOL_CALLS),
        UsageUpdate(Usage(input_tokens=120, output_tokens=30, cache_read_tokens=100)),
        MessageEnd(),
    ]


# -- decoding recorded streams --------------------------------------------------------------


def test_decode_text_stream() -> None:
    assert decode(recorded("stream_text.sse")) == [
        MessageStart(id="msg_01StreamText", model="claude-sonnet-4-5-20250929", usage=Usage(25, 1)),
        BlockStart(0, "text"),
        TextDelta(0, "Hello"),
        TextDelta(0, "! How can I help?"),
        BlockStop(0),
        UsageUpdate(Usage(input_tokens=25, output_tokens=15)),
        Finish(FinishReason.STOP),
        MessageEnd(),
    ]


def test_decode_is_independent_of_how_bytes_are_chunked() -> None:
    raw = recorded("stream_tool_use.sse")
    assert decode(raw, chunk=7) == decode(raw)


def test_decode_tool_use_fragments_concatenate_to_the_arguments() -> None:
    resp = fold(decode(recorded("stream_tool_use.sse")))
    assert resp.finish_reason is FinishReason.TOOL_CALLS
    assert resp.text() == "Okay, let's check the weather for both cities"
    calls = resp.tool_calls()
    assert [(c.id, c.name) for c in calls] == [
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
        ("toolu_01Ua2bNQp8sQ6mXy3dP2K7Zc", "get_weather"),
    ]
    assert [c.input() for c in calls] == [
        {"location": "San Francisco, CA", "unit": "fahrenheit"},
        {"location": "Paris"},
    ]


def test_decode_skips_empty_json_fragments() -> None:
    events = decode(recorded("stream_tool_use.sse"))
    assert all(ev.fragment for ev in events if isinstance(ev, ToolArgsDelta))


def test_decode_usage_includes_cache_reads_and_writes() -> None:
    resp = fold(decode(recorded("stream_tool_use.sse")))
    assert resp.usage == Usage(
        input_tokens=472 + 1024 + 30000, output_tokens=89, cache_read_tokens=30000, cache_write_tokens=1024
    )


def test_decode_message_start_usage_is_reported_at_once() -> None:
    start = decode(recorded("stream_tool_use.sse"))[0]
    assert isinstance(start, MessageStart)
    assert start.usage.input_tokens == 31496
    assert start.usage.cache_read_tokens == 30000


def test_decode_thinking_stream_with_signature_and_redacted_block() -> None:
    resp = fold(decode(recorded("stream_thinking.sse")))
    thinking, redacted, text = resp.content
    assert isinstance(thinking, ThinkingPart)
    assert thinking.text.startswith("Let me solve this step by step")
    assert thinking.text.endswith("453 = 400 + 50 + 3")
    assert thinking.signature == "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."
    assert redacted == ThinkingPart(
        redacted=True, data="EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"
    )
    assert text == TextPart("27 * 453 = 12,231")
    assert resp.usage.reasoning_tokens == 180


def test_decode_drops_server_tool_blocks_and_renumbers_the_rest() -> None:
    events = decode(recorded("stream_server_tool.sse"))
    starts = [ev for ev in events if isinstance(ev, BlockStart)]
    assert [(s.index, s.kind) for s in starts] == [(0, "text"), (1, "text")]
    resp = fold(events)
    assert resp.content == [
        TextPart("I'll check the current weather in New York City for you."),
        TextPart("It is sunny and 22°C in New York."),
    ]
    assert resp.usage.input_tokens == 10682


def test_decode_tool_input_given_whole_in_block_start() -> None:
    resp = fold(decode(recorded("stream_tool_input_in_start.sse")))
    assert resp.tool_calls() == [
        ToolCallPart("toolu_compat_1", "Bash", '{"command":"ls -la","description":"List files"}')
    ]


def test_decode_zero_argument_tool_folds_to_an_empty_object() -> None:
    resp = fold(decode(recorded("stream_zero_arg_tool.sse")))
    assert resp.tool_calls() == [ToolCallPart("toolu_01ZeroArgCall", "get_time", "{}")]


def test_decode_error_event_raises_overloaded() -> None:
    with pytest.raises(Overloaded) as info:
        decode(recorded("stream_error.sse"))
    assert info.value.message == "Overloaded"


@pytest.mark.parametrize(
    ("etype", "error"),
    [("rate_limit_error", RateLimited), ("api_error", StreamInterrupted), (None, StreamInterrupted)],
)
def test_decode_error_event_types(etype: str | None, error: type[Exception]) -> None:
    decoder = StreamDecoder()
    with pytest.raises(error):
        decoder.feed("error", {"type": "error", "error": {"type": etype, "message": "x"}})


def test_decode_stream_that_ends_early_is_interrupted() -> None:
    with pytest.raises(StreamInterrupted, match="upstream stream ended early"):
        decode(recorded("stream_truncated.sse"))


def test_decode_ignores_ping_and_unknown_events() -> None:
    decoder = StreamDecoder()
    assert decoder.feed("ping", {"type": "ping"}) == []
    decoder.feed("message_start", {"type": "message_start", "message": {"id": "m", "model": "x"}})
    assert decoder.feed("future_event", {"type": "future_event", "x": 1}) == []


def test_decode_synthesises_message_start_when_missing() -> None:
    decoder = StreamDecoder()
    events = decoder.feed(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    assert events == [MessageStart(id="", model=""), BlockStart(0, "text")]


def test_decode_odd_frames_never_crash() -> None:
    decoder = StreamDecoder()
    frames: list[dict[str, Any]] = [
        {"type": "message_start", "message": "nope"},
        {"type": "content_block_start", "index": "0", "content_block": {}},
        {"type": "content_block_start", "index": 0, "content_block": None},
        {"type": "content_block_delta", "index": 9, "delta": {"type": "text_delta", "text": "x"}},
        {"type": "content_block_delta", "index": 0, "delta": "text"},
        {"type": "content_block_stop"},
        {"type": "message_delta", "delta": None, "usage": {"output_tokens": "many"}},
    ]
    for frame in frames:
        decoder.feed(frame["type"], frame)
    assert decoder.feed("message_stop", {"type": "message_stop"})[-1] == MessageEnd()
    assert decoder.finish() == []


def test_decode_closes_a_block_left_open_at_message_stop() -> None:
    decoder = StreamDecoder()
    decoder.feed(None, {"type": "message_start", "message": {"id": "m", "model": "x"}})
    decoder.feed(
        None, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "hi"}}
    )
    events = decoder.feed(None, {"type": "message_stop"})
    assert events == [BlockStop(0), Finish(FinishReason.STOP), MessageEnd()]


# -- encoding for clients --------------------------------------------------------------------


def test_encoder_event_order_for_a_text_answer() -> None:
    resp = ChatResponse(
        id="msg_1", model="m", content=[TextPart("Hi there")], finish_reason=FinishReason.STOP
    )
    types = [event for event, _ in sse_frames(encode(response_events(resp)))]
    assert types == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


@pytest.mark.parametrize("name", COMPLETE_STREAMS)
def test_reencoded_recorded_streams_are_strictly_valid_and_fold_equal(name: str) -> None:
    events = decode(recorded(name))
    raw = encode(events, fold(events).model)
    sdk_accumulate(raw)
    assert fold(decode(raw)) == fold(events)


def test_encoder_tool_input_arrives_whole_through_json_fragments() -> None:
    message = sdk_accumulate(encode(openai_like_tool_stream()))
    tools = [b for b in message.content if b.type == "tool_use"]
    assert [(t.id, t.name, t.input) for t in tools] == [
        ("call_A", "get_weather", {"city": "Paris"}),
        ("call_B", "get_time", {}),
    ]


def test_encoder_never_sends_an_empty_text_block() -> None:
    frames = sse_frames(encode(openai_like_tool_stream()))
    starts = [d["content_block"] for e, d in frames if e == "content_block_start"]
    assert [b["type"] for b in starts] == ["tool_use", "tool_use"]
    assert [d["index"] for e, d in frames if e == "content_block_start"] == [0, 1]


def test_encoder_tool_block_starts_with_empty_input_and_zero_arg_call_gets_one_fragment() -> None:
    frames = sse_frames(encode(openai_like_tool_stream()))
    starts = [d for e, d in frames if e == "content_block_start"]
    assert all(s["content_block"]["input"] == {} for s in starts)
    fragments = [
        d["delta"]["partial_json"] for e, d in frames if e == "content_block_delta" and d["index"] == 1
    ]
    assert fragments == ["{}"]


def test_encoder_emits_one_message_delta_with_buffered_finish_and_usage() -> None:
    frames = sse_frames(encode(openai_like_tool_stream()))
    deltas = [d for e, d in frames if e == "message_delta"]
    assert deltas == [
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {
                "input_tokens": 20,
                "output_tokens": 30,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 0,
            },
        }
    ]
    assert frames[-1] == ("message_stop", {"type": "message_stop"})


def test_encoder_message_start_uses_upstream_usage_or_the_hint() -> None:
    with_usage = [MessageStart(id="msg_x", model="m", usage=Usage(input_tokens=50, cache_write_tokens=40))]
    start = sse_frames(encode(with_usage, input_tokens_hint=999))[0][1]
    assert start["message"]["usage"]["input_tokens"] == 10
    assert start["message"]["usage"]["cache_creation_input_tokens"] == 40
    start = sse_frames(encode([MessageStart(id="msg_x", model="m")], input_tokens_hint=999))[0][1]
    assert start["message"]["usage"]["input_tokens"] == 999


def test_encoder_uses_the_given_message_id_and_model() -> None:
    start = sse_frames(encode([MessageStart(id="chatcmpl-1", model="gpt")], "alias", message_id="msg_fixed"))
    assert start[0][1]["message"]["id"] == "msg_fixed"
    assert start[0][1]["message"]["model"] == "alias"


def test_encoder_derives_a_msg_id_from_the_upstream_id() -> None:
    start = sse_frames(encode([MessageStart(id="chatcmpl-1", model="gpt")]))
    assert start[0][1]["message"]["id"] == "msg_chatcmpl-1"


def test_encoder_uses_the_callers_fallback_id_when_the_upstream_gave_none() -> None:
    start = sse_frames(encode([MessageStart(id="", model="gpt")], fallback_id="feed01"))
    assert start[0][1]["message"]["id"] == "msg_feed01"
    start = sse_frames(encode([MessageStart(id="up-2", model="gpt")], fallback_id="feed01"))
    assert start[0][1]["message"]["id"] == "msg_up-2"


def test_encoder_synthesises_message_start_when_missing() -> None:
    events: list[StreamEvent] = [BlockStart(0, "text"), TextDelta(0, "x"), BlockStop(0), MessageEnd()]
    message = sdk_accumulate(encode(events))
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"


def test_encoder_reports_tool_use_when_upstream_said_stop_with_tool_calls() -> None:
    events = openai_like_tool_stream()
    events[-3] = Finish(FinishReason.STOP)
    assert sdk_accumulate(encode(events)).stop_reason == "tool_use"


def test_encoder_thinking_with_signature_and_redacted() -> None:
    events: list[StreamEvent] = [
        MessageStart(id="msg_t", model="m"),
        BlockStart(0, "thinking"),
        ThinkingDelta(0, "ponder"),
        SignatureDelta(0, "sig=="),
        BlockStop(0),
        BlockStart(1, "redacted_thinking", data="opaque"),
        BlockStop(1),
        BlockStart(2, "text"),
        TextDelta(2, "done"),
        BlockStop(2),
        Finish(FinishReason.STOP),
        MessageEnd(),
    ]
    message = sdk_accumulate(encode(events))
    assert [b.to_dict() for b in message.content] == [
        {"type": "thinking", "thinking": "ponder", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "done"},
    ]


def test_encoder_stop_sequence_is_carried() -> None:
    events: list[StreamEvent] = [
        MessageStart(id="msg_s", model="m"),
        BlockStart(0, "text"),
        TextDelta(0, "a"),
        BlockStop(0),
        Finish(FinishReason.STOP_SEQUENCE, "</answer>"),
        MessageEnd(),
    ]
    message = sdk_accumulate(encode(events))
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "</answer>")


def test_encoder_ignores_events_after_message_end() -> None:
    encoder = StreamEncoder("m")
    for ev in response_events(ChatResponse(id="msg_1", model="m", content=[TextPart("x")])):
        encoder.feed(ev)
    assert encoder.feed(BlockStart(1, "text")) == b""


def test_encoder_error_frame() -> None:
    encoder = StreamEncoder("m")
    encoder.feed(MessageStart(id="msg_e", model="m"))
    frame = encoder.error(Overloaded("Overloaded"))
    payload = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert frame == b"event: error\ndata: " + payload + b"\n\n"
    assert encoder.feed(MessageEnd()) == b""


def test_encoder_frames_are_event_and_compact_data_lines() -> None:
    raw = encode([MessageStart(id="msg_f", model="m")])
    assert raw.startswith(b"event: message_start\ndata: {")
    assert raw.endswith(b"}\n\n")
    payload = raw.split(b"data: ", 1)[1].rstrip()
    assert orjson.loads(payload)["type"] == "message_start"


def test_stream_and_non_stream_encodings_agree() -> None:
    from waypost.wire.anthropic.messages import encode_response

    resp = ChatResponse(
        id="msg_same",
        model="m",
        content=[ThinkingPart("t", signature="s"), TextPart("a"), ToolCallPart("toolu_1", "f", '{"x":1}')],
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=10, output_tokens=5, cache_read_tokens=4, cache_write_tokens=2),
    )
    streamed = sdk_accumulate(encode(response_events(resp), "m"))
    whole = SDKMessage.model_validate(encode_response(resp, "m"), strict=True)
    assert streamed.to_dict(exclude_none=True) == whole.to_dict(exclude_none=True)


def test_encoder_sanitises_tool_ids_and_fills_missing_ones() -> None:
    events: list[StreamEvent] = [
        MessageStart(id="gemini-resp-1", model="m"),
        BlockStart(0, "tool_call", tool_call_id="fc:1", tool_name="f"),
        BlockStop(0),
        BlockStart(1, "tool_call", tool_call_id=None, tool_name="g"),
        BlockStop(1),
        MessageEnd(),
    ]
    message = sdk_accumulate(encode(events))
    ids = [b.id for b in message.content if b.type == "tool_use"]
    assert ids[0] == "fc_1"
    assert ids[1] and ids[1] != ids[0]
