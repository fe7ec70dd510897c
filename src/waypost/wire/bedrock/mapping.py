"""Vocabulary shared by the Bedrock Converse translators: stop reasons, usage accounting, the
error types Bedrock names, tool ids, and which model family an id belongs to."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from waypost.core.errors import (
    GatewayError,
    Overloaded,
    RateLimited,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamTimeout,
    from_upstream_status,
)
from waypost.core.types import FinishReason, Usage

PROVIDER = "bedrock"

Family = Literal["anthropic", "nova", "mistral", "other"]

STOP_REASON_TO_FINISH: dict[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "tool_use": FinishReason.TOOL_CALLS,
    "max_tokens": FinishReason.LENGTH,
    "stop_sequence": FinishReason.STOP_SEQUENCE,
    "content_filtered": FinishReason.CONTENT_FILTER,
    "guardrail_intervened": FinishReason.CONTENT_FILTER,
    "model_context_window_exceeded": FinishReason.LENGTH,
    # The model produced something unusable; what did arrive is still delivered.
    "malformed_model_output": FinishReason.STOP,
    "malformed_tool_use": FinishReason.STOP,
}

# Keyed by the lower-cased type name: HTTP errors name it ``ThrottlingException`` in the
# ``x-amzn-ErrorType`` header, mid-stream exception frames ``throttlingException``.
_ERROR_KINDS: dict[str, type[GatewayError]] = {
    "throttlingexception": RateLimited,
    "servicequotaexceededexception": RateLimited,
    "validationexception": UpstreamBadRequest,
    "conflictexception": UpstreamBadRequest,
    "resourcenotfoundexception": UpstreamBadRequest,
    "accessdeniedexception": UpstreamAuthError,
    "unrecognizedclientexception": UpstreamAuthError,
    "invalidsignatureexception": UpstreamAuthError,
    "incompletesignatureexception": UpstreamAuthError,
    "missingauthenticationtokenexception": UpstreamAuthError,
    "expiredtokenexception": UpstreamAuthError,
    "serviceunavailableexception": Overloaded,
    "modelnotreadyexception": Overloaded,
    "modeltimeoutexception": UpstreamTimeout,
    "modelstreamerrorexception": UpstreamError,
    "modelerrorexception": UpstreamError,
    "internalserverexception": UpstreamError,
}

_TOOL_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_.:-]")
_MAX_TOOL_ID = 64


def model_family(model_id: str) -> Family:
    """Which vendor's model-specific fields an id takes (inference profiles like
    ``us.anthropic.claude-...`` included; an opaque ARN is ``other``)."""
    lowered = model_id.lower()
    if "anthropic." in lowered or "claude" in lowered:
        return "anthropic"
    if "amazon.nova" in lowered:
        return "nova"
    if "mistral." in lowered:
        return "mistral"
    return "other"


def finish_from_stop_reason(stop_reason: Any) -> FinishReason:
    if not isinstance(stop_reason, str):
        return FinishReason.STOP
    return STOP_REASON_TO_FINISH.get(stop_reason, FinishReason.STOP)


def _count(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(value, 0)


def usage_from_bedrock(raw: Any) -> Usage:
    """Bedrock's ``TokenUsage``: ``inputTokens`` counts only the uncached input (cache reads and
    writes are reported beside it); the canonical ``input_tokens`` counts all of it. The writes
    made for an hour are the ``cacheDetails`` entries with ``ttl`` ``1h``."""
    if not isinstance(raw, dict):
        return Usage()
    uncached = _count(raw, "inputTokens")
    read = _count(raw, "cacheReadInputTokens")
    by_ttl: dict[str, int] = {}
    details = raw.get("cacheDetails")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and isinstance(detail.get("ttl"), str):
            by_ttl[detail["ttl"]] = by_ttl.get(detail["ttl"], 0) + _count(detail, "inputTokens")
    # The total is authoritative; the breakdown stands in when only it is sent.
    write = max(_count(raw, "cacheWriteInputTokens"), sum(by_ttl.values()))
    return Usage(
        input_tokens=uncached + read + write,
        output_tokens=_count(raw, "outputTokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=min(by_ttl.get("1h", 0), write),
    )


def error_type_name(raw: str | None) -> str | None:
    """``ThrottlingException:http://internal.amazon.com/coral/...`` or
    ``aws.protocols#ThrottlingException`` -> ``ThrottlingException``."""
    if not raw:
        return None
    name = raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return name or None


def error_for(
    error_type: str | None,
    message: str,
    *,
    model: str,
    upstream_status: int | None = None,
    retry_after: float | None = None,
) -> GatewayError:
    """Map a Bedrock error (an HTTP error response or a mid-stream exception frame).

    Credential failures never echo Bedrock's text; an unknown type falls back to the status."""
    name = error_type_name(error_type)
    kind = _ERROR_KINDS.get(name.lower()) if name else None
    label = f" ({name})" if name else ""
    kwargs: dict[str, Any] = {
        "provider": PROVIDER,
        "upstream_status": upstream_status,
        "retry_after": retry_after,
    }
    if kind is UpstreamAuthError or (kind is None and upstream_status in (401, 403)):
        return UpstreamAuthError(
            f"the bedrock provider refused the gateway's credentials for model {model!r}{label}", **kwargs
        )
    where = f"returned {upstream_status}" if upstream_status is not None else "reported an error"
    text = f"bedrock upstream {where}{label}: {message or 'no error message'}"
    if kind is not None:
        return kind(text, **kwargs)
    if upstream_status is not None:
        return from_upstream_status(upstream_status, text, provider=PROVIDER, retry_after=retry_after)
    return UpstreamError(text, provider=PROVIDER)


def error_message(body: Any) -> str:
    """The ``message`` (or ``Message``) of a Bedrock error body."""
    if isinstance(body, dict):
        for key in ("message", "Message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:1000]
    return ""


def safe_tool_use_id(tool_id: str) -> str:
    """Bedrock tool ids match ``[a-zA-Z0-9_.:-]+`` and have at most 64 characters; used alike for
    calls and results so that they still pair up."""
    cleaned = _TOOL_ID_UNSAFE.sub("_", tool_id)
    if not cleaned:
        return "tooluse_missing_id"
    if len(cleaned) > _MAX_TOOL_ID:
        digest = hashlib.sha256(tool_id.encode()).hexdigest()[:16]
        cleaned = cleaned[: _MAX_TOOL_ID - 17] + "_" + digest
    return cleaned


def stop_sequence_from(fields: Any) -> str | None:
    """The matched stop sequence, which Anthropic models report when asked for ``/stop_sequence``."""
    if isinstance(fields, dict):
        value = fields.get("stop_sequence")
        if isinstance(value, str) and value:
            return value
    return None
