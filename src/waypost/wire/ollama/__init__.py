"""Ollama's native API (``/api/chat``, ``/api/embed``), towards the upstream only: no client
speaks it to the gateway, so there is no decoder of requests and no encoder of answers.

One import point for the format; the work is split by responsibility: ``request``
(canonical request -> body), ``response`` (answers, embeddings), ``stream`` (NDJSON lines ->
events) and ``mapping`` (what the last two share).

What crosses and what does not (also in docs/providers/ollama.md):

* Carried: system/user/assistant/tool messages, inline images, tool definitions, tool calls
  (arguments as objects) and results (``tool_name``), JSON mode and schemas (``format``),
  ``num_predict``/temperature/top_p/top_k/stop/seed/penalties (``options``), thinking
  (``think`` and ``message.thinking``), usage from ``prompt_eval_count``/``eval_count``.
* Dropped with a note: images given by URL (never fetched), non-text documents, forced
  ``tool_choice``, thinking budgets and signatures, redacted thinking, ``cache_control``,
  metadata and user.
"""

from __future__ import annotations

from waypost.wire.ollama.mapping import (
    created_from_ollama,
    error_text,
    finish_from_ollama,
    tool_call_id,
    usage_from_ollama,
)
from waypost.wire.ollama.request import FORMAT, TOOL_ERROR_PREFIX, encode_request, tool_arguments_object
from waypost.wire.ollama.response import decode_embed_response, decode_response, encode_embed_request
from waypost.wire.ollama.stream import LineSplitter, StreamDecoder

__all__ = [
    "FORMAT",
    "TOOL_ERROR_PREFIX",
    "LineSplitter",
    "StreamDecoder",
    "created_from_ollama",
    "decode_embed_response",
    "decode_response",
    "encode_embed_request",
    "encode_request",
    "error_text",
    "finish_from_ollama",
    "tool_arguments_object",
    "tool_call_id",
    "usage_from_ollama",
]
