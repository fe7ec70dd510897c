"""The mock upstream's OpenAI Responses API answers (``POST …/responses``), built once per model.

The same text as the chat answers (STREAM_CHUNKS words) and the same usage, so a Responses cell
and a chat cell move the same content: a Response object, or the typed event stream a real server
sends (created, in_progress, the message item and its text part opened, one
``response.output_text.delta`` per word, everything closed, then ``response.completed``).
"""

from __future__ import annotations

from typing import Any

import orjson

RESPONSE_ID = "resp_bench"
MESSAGE_ID = "msg_bench"


def _response(
    model: str, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _message(text: str) -> dict[str, Any]:
    return {
        "id": MESSAGE_ID,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _usage(prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + output_tokens,
    }


def response_body(model: str, words: int, prompt_tokens: int) -> bytes:
    """The whole non-streamed Response object."""
    message = _message("word " * words)
    return orjson.dumps(_response(model, "completed", [message], _usage(prompt_tokens, words)))


def stream_events(model: str, words: int, prompt_tokens: int) -> list[bytes]:
    """The SSE frames of a streamed Response, one delta per word; each carries its sequence_number."""
    text = "word " * words
    opened = _response(model, "in_progress", [], None)
    where = {"item_id": MESSAGE_ID, "output_index": 0, "content_index": 0}
    empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    message = _message(text)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": opened},
        {"type": "response.in_progress", "response": opened},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**message, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **where, "part": empty_part},
    ]
    events += [{"type": "response.output_text.delta", **where, "delta": "word ", "logprobs": []}] * words
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": message["content"][0]},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {
            "type": "response.completed",
            "response": _response(model, "completed", [message], _usage(prompt_tokens, words)),
        },
    ]
    return [
        b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps({**e, "sequence_number": n}))
        for n, e in enumerate(events)
    ]
