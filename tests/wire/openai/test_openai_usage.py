"""OpenAI usage, both directions: ``usage`` (``prompt_tokens`` with the cached part
``prompt_tokens_details.cached_tokens`` inside it, ``completion_tokens`` with
``completion_tokens_details.reasoning_tokens`` inside it) of chat completions, legacy completions
and embeddings, in bodies and in the last chunk of a stream, into canonical usage; and canonical
usage back into the caller's usage object, strictly valid for the official SDK."""

from __future__ import annotations

import json
from typing import Any

from openai.types import Completion, CompletionUsage, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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
from waypost.core.types import ChatResponse, EmbeddingResponse, FinishReason, TextPart, Usage
from waypost.wire.openai import completions, embeddings
from waypost.wire.openai.chat import (
    StreamDecoder,
    StreamEncoder,
    decode_response,
    encode_response,
    usage_to_openai,
)
from waypost.wire.sse import SSEParser

UNCACHED = {
    "prompt_tokens": 25,
    "completion_tokens": 12,
    "total_tokens": 37,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}
# A 2,006-token prompt of which 1,920 were cached; 300 output tokens of which 256 were reasoning.
CACHED = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 256,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
CACHED_CANONICAL = Usage(input_tokens=2006, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=256)
HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "o4-mini"}


def chat_body(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "o4-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }


def chat_stream(usage: dict[str, Any]) -> list[dict[str, Any]]:
    """With ``stream_options.include_usage``: deltas with ``usage: null``, then a chunk with empty
    ``choices`` and the usage."""
    return [
        {
            **HEAD,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Done."}}],
            "usage": None,
        },
        {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
        {**HEAD, "choices": [], "usage": usage},
    ]


def decode_chat_stream(chunks: list[dict[str, Any]]) -> list[StreamEvent]:
    decoder = StreamDecoder()
    out: list[StreamEvent] = []
    for c in chunks:
        out += decoder.feed(c)
    return out + decoder.finish()


def completion_body(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": "Done.", "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": usage,
    }


def decode_completion_stream(usage: dict[str, Any]) -> list[StreamEvent]:
    head = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct"}
    decoder = completions.StreamDecoder()
    chunks = [
        {**head, "choices": [{"text": "Done.", "index": 0, "logprobs": None, "finish_reason": None}]},
        {**head, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]},
        {**head, "choices": [], "usage": usage},
    ]
    out: list[StreamEvent] = []
    for c in chunks:
        out += decoder.feed(c)
    return out + decoder.finish()


def translated_stream(usage: Usage) -> list[StreamEvent]:
    return [
        MessageStart(id="msg_1", model="claude-sonnet-4-5"),
        BlockStart(0, "text"),
        TextDelta(0, "Done."),
        BlockStop(0),
        Finish(FinishReason.STOP),
        UsageUpdate(usage),
        MessageEnd(),
    ]


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    parser = SSEParser()
    events = parser.feed(raw) + parser.close()
    return [json.loads(e.data) for e in events if e.data != "[DONE]"]


# -- upstream figures -> canonical ------------------------------------------------------------


def test_an_uncached_chat_body_reports_its_prompt_and_completion() -> None:
    assert decode_response(chat_body(UNCACHED)).usage == Usage(input_tokens=25, output_tokens=12)


def test_a_cached_chat_body_keeps_the_cached_prompt_and_the_reasoning_inside_the_totals() -> None:
    assert decode_response(chat_body(CACHED)).usage == CACHED_CANONICAL


def test_an_uncached_chat_stream_reports_the_usage_chunk() -> None:
    assert fold(decode_chat_stream(chat_stream(UNCACHED))).usage == Usage(input_tokens=25, output_tokens=12)


def test_a_cached_chat_stream_reports_the_cache_and_reasoning_of_the_usage_chunk() -> None:
    assert fold(decode_chat_stream(chat_stream(CACHED))).usage == CACHED_CANONICAL


def test_an_uncached_completion_body_reports_its_prompt_and_completion() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert completions.decode_response(completion_body(usage)).usage == Usage(input_tokens=5, output_tokens=7)


def test_a_cached_completion_body_reports_the_cached_prompt() -> None:
    usage = {
        "prompt_tokens": 900,
        "completion_tokens": 7,
        "total_tokens": 907,
        "prompt_tokens_details": {"cached_tokens": 768},
    }
    assert completions.decode_response(completion_body(usage)).usage == Usage(
        input_tokens=900, output_tokens=7, cache_read_tokens=768
    )


def test_completion_streams_report_the_usage_chunk_cached_or_not() -> None:
    plain = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    cached = {
        **plain,
        "prompt_tokens": 900,
        "total_tokens": 907,
        "prompt_tokens_details": {"cached_tokens": 768},
    }
    assert fold(decode_completion_stream(plain)).usage == Usage(input_tokens=5, output_tokens=7)
    assert fold(decode_completion_stream(cached)).usage == Usage(
        input_tokens=900, output_tokens=7, cache_read_tokens=768
    )


def test_embeddings_report_the_prompt_as_input() -> None:
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    assert embeddings.decode_response(body).usage == Usage(input_tokens=8)


def test_compatible_servers_cache_fields_are_read_too() -> None:
    deepseek = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "total_tokens": 105,
        "prompt_cache_hit_tokens": 64,
    }
    assert decode_response(chat_body(deepseek)).usage == Usage(
        input_tokens=100, output_tokens=5, cache_read_tokens=64
    )
    openrouter = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "total_tokens": 105,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 90},
    }
    assert decode_response(chat_body(openrouter)).usage == Usage(
        input_tokens=100, output_tokens=5, cache_write_tokens=90
    )


# -- canonical -> the caller's usage object ---------------------------------------------------


def test_the_caller_gets_cached_and_reasoning_tokens_inside_the_totals() -> None:
    usage = usage_to_openai(CACHED_CANONICAL)
    assert usage == {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 256},
    }
    CompletionUsage.model_validate(usage, strict=True)


def test_an_anthropic_answers_cache_reaches_an_openai_caller_as_prompt_details() -> None:
    # 40 uncached + 4,000 read + 1,500 written, 120 of the 300 output tokens thinking.
    usage = Usage(
        input_tokens=5540,
        output_tokens=300,
        cache_read_tokens=4000,
        cache_write_tokens=1500,
        cache_write_1h_tokens=1000,
        reasoning_tokens=120,
    )
    body = encode_response(
        ChatResponse(
            id="msg_1",
            model="claude",
            content=[TextPart("Done.")],
            finish_reason=FinishReason.STOP,
            usage=usage,
        ),
        "claude",
    )
    parsed = ChatCompletion.model_validate(body, strict=True).usage
    assert parsed is not None and parsed.prompt_tokens_details and parsed.completion_tokens_details
    assert (parsed.prompt_tokens, parsed.completion_tokens, parsed.total_tokens) == (5540, 300, 5840)
    assert (parsed.prompt_tokens_details.cached_tokens, parsed.prompt_tokens_details.cache_write_tokens) == (
        4000,
        1500,
    )
    assert parsed.completion_tokens_details.reasoning_tokens == 120


def test_an_uncached_answer_reports_zero_cached_and_reasoning_tokens() -> None:
    body = encode_response(
        ChatResponse(
            id="r",
            model="m",
            content=[TextPart("Done.")],
            finish_reason=FinishReason.STOP,
            usage=Usage(25, 12),
        ),
        "m",
    )
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_a_translated_stream_ends_with_the_usage_chunk_the_client_asked_for() -> None:
    encoder = StreamEncoder("claude", include_usage=True)
    raw = b"".join(encoder.feed(ev) for ev in translated_stream(CACHED_CANONICAL))
    chunks = [ChatCompletionChunk.model_validate(c, strict=True) for c in sse_chunks(raw)]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens_details is not None and last.usage.completion_tokens_details is not None
    assert (last.usage.prompt_tokens, last.usage.prompt_tokens_details.cached_tokens) == (2006, 1920)
    assert (last.usage.completion_tokens, last.usage.completion_tokens_details.reasoning_tokens) == (300, 256)


def test_a_legacy_completion_carries_the_cached_prompt_back() -> None:
    resp = ChatResponse(
        id="c",
        model="m",
        content=[TextPart("Done.")],
        finish_reason=FinishReason.STOP,
        usage=Usage(input_tokens=900, output_tokens=7, cache_read_tokens=768),
    )
    body = Completion.model_validate(completions.encode_response(resp, "m"), strict=True)
    assert body.usage is not None and body.usage.prompt_tokens_details is not None
    assert (body.usage.prompt_tokens, body.usage.prompt_tokens_details.cached_tokens) == (900, 768)
    encoder = completions.StreamEncoder("m", include_usage=True)
    raw = b"".join(encoder.feed(ev) for ev in translated_stream(resp.usage))
    assert sse_chunks(raw)[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 768}


def test_embeddings_carry_the_input_back_as_the_prompt() -> None:
    resp = EmbeddingResponse(model="e", vectors=[[0.5]], usage=Usage(input_tokens=8))
    body = CreateEmbeddingResponse.model_validate(embeddings.encode_response(resp, "e", "float"), strict=True)
    assert (body.usage.prompt_tokens, body.usage.total_tokens) == (8, 8)
