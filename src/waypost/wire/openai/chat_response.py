"""OpenAI ``chat.completion`` bodies <-> canonical ``ChatResponse``, plus the shared mappings
(finish reasons, usage, thinking blocks, error objects) the stream translators reuse.

Upstream bodies are untrusted: missing or oddly typed fields degrade to defaults, never crash.
"""

from __future__ import annotations

from typing import Any

import orjson

from waypost.core.errors import GatewayError, UpstreamError
from waypost.core.types import (
    ChatResponse,
    FinishReason,
    ThinkingPart,
    Usage,
)

_FINISH_FROM_OPENAI = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    # Spellings seen from OpenAI-compatible servers.
    "eos": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
}

_FINISH_TO_OPENAI = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.STOP_SEQUENCE: "stop",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.REFUSAL: "content_filter",
    FinishReason.PAUSE: "stop",
}


def finish_from_openai(value: Any, *, has_tool_calls: bool) -> FinishReason:
    """An upstream ``finish_reason``; servers that say "stop" after tool calls mean tool_calls."""
    reason = _FINISH_FROM_OPENAI.get(value) if isinstance(value, str) else None
    if reason is None or reason is FinishReason.STOP:
        return FinishReason.TOOL_CALLS if has_tool_calls else FinishReason.STOP
    return reason


def stop_reason_to_openai(reason: FinishReason | None) -> str:
    """A canonical finish reason as one of the values OpenAI clients accept."""
    return _FINISH_TO_OPENAI.get(reason, "stop") if reason is not None else "stop"


def _count(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if type(value) is int:  # the usual (a bool is not, by its exact type)
        return value if value >= 0 else 0
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)


def _details(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def usage_from_openai(raw: Any) -> Usage | None:
    """An upstream ``usage`` object; ``None`` when absent or not an object."""
    if not isinstance(raw, dict):
        return None
    prompt = _details(raw, "prompt_tokens_details")
    completion = _details(raw, "completion_tokens_details")
    cache_read = _count(prompt, "cached_tokens") or _count(raw, "prompt_cache_hit_tokens")  # DeepSeek
    cache_write = (
        _count(prompt, "cache_write_tokens")  # OpenRouter
        or _count(prompt, "cache_creation_tokens")
        or _count(prompt, "cache_creation_input_tokens")
        or _count(raw, "cache_creation_input_tokens")  # Anthropic-backed compatible servers
    )
    reasoning = _count(completion, "reasoning_tokens") or _count(raw, "reasoning_tokens")
    return Usage(
        # Keep the canonical invariants even when a server's numbers disagree with each other.
        input_tokens=max(_count(raw, "prompt_tokens"), cache_read + cache_write),
        output_tokens=max(_count(raw, "completion_tokens"), reasoning),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    prompt_details: dict[str, Any] = {"cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def response_id(raw_id: str) -> str:
    """An id in OpenAI's ``chatcmpl-`` form, derived from the upstream id when it has another."""
    if raw_id.startswith("chatcmpl-"):
        return raw_id
    return f"chatcmpl-{raw_id}" if raw_id else "chatcmpl-waypost"


def thinking_block(part: ThinkingPart) -> dict[str, Any]:
    """A ``thinking_blocks`` entry, the convention OpenAI-format gateways use for signatures."""
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.data or ""}
    block: dict[str, Any] = {"type": "thinking", "thinking": part.text}
    if part.signature:
        block["signature"] = part.signature
    return block


def thinking_from_block(raw: Any) -> ThinkingPart | None:
    if not isinstance(raw, dict):
        return None
    if raw.get("type") == "redacted_thinking":
        data = raw.get("data")
        return ThinkingPart(redacted=True, data=data if isinstance(data, str) else None)
    text = raw.get("thinking")
    signature = raw.get("signature")
    return ThinkingPart(
        text=text if isinstance(text, str) else "",
        signature=signature if isinstance(signature, str) and signature else None,
    )


def arguments_text(raw: Any) -> str:
    """Tool-call ``arguments`` as JSON text; a few servers send the parsed object instead."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict | list):
        return orjson.dumps(raw).decode()
    return ""


def error_message(raw: Any) -> str:
    if isinstance(raw, dict):
        message = raw.get("message")
        if isinstance(message, str) and message:
            return message
    if isinstance(raw, str) and raw:
        return raw
    return "upstream reported an error"


def error_object(err: GatewayError) -> dict[str, Any]:
    """The ``{"error": {...}}`` body OpenAI clients parse."""
    return {
        "error": {
            "message": err.message,
            "type": err.openai_type,
            "param": err.param,
            "code": err.code,
        }
    }


def message_text(content: Any) -> str:
    """A message's ``content`` as text: a string, or the text of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # a few servers answer with content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def response_message(body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An upstream ``chat.completion`` body's first choice and its message; raises
    ``UpstreamError`` if the body is unusable (an error object, no choices)."""
    if not isinstance(body, dict):
        raise UpstreamError("upstream answered something other than a JSON object")
    if body.get("error") is not None:
        raise UpstreamError(error_message(body["error"]))
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise UpstreamError("upstream response has no choices")
    choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), choices[0])
    if not isinstance(choice, dict):
        raise UpstreamError("upstream response choice is not an object")
    message = choice.get("message")
    return choice, message if isinstance(message, dict) else {}


def encode_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    """A ``ChatResponse`` as the ``chat.completion`` JSON an OpenAI client expects, for the model
    it asked for (``model``), whatever name the upstream answered with."""
    text = resp.text()
    calls = resp.tool_calls()
    thinking = [p for p in resp.content if isinstance(p, ThinkingPart)]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments or "{}"},
            }
            for c in calls
        ]
    if thinking:
        message["reasoning_content"] = "".join(t.text for t in thinking if not t.redacted)
        message["thinking_blocks"] = [thinking_block(t) for t in thinking]
    return {
        "id": response_id(resp.id),
        "object": "chat.completion",
        "created": resp.created,
        "model": model or resp.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": stop_reason_to_openai(resp.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": usage_to_openai(resp.usage),
    }
