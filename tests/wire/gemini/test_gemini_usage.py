"""Gemini usage into canonical usage: ``usageMetadata`` (``promptTokenCount`` with the cached part
``cachedContentTokenCount`` inside it, ``toolUsePromptTokenCount`` beside it, ``candidatesTokenCount``
and ``thoughtsTokenCount`` apart from it) in a ``generateContent`` body and on the chunks of a
``streamGenerateContent`` stream, where each chunk's figures are the totals so far."""

from __future__ import annotations

from typing import Any

from waypost.core.events import StreamEvent, fold
from waypost.core.types import Usage
from waypost.wire.gemini import StreamDecoder, decode_response, usage_from_gemini

UNCACHED = {"promptTokenCount": 25, "candidatesTokenCount": 12, "totalTokenCount": 37}
# A 5,540-token prompt of which 4,000 came from the context cache; 180 answer tokens after 120 of
# thinking (billed as output).
CACHED = {
    "promptTokenCount": 5540,
    "cachedContentTokenCount": 4000,
    "candidatesTokenCount": 180,
    "thoughtsTokenCount": 120,
    "totalTokenCount": 5840,
}
CACHED_CANONICAL = Usage(input_tokens=5540, output_tokens=300, cache_read_tokens=4000, reasoning_tokens=120)


def chunk(text: str, usage: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}


def decode_stream(chunks: list[dict[str, Any]]) -> list[StreamEvent]:
    decoder = StreamDecoder("resp-1")
    out: list[StreamEvent] = []
    for c in chunks:
        out += decoder.feed(c)
    return out + decoder.finish()


def test_an_uncached_body_reports_its_prompt_and_candidates() -> None:
    usage = decode_response(chunk("Done.", UNCACHED, "STOP"), "resp-1").usage
    assert usage == Usage(input_tokens=25, output_tokens=12)


def test_a_cached_body_keeps_the_cached_part_inside_the_input_and_thoughts_inside_the_output() -> None:
    assert decode_response(chunk("Done.", CACHED, "STOP"), "resp-1").usage == CACHED_CANONICAL


def test_an_uncached_stream_reports_the_last_chunks_totals() -> None:
    chunks = [
        chunk("Do", {"promptTokenCount": 25, "totalTokenCount": 25}),
        chunk("ne.", UNCACHED, "STOP"),
    ]
    assert fold(decode_stream(chunks)).usage == Usage(input_tokens=25, output_tokens=12)


def test_a_cached_stream_reports_the_cache_and_the_thoughts_of_its_last_chunk() -> None:
    early = {"promptTokenCount": 5540, "cachedContentTokenCount": 4000, "thoughtsTokenCount": 120}
    chunks = [chunk("Do", early), chunk("ne.", CACHED, "STOP")]
    events = decode_stream(chunks)
    assert fold(events).usage == CACHED_CANONICAL


def test_tool_use_prompt_tokens_count_as_input() -> None:
    usage = usage_from_gemini(
        {
            "promptTokenCount": 100,
            "toolUsePromptTokenCount": 40,
            "candidatesTokenCount": 5,
            "totalTokenCount": 145,
        }
    )
    assert usage == Usage(input_tokens=140, output_tokens=5)


def test_the_cached_part_never_exceeds_the_input() -> None:
    usage = usage_from_gemini({"cachedContentTokenCount": 64, "candidatesTokenCount": 1})
    assert usage == Usage(input_tokens=64, output_tokens=1, cache_read_tokens=64)
