"""Bedrock Converse usage into canonical usage: ``TokenUsage`` (``inputTokens`` without the
cache, ``cacheReadInputTokens``, ``cacheWriteInputTokens`` and the ``cacheDetails`` breakdown of
writes by TTL) in a Converse body and in the ConverseStream ``metadata`` frame."""

from __future__ import annotations

from typing import Any

from tests.fakes.eventstream_encoder import event

from waypost.core.events import StreamEvent, UsageUpdate, fold
from waypost.core.types import Usage
from waypost.wire.bedrock.converse import StreamDecoder, decode_response, usage_from_bedrock
from waypost.wire.eventstream import EventStreamDecoder

MODEL = "anthropic.claude-sonnet-4-20250514-v1:0"

UNCACHED = {"inputTokens": 25, "outputTokens": 12, "totalTokens": 37}
# 4,000 tokens read from the cache, 1,500 written (1,000 of them for an hour), 40 uncached.
CACHED = {
    "inputTokens": 40,
    "outputTokens": 300,
    "totalTokens": 5840,
    "cacheReadInputTokens": 4000,
    "cacheWriteInputTokens": 1500,
    "cacheDetails": [{"ttl": "1h", "inputTokens": 1000}, {"ttl": "5m", "inputTokens": 500}],
}
CACHED_CANONICAL = Usage(
    input_tokens=5540,
    output_tokens=300,
    cache_read_tokens=4000,
    cache_write_tokens=1500,
    cache_write_1h_tokens=1000,
)


def body(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": "Done."}]}},
        "stopReason": "end_turn",
        "usage": usage,
        "metrics": {"latencyMs": 42},
    }


def stream(usage: dict[str, Any]) -> bytes:
    """A ConverseStream answer: usage arrives last, in the ``metadata`` frame."""
    return b"".join(
        [
            event("messageStart", {"role": "assistant"}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Done."}}),
            event("contentBlockStop", {"contentBlockIndex": 0}),
            event("messageStop", {"stopReason": "end_turn"}),
            event("metadata", {"usage": usage, "metrics": {"latencyMs": 42}}),
        ]
    )


def decode_stream(raw: bytes) -> list[StreamEvent]:
    messages = EventStreamDecoder()
    decoder = StreamDecoder(model=MODEL, response_id="req-1")
    out: list[StreamEvent] = []
    for message in messages.feed(raw):
        out += decoder.feed(message)
    return out + decoder.finish()


def test_an_uncached_body_reports_its_input_and_output() -> None:
    assert decode_response(body(UNCACHED), model=MODEL).usage == Usage(input_tokens=25, output_tokens=12)


def test_a_cached_body_adds_reads_and_writes_into_the_input_and_keeps_the_hour_long_writes() -> None:
    assert decode_response(body(CACHED), model=MODEL).usage == CACHED_CANONICAL


def test_an_uncached_stream_reports_the_metadata_frames_usage() -> None:
    events = decode_stream(stream(UNCACHED))
    assert [e for e in events if isinstance(e, UsageUpdate)] == [
        UsageUpdate(Usage(input_tokens=25, output_tokens=12))
    ]
    assert fold(events).usage == Usage(input_tokens=25, output_tokens=12)


def test_a_cached_stream_reports_the_metadata_frames_cache_and_its_breakdown() -> None:
    assert fold(decode_stream(stream(CACHED))).usage == CACHED_CANONICAL


def test_writes_at_the_default_duration_only_have_no_hour_long_part() -> None:
    usage = usage_from_bedrock(
        {
            "inputTokens": 3,
            "outputTokens": 1,
            "cacheWriteInputTokens": 900,
            "cacheDetails": [{"ttl": "5m", "inputTokens": 900}],
        }
    )
    assert usage == Usage(input_tokens=903, output_tokens=1, cache_write_tokens=900)


def test_a_breakdown_without_its_total_still_counts_the_writes() -> None:
    usage = usage_from_bedrock(
        {"inputTokens": 3, "outputTokens": 1, "cacheDetails": [{"ttl": "1h", "inputTokens": 600}]}
    )
    assert usage == Usage(
        input_tokens=603, output_tokens=1, cache_write_tokens=600, cache_write_1h_tokens=600
    )


def test_malformed_cache_details_are_ignored() -> None:
    usage = usage_from_bedrock(
        {
            "inputTokens": 3,
            "outputTokens": 1,
            "cacheDetails": [None, {"ttl": 5, "inputTokens": 9}, {"ttl": "1h", "inputTokens": "9"}],
        }
    )
    assert usage == Usage(input_tokens=3, output_tokens=1)
    assert usage_from_bedrock({"inputTokens": 3, "outputTokens": 1, "cacheDetails": {"ttl": "1h"}}) == Usage(
        input_tokens=3, output_tokens=1
    )
