"""Vocabulary shared by the Gemini request, response and stream translators: finish reasons,
usage accounting, error bodies, tool-call ids and the thought-signature convention.

Thought signatures
------------------
Gemini puts an opaque ``thoughtSignature`` on response parts (a thought, a text part, or a
``functionCall``) and wants it back on the same part in the next request; Gemini 3 refuses a tool
loop whose function calls lost theirs. The canonical model carries signatures only on
``ThinkingPart``, so every Gemini signature becomes a ``ThinkingPart.signature`` of the form
``gemini:<target>:<signature>``:

* ``gemini:thought:<sig>`` -- on the thought part itself (the ``ThinkingPart`` holds its text);
* ``gemini:call<k>:<sig>`` -- for the k-th (0-based) function call of the same assistant message,
  carried by an empty ``ThinkingPart`` placed right before that call;
* ``gemini:text:<sig>`` -- for the last text part of the message, carried by an empty
  ``ThinkingPart`` placed right after the text.

The target survives clients that reorder content (OpenAI's format keeps reasoning, text and tool
calls in separate fields), and the prefix tells a Gemini signature from another provider's: only
signatures with the prefix are sent to Gemini, which rejects anything it did not sign.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from waypost.core.errors import (
    GatewayError,
    Overloaded,
    RateLimited,
    StreamInterrupted,
    UpstreamAuthError,
    UpstreamError,
    UpstreamTimeout,
    from_upstream_status,
)
from waypost.core.types import FinishReason, Usage
from waypost.wire.conventions import GEMINI_SIGNATURE_PREFIX

PROVIDER = "gemini"
SIGNATURE_PREFIX = GEMINI_SIGNATURE_PREFIX
# The value Google documents for function calls whose history Gemini did not produce itself
# (another model's turns, a fallback mid-conversation): Gemini 3 then skips its signature check.
SKIP_SIGNATURE = "skip_thought_signature_validator"
SYNTHETIC_CALL_PREFIX = "call_gemini_"

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")
_SIGNATURE = re.compile(r"^gemini:(thought|text|call(\d+)):(.+)$", re.DOTALL)

FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
    "IMAGE_SAFETY": FinishReason.CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "IMAGE_RECITATION": FinishReason.CONTENT_FILTER,
    "MODEL_ARMOR": FinishReason.CONTENT_FILTER,
    "JAILBREAK": FinishReason.CONTENT_FILTER,
}
# Ends of turn that are failures rather than answers. With nothing produced they are raised as a
# retryable upstream error (never a clean, empty answer); after some output they read as a stop.
FAILED_FINISHES = frozenset(
    {
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
        "OTHER",
        "LANGUAGE",
        "IMAGE_OTHER",
        "NO_IMAGE",
        "FINISH_REASON_UNSPECIFIED",
    }
)


def finish_reason(raw: str, *, has_tool_calls: bool) -> FinishReason:
    """The canonical finish for a Gemini ``finishReason`` that is not a failure.

    Gemini says ``STOP`` after function calls; agents loop on a tool-calls finish, so calls win."""
    if has_tool_calls and raw in ("STOP", *FAILED_FINISHES):
        return FinishReason.TOOL_CALLS
    return FINISH_REASONS.get(raw, FinishReason.STOP)


def _count(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(value, 0)


def usage_from_gemini(raw: Any) -> Usage:
    """``usageMetadata`` -> canonical usage. ``promptTokenCount`` already includes the cached part
    (``cachedContentTokenCount``); ``toolUsePromptTokenCount`` (the results of built-in tools fed
    back to the model) is billed as input beside it; thoughts are billed as output but reported
    apart from ``candidatesTokenCount``, so they are added to it (and reported as reasoning)."""
    if not isinstance(raw, dict):
        return Usage()
    thoughts = _count(raw, "thoughtsTokenCount")
    cached = _count(raw, "cachedContentTokenCount")
    prompt = _count(raw, "promptTokenCount") + _count(raw, "toolUsePromptTokenCount")
    return Usage(
        input_tokens=max(prompt, cached),
        output_tokens=_count(raw, "candidatesTokenCount") + thoughts,
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
    )


# -- thought signatures ----------------------------------------------------------------------


def wrap_signature(target: str, signature: str) -> str:
    """The canonical form of a Gemini signature; ``target`` is ``thought``, ``text`` or ``call<k>``."""
    return f"{SIGNATURE_PREFIX}{target}:{signature}"


def unwrap_signature(value: str | None) -> tuple[str, int | None, str] | None:
    """``(kind, call index, signature)`` of a canonical signature Gemini issued, else ``None``."""
    if not value:
        return None
    match = _SIGNATURE.match(value)
    if match is None:
        return None
    target, index, signature = match.group(1), match.group(2), match.group(3)
    if index is not None:
        return "call", int(index), signature
    return target, None, signature


# -- tool calls ------------------------------------------------------------------------------


def new_call_id(response_id: str, index: int, fallback_id: str) -> str:
    """An id for a function call Gemini gave none: derived from the response id (or, when that
    has nothing usable, the caller's fresh ``fallback_id``), so it is the same however the answer
    was read, and recognisable, so it is never sent back to Gemini."""
    base = _UNSAFE_ID.sub("", response_id)[:40] or _UNSAFE_ID.sub("", fallback_id)[:40]
    return f"{SYNTHETIC_CALL_PREFIX}{base}_{index}"


def is_synthetic_call_id(call_id: str) -> bool:
    return call_id.startswith(SYNTHETIC_CALL_PREFIX)


# -- errors ----------------------------------------------------------------------------------


def _retry_delay(error: Mapping[str, Any]) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "23s"``)."""
    details = error.get("details")
    if not isinstance(details, list):
        return None
    for detail in details:
        if not isinstance(detail, dict) or not str(detail.get("@type", "")).endswith("RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def _reasons(error: Mapping[str, Any]) -> set[str]:
    details = error.get("details")
    if not isinstance(details, list):
        return set()
    return {str(d["reason"]) for d in details if isinstance(d, dict) and isinstance(d.get("reason"), str)}


def _error_object(body: Any) -> dict[str, Any]:
    if isinstance(body, list) and body:
        body = body[0]  # streamGenerateContent without alt=sse wraps errors in a list
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def error_from_response(
    status: int,
    body: bytes,
    *,
    model: str,
    retry_after: float | None = None,
) -> GatewayError:
    """Map a non-2xx Gemini answer (``{"error": {code, message, status, details}}``).

    Gemini answers a bad API key with 400 ``INVALID_ARGUMENT`` (reason ``API_KEY_INVALID``): that
    is the gateway's configuration, not the caller's request, so it maps like a 401. Credential
    failures never echo upstream text.
    """
    try:
        error = _error_object(orjson.loads(body))
    except orjson.JSONDecodeError:
        error = {}
    grpc_status = error.get("status") if isinstance(error.get("status"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    if message is None:
        message = body[:300].decode("utf-8", "replace").strip() or "no error message"
    if retry_after is None:
        retry_after = _retry_delay(error)
    reasons = _reasons(error)
    kwargs: dict[str, Any] = {"provider": PROVIDER, "upstream_status": status, "retry_after": retry_after}
    if (
        status in (401, 403)
        or grpc_status in ("UNAUTHENTICATED", "PERMISSION_DENIED")
        or ("API_KEY_INVALID" in reasons)
    ):
        return UpstreamAuthError(
            f"the {PROVIDER} provider refused the gateway's credentials for model {model!r}", **kwargs
        )
    text = f"{PROVIDER} upstream returned {status}" + (f" {grpc_status}" if grpc_status else "")
    text += ": " + message[:1000]
    if grpc_status == "FAILED_PRECONDITION":
        # Billing or region not enabled for the key: another deployment may well work.
        return UpstreamError(text, **kwargs)
    if grpc_status == "RESOURCE_EXHAUSTED":
        return RateLimited(text, **kwargs)
    if grpc_status == "UNAVAILABLE":
        return Overloaded(text, **kwargs)
    if grpc_status == "DEADLINE_EXCEEDED":
        return UpstreamTimeout(text, **kwargs)
    return from_upstream_status(status, text, provider=PROVIDER, retry_after=retry_after)


def stream_error(body: Any) -> GatewayError:
    """An ``{"error": ...}`` object in place of a response chunk (mid-stream, or in a 200 body)."""
    error = _error_object(body)
    grpc_status = error.get("status")
    message = error.get("message") if isinstance(error.get("message"), str) else "stream reported an error"
    text = f"{PROVIDER} upstream reported an error mid-answer: " + str(message)[:1000]
    if grpc_status == "RESOURCE_EXHAUSTED":
        return RateLimited(text, provider=PROVIDER, retry_after=_retry_delay(error))
    if grpc_status == "UNAVAILABLE":
        return Overloaded(text, provider=PROVIDER)
    return StreamInterrupted(text, provider=PROVIDER)
