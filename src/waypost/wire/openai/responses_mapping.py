"""Vocabulary shared by the Responses API answer translators: usage, the response status and
its finish reason, and errors (the HTTP error body, the stream's ``error`` event, a failed
response's ``error`` object, and upstream errors back to the error tree)."""

from __future__ import annotations

from typing import Any, Literal

from waypost.core.errors import GatewayError, Overloaded, RateLimited, StreamInterrupted
from waypost.core.types import FinishReason, Usage
from waypost.wire.openai.chat_response import error_message, error_object, usage_from_openai

# The format's name (``client_format`` / ``source_format``); here, not in the index module, so
# that the request modules the index re-exports can import it without a cycle.
FORMAT = "openai_responses"
Status = Literal["completed", "incomplete"]

# The codes the ``error`` object of a failed response may carry (the SDK's ``ResponseError``).
_RATE_LIMITED = "rate_limit_exceeded"
_SERVER_ERROR = "server_error"
_OVERLOADED = frozenset({"server_is_overloaded", "overloaded", "service_unavailable"})


# -- usage ---------------------------------------------------------------------------------------


def usage_to_responses(usage: Usage) -> dict[str, Any]:
    """Canonical usage as the Responses API's: ``input_tokens`` includes cached ones, as ours."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def usage_from_responses(raw: Any) -> Usage | None:
    """An upstream's Responses ``usage``; ``None`` when absent. Read with the chat reader (the
    same counts under other names), so that both OpenAI dialects read oddities alike."""
    if not isinstance(raw, dict):
        return None
    return usage_from_openai(
        {
            "prompt_tokens": raw.get("input_tokens"),
            "completion_tokens": raw.get("output_tokens"),
            "prompt_tokens_details": raw.get("input_tokens_details"),
            "completion_tokens_details": raw.get("output_tokens_details"),
        }
    )


# -- status and finish reason ---------------------------------------------------------------------


def status_for(reason: FinishReason | None) -> tuple[Status, str | None]:
    """``(status, incomplete_details.reason)`` of a response that ended for ``reason``."""
    if reason is FinishReason.LENGTH:
        return "incomplete", "max_output_tokens"
    if reason in (FinishReason.CONTENT_FILTER, FinishReason.REFUSAL):
        return "incomplete", "content_filter"
    return "completed", None


def finish_from_status(status: Any, details: Any, *, has_tool_calls: bool, refused: bool) -> FinishReason:
    """The finish reason of an upstream response from its ``status`` and ``incomplete_details``;
    a completed one whose message is a refusal finished for that."""
    if status == "incomplete":
        reason = details.get("reason") if isinstance(details, dict) else None
        return FinishReason.CONTENT_FILTER if reason == "content_filter" else FinishReason.LENGTH
    if has_tool_calls:
        return FinishReason.TOOL_CALLS
    return FinishReason.REFUSAL if refused else FinishReason.STOP


# -- errors -----------------------------------------------------------------------------------------


def encode_error(err: GatewayError) -> tuple[int, dict[str, Any]]:
    """An error as (HTTP status, body): the Responses API answers in the chat API's error shape."""
    return err.status, error_object(err)


def error_event(err: GatewayError, sequence_number: int) -> dict[str, Any]:
    """The stream's ``error`` event for a failure after the first byte."""
    return {
        "type": "error",
        "sequence_number": sequence_number,
        "code": err.code or err.openai_type,
        "message": err.message,
        "param": err.param,
    }


def failed_error(err: GatewayError) -> dict[str, Any]:
    """A failed response's ``error``: its ``code`` is one of the few the API defines."""
    code = _RATE_LIMITED if isinstance(err, RateLimited) else _SERVER_ERROR
    return {"code": code, "message": err.message}


def error_from_responses(raw: Any, cls: type[GatewayError] = StreamInterrupted) -> GatewayError:
    """An upstream error object (an ``error`` event, flat or with the object under ``error``, or
    a failed response's ``error``): rate limits and overload stay retryable as such."""
    inner = raw.get("error") if isinstance(raw, dict) and isinstance(raw.get("error"), dict) else raw
    code = inner.get("code") if isinstance(inner, dict) else None
    kind = inner.get("type") if isinstance(inner, dict) else None
    message = error_message(inner)
    if code == _RATE_LIMITED or kind == "rate_limit_error":
        return RateLimited(message)
    if code in _OVERLOADED or kind in _OVERLOADED:
        return Overloaded(message)
    return cls(message)
