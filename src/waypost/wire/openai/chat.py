"""The OpenAI Chat Completions wire format, both directions.

One import point for the format; the work is split by responsibility:
``chat_decode`` (client requests), ``chat_encode`` (upstream requests),
``chat_response`` (non-streamed bodies and shared mappings) and ``chat_stream``.

Conventions other modules rely on:

* ``decode_request`` keeps the client body in ``req.raw``; ``encode_request`` forwards it almost
  untouched when ``req.source_format == "openai"``. Whoever changes a canonical field of such a
  request (transforms, rules) must edit ``req.raw`` too or set it to ``None`` to force a rebuild.
* Streaming upstream calls always ask for usage; ``req.include_usage`` is what the client asked
  for and is what ``StreamEncoder(include_usage=...)`` gets.
* Thinking crosses this format as ``reasoning_content`` (text) plus ``thinking_blocks`` (text and
  signature, or redacted data), in requests, responses and stream deltas.
"""

from __future__ import annotations

from typing import Any

from waypost.core.errors import GatewayError
from waypost.wire.openai.chat_decode import FORMAT, decode_request, parse_data_url
from waypost.wire.openai.chat_encode import TOOL_ERROR_PREFIX, effort_for_budget, encode_request
from waypost.wire.openai.chat_response import (
    encode_response,
    error_object,
    finish_from_openai,
    response_id,
    stop_reason_to_openai,
    usage_from_openai,
    usage_to_openai,
)
from waypost.wire.openai.chat_stream import DONE, StreamDecoder, StreamEncoder, decode_response

__all__ = [
    "DONE",
    "FORMAT",
    "TOOL_ERROR_PREFIX",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "effort_for_budget",
    "encode_error",
    "encode_request",
    "encode_response",
    "finish_from_openai",
    "parse_data_url",
    "response_id",
    "stop_reason_to_openai",
    "usage_from_openai",
    "usage_to_openai",
]


def encode_error(err: GatewayError) -> tuple[int, dict[str, Any]]:
    """An error as (HTTP status, OpenAI error body)."""
    return err.status, error_object(err)
