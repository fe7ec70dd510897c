"""Ollama ``/api/chat`` answers and ``/api/embed`` bodies -> canonical objects, plus the
mappings the stream decoder shares (finish reasons, usage, tool calls, timestamps).

Upstream bodies are untrusted: missing or oddly typed fields degrade to defaults, never crash.
Ollama gives neither a response id nor tool call ids; the caller supplies a response id (the
wire stays free of randomness) and tool call ids are derived from it and the call's position,
unless the upstream sent its own.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson

from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.types import (
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
)

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
    """``prompt_eval_count`` / ``eval_count`` of a final answer (thinking is inside eval_count)."""
    return Usage(input_tokens=count(obj, "prompt_eval_count"), output_tokens=count(obj, "eval_count"))


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


def decode_response(obj: Any, response_id: str) -> ChatResponse:
    """A non-streamed ``/api/chat`` answer."""
    if not isinstance(obj, dict):
        raise UpstreamError("ollama upstream returned a body that is not a JSON object", provider="ollama")
    if obj.get("error") is not None:
        raise UpstreamError(f"ollama upstream error: {error_text(obj['error'])}", provider="ollama")
    thinking, content, calls = message_fields(obj)
    parts: list[Part] = []
    if thinking:
        parts.append(ThinkingPart(text=thinking))
    if content:
        parts.append(TextPart(text=content))
    made = 0
    for call in calls:
        part = tool_call_part(call, response_id, made)
        if part is not None:
            parts.append(part)
            made += 1
    model = obj.get("model")
    return ChatResponse(
        id=response_id,
        model=model if isinstance(model, str) else "",
        content=parts,
        finish_reason=finish_from_ollama(obj.get("done_reason"), has_tool_calls=made > 0),
        usage=usage_from_ollama(obj),
        created=created_from_ollama(obj.get("created_at")),
    )


# -- embeddings ----------------------------------------------------------------------------------


def encode_embed_request(req: EmbeddingRequest, model: str) -> dict[str, Any]:
    """A body for ``POST /api/embed``. What cannot be carried is named in ``req.notes``."""
    if req.token_inputs is not None:
        raise BadRequest("Ollama embeddings take text input, not token arrays.", param="input")
    body: dict[str, Any] = {"model": model, "input": list(req.inputs)}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    dropped = []
    if req.input_type is not None:
        dropped.append("input_type dropped: Ollama embeddings take no retrieval hint")
    if req.user is not None:
        dropped.append("user dropped: Ollama has no end-user field")
    req.notes.extend(n for n in dropped if n not in req.notes)
    return body


def decode_embed_response(obj: Any, model: str, expected: int) -> EmbeddingResponse:
    """An ``/api/embed`` answer with ``expected`` vectors, validated (the caller trusts it)."""
    if not isinstance(obj, dict):
        raise UpstreamError(
            "ollama upstream returned an embedding body that is not an object", provider="ollama"
        )
    if obj.get("error") is not None:
        raise UpstreamError(f"ollama upstream error: {error_text(obj['error'])}", provider="ollama")
    raw = obj.get("embeddings")
    if not isinstance(raw, list) or len(raw) != expected:
        raise UpstreamError(
            f"ollama upstream returned {len(raw) if isinstance(raw, list) else 'no'} embeddings "
            f"for {expected} inputs",
            provider="ollama",
        )
    vectors: list[list[float]] = []
    for vector in raw:
        if not isinstance(vector, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in vector
        ):
            raise UpstreamError(
                "ollama upstream returned an embedding that is not a list of numbers", provider="ollama"
            )
        vectors.append([float(x) for x in vector])
    name = obj.get("model")
    return EmbeddingResponse(
        model=name if isinstance(name, str) and name else model,
        vectors=vectors,
        usage=Usage(input_tokens=count(obj, "prompt_eval_count")),
    )
