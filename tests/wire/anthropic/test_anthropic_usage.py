"""Anthropic usage, both directions: the Messages API's own figures (``input_tokens`` without the
cache, ``cache_read_input_tokens``, ``cache_creation_input_tokens`` and its ``cache_creation``
breakdown by duration, ``output_tokens_details.thinking_tokens``) in bodies and in streams, into
canonical usage; and canonical usage back into the caller's usage object, strictly valid for the
official SDK."""

from __future__ import annotations

import json
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from waypost.core.events import (
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    StreamEvent,
    TextDelta,
    UsageUpdate,
    fold,
)
from waypost.core.types import ChatResponse, FinishReason, TextPart, Usage
from waypost.wire.anthropic.mapping import usage_from_anthropic
from waypost.wire.anthropic.messages import (
    StreamDecoder,
    StreamEncoder,
    decode_response,
    encode_response,
    usage_to_anthropic,
)
from waypost.wire.sse import SSEParser

STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)

UNCACHED = {
    "input_tokens": 25,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 12,
    "service_tier": "standard",
}
# A prompt that read 4,000 tokens from the cache and wrote 1,500 (1,000 of them for an hour),
# answered with 300 tokens of which 120 were thinking.
CACHED = {
    "input_tokens": 40,
    "cache_creation_input_tokens": 1500,
    "cache_read_input_tokens": 4000,
    "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1000},
    "output_tokens": 300,
    "output_tokens_details": {"thinking_tokens": 120},
    "service_tier": "standard",
}
CACHED_CANONICAL = Usage(
    input_tokens=40 + 4000 + 1500,
    output_tokens=300,
    cache_read_tokens=4000,
    cache_write_tokens=1500,
    cache_write_1h_tokens=1000,
    reasoning_tokens=120,
)


def body(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_01Usage",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Done."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def stream_of(start_usage: dict[str, Any], delta_usage: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A text answer's events as the Messages API streams them."""
    message = {**body(start_usage), "content": [], "stop_reason": None}
    return [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Done."}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": delta_usage,
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def decode_stream(frames: list[tuple[str, dict[str, Any]]]) -> list[StreamEvent]:
    decoder = StreamDecoder()
    out: list[StreamEvent] = []
    for event, data in frames:
        out += decoder.feed(event, data)
    return out + decoder.finish()


def sse(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    parser = SSEParser()
    events = parser.feed(raw) + parser.close()
    return [(e.event, json.loads(e.data)) for e in events]


def sdk_accumulate(raw: bytes) -> SDKMessage:
    """Validate every frame strictly and fold the stream the way the official SDK does."""
    snapshot: Any = None
    for _event, data in sse(raw):
        parsed = STREAM_EVENT.validate_python(data, strict=True)
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs={})
    return SDKMessage.model_validate(snapshot.to_dict(), strict=True)


def translated_stream(usage: Usage) -> list[StreamEvent]:
    """What another provider's stream decodes to: usage only at the end."""
    return [
        MessageStart(id="chatcmpl-1", model="gpt-4o"),
        BlockStart(0, "text"),
        TextDelta(0, "Done."),
        BlockStop(0),
        Finish(FinishReason.STOP),
        UsageUpdate(usage),
        MessageEnd(),
    ]


# -- upstream figures -> canonical ------------------------------------------------------------


def test_an_uncached_body_reports_its_input_and_output() -> None:
    assert decode_response(body(UNCACHED)).usage == Usage(input_tokens=25, output_tokens=12)


def test_a_cached_body_adds_reads_and_writes_into_the_input_and_keeps_the_hour_long_writes() -> None:
    assert decode_response(body(CACHED)).usage == CACHED_CANONICAL


def test_an_uncached_stream_reports_the_final_output_count() -> None:
    start = {**UNCACHED, "output_tokens": 1}
    usage = fold(decode_stream(stream_of(start, {"output_tokens": 12}))).usage
    assert usage == Usage(input_tokens=25, output_tokens=12)


def test_a_cached_stream_keeps_the_breakdown_of_message_start_under_the_totals_of_message_delta() -> None:
    start = {k: v for k, v in CACHED.items() if k != "output_tokens_details"} | {"output_tokens": 1}
    # message_delta repeats the cumulative input and cache totals, without the breakdown.
    delta = {
        "input_tokens": 40,
        "cache_creation_input_tokens": 1500,
        "cache_read_input_tokens": 4000,
        "output_tokens": 300,
        "output_tokens_details": {"thinking_tokens": 120},
    }
    events = decode_stream(stream_of(start, delta))
    assert isinstance(events[0], MessageStart)
    assert events[0].usage.cache_write_1h_tokens == 1000 and events[0].usage.input_tokens == 5540
    assert fold(events).usage == CACHED_CANONICAL


def test_a_breakdown_without_its_total_still_counts_the_writes() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 10,
            "output_tokens": 2,
            "cache_creation": {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 70},
        }
    )
    assert usage == Usage(input_tokens=110, output_tokens=2, cache_write_tokens=100, cache_write_1h_tokens=70)


def test_counts_that_are_not_numbers_count_as_zero() -> None:
    raw = {
        "input_tokens": 5,
        "output_tokens": 1,
        "cache_creation": {"ephemeral_5m_input_tokens": "x", "ephemeral_1h_input_tokens": -4},
        "output_tokens_details": {"thinking_tokens": None},
    }
    assert usage_from_anthropic(raw) == Usage(input_tokens=5, output_tokens=1)


# -- canonical -> the caller's usage object ---------------------------------------------------


def test_the_caller_gets_the_cache_and_its_breakdown_back_as_the_api_sends_them() -> None:
    assert usage_to_anthropic(CACHED_CANONICAL) == {
        "input_tokens": 40,
        "output_tokens": 300,
        "cache_creation_input_tokens": 1500,
        "cache_read_input_tokens": 4000,
        "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1000},
        "output_tokens_details": {"thinking_tokens": 120},
    }


def test_an_uncached_answer_carries_a_zero_breakdown() -> None:
    assert usage_to_anthropic(Usage(input_tokens=25, output_tokens=12)) == {
        "input_tokens": 25,
        "output_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    }


def test_a_body_round_trips_its_usage_and_validates_strictly() -> None:
    encoded = encode_response(decode_response(body(CACHED)), "claude-sonnet-4-5")
    message = SDKMessage.model_validate(encoded, strict=True)
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        40,
        4000,
        1500,
    )
    assert usage.cache_creation is not None
    assert (
        usage.cache_creation.ephemeral_5m_input_tokens,
        usage.cache_creation.ephemeral_1h_input_tokens,
    ) == (
        500,
        1000,
    )
    assert usage.output_tokens_details is not None and usage.output_tokens_details.thinking_tokens == 120


def test_a_body_from_another_provider_splits_its_cache_out_of_the_input() -> None:
    resp = ChatResponse(
        id="r1",
        model="gpt-4o",
        content=[TextPart("Done.")],
        finish_reason=FinishReason.STOP,
        usage=Usage(input_tokens=2006, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=256),
    )
    usage = SDKMessage.model_validate(encode_response(resp, "gpt-4o"), strict=True).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        86,
        1920,
        0,
    )
    assert usage.output_tokens_details is not None and usage.output_tokens_details.thinking_tokens == 256


def test_a_translated_stream_with_cache_writes_ends_with_their_breakdown() -> None:
    usage = Usage(
        input_tokens=5540,
        output_tokens=300,
        cache_read_tokens=4000,
        cache_write_tokens=1500,
        cache_write_1h_tokens=1000,
    )
    encoder = StreamEncoder("claude-sonnet-4-5", fallback_id="x")
    raw = b"".join(encoder.feed(ev) for ev in translated_stream(usage))
    delta = next(data for event, data in sse(raw) if event == "message_delta")
    assert delta["usage"]["cache_creation"] == {
        "ephemeral_5m_input_tokens": 500,
        "ephemeral_1h_input_tokens": 1000,
    }
    final = sdk_accumulate(raw).usage
    assert (final.input_tokens, final.cache_read_input_tokens, final.cache_creation_input_tokens) == (
        40,
        4000,
        1500,
    )
    assert final.output_tokens == 300


def test_a_translated_stream_without_cache_writes_ends_with_the_totals_only() -> None:
    encoder = StreamEncoder("claude-sonnet-4-5", fallback_id="x")
    raw = b"".join(encoder.feed(ev) for ev in translated_stream(Usage(input_tokens=25, output_tokens=12)))
    delta = next(data for event, data in sse(raw) if event == "message_delta")
    assert delta["usage"] == {
        "input_tokens": 25,
        "output_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    final = sdk_accumulate(raw).usage
    assert (final.input_tokens, final.output_tokens) == (25, 12)


def test_a_cached_anthropic_stream_reencoded_starts_with_the_breakdown() -> None:
    start = {k: v for k, v in CACHED.items() if k != "output_tokens_details"} | {"output_tokens": 1}
    events = decode_stream(
        stream_of(start, {"output_tokens": 300, "output_tokens_details": {"thinking_tokens": 120}})
    )
    encoder = StreamEncoder("claude-sonnet-4-5", fallback_id="x")
    raw = b"".join(encoder.feed(ev) for ev in events)
    first = sse(raw)[0][1]["message"]["usage"]
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1000}
    assert (first["input_tokens"], first["cache_read_input_tokens"]) == (40, 4000)
    final = sdk_accumulate(raw).usage
    assert final.cache_creation is not None and final.cache_creation.ephemeral_1h_input_tokens == 1000
    assert final.output_tokens_details is not None and final.output_tokens_details.thinking_tokens == 120
