"""Gemini responses (non-streamed ``generateContent``, ``countTokens``) -> canonical results.

A ``generateContent`` body is the same ``GenerateContentResponse`` a stream sends in pieces, so it
is decoded by the stream decoder and folded: one code path, one behaviour for both.
"""

from __future__ import annotations

from typing import Any

from waypost.core.errors import UpstreamError
from waypost.core.events import fold
from waypost.core.types import ChatResponse
from waypost.wire.gemini.mapping import PROVIDER
from waypost.wire.gemini.stream import StreamDecoder


def decode_response(body: Any, fallback_id: str) -> ChatResponse:
    """A ``generateContent`` response body -> canonical response; ``fallback_id`` as for
    ``StreamDecoder``."""
    if not isinstance(body, dict):
        raise UpstreamError(f"{PROVIDER} upstream response is not a JSON object", provider=PROVIDER)
    candidates = body.get("candidates")
    feedback = body.get("promptFeedback")
    blocked = isinstance(feedback, dict) and isinstance(feedback.get("blockReason"), str)
    if "error" not in body and not blocked and not (isinstance(candidates, list) and candidates):
        raise UpstreamError(f"{PROVIDER} upstream response has no candidates", provider=PROVIDER)
    decoder = StreamDecoder(fallback_id)
    events = decoder.feed(body)
    events += decoder.finish(whole=True)
    return fold(events)


def decode_token_count(body: Any) -> int:
    """A ``countTokens`` response body -> the prompt's token count."""
    total = body.get("totalTokens") if isinstance(body, dict) else None
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise UpstreamError(f"{PROVIDER} upstream token count has no totalTokens", provider=PROVIDER)
    return total
