"""Vocabulary shared by the Ollama response and stream translators: error bodies, finish
reasons, usage, timestamps and tool calls.

Ollama gives neither a response id nor tool call ids; the caller supplies a response id (the
wire stays free of randomness) and tool call ids are derived from it and the call's position,
unless the upstream sent its own.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson

from waypost.core.types import FinishReason, ToolCallPart, Usage

_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


def error_text(value: Any) -> str:
    """The message of an ``{"error": ...}`` body, whatever its shape."""
    if isinstance(value, str):
        return value[:1000]
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return str(value["message"])[:1000]
    return "no error message"


def count(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)


def usage_from_ollama(obj: dict[str, Any]) -> Usage:
    """The counters of a final answer: ``prompt_eval_count`` (the whole prompt, the part read
    from the KV cache included), ``prompt_eval_cached_count`` (that part, from Ollama 0.33) and
    ``eval_count`` (thinking is inside it; Ollama reports no separate reasoning count)."""
    cached = count(obj, "prompt_eval_cached_count")
    return Usage(
        input_tokens=max(count(obj, "prompt_eval_count"), cached),
        output_tokens=count(obj, "eval_count"),
        cache_read_tokens=cached,
    )


def finish_from_ollama(done_reason: Any, *, has_tool_calls: bool) -> FinishReason:
    if done_reason == "length":
        return FinishReason.LENGTH
    # "stop", and "load"/"unload" for requests without messages: a natural end.
    return FinishReason.TOOL_CALLS if has_tool_calls else FinishReason.STOP


def created_from_ollama(value: Any) -> int:
    """Unix seconds of ``created_at`` (RFC 3339 with up to nanoseconds); 0 when unreadable."""
    if not isinstance(value, str):
        return 0
    match = _TIMESTAMP.match(value)
    if not match:
        return 0
    zone = match.group(2) or "+00:00"
    try:
        moment = datetime.fromisoformat(match.group(1) + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return 0
    return int(moment.timestamp())


def tool_call_id(response_id: str, position: int) -> str:
    """The id of the ``position``-th call (0-based) of a response whose upstream gave none."""
    return f"call_{response_id.removeprefix('ollama-')}_{position}"


def tool_call_part(call: Any, response_id: str, position: int) -> ToolCallPart | None:
    """One upstream ``tool_calls`` entry, or None when it names no function."""
    if not isinstance(call, dict):
        return None
    fn = call.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        return None
    args = fn.get("arguments")
    if args is None:
        text = "{}"
    elif isinstance(args, str):
        text = args or "{}"  # OpenAI-style text from compatible servers
    else:
        text = orjson.dumps(args).decode()
    upstream_id = call.get("id")
    call_id = (
        upstream_id if isinstance(upstream_id, str) and upstream_id else tool_call_id(response_id, position)
    )
    return ToolCallPart(id=call_id, name=fn["name"], arguments=text)


def message_fields(obj: dict[str, Any]) -> tuple[str, str, list[Any]]:
    """(thinking, content, tool_calls) of an answer's ``message``, empty when absent."""
    message = obj.get("message")
    if not isinstance(message, dict):
        return "", "", []
    thinking = message.get("thinking")
    content = message.get("content")
    calls = message.get("tool_calls")
    return (
        thinking if isinstance(thinking, str) else "",
        content if isinstance(content, str) else "",
        calls if isinstance(calls, list) else [],
    )
