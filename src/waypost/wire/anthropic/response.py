"""Anthropic Messages responses and errors, both directions.

Upstream bodies are untrusted: a body we cannot use is an ``UpstreamError``, while odd or unknown
fields and block types (server tool blocks, citations) are skipped rather than fatal. Responses
encoded for clients validate strictly against the official SDK's ``Message`` model.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from waypost.core.errors import GatewayError, UpstreamError
from waypost.core.types import ChatResponse, Part, TextPart, ThinkingPart, ToolCallPart
from waypost.wire.anthropic.mapping import (
    error_from_body,
    finish_from_stop_reason,
    safe_tool_id,
    stop_reason_for,
    usage_from_anthropic,
    usage_to_anthropic,
)
from waypost.wire.conventions import compact_json


def decode_response(body: Any) -> ChatResponse:
    """An upstream Messages response body -> canonical response."""
    if not isinstance(body, dict):
        raise UpstreamError("upstream response is not a JSON object", provider="anthropic")
    if body.get("type") == "error":
        raise error_from_body(body)
    content = body.get("content")
    if not isinstance(content, list):
        raise UpstreamError("upstream response has no content list", provider="anthropic")
    parts: list[Part] = []
    for block in content:
        part = _decode_block(block)
        if part is not None:
            parts.append(part)
    stop_sequence = body.get("stop_sequence")
    msg_id = body.get("id")
    model = body.get("model")
    return ChatResponse(
        id=msg_id if isinstance(msg_id, str) else "",
        model=model if isinstance(model, str) else "",
        content=parts,
        finish_reason=finish_from_stop_reason(body.get("stop_reason")),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
        usage=usage_from_anthropic(body.get("usage")),
    )


def _decode_block(block: Any) -> Part | None:
    if not isinstance(block, dict):
        return None
    btype = block.get("type")
    if btype == "text":
        text = block.get("text")
        return TextPart(text=text) if isinstance(text, str) else None
    if btype == "tool_use":
        tool_id, name, raw_input = block.get("id"), block.get("name"), block.get("input")
        return ToolCallPart(
            id=tool_id if isinstance(tool_id, str) else "",
            name=name if isinstance(name, str) else "",
            arguments="{}" if raw_input is None else compact_json(raw_input),
        )
    if btype == "thinking":
        text, signature = block.get("thinking"), block.get("signature")
        return ThinkingPart(
            text=text if isinstance(text, str) else "",
            signature=signature if isinstance(signature, str) and signature else None,
        )
    if btype == "redacted_thinking":
        data = block.get("data")
        return ThinkingPart(redacted=True, data=data if isinstance(data, str) else None)
    return None


def message_id(resp_id: str) -> str:
    """An Anthropic-looking ``msg_`` id derived from a canonical response id."""
    if resp_id.startswith("msg_"):
        return resp_id
    if not resp_id:
        # Unique, because ids of tool calls without one are derived from it.
        return "msg_" + uuid.uuid4().hex[:24]
    return "msg_" + resp_id


def tool_input_object(arguments: str) -> dict[str, Any]:
    """Tool arguments as the object clients expect; text that is not a JSON object gives ``{}``."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def client_tool_id(tool_id: str, msg_id: str, index: int) -> str:
    """A tool id the client can send back to any Anthropic upstream unchanged.

    Ids are sanitised here already (rather than only on the way upstream) so the client's history
    holds the same id everywhere; some upstreams (Gemini) give calls no id at all."""
    if tool_id:
        return safe_tool_id(tool_id)
    return safe_tool_id(f"toolu_{msg_id.removeprefix('msg_')}_{index}")


def encode_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    """Canonical response -> the Messages response body a client receives."""
    msg_id = message_id(resp.id)
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


def error_body(err: GatewayError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": err.anthropic_type, "message": err.message}}


def encode_error(err: GatewayError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body an Anthropic client expects for ``err``."""
    return err.anthropic_status, error_body(err)
