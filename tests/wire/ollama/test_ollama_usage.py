"""Ollama usage into canonical usage: the counters of the final ``/api/chat`` line (or of a whole
answer): ``prompt_eval_count`` (the whole prompt), ``prompt_eval_cached_count`` (the part read
from the KV cache, Ollama 0.33+) and ``eval_count`` (the answer, thinking included); and
``/api/embed``'s ``prompt_eval_count``."""

from __future__ import annotations

from typing import Any

from waypost.core.events import StreamEvent, fold
from waypost.core.types import Usage
from waypost.wire.ollama import StreamDecoder, decode_embed_response, decode_response, usage_from_ollama

UNCACHED = {"prompt_eval_count": 26, "eval_count": 12}
CACHED = {"prompt_eval_count": 900, "prompt_eval_cached_count": 850, "eval_count": 40}


def final(counters: dict[str, Any], content: str = "") -> dict[str, Any]:
    return {
        "model": "qwen3:8b",
        "created_at": "2025-06-01T12:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": "stop",
        "total_duration": 4_883_583_458,
        **counters,
    }


def decode_stream(counters: dict[str, Any]) -> list[StreamEvent]:
    decoder = StreamDecoder("resp-1")
    lines = [
        {
            "model": "qwen3:8b",
            "message": {"role": "assistant", "content": "", "thinking": "Hm."},
            "done": False,
        },
        {"model": "qwen3:8b", "message": {"role": "assistant", "content": "Done."}, "done": False},
        final(counters),
    ]
    return [ev for line in lines for ev in decoder.feed(line)]


def test_an_uncached_answer_reports_its_prompt_and_eval_counts() -> None:
    assert decode_response(final(UNCACHED, "Done."), "resp-1").usage == Usage(
        input_tokens=26, output_tokens=12
    )


def test_a_cached_answer_reports_the_prompt_read_from_the_kv_cache() -> None:
    usage = decode_response(final(CACHED, "Done."), "resp-1").usage
    assert usage == Usage(input_tokens=900, output_tokens=40, cache_read_tokens=850)


def test_an_uncached_stream_reports_the_final_lines_counters() -> None:
    assert fold(decode_stream(UNCACHED)).usage == Usage(input_tokens=26, output_tokens=12)


def test_a_cached_stream_reports_the_final_lines_cached_count() -> None:
    usage = fold(decode_stream(CACHED)).usage
    assert usage == Usage(input_tokens=900, output_tokens=40, cache_read_tokens=850)


def test_the_cached_part_never_exceeds_the_input() -> None:
    # Servers before 0.33 left prompt_eval_count out when the whole prompt was cached.
    usage = usage_from_ollama({"prompt_eval_cached_count": 30, "eval_count": 2})
    assert usage == Usage(input_tokens=30, output_tokens=2, cache_read_tokens=30)


def test_embeddings_report_the_prompt_count_as_input() -> None:
    body = {"model": "nomic-embed-text", "embeddings": [[0.1, 0.2]], "prompt_eval_count": 7}
    assert decode_embed_response(body, "nomic-embed-text", 1).usage == Usage(input_tokens=7)
