"""Recorded Gemini SSE streams -> canonical events, fed through the same SSE parser the provider uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from waypost.core.errors import Overloaded, RateLimited, StreamInterrupted, UpstreamError
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
)
from waypost.core.types import FinishReason, TextPart, ThinkingPart, Usage
from waypost.wire.gemini import StreamDecoder, decode_response
from waypost.wire.sse import SSEParser

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gemini"
FALLBACK_ID = "gemini-fresh0001"  # what the provider passes: a fresh id per answer
COMPLETE = ["stream_text.sse", "stream_thinking_tool.sse", "stream_signature_last.sse"]


def chunks(raw: bytes, size: int = 0) -> list[Any]:
    parser = SSEParser()
    out: list[Any] = []
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)] if size else [raw]
    for piece in pieces:
        frames, _ = parser.feed_frames(piece)
        out += [orjson.loads(data) for _, data in frames]
    return out


def decode(name: str, size: int = 0) -> list[StreamEvent]:
    decoder = StreamDecoder(FALLBACK_ID)
    events: list[StreamEvent] = []
    for chunk in chunks((FIXTURES / name).read_bytes(), size):
        events += decoder.feed(chunk)
    return events + decoder.finish()


def assert_well_formed(events: list[StreamEvent]) -> None:
    """MessageStart first; blocks numbered from 0, never interleaved; Finish then MessageEnd last."""
    assert isinstance(events[0], MessageStart)
    assert isinstance(events[-2], Finish) and isinstance(events[-1], MessageEnd)
    open_index: int | None = None
    next_index = 0
    for ev in events[1:-2]:
        if isinstance(ev, BlockStart):
            assert open_index is None and ev.index == next_index
            open_index, next_index = ev.index, next_index + 1
        elif isinstance(ev, BlockStop):
            assert ev.index == open_index
            open_index = None
        elif isinstance(ev, TextDelta | ThinkingDelta | SignatureDelta | ToolArgsDelta):
            assert ev.index == open_index
    assert open_index is None


@pytest.mark.parametrize("name", COMPLETE)
@pytest.mark.parametrize("size", [0, 7, 64])
def test_complete_streams_are_well_formed_however_they_are_split(name: str, size: int) -> None:
    assert_well_formed(decode(name, size))


def test_text_deltas_arrive_as_they_come() -> None:
    events = decode("stream_text.sse")
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "The",
        " sky is blue because air scatters",
        " short blue light more than red.",
    ]
    assert events[0] == MessageStart(
        id="9WMVaJ3kKtPWz7IPx9yJ2Ac", model="gemini-2.5-flash", usage=Usage(input_tokens=9)
    )


def test_usage_and_finish_come_at_the_end() -> None:
    events = decode("stream_text.sse")
    assert events[-3:] == [
        UsageUpdate(Usage(input_tokens=9, output_tokens=14 + 25, reasoning_tokens=25)),
        Finish(FinishReason.STOP),
        MessageEnd(),
    ]


def test_thoughts_then_a_whole_function_call_with_its_signature_first() -> None:
    events = decode("stream_thinking_tool.sse")
    kinds = [(type(e).__name__, getattr(e, "kind", None)) for e in events]
    assert kinds == [
        ("MessageStart", None),
        ("BlockStart", "thinking"),
        ("ThinkingDelta", None),
        ("ThinkingDelta", None),
        ("BlockStop", None),
        ("BlockStart", "thinking"),
        ("SignatureDelta", None),
        ("BlockStop", None),
        ("BlockStart", "tool_call"),
        ("ToolArgsDelta", None),
        ("BlockStop", None),
        ("UsageUpdate", None),
        ("Finish", None),
        ("MessageEnd", None),
    ]
    resp = fold(events)
    assert resp.finish_reason == FinishReason.TOOL_CALLS
    call = resp.tool_calls()[0]
    assert (call.name, call.input()) == ("get_weather", {"city": "Paris"})
    assert call.id == "call_gemini_lmQVaN2bC_nWz7IP8OyZkA0_0"
    assert resp.content[1] == ThinkingPart(
        "", "gemini:call0:Cs8BAVSoXO7k1m2Qz9pWn0RkL3cYfUq8T1vB6hJ4eG2aD5sN0yX7w=="
    )


def test_a_signature_on_an_empty_last_part_follows_the_text() -> None:
    resp = fold(decode("stream_signature_last.sse"))
    assert resp.content == [
        TextPart("Sure."),
        ThinkingPart("", "gemini:text:EqoBCqcBAXLI2nwN3k5vR8tY1mQ0pZ6xW2cB9hJ4eF7aD0sL3yU="),
    ]


def test_a_stream_folds_to_what_the_same_answer_unstreamed_decodes_to() -> None:
    parts = [
        p
        for c in chunks((FIXTURES / "stream_text.sse").read_bytes())
        for p in c["candidates"][0]["content"]["parts"]
    ]
    last = chunks((FIXTURES / "stream_text.sse").read_bytes())[-1]
    whole = {**last, "candidates": [{**last["candidates"][0], "content": {"parts": parts, "role": "model"}}]}
    streamed = fold(decode("stream_text.sse"))
    unstreamed = decode_response(whole, FALLBACK_ID)
    assert (streamed.text(), streamed.usage, streamed.finish_reason) == (
        unstreamed.text(),
        unstreamed.usage,
        unstreamed.finish_reason,
    )


def test_a_stream_that_ends_without_a_finish_reason_was_interrupted() -> None:
    decoder = StreamDecoder(FALLBACK_ID)
    for chunk in chunks((FIXTURES / "stream_truncated.sse").read_bytes()):
        decoder.feed(chunk)
    with pytest.raises(StreamInterrupted, match="without a finish reason"):
        decoder.finish()


def test_an_error_object_mid_stream_raises_after_what_came_before() -> None:
    decoder = StreamDecoder(FALLBACK_ID)
    first, error = chunks((FIXTURES / "stream_error.sse").read_bytes())
    assert any(isinstance(e, TextDelta) for e in decoder.feed(first))
    with pytest.raises(Overloaded, match="overloaded"):
        decoder.feed(error)


@pytest.mark.parametrize(
    ("status", "cls"), [("RESOURCE_EXHAUSTED", RateLimited), ("INTERNAL", StreamInterrupted)]
)
def test_mid_stream_errors_keep_their_kind(status: str, cls: type[Exception]) -> None:
    with pytest.raises(cls):
        StreamDecoder(FALLBACK_ID).feed({"error": {"code": 500, "message": "x", "status": status}})


def test_a_chunk_that_is_not_an_object_interrupts_the_stream() -> None:
    with pytest.raises(StreamInterrupted):
        StreamDecoder(FALLBACK_ID).feed(["not", "a", "chunk"])


def test_a_failed_answer_raises_before_any_event_so_it_can_be_retried() -> None:
    decoder = StreamDecoder(FALLBACK_ID)
    chunk = {"candidates": [{"content": {"parts": []}, "finishReason": "MALFORMED_FUNCTION_CALL"}]}
    assert decoder.feed(chunk) == []
    with pytest.raises(UpstreamError, match="MALFORMED_FUNCTION_CALL"):
        decoder.finish()


def test_a_failure_finish_after_content_reads_as_a_stop() -> None:
    decoder = StreamDecoder(FALLBACK_ID)
    events = decoder.feed(
        {"candidates": [{"content": {"parts": [{"text": "Partly"}]}, "finishReason": "OTHER"}]}
    )
    events += decoder.finish()
    assert fold(events).finish_reason == FinishReason.STOP


def test_a_thought_signature_seals_its_block() -> None:
    decoder = StreamDecoder(FALLBACK_ID)
    events = decoder.feed(
        {
            "candidates": [
                {
                    "content": {
                        "parts": [
                            {"text": "first", "thought": True, "thoughtSignature": "QUJD"},
                            {"text": "second", "thought": True},
                        ]
                    },
                    "finishReason": "STOP",
                }
            ]
        }
    )
    resp = fold(events + decoder.finish())
    assert resp.content == [ThinkingPart("first", "gemini:thought:QUJD"), ThinkingPart("second")]
