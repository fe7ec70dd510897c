"""Vocabulary shared by the Anthropic request, response and stream translators: stop reasons,
usage accounting, error types, message and tool ids, and the JSON text of tool inputs."""

from __future__ import annotations

import re
from typing import Any

import orjson

from waypost.core.errors import (
    GatewayError,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    StreamInterrupted,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamTimeout,
)
from waypost.core.types import FinishReason, Usage

STOP_REASON_TO_FINISH: dict[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "stop_sequence": FinishReason.STOP_SEQUENCE,
    "refusal": FinishReason.REFUSAL,
    "pause_turn": FinishReason.PAUSE,
    "model_context_window_exceeded": FinishReason.LENGTH,
}

FINISH_TO_STOP_REASON: dict[FinishReason, str] = {
    FinishReason.STOP: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.STOP_SEQUENCE: "stop_sequence",
    FinishReason.CONTENT_FILTER: "refusal",
    FinishReason.REFUSAL: "refusal",
    FinishReason.PAUSE: "pause_turn",
}

_TOOL_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def finish_from_stop_reason(stop_reason: Any) -> FinishReason | None:
    if not isinstance(stop_reason, str):
        return None
    # An unknown, newer stop reason is still an end of turn; STOP is the least surprising reading.
    return STOP_REASON_TO_FINISH.get(stop_reason, FinishReason.STOP)


def stop_reason_for(finish: FinishReason | None, *, has_tool_calls: bool) -> str:
    """The Anthropic ``stop_reason`` for a canonical finish.

    Some OpenAI-compatible servers answer ``stop`` although the message carries tool calls;
    agents loop on ``stop_reason == "tool_use"``, so tool calls win over a plain stop.
    """
    if has_tool_calls and finish in (None, FinishReason.STOP):
        return "tool_use"
    if finish is None:
        return "end_turn"
    return FINISH_TO_STOP_REASON.get(finish, "end_turn")


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return max(value, 0)


class UsageCounts:
    """Anthropic's own usage fields, where ``input_tokens`` excludes cache reads and writes.

    Stream events report some fields and omit others (``message_start`` has the
    ``cache_creation`` breakdown, ``message_delta`` cumulative totals without it); each field
    keeps its latest reported value so that the canonical total (which includes the cache) is
    never computed from a partial view.
    """

    __slots__ = ("cache_read", "cache_write", "input", "output", "thinking", "write_1h", "write_5m")

    def __init__(self) -> None:
        self.input = 0
        self.output = 0
        self.cache_read = 0
        self.cache_write = 0
        self.write_5m = 0
        self.write_1h = 0
        self.thinking = 0

    def update(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        for attr, key in (
            ("input", "input_tokens"),
            ("output", "output_tokens"),
            ("cache_read", "cache_read_input_tokens"),
            ("cache_write", "cache_creation_input_tokens"),
        ):
            value = _int(raw.get(key))
            if value is not None:
                setattr(self, attr, value)
        breakdown = raw.get("cache_creation")
        if isinstance(breakdown, dict):
            for attr, key in (
                ("write_5m", "ephemeral_5m_input_tokens"),
                ("write_1h", "ephemeral_1h_input_tokens"),
            ):
                value = _int(breakdown.get(key))
                if value is not None:
                    setattr(self, attr, value)
        details = raw.get("output_tokens_details")
        if isinstance(details, dict):
            thinking = _int(details.get("thinking_tokens"))
            if thinking is not None:
                self.thinking = thinking

    def canonical(self) -> Usage:
        # The total is authoritative; the breakdown stands in when a server sends only it.
        write = max(self.cache_write, self.write_5m + self.write_1h)
        return Usage(
            input_tokens=self.input + self.cache_read + write,
            output_tokens=max(self.output, self.thinking),
            cache_read_tokens=self.cache_read,
            cache_write_tokens=write,
            cache_write_1h_tokens=min(self.write_1h, write),
            reasoning_tokens=self.thinking,
        )


def usage_from_anthropic(raw: Any) -> Usage:
    counts = UsageCounts()
    counts.update(raw)
    return counts.canonical()


def usage_to_anthropic(usage: Usage, *, breakdown: bool = True) -> dict[str, Any]:
    """The caller's ``usage`` object: ``input_tokens`` without the cache, cache reads and writes
    beside it, and (with ``breakdown``) the writes split by duration in ``cache_creation``, as the
    Messages API answers them; reasoning in ``output_tokens_details.thinking_tokens``."""
    write = usage.cache_write_tokens
    uncached = usage.input_tokens - usage.cache_read_tokens - write
    out: dict[str, Any] = {
        "input_tokens": max(uncached, 0),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }
    if breakdown:
        write_1h = min(usage.cache_write_1h_tokens, write)
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": write - write_1h,
            "ephemeral_1h_input_tokens": write_1h,
        }
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def safe_tool_id(tool_id: str) -> str:
    """Anthropic tool ids must match ``^[a-zA-Z0-9_-]+$``; used alike for tool_use and tool_result."""
    cleaned = _TOOL_ID_UNSAFE.sub("_", tool_id)
    return cleaned or "toolu_missing_id"


def message_id(resp_id: str, fallback_id: str) -> str:
    """An Anthropic-looking ``msg_`` id derived from a canonical response id, or from
    ``fallback_id`` (a fresh id the caller made: the wire has no randomness) when it has none."""
    if resp_id.startswith("msg_"):
        return resp_id
    # Unique, because ids of tool calls without one are derived from it.
    return "msg_" + (resp_id or fallback_id or "waypost")


def client_tool_id(tool_id: str, msg_id: str, index: int) -> str:
    """A tool id the client can send back to any Anthropic upstream unchanged.

    Ids are sanitised here already (rather than only on the way upstream) so the client's history
    holds the same id everywhere; some upstreams (Gemini) give calls no id at all."""
    if tool_id:
        return safe_tool_id(tool_id)
    return safe_tool_id(f"toolu_{msg_id.removeprefix('msg_')}_{index}")


def tool_input_object(arguments: str) -> dict[str, Any]:
    """Tool arguments as the object clients expect; text that is not a JSON object gives ``{}``."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def error_body(err: GatewayError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": err.anthropic_type, "message": err.message}}


def error_message(raw: Any, fallback: str) -> str:
    if isinstance(raw, dict):
        message = raw.get("message")
        if isinstance(message, str) and message:
            return message
    return fallback


def error_from_body(raw: Any, *, provider: str | None = "anthropic") -> GatewayError:
    """Map an Anthropic ``{"type": "error", "error": {...}}`` body to the error tree."""
    inner = raw.get("error") if isinstance(raw, dict) else None
    err_type = inner.get("type") if isinstance(inner, dict) else None
    message = error_message(inner, "upstream returned an error")
    kinds: dict[str, type[GatewayError]] = {
        "invalid_request_error": UpstreamBadRequest,
        "not_found_error": UpstreamBadRequest,
        "authentication_error": UpstreamAuthError,
        "permission_error": UpstreamAuthError,
        "request_too_large": PayloadTooLarge,
        "rate_limit_error": RateLimited,
        "overloaded_error": Overloaded,
        "timeout_error": UpstreamTimeout,
    }
    cls = kinds.get(err_type, UpstreamError) if isinstance(err_type, str) else UpstreamError
    return cls(message, provider=provider)


def stream_error_from_event(raw: Any) -> GatewayError:
    """An ``event: error`` after the stream began: overload and rate limits stay retryable as such."""
    inner = raw.get("error") if isinstance(raw, dict) else None
    err_type = inner.get("type") if isinstance(inner, dict) else None
    message = error_message(inner, "upstream stream reported an error")
    if err_type == "overloaded_error":
        return Overloaded(message, provider="anthropic")
    if err_type == "rate_limit_error":
        return RateLimited(message, provider="anthropic")
    return StreamInterrupted(message, provider="anthropic")
