"""Bedrock Converse responses -> canonical responses.

Upstream bodies are untrusted: a body without ``output.message.content`` is an ``UpstreamError``;
unknown or odd blocks (citations' metadata, images, guard content) are skipped, not fatal.
Converse responses carry no id: the provider passes the request id Bedrock put in a header.
"""

from __future__ import annotations

from typing import Any

from waypost.core.errors import UpstreamError
from waypost.core.types import ChatResponse, Part, TextPart, ThinkingPart, ToolCallPart
from waypost.wire.bedrock.mapping import PROVIDER, finish_from_stop_reason, usage_from_bedrock
from waypost.wire.conventions import compact_json


def decode_response(body: Any, *, model: str, response_id: str = "") -> ChatResponse:
    """A Converse response body -> canonical response."""
    if not isinstance(body, dict):
        raise UpstreamError("bedrock upstream response is not a JSON object", provider=PROVIDER)
    output = body.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        raise UpstreamError("bedrock upstream response has no output message content", provider=PROVIDER)
    parts: list[Part] = []
    for block in content:
        part = decode_block(block)
        if part is not None:
            parts.append(part)
    return ChatResponse(
        id=response_id,
        model=model,
        content=parts,
        finish_reason=finish_from_stop_reason(body.get("stopReason")),
        stop_sequence=stop_sequence_from(body.get("additionalModelResponseFields")),
        usage=usage_from_bedrock(body.get("usage")),
    )


def decode_block(block: Any) -> Part | None:
    """One Converse content block (a union: exactly one key is set) -> a canonical part."""
    if not isinstance(block, dict):
        return None
    text = block.get("text")
    if isinstance(text, str):
        return TextPart(text=text)
    use = block.get("toolUse")
    if isinstance(use, dict):
        tool_id, name, raw_input = use.get("toolUseId"), use.get("name"), use.get("input")
        return ToolCallPart(
            id=tool_id if isinstance(tool_id, str) else "",
            name=name if isinstance(name, str) else "",
            arguments="{}" if raw_input is None else compact_json(raw_input),
        )
    reasoning = block.get("reasoningContent")
    if isinstance(reasoning, dict):
        return _reasoning(reasoning)
    citations = block.get("citationsContent")
    if isinstance(citations, dict) and isinstance(citations.get("content"), list):
        cited = "".join(
            c["text"] for c in citations["content"] if isinstance(c, dict) and isinstance(c.get("text"), str)
        )
        return TextPart(text=cited) if cited else None
    return None


def _reasoning(reasoning: dict[str, Any]) -> ThinkingPart | None:
    redacted = reasoning.get("redactedContent")
    if isinstance(redacted, str):
        return ThinkingPart(redacted=True, data=redacted)
    text_block = reasoning.get("reasoningText")
    if not isinstance(text_block, dict):
        return None
    text, signature = text_block.get("text"), text_block.get("signature")
    return ThinkingPart(
        text=text if isinstance(text, str) else "",
        signature=signature if isinstance(signature, str) and signature else None,
    )


def stop_sequence_from(fields: Any) -> str | None:
    """The matched stop sequence, which Anthropic models report when asked for ``/stop_sequence``."""
    if isinstance(fields, dict):
        value = fields.get("stop_sequence")
        if isinstance(value, str) and value:
            return value
    return None
