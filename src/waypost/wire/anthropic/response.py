"""Anthropic Messages responses and errors, both directions.

Upstream bodies are untrusted: a body we cannot use is an ``UpstreamError``, while odd or unknown
fields and block types (server tool blocks, citations) are skipped rather than fatal. A response
body is read as the stream that carries the same answer (``body_events``): the stream decoder
turns it into events, which are folded, so the two paths cannot disagree. Responses encoded for
clients validate strictly against the official SDK's ``Message`` model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from waypost.core.errors import GatewayError, UpstreamError
from waypost.core.events import StreamEvent, fold
from waypost.core.types import ChatResponse, TextPart, ThinkingPart, ToolCallPart
from waypost.wire.anthropic.mapping import (
    client_tool_id,
    error_body,
    error_from_body,
    message_id,
    stop_reason_for,
    tool_input_object,
    usage_to_anthropic,
)
from waypost.wire.anthropic.stream import StreamDecoder


def decode_response(body: Any) -> ChatResponse:
    """An upstream Messages response body -> canonical response."""
    if not isinstance(body, dict):
        raise UpstreamError("upstream response is not a JSON object", provider="anthropic")
    if body.get("type") == "error":
        raise error_from_body(body)
    if not isinstance(body.get("content"), list):
        raise UpstreamError("upstream response has no content list", provider="anthropic")
    decoder = StreamDecoder()
    events: list[StreamEvent] = []
    for name, data in body_events(body):
        events += decoder.feed(name, data)
    return fold(events)


def body_events(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The stream events (name and data) that carry the same answer as a response ``body``:
    each block whole in its ``content_block_start``, as compatible servers may send it."""
    usage = body.get("usage")
    message = {"id": body.get("id"), "model": body.get("model"), "usage": usage}
    yield "message_start", {"type": "message_start", "message": message}
    for index, block in enumerate(body["content"]):
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    delta = {"stop_reason": body.get("stop_reason"), "stop_sequence": body.get("stop_sequence")}
    yield "message_delta", {"type": "message_delta", "delta": delta, "usage": usage}
    yield "message_stop", {"type": "message_stop"}


def encode_response(resp: ChatResponse, model: str, *, fallback_id: str = "") -> dict[str, Any]:
    """Canonical response -> the Messages response body a client receives. ``fallback_id`` is
    the message id when the response has none (a fresh one from the caller)."""
    msg_id = message_id(resp.id, fallback_id)
    content: list[dict[str, Any]] = []
    for part in resp.content:
        if isinstance(part, TextPart):
            # Clients replay assistant content, and the API rejects empty text blocks.
            if part.text:
                content.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCallPart):
            content.append(
                {
                    "type": "tool_use",
                    "id": client_tool_id(part.id, msg_id, len(content)),
                    "name": part.name,
                    "input": tool_input_object(part.arguments),
                }
            )
        elif isinstance(part, ThinkingPart):
            if part.redacted:
                content.append({"type": "redacted_thinking", "data": part.data or ""})
            else:
                content.append({"type": "thinking", "thinking": part.text, "signature": part.signature or ""})
    has_tool_calls = any(block["type"] == "tool_use" for block in content)
    stop_reason = stop_reason_for(resp.finish_reason, has_tool_calls=has_tool_calls)
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": resp.stop_sequence if stop_reason == "stop_sequence" else None,
        "usage": usage_to_anthropic(resp.usage),
    }


def encode_error(err: GatewayError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body an Anthropic client expects for ``err``."""
    return err.anthropic_status, error_body(err)
